# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Release waves: which clusters run next, what happens after a failure, the status table."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.wave_finish import wave_finish
from ansible_collections.canary.istio.plugins.filter.wave_plan import wave_plan
from ansible_collections.canary.istio.plugins.filter.wave_status import wave_status
from ansible_collections.canary.istio.plugins.module_utils._logic import waves


def cluster(name, wave, phase="fresh", **more):
    return {"name": name, "wave": wave, "phase": phase, **more}


THREE = [cluster("cluster-1", 1), cluster("cluster-2", "2"), cluster("cluster-3", 2)]


def test_waves_are_ascending_and_wave_strings_are_numbers():
    assert waves.waves([cluster("b", "3"), cluster("a", 1), cluster("c", 3)]) == [1, 3]


def test_first_wave_runs_its_clusters_only():
    assert wave_plan(THREE, 1) == {"wave": 1, "run": ["cluster-1"], "done": [], "skip": [],
                                   "reason": "wave 1: run cluster-1"}


def test_second_wave_runs_in_parallel_once_the_first_is_promoted():
    clusters = [{**THREE[0], "decision": "promote"}, *THREE[1:]]
    assert wave_plan(clusters, 2)["run"] == ["cluster-2", "cluster-3"]


@pytest.mark.parametrize("decision", ["rollback", "hold", "failed"])
def test_a_cluster_not_promoted_stops_every_later_wave(decision):
    clusters = [cluster("a", 1, decision=decision), cluster("b", 2), cluster("c", 3)]
    for wave in (2, 3):
        plan = wave_plan(clusters, wave)
        assert plan["run"] == [] and plan["skip"] == [["b"], ["c"]][wave - 2]
        assert "a " in plan["reason"] and "skipped" in plan["reason"]


def test_a_wave_that_never_ran_stops_the_next():
    clusters = [cluster("a", 1, outcome="skipped"), cluster("b", 2)]
    assert wave_plan(clusters, 2)["skip"] == ["b"]


def test_a_rerun_skips_clusters_already_promoted_and_continues_the_others():
    clusters = [cluster("cluster-1", 1, "promoted"), cluster("cluster-2", 2, "rolled_back"),
                cluster("cluster-3", 2, "in_progress")]
    assert wave_plan(clusters, 1) == {"wave": 1, "run": [], "done": ["cluster-1"], "skip": [],
                                      "reason": "wave 1: already promoted: cluster-1"}
    clusters[0]["outcome"] = "promoted"
    assert wave_plan(clusters, 2)["run"] == ["cluster-2", "cluster-3"]


def test_failure_in_wave_two_keeps_wave_one_by_default():
    clusters = [cluster("cluster-1", 1, decision="promote"), cluster("cluster-2", 2, decision="rollback"),
                cluster("cluster-3", 3, outcome="skipped")]
    end = wave_finish(clusters)
    assert end["rollback"] == [] and end["promoted"] == ["cluster-1"]
    assert end["failed"] == ["cluster-2"] and end["untouched"] == ["cluster-3"] and not end["ok"]
    assert end["summary"] == ("not promoted in cluster-2 (rolled back); later waves untouched: cluster-3; "
                              "kept promoted: cluster-1")


def test_failure_rolls_promoted_clusters_back_when_asked():
    clusters = [cluster("cluster-1", 1, decision="promote"), cluster("cluster-2", 2, outcome="failed"),
                cluster("cluster-3", 2, decision="promote")]
    end = wave_finish(clusters, "rollback")
    assert end["rollback"] == ["cluster-1", "cluster-3"] and end["promoted"] == []


def test_a_held_cluster_stops_but_rolls_nothing_back():
    clusters = [cluster("a", 1, decision="promote"), cluster("b", 2, decision="hold")]
    end = wave_finish(clusters, "rollback")
    assert end["rollback"] == [] and end["held"] == ["b"] and not end["ok"]


def test_everything_promoted_is_ok():
    end = wave_finish([{**c, "outcome": "promoted"} for c in THREE], "rollback")
    assert end["ok"] and end["rollback"] == [] and end["summary"].startswith("promoted in every cluster")


@pytest.mark.parametrize(("clusters", "message"), [
    ([cluster("a", 0)], "wave 0 is not a whole number"),
    ([cluster("a", "first")], "wave 'first' is not a whole number"),
    ([cluster("a", True)], "wave True"),
    ([cluster("a", 1), cluster("a", 2)], "listed twice"),
    ([cluster("", 1)], "without a name"),
    ([cluster("a", 1, outcome="won")], "outcome 'won'"),
])
def test_bad_clusters_are_refused_with_the_value(clusters, message):
    with pytest.raises(AnsibleFilterError, match=message):
        wave_plan(clusters, 1)


def test_bad_policy_is_refused():
    with pytest.raises(AnsibleFilterError, match="canary_waves_on_failure 'undo': use one of keep, rollback"):
        wave_finish(THREE, "undo")


def test_role_decisions_map_to_outcomes():
    assert [waves.outcome_of_decision(d) for d in ("promote", "rollback", "hold", "stop", None)] == [
        "promoted", "rolled_back", "held", "failed", "failed"]


def test_status_table_one_line_per_cluster_and_service():
    rows = [
        {"name": "cluster-2", "wave": 2, "service": "reviews", "phase": "rolled_back", "weights": {"v1": 100},
         "history": [{"step": 10}, {"analysis": {"step": 10, "verdict": "fail"}}, {"step": 0}]},
        {"name": "cluster-1", "wave": 1, "service": "reviews", "phase": "promoted", "weights": {"v2": 100},
         "history": [{"analysis": {"step": 25, "verdict": "pass"}}]},
        {"name": "cluster-3", "wave": 2, "service": "reviews", "phase": "fresh", "weights": {"v1": 100}},
    ]
    assert wave_status(rows) == [
        "cluster    wave  service  phase        weights  last verdict",
        "cluster-1  1     reviews  promoted     v2=100   pass at 25%",
        "cluster-2  2     reviews  rolled_back  v1=100   fail at 10%",
        "cluster-3  2     reviews  fresh        v1=100   -",
    ]
