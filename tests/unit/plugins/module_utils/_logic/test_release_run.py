# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One run of the canary_release role as one state (``_logic/release_run.py``): every event.

The role keeps one fact and hands it, with what it did, to the ``release_run`` filter; these tests
drive the state the way the role does (start, read, rules, plan, moved/analysed, settle, answered,
swapped, reported, failed) and check what the role then acts on and prints. Expected values follow
from the rules in the module's docstring, the driver's table and the role's documented messages.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.project_manifests import project_manifests
from ansible_collections.canary.istio.plugins.filter.release_run import release_run
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release_run import advance

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
INPUTS = {"goal": "release", "service": "reviews", "namespace": "shop", "virtual_service": "reviews",
          "base": "v1", "canary": "v2", "ratio": None, "steps": [10, 50], "decision": "promote", "analysis": None,
          "manifests": ["deploy/reviews-v2.yaml"], "wait_timeout": 300, "step_interval": 0, "prompt_attempts": 3,
          "after_promote": "remove", "rollback_on_failure": True, "interactive": "never", "terminal": False,
          "actor": "", "lock_holder": "", "awx_user": "", "awx_job": "", "user": "ana", "host": "cluster-a",
          "reason": "", "destination_rule_manifests": [], "artifacts": None}
FRESH = {"exists": True, "weights": {"v1": 100}, "routes": [], "state": {}, "history": [],
         "destination_rule": "reviews", "subsets": [{"name": "v1", "deployments": ["reviews-v1"]}]}
WITH_CANARY = {**FRESH, "subsets": [*FRESH["subsets"], {"name": "v2", "deployments": ["reviews-v2"]}]}
ANALYSIS = {"window": "10s", "interval": 12}


def started(**inputs):
    return advance({**INPUTS, **inputs}, "start", now=T0)


def planned(info=None, answer=None, **inputs):
    info = FRESH if info is None else info
    state = advance(started(**inputs), "read", info, 0, "cluster-a")
    if state["plan"]["action"] in ("release", "step"):
        state = advance(state, "read", WITH_CANARY)
        state = advance(state, "plan", answer, T0)
    return state


def moves(state, now=T0):
    """Do what the driver says until its answer is final; every verdict passes."""
    while state["next"]["action"] in ("move", "analyse"):
        now += state["next"]["wait"]
        if state["next"]["action"] == "move":
            after = {"v1": 100 - state["next"]["share"], "v2": state["next"]["share"]}
            state = advance(state, "moved", {"after": after, "changed": True}, now)
        else:
            state = advance(state, "analysed", {"verdict": "pass", "summary": "healthy", "checks": []}, now)
        now += 1
    return state


# --------------------------------------------------------------------------------------
# start: every input checked before any request


@pytest.mark.parametrize(("inputs", "message"), [
    ({"ratio": 150}, "canary_release_ratio must be a whole number from 0 to 100"),
    ({"steps": [50, 10]}, "canary_release_steps must be whole numbers from 0 to 100 in increasing order"),
    ({"decision": "ship-it"}, "canary_release_decision must be promote, rollback or hold (or auto), got \"ship-it\""),
    ({"decision": "auto"}, "canary_release_decision=auto promotes on the analysis' verdicts"),
    ({"canary": "v1"}, "canary_release_base_version (v1) and canary_release_canary_version (v1) must be two different"),
    ({"analysis": {"intervall": 5}}, "canary_release_analysis has unknown key(s) intervall"),
    ({"prompt_attempts": 0}, "canary_release_prompt_attempts must be an integer from 1 to 10, got 0"),
    ({"manifests": []}, "canary_release_manifests must list the canary's manifests (got [])"),
    ({"wait_timeout": 0}, "canary_release_wait_timeout must be at least 1 (got 0)"),
    ({"goal": "deploy"}, "goal 'deploy' is not one of release, set_ratio, promote, rollback, status"),
])
def test_bad_input_is_refused_at_start_naming_the_variable(inputs, message):
    with pytest.raises(CanaryInputError) as error:
        started(**inputs)
    assert message in str(error.value)


def test_the_filter_turns_a_refusal_into_a_filter_error_without_a_prefix():
    with pytest.raises(AnsibleFilterError, match=r"^canary_release_ratio must be a whole number"):
        release_run({**INPUTS, "ratio": 101}, "start")


def test_analysis_settings_left_unset_are_absent_so_the_role_passes_none_of_them():
    analysis = started(analysis=ANALYSIS)["analysis"]
    assert None not in analysis.values() and "caller_failures" not in analysis
    assert (analysis["window"], analysis["interval"], analysis["looks_per_step"]) == ("10s", 12, 1)
    assert started(analysis={**ANALYSIS, "caller_failures": False})["analysis"]["caller_failures"] is False


def test_only_the_release_needs_manifests():
    assert started(goal="promote", manifests=[])["goal"] == "promote"


@pytest.mark.parametrize(("inputs", "actor", "holder"), [
    ({}, "", "user:ana@cluster-a"),
    ({"awx_user": "bo", "awx_job": "42"}, "awx:bo (job 42)", "awx:bo@cluster-a"),
    ({"awx_job": "42"}, "awx:job 42", "user:ana@cluster-a"),
    ({"actor": "release-bot", "lock_holder": "ci"}, "release-bot", "ci"),
])
def test_who_acts_and_who_holds_the_lock(inputs, actor, holder):
    state = started(**inputs)
    assert (state["actor"], state["lock_holder"]) == (actor, holder)


@pytest.mark.parametrize(("setting", "terminal", "interactive"), [
    ("auto", True, True), ("auto", False, False), ("never", True, False), ("always", False, True)])
def test_who_can_answer(setting, terminal, interactive):
    assert started(interactive=setting, terminal=terminal)["interactive"] is interactive


def test_an_event_needs_a_started_state_and_a_known_name():
    with pytest.raises(CanaryInputError, match="needs the state"):
        advance({}, "read", FRESH)
    with pytest.raises(CanaryInputError, match="event 'jump' is not one of"):
        advance(started(), "jump")


# --------------------------------------------------------------------------------------
# read: the plan, and why a run stops before the lock


def test_first_read_plans_and_a_later_read_only_refreshes():
    state = advance(started(), "read", FRESH, 0, "cluster-a")
    assert state["phase"] == "fresh" and state["plan"]["action"] == "release"
    assert state["pending_steps"] == [10, 50] and state["refusal"] == ""
    assert state["weights_text"] == "v1 100%"
    again = advance(state, "read", WITH_CANARY)
    assert again["plan"] == state["plan"] and again["subsets"] == ["v1", "v2"]
    assert again["canary_deployments"] == ["reviews-v2"]


def test_status_lines_and_the_published_status():
    state = advance(started(goal="status"), "read", WITH_CANARY)
    assert state["status_lines"] == ["shop/reviews: v1 100%", "phase: fresh (base v1, canary v2)",
                                     "subsets: v1 [reviews-v1]; v2 [reviews-v2]", "last step: none recorded"]
    assert state["status"]["phase"] == "fresh" and state["status"]["subsets"] == WITH_CANARY["subsets"]


@pytest.mark.parametrize(("info", "inputs", "message"), [
    ({**FRESH, "exists": False}, {}, "VirtualService shop/reviews does not exist"),
    ({**FRESH, "weights": {"v1": 50, "v3": 50}}, {}, "which is neither the base v1 nor the canary v2"),
    ({**FRESH, "destination_rule": ""}, {}, "No DestinationRule for reviews in namespace shop"),
    (FRESH, {"steps": [], "decision": None},
     "there is canary_release_interactive is never, and canary_release_ratio and canary_release_decision are not "
     "set. Pass -e canary_release_ratio=<0..100> -e canary_release_decision=<promote|rollback|hold>"),
    (FRESH, {"goal": "promote"}, "Nothing to promote: DestinationRule shop/reviews has no subset v2"),
    (WITH_CANARY, {"goal": "promote", "artifacts": {"cluster-a": {"service": "ratings", "namespace": "shop",
                                                                  "canary": "v2"}}}, "Nothing was changed."),
])
def test_refusals(info, inputs, message):
    assert message in advance(started(**inputs), "read", info, 0, "cluster-a")["refusal"]


def test_a_missing_destination_rule_is_fine_when_the_manifests_bring_one():
    state = advance(started(destination_rule_manifests=["dr.yaml"]), "read", {**FRESH, "destination_rule": ""})
    assert state["refusal"] == ""


def test_the_approver_sees_what_the_canary_job_left():
    artifacts = {"cluster-a": {"service": "reviews", "namespace": "shop", "canary": "v2", "share": 30,
                               "decision": "hold", "verdicts": [{"verdict": "pass"}], "report": {"path": "/r.html"}}}
    state = advance(started(goal="promote", artifacts=artifacts), "read", WITH_CANARY, 0, "cluster-a")
    assert state["refusal"] == ""
    assert state["approver_saw"] == ("The canary job left reviews at 30% on v2 (hold); verdicts: pass; "
                                     "report: /r.html")


def test_promote_and_rollback_name_the_winner_and_what_of_the_loser_goes():
    promote = advance(started(goal="promote"), "read", WITH_CANARY)
    assert (promote["winner"], promote["loser"], promote["loser_deployments"]) == ("v2", "v1", ["reviews-v1"])
    assert promote["remove_loser"] is True
    assert advance(started(goal="promote", after_promote="keep"), "read", WITH_CANARY)["remove_loser"] is False
    rollback = advance(started(goal="rollback", after_promote="keep"), "read", WITH_CANARY)
    assert (rollback["winner"], rollback["loser"], rollback["remove_loser"]) == ("v1", "v2", True)


def test_a_promoted_canary_is_finished_by_a_release():
    state = advance(started(), "read", {**WITH_CANARY, "weights": {"v2": 100}})
    assert state["plan"]["action"] == "finish" and state["winner"] == "v2"


def test_a_resumed_release_says_where_it_resumes():
    info = {**WITH_CANARY, "weights": {"v1": 90, "v2": 10}}
    state = advance(started(), "read", info)
    assert state["resume"] == "Resuming the canary of v2: shop/reviews sends v1 90%, v2 10%; steps left: 50"
    assert state["traffic_moved"] is True


# --------------------------------------------------------------------------------------
# rules: the DestinationRule manifests


def rule(name, host, *subsets):
    return {"kind": "DestinationRule", "metadata": {"name": name},
            "spec": {"host": host, "subsets": [{"name": subset} for subset in subsets]}}


def test_the_rule_for_the_service_holds_the_subsets_when_none_is_stored():
    state = advance(started(), "read", {**FRESH, "destination_rule": "", "subsets": []})
    state = advance(state, "rules", [rule("other", "ratings", "v1"), rule("reviews-dr", "reviews", "v1", "v2")])
    assert state["destination_rule"] == "reviews-dr" and state["add_canary_subset"] is False


def test_the_canary_subset_is_added_when_no_manifest_lists_it():
    state = advance(advance(started(), "read", FRESH), "rules", [rule("reviews", "reviews", "v1")])
    assert state["destination_rule"] == "reviews" and state["add_canary_subset"] is True
    state = advance(advance(started(), "read", WITH_CANARY), "rules", [])
    assert state["add_canary_subset"] is False


# --------------------------------------------------------------------------------------
# plan, moved, analysed, settle, answered


def test_steps_without_analysis_move_then_the_decision_input_promotes():
    state = planned()
    assert (state["next"]["action"], state["next"]["share"], state["drive"]["slots"]) == ("move", 10, 2)
    state = moves(state)
    assert [move["share"] for move in state["moved"]] == [10, 50]
    assert state["weights_text"] == "v1 50%, v2 50%" and state["traffic_moved"] is True
    state = advance(state, "settle", None, T0 + 10)
    assert (state["decision"], state["winner"], state["verdict"]["by"]) == ("promote", "v2", "decision")
    assert state["result"]["decision"] == "promote" and state["stage_artifacts"]["share"] == 50


def test_the_ratio_gate_answer_is_the_one_move():
    state = planned(steps=[], answer=30, interactive="always")
    assert state["plan"]["ask"] == ["ratio"]
    assert state["drive"]["moves"] == [30]


def test_an_analysed_release_looks_after_each_move_and_auto_promotes():
    state = planned(analysis=ANALYSIS, decision="auto")
    assert state["looks_text"] == "Analysis: up to 1 look(s) at each of 10%, 50%; 2 look(s) planned for the release"
    state = moves(state)
    assert [record["verdict"] for record in state["analyses"]] == ["pass", "pass"]
    assert state["said"].startswith("Look 2 of 2 at 50%: PASS - healthy")
    state = advance(state, "settle", None, T0 + 100)
    assert state["decision"] == "promote" and state["verdict"]["by"] == "analysis"
    assert state["analysis_said"].startswith("Analysis of v2: promote - every step passed its analysis")


def test_a_failed_look_rolls_back_and_the_rollback_says_the_analysis_did_it():
    state = planned(analysis=ANALYSIS, decision="auto")
    state = advance(state, "moved", {"after": {"v1": 90, "v2": 10}}, T0)
    state = advance(state, "analysed", {"verdict": "fail", "summary": "errors too high", "checks": []}, T0 + 12)
    assert state["next"]["action"] == "rollback"
    state = advance(state, "settle", None, T0 + 13)
    assert (state["winner"], state["loser"], state["loser_deployments"]) == ("v1", "v2", ["reviews-v2"])
    state = advance(state, "swapped", {"after": {"v1": 100}, "changed": True})
    assert state["said"].startswith("Rolled back: shop/reviews sends v1 100%; the canary v2 is removed - rolled back "
                                    "by the analysis: analysis 1 at 10% failed")
    assert state["traffic_moved"] is False


def test_an_analysis_that_cannot_run_is_kept_as_an_error():
    state = advance(planned(analysis=ANALYSIS, decision="auto"), "moved", {"after": {"v1": 90, "v2": 10}}, T0)
    state = advance(state, "analysed", {"failed": True, "msg": "cannot reach Prometheus"}, T0 + 12)
    assert state["analyses"][-1]["verdict"] == "error" and state["next"]["action"] == "analyse"
    assert state["said"] == "Look 1 of 2 at 10%: ERROR - cannot reach Prometheus"


def test_on_error_stop_stops_and_keeps_the_split():
    state = advance(planned(analysis={**ANALYSIS, "consecutive_error_limit": 1, "on_error": "stop"}),
                    "moved", {"after": {"v1": 90, "v2": 10}}, T0)
    state = advance(state, "analysed", {"failed": True, "msg": "no answer"}, T0 + 12)
    state = advance(state, "settle", None, T0 + 13)
    assert state["stopped"] is True and state["winner"] is None
    assert state["said"].startswith("Stopped: analysis 1 at 10% could not run: no answer")
    assert "shop/reviews still sends v1 90%, v2 10%; nothing was promoted" in state["said"]
    assert advance(state, "failed", {"task": "Stop the release", "msg": "x"})["put_back"] is False


def test_with_no_decision_a_person_is_asked_and_the_answer_decides():
    state = moves(planned(decision=None, interactive="always"))
    state = advance(state, "settle", None, T0 + 5)
    assert state["next"]["action"] == "ask" and state["winner"] is None
    state = advance(state, "answered", "rollback", T0 + 6)
    assert (state["decision"], state["winner"], state["verdict"]["by"]) == ("rollback", "v1", "person")


def test_hold_says_how_to_go_on():
    state = advance(moves(planned(decision="hold")), "settle", None, T0 + 5)
    assert state["winner"] is None
    assert state["said"].startswith("Holding: shop/reviews sends v1 50%, v2 50%. A later run resumes from here")


def test_set_ratio_moves_once_and_never_decides():
    state = planned(goal="set_ratio", ratio=30, steps=[], decision=None)
    assert state["plan"]["action"] == "step" and state["drive"]["slots"] == 1
    state = moves(state)
    assert state["next"]["action"] == "hold" and state["moved"][0]["share"] == 30


# --------------------------------------------------------------------------------------
# swapped, reported, failed


@pytest.mark.parametrize(("reason", "changed", "entry"), [
    ("rolled back by alert HighErrorRate", True,
     {"action": "rollback", "reason": "rolled back by alert HighErrorRate"}),
    ("rolled back by alert HighErrorRate", False, None),
    ("", True, None),
])
def test_the_reason_is_recorded_with_a_rollback_that_changed_something(reason, changed, entry):
    state = advance(started(goal="rollback", reason=reason), "read", WITH_CANARY)
    state = advance(state, "swapped", {"after": {"v1": 100}, "changed": changed})
    assert state["history_entry"] == entry


def test_a_promotion_says_whether_the_base_is_kept():
    state = advance(started(goal="promote", after_promote="keep", reason="approved in CAB-7"), "read", WITH_CANARY)
    state = advance(state, "swapped", {"after": {"v2": 100}, "changed": True})
    assert state["said"] == ("v2 is promoted: shop/reviews sends v2 100%; "
                             "v1 is kept (canary_release_after_promote: keep)")
    assert state["promoted"] is True
    assert state["history_entry"] == {"action": "promote", "reason": "approved in CAB-7"}


def test_where_the_report_is():
    state = advance(planned(), "reported", {"path": "/tmp/r.html", "kept": True, "configmap": "canary-report-reviews"})
    assert state["report"]["said"] == ("Release report: /tmp/r.html; kept in ConfigMap shop/canary-report-reviews "
                                       "(kubectl get configmap -n shop canary-report-reviews -o "
                                       "jsonpath='{.data.report\\.html}' > report.html)")
    assert state["result"]["report"] == "/tmp/r.html"
    assert state["stage_artifacts"]["report"] == {"path": "/tmp/r.html", "configmap": "shop/canary-report-reviews"}
    missing = advance(planned(), "reported", {"path": "", "error": "no data", "kept": False, "configmap": "x"})
    assert missing["report"]["said"] == "No release report: no data" and missing["report"]["configmap"] == ""


@pytest.mark.parametrize(("inputs", "moved", "put_back", "tail"), [
    ({}, True, True, "All traffic was put back on v1 (canary_release_rollback_on_failure)."),
    ({"rollback_on_failure": False}, True, False,
     "Traffic was left as it was (canary_release_rollback_on_failure is false)."),
    ({}, False, False, "Traffic was not moved back."),
])
def test_a_failed_run_puts_traffic_back_only_when_a_release_had_moved_it(inputs, moved, put_back, tail):
    state = planned(**inputs)
    if moved:
        state = advance(state, "moved", {"after": {"v1": 90, "v2": 10}}, T0)
    state = advance(state, "failed", {"task": "Analyse", "msg": "the API server went away."})
    assert state["put_back"] is put_back
    assert state["failure"] == (f"The canary release of shop/reviews (v1 to v2) failed at task \"Analyse\": "
                                f"the API server went away. {tail}")


def test_a_failed_set_ratio_leaves_the_traffic_where_it_is_and_says_the_steps_own_error():
    state = advance(planned(goal="set_ratio", ratio=30), "moved", {"after": {"v1": 70, "v2": 30}}, T0)
    state = advance(state, "failed", {"task": "Move the share to the canary", "msg": "subset(s) v3 missing."})
    assert (state["put_back"], state["failure"]) == (False, "subset(s) v3 missing.")


def test_a_failure_after_the_promotion_leaves_the_traffic_on_the_canary():
    state = advance(advance(started(goal="release"), "read", {**WITH_CANARY, "weights": {"v2": 100}}),
                    "swapped", {"after": {"v2": 100}, "changed": False})
    assert advance(state, "failed", {"task": "Delete", "msg": "x"})["put_back"] is False


# --------------------------------------------------------------------------------------
# project_manifests: one reading of manifest files, from the project's root


def test_project_manifests_reads_files_and_directories_from_the_project_root(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "networking").mkdir()
    (tmp_path / "networking" / "a.yaml").write_text(
        "kind: Gateway\nmetadata: {name: gw}\n---\nkind: DestinationRule\nmetadata: {name: dr}\n---\n")
    (tmp_path / "networking" / "b.yml").write_text("kind: VirtualService\nmetadata: {name: vs}\n")
    (tmp_path / "networking" / "notes.txt").write_text("not yaml: [")
    (tmp_path / "one.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n")
    found = project_manifests(["networking", "one.yaml"], str(tmp_path / "playbooks"))
    names = {kind: [item["metadata"]["name"] for item in items] for kind, items in found.items()}
    assert names == {"DestinationRule": ["dr"], "VirtualService": ["vs"], "other": ["gw", "svc"]}
    assert project_manifests([], str(tmp_path)) == {"DestinationRule": [], "VirtualService": [], "other": []}


def test_project_manifests_names_a_file_it_cannot_read(tmp_path):
    with pytest.raises(AnsibleFilterError, match=r"cannot read .*missing\.yaml"):
        project_manifests("missing.yaml", str(tmp_path), str(tmp_path))


# --------------------------------------------------------------------------------------
# canary_release_resilience: the canary subset's profile (issue 25 section 3)

# Istio's Circuit Breaking task's outlierDetection, in the module's snake_case options.
PROFILE = {"circuit_breaker": {"outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s",
                                                     "base_ejection_time": "3m", "max_ejection_percent": 100}}}


@pytest.mark.parametrize(("profile", "message"), [
    ("outlier", "canary_release_resilience must be a mapping"),
    ({"timeout": "1s"}, "canary_release_resilience has timeout: a subset's trafficPolicy holds only circuit_breaker"),
    ({"circuit_breaker": {"outlier_detection": {"max_ejection_percent": 150}}},
     "canary_release_resilience.circuit_breaker.outlier_detection.max_ejection_percent"),
    ({"circuit_breaker": {"outlier_detection": {"interval": "abc"}}}, "abc"),
    ({"circuit_breaker": {}}, "canary_release_resilience.circuit_breaker sets nothing"),
])
def test_a_bad_resilience_profile_is_refused_at_start(profile, message):
    with pytest.raises(CanaryInputError) as error:
        started(resilience=profile)
    assert message in str(error.value)


def test_resilience_after_promote_is_keep_or_remove():
    with pytest.raises(CanaryInputError, match="canary_release_resilience_after_promote must be keep or remove, "
                                               "got 'drop'"):
        started(resilience=PROFILE, resilience_after_promote="drop")
    assert started()["resilience_after_promote"] == "keep"


@pytest.mark.parametrize(("goal", "profile", "sets"), [
    ("release", PROFILE, True), ("release", {}, False), ("release", None, False),
    ("set_ratio", PROFILE, False), ("promote", PROFILE, False), ("rollback", PROFILE, False),
])
def test_only_a_release_sets_the_profile_before_traffic_moves(goal, profile, sets):
    state = started(goal=goal, ratio=30 if goal == "set_ratio" else None, resilience=profile)
    assert state["set_resilience"] is sets
    assert state["resilience"] == (profile or {})


@pytest.mark.parametrize(("goal", "after", "removes"), [
    ("promote", "keep", False),
    ("promote", "remove", True),
    # The rollback removes the canary's subset, and its trafficPolicy with it: nothing else to remove.
    ("rollback", "keep", False),
    ("rollback", "remove", False),
])
def test_the_swap_removes_the_profile_as_the_plan_says(goal, after, removes):
    state = advance(started(goal=goal, resilience=PROFILE, resilience_after_promote=after), "read", WITH_CANARY)
    state = advance(state, "swapped", {"after": {state["winner"]: 100}, "changed": True})
    assert state["remove_resilience"] is removes
    if goal == "promote":
        assert state["said"].endswith("; the resilience profile of subset v2 is removed" if removes else
                                      "; subset v2 keeps its resilience profile "
                                      "(canary_release_resilience_after_promote: keep)")


def test_a_rollback_that_kept_the_canary_subset_removes_the_profile():
    state = advance(started(goal="rollback", resilience=PROFILE), "read", WITH_CANARY)
    state["remove_loser"] = False
    state = advance(state, "swapped", {"after": {"v1": 100}, "changed": True})
    assert state["remove_resilience"] is True


def test_without_a_profile_the_swap_removes_nothing():
    for goal in ("promote", "rollback"):
        state = advance(started(goal=goal, resilience_after_promote="remove"), "read", WITH_CANARY)
        state = advance(state, "swapped", {"after": {state["winner"]: 100}, "changed": True})
        assert state["remove_resilience"] is False


def test_a_release_that_auto_promotes_removes_the_profile_when_told():
    state = moves(planned(resilience=PROFILE, resilience_after_promote="remove"))
    state = advance(state, "settle", None, T0 + 100)
    assert state["decision"] == "promote"
    state = advance(state, "swapped", {"after": {"v2": 100}, "changed": True})
    assert state["set_resilience"] is True and state["remove_resilience"] is True


def test_the_manifests_canary_subset_carries_the_profile_so_a_resumed_run_keeps_it():
    manifests = [rule("reviews", "reviews", "v1", "v2"), rule("ratings", "ratings", "v1", "v2")]
    state = advance(advance(started(resilience=PROFILE), "read", FRESH), "rules", manifests)
    by_name = {item["metadata"]["name"]: item["spec"]["subsets"] for item in state["rule_definitions"]}
    # Istio's field names for the task's outlier detection; the base subset and the other rule are untouched.
    assert by_name["reviews"][1]["trafficPolicy"] == {"outlierDetection": {
        "consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m", "maxEjectionPercent": 100}}
    assert "trafficPolicy" not in by_name["reviews"][0] and by_name["ratings"] == manifests[1]["spec"]["subsets"]
    assert "trafficPolicy" not in manifests[0]["spec"]["subsets"][1]


# --------------------------------------------------------------------------------------
# canary_release_traffic_api (issue 24 section 3): VirtualService or HTTPRoute

# canary_info's read of Istio's route-reviews-90-10.yaml (backends reviews-v1 / reviews-v2, Services of
# bookinfo-versions.yaml); its history as traffic_split records it on an HTTPRoute (Service names).
ROUTE_READ = {"exists": True, "kind": "HTTPRoute", "weights": {"reviews-v1": 90, "reviews-v2": 10},
              "routes": [{"index": 0, "name": None, "weights": {"reviews-v1": 90, "reviews-v2": 10}}],
              "state": {"base": "reviews-v1", "canary": "reviews-v2", "weight": 10, "route": None},
              "history": [{"from": {"reviews-v1": 100}, "to": {"reviews-v1": 90, "reviews-v2": 10}}],
              "destination_rule": "",
              "subsets": [{"name": "reviews-v1", "deployments": ["reviews-v1"]},
                          {"name": "reviews-v2", "deployments": ["reviews-v2"]}]}
MISSING = {"exists": False, "weights": {}, "routes": [], "subsets": [], "state": {}, "history": [],
           "destination_rule": ""}


def test_the_traffic_api_is_checked_at_start_and_names_what_to_read():
    with pytest.raises(CanaryInputError, match="canary_release_traffic_api must be auto, virtual_service or "
                                               "httproute, got 'gateway'"):
        started(traffic_api="gateway")
    assert started()["read_kinds"] == ["VirtualService", "HTTPRoute"]
    assert started(traffic_api="httproute")["read_kinds"] == ["HTTPRoute"]
    assert started(traffic_api="virtual_service")["kind"] == "VirtualService"


@pytest.mark.parametrize(("reads", "kind", "refusal"), [
    ({"VirtualService": WITH_CANARY, "HTTPRoute": MISSING}, "VirtualService", ""),
    ({"VirtualService": MISSING, "HTTPRoute": ROUTE_READ}, "HTTPRoute", ""),
    ({"VirtualService": WITH_CANARY, "HTTPRoute": ROUTE_READ}, "VirtualService",
     "Both a VirtualService and an HTTPRoute named shop/reviews exist"),
    # A cluster without Gateway API's CRDs: the HTTPRoute read fails, the VirtualService is used as before.
    ({"VirtualService": WITH_CANARY, "HTTPRoute": {"failed": True, "msg": "the cluster does not serve httproutes"}},
     "VirtualService", ""),
    ({"VirtualService": {"failed": True, "msg": "API server unreachable"}, "HTTPRoute": MISSING}, "VirtualService",
     "Cannot read the VirtualService shop/reviews: API server unreachable"),
    # As registered with failed_when false: failed is false, the msg is there and the answer is not.
    ({"VirtualService": {"failed": False, "msg": "Grant verb 'get'"}, "HTTPRoute": {"failed": False, "msg": "?"}},
     "VirtualService", "Cannot read the VirtualService shop/reviews: Grant verb 'get'"),
    ({"VirtualService": WITH_CANARY, "HTTPRoute": {"failed": False, "msg": "forbidden"}}, "VirtualService", ""),
])
def test_auto_takes_the_object_that_exists_and_refuses_both(reads, kind, refusal):
    state = advance(started(), "read", reads, 0, "cluster-a")
    assert state["kind"] == kind
    assert state["refusal"].startswith(refusal) if refusal else state["refusal"] == ""


def test_a_chosen_api_reads_only_its_kind_and_a_failed_read_refuses():
    skipped = {"skipped": True}
    state = advance(started(traffic_api="httproute"), "read", {"VirtualService": skipped, "HTTPRoute": ROUTE_READ})
    assert (state["kind"], state["refusal"]) == ("HTTPRoute", "")
    state = advance(started(traffic_api="httproute"), "read",
                    {"HTTPRoute": {"failed": True, "msg": "forbidden: httproutes"}})
    assert state["refusal"] == "Cannot read the HTTPRoute shop/reviews: forbidden: httproutes"


def test_on_an_httproute_versions_are_per_version_services():
    state = advance(started(), "read", {"VirtualService": MISSING, "HTTPRoute": ROUTE_READ}, 0, "cluster-a")
    # The 90/10 route resumes at 10% of v2: the Services read as versions, the recorded step included.
    assert state["phase"] == "in_progress" and state["weights"] == {"v1": 90, "v2": 10}
    assert (state["base_ref"], state["canary_ref"]) == ("reviews-v1", "reviews-v2")
    assert state["subsets"] == ["v1", "v2"] and state["canary_deployments"] == ["reviews-v2"]
    assert state["create_version_service"] is True
    # No DestinationRule on an HTTPRoute: none is needed, and the manifests' rules are not merged.
    assert state["refusal"] == ""
    state = advance(state, "rules", [rule("reviews", "reviews", "v1", "v2")])
    assert state["rule_definitions"] == [] and state["add_canary_subset"] is False
    state = advance(advance(state, "plan", None, T0), "moved", {"after": {"reviews-v1": 50, "reviews-v2": 50}}, T0)
    assert state["weights_text"] == "v1 50%, v2 50%"


@pytest.mark.parametrize(("goal", "winner_ref", "deployments"), [
    ("promote", "reviews-v2", ["reviews-v1"]), ("rollback", "reviews-v1", ["reviews-v2"])])
def test_a_swap_on_an_httproute_names_services_and_keeps_the_per_version_service(goal, winner_ref, deployments):
    state = advance(started(goal=goal, traffic_api="httproute"), "read", {"HTTPRoute": ROUTE_READ})
    assert state["winner_ref"] == winner_ref and state["loser_deployments"] == deployments
    assert state["remove_loser"] is True and state["remove_loser_subset"] is False
    assert state["create_version_service"] is False
    vs = advance(started(goal=goal), "read", {"VirtualService": WITH_CANARY, "HTTPRoute": MISSING})
    assert vs["winner_ref"] == vs["winner"] and vs["remove_loser_subset"] is True


def test_a_resilience_profile_is_refused_on_an_httproute():
    state = advance(started(resilience=PROFILE), "read", {"VirtualService": MISSING, "HTTPRoute": ROUTE_READ})
    assert state["refusal"].startswith("canary_release_resilience sets a DestinationRule subset's trafficPolicy")


def test_a_missing_httproute_is_named_as_one():
    state = advance(started(traffic_api="httproute"), "read", {"HTTPRoute": MISSING})
    assert state["refusal"].startswith("HTTPRoute shop/reviews does not exist: create the service's HTTPRoute first")
    state = advance(started(), "read", {"VirtualService": MISSING, "HTTPRoute": MISSING})
    assert state["refusal"].startswith("VirtualService shop/reviews does not exist: deploy the base release first")


# --------------------------------------------------------------------------------------
# the role's loop (tasks/_step.yml): one action a slot, the arguments from the state, what it prints
#
# loop() does what the role does: while the state is acting, the slot's tasks run as next says, with the
# arguments of args (the role's module_defaults), and the event acted takes their results.


def loop_results(reads):
    """What the role's loop over the first reads registers (ansible-core's loop result shape)."""
    return {"results": [{**result, "ansible_loop_var": "canary_release__reading",
                         "canary_release__reading": {"kind": kind}} for kind, result in reads.items()]}


def role_started(**inputs):
    """start, the first read (the role's loop) and, when the plan deploys, the read after the deployment."""
    state = advance(started(**inputs), "read", loop_results({"VirtualService": FRESH}), T0)
    return advance(state, "read", WITH_CANARY, T0) if state["deploy"] else state


def loop(state, answers=(), verdicts=(), now=T0):
    """Runs the slots; returns the state, the traffic_split arguments and the lines printed, slot by slot."""
    answers, verdicts, calls, printed = list(answers), list(verdicts), [], []
    for _slot in range(state["slots"]):
        if not state["acting"]:
            continue
        upcoming, results = state["next"], {"reply": {"skipped": True}, "split": {"skipped": True},
                                            "analysis": {"skipped": True}}
        now += upcoming.get("seconds", 0)
        if upcoming["action"] == "ask":
            results["reply"] = {"user_input": answers.pop(0)}
        if upcoming["split"]:
            arguments = state["args"]["traffic_split"]
            calls.append(arguments)
            after = (dict(arguments["weights"]) if "weights" in arguments else
                     {"v1": 100 - arguments["canary_weight"], "v2": arguments["canary_weight"]})
            results["split"] = {"after": after, "changed": True}
        if upcoming["action"] == "analyse":
            results["analysis"] = verdicts.pop(0)
        state = advance(state, "acted", results, now)
        printed += state["say"]
        if state["fail"]:
            break
    return state, calls, printed


PASS = {"verdict": "pass", "summary": "healthy", "checks": []}


def test_the_loop_moves_each_step_then_promotes_and_cleans_up():
    state = role_started()
    assert state["slots"] == 3 and state["args"]["traffic_split"] == {
        "name": "reviews", "namespace": "shop", "kind": "VirtualService", "base": "v1", "canary": "v2",
        "canary_weight": 10}
    state, calls, printed = loop(state)
    assert [call.get("canary_weight", call.get("weights")) for call in calls] == [10, 50, {"v2": 100}]
    assert calls[-1]["remove_unnamed"] is True
    assert printed == ["shop/reviews sends v1 90%, v2 10%", "shop/reviews sends v1 50%, v2 50%",
                       "v2 is promoted: shop/reviews sends v2 100%"]
    assert state["clean_up"] is True and state["loser_deployments"] == ["reviews-v1"]
    assert state["acting"] is False


def test_an_analysed_step_is_announced_looked_at_with_its_look_and_recorded():
    state = role_started(analysis=ANALYSIS, decision="auto", steps=[10])
    assert state["say"] == ["Analysis: up to 1 look(s) at each of 10%; 1 look(s) planned for the release"]
    state = advance(state, "acted", {"split": {"after": {"v1": 90, "v2": 10}}}, T0)
    # The look comes interval (12 s) after the share was reached.
    assert state["say"] == ["shop/reviews sends v1 90%, v2 10%", "Look 1 of 1 at 10% in 12s (analyse 10%)"]
    assert state["next"]["seconds"] == 12 and state["next"]["split"] is False
    assert {key: state["args"]["canary_analysis"][key] for key in ("look", "looks", "since", "window")} == {
        "look": 1, "looks": 1, "since": T0, "window": "10s"}
    state = advance(state, "acted", {"analysis": PASS}, T0 + 12)
    assert state["history_entry"]["analysis"]["verdict"] == "pass"
    assert state["say"][0].startswith("Look 1 of 1 at 10%: PASS - healthy")
    assert state["say"][1].startswith("Analysis of v2: promote - every step passed its analysis")
    assert state["next"]["action"] == "promote" and state["args"]["traffic_split"]["weights"] == {"v2": 100}


def test_an_invalid_answer_is_refused_and_asked_again_then_the_gates_decide():
    state = role_started(steps=[], decision=None, interactive="always")
    # three attempts at each gate, one move, the swap
    assert state["slots"] == 3 + 1 + 3 + 1
    assert state["next"]["prompt"] == ("shop/reviews now sends: v1 100%\nShare of traffic for the canary v2, in "
                                       "percent [a whole number from 0 to 100]\n(attempt 1 of 3)")
    state, calls, printed = loop(state, answers=["abc", " 30 ", "hold"])
    assert printed[0] == "'abc' is not a whole number from 0 to 100 (2 attempt(s) left)"
    assert [call["canary_weight"] for call in calls] == [30]
    assert printed[-1].startswith("Holding: shop/reviews sends v1 70%, v2 30%")
    assert state["decision"] == "hold" and state["acting"] is False


def test_no_valid_answer_after_the_attempts_fails_and_the_rescue_puts_traffic_back():
    state = role_started(steps=[], decision=None, interactive="always", prompt_attempts=2)
    state, _calls, printed = loop(state, answers=["30", "", "maybe"])
    assert printed[-1] == "'maybe' is not promote, rollback or hold (0 attempt(s) left)"
    assert state["fail"] == ("No valid answer for canary_release_decision after 2 attempt(s); it must be promote, "
                             "rollback or hold. Nothing was decided.")
    assert state["acting"] is False
    state = advance(state, "failed", {"task": "Stop", "msg": state["fail"]})
    assert state["put_back"] is True
    assert {key: state["args"]["traffic_split"][key] for key in ("base", "canary", "canary_weight")} == {
        "base": "v1", "canary": "v2", "canary_weight": 0}


def test_on_error_stop_fails_the_slot_and_keeps_the_split():
    state = role_started(analysis={**ANALYSIS, "consecutive_error_limit": 1, "on_error": "stop"}, steps=[10])
    state, _calls, printed = loop(state, verdicts=[{"failed": True, "msg": "no answer"}])
    assert printed[-1].startswith("Analysis of v2: stop - analysis 1 at 10% could not run: no answer")
    assert state["fail"].startswith("Stopped: analysis 1 at 10% could not run")
    assert advance(state, "failed", {"task": "Stop", "msg": state["fail"]})["put_back"] is False


def test_set_ratio_moves_once_and_says_nothing_of_a_decision():
    state = advance(started(goal="set_ratio", ratio=30, steps=[], decision=None), "read", WITH_CANARY, T0)
    state, calls, printed = loop(state)
    assert [call["canary_weight"] for call in calls] == [30] and printed == ["shop/reviews sends v1 70%, v2 30%"]


@pytest.mark.parametrize(("goal", "weights", "said"), [
    ("promote", {"v2": 100}, "v2 is promoted: shop/reviews sends v2 100%"),
    ("rollback", {"v1": 100}, "Rolled back: shop/reviews sends v1 100%; the canary v2 is removed")])
def test_promote_and_rollback_are_one_slot(goal, weights, said):
    state = advance(started(goal=goal), "read", loop_results({"VirtualService": WITH_CANARY}), T0)
    state, calls, printed = loop(state)
    assert [call["weights"] for call in calls] == [weights] and printed == [said]
    assert state["clean_up"] is True


def test_nothing_to_do_and_status_only_say():
    # What a rollback records: all traffic on v1 (state base v1 = canary v1), the last step took v2's share back.
    rolled_back = {**FRESH, "history": [{"from": {"v1": 70, "v2": 30}, "to": {"v1": 100}}],
                   "state": {"base": "v1", "canary": "v1", "weight": 100}}
    state = advance(started(decision="rollback"), "read", rolled_back, T0)
    assert state["plan"]["action"] == "nothing" and state["slots"] == 0 and state["acting"] is False
    assert state["say"] == ["The canary v2 of shop/reviews was rolled back already (v1 100%); nothing to do"]
    status = advance(started(goal="status"), "read", FRESH, T0)
    assert status["say"] == status["status_lines"] and status["acting"] is False


def test_the_analysis_is_checked_before_any_change():
    state = advance(started(analysis=ANALYSIS, decision="auto"), "read", FRESH, T0)
    assert state["preflight"] is True and state["topology_before"] is False
    refused = advance(state, "checked", {"failed": True, "msg": "cannot reach Prometheus."})
    assert refused["refusal"] == ("Cannot analyse the canary of shop/reviews: cannot reach Prometheus. "
                                  "Nothing was changed.")
    assert advance(state, "checked", {"verdict": "pass"})["refusal"] == ""
    with_url = advance(started(analysis=ANALYSIS, decision="auto", env_prometheus_url="http://127.0.0.1:9090"),
                       "read", FRESH)
    assert with_url["topology_before"] is True
    assert with_url["args"]["mesh_topology"]["prometheus_url"] == "http://127.0.0.1:9090"


@pytest.mark.parametrize(("places", "url"), [
    ({"prometheus_url": "http://a:9090", "cluster_prometheus_url": "http://b:9090"}, "http://a:9090"),
    # an AWX survey's empty default is not given: the cluster's own URL, then the environment's
    ({"prometheus_url": "", "cluster_prometheus_url": " http://b:9090 ", "env_prometheus_url": "http://c:9090"},
     "http://b:9090"),
    ({"prometheus_url": "", "env_prometheus_url": "http://c:9090"}, "http://c:9090"),
    ({}, None),
])
def test_prometheus_is_the_first_place_that_gives_it(places, url):
    arguments = started(analysis=ANALYSIS, decision="auto", **places)["args"]["canary_analysis"]
    assert arguments.get("prometheus_url") == url


def test_the_first_reads_name_their_kind_and_what_they_need():
    state = started(destination_rule="reviews-rule")
    assert state["reads"] == [{"kind": "VirtualService", "destination_rule": "reviews-rule"},
                              {"kind": "HTTPRoute", "base": "reviews-v1", "canary": "reviews-v2"}]
    # Before the kind is known the shared arguments name no kind and no DestinationRule.
    assert state["args"]["canary_info"] == {"name": "reviews", "namespace": "shop"}


def test_on_an_httproute_the_modules_name_services():
    state = advance(started(traffic_api="httproute", analysis=ANALYSIS, decision="auto"), "read",
                    loop_results({"HTTPRoute": ROUTE_READ}), T0)
    args = state["args"]
    assert (args["canary_info"]["base"], args["canary_info"]["canary"]) == ("reviews-v1", "reviews-v2")
    assert args["traffic_split"]["require_ready_endpoints"] is True and "destination_rule" not in args["traffic_split"]
    assert args["canary_analysis"]["per_version_services"] is True
    assert args["release_report"]["per_version_services"] is True


def test_the_lock_arguments_name_the_holder_and_the_awx_job():
    state = started(awx_user="alice", awx_job=42, lock_ttl=600, force_lock="yes")
    assert state["args"]["release_lock"] == {"name": "canary-reviews", "namespace": "shop",
                                             "holder": "awx:alice@cluster-a", "ttl": 600, "force": True, "job": "42"}


def test_the_filter_reads_the_canary_manifests_from_the_project_at_start(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "rules.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
        "spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n")
    inputs = {**INPUTS, "destination_rule_manifests": ["rules.yaml"], "playbook_dir": str(tmp_path / "playbooks")}
    state = release_run(inputs, "start", None, T0)
    assert state["manifest_paths"] == [str(tmp_path / "deploy/reviews-v2.yaml")]
    state = release_run(state, "read", FRESH, T0)
    assert [rule["metadata"]["name"] for rule in state["rule_definitions"]] == ["reviews"]
    assert state["add_canary_subset"] is False  # the manifest lists v2


def test_a_rollback_finds_the_canary_manifests_in_the_project_too(tmp_path):
    (tmp_path / "playbooks").mkdir()
    state = release_run({**INPUTS, "goal": "rollback", "destination_rule_manifests": ["not-read.yaml"],
                         "playbook_dir": str(tmp_path / "playbooks")}, "start", None, T0)
    assert state["manifest_paths"] == [str(tmp_path / "deploy/reviews-v2.yaml")] and state["rule_documents"] is None
    state = advance(state, "read", WITH_CANARY, T0)
    state, _calls, _printed = loop(state)
    assert state["list_manifests"] is True and state["loser"] == "v2"


@pytest.mark.parametrize(("inputs", "dest", "configmap"), [
    ({"playbook_dir": "/srv/project/playbooks"}, "/srv/project/playbooks/canary-report-shop-reviews.html",
     "canary-report-reviews"),
    ({"report_path": "/tmp/r.html", "report_configmap": False}, "/tmp/r.html", ""),
])
def test_where_the_report_is_written_and_kept(inputs, dest, configmap):
    arguments = started(**inputs)["args"]["release_report"]
    assert (arguments["dest"], arguments["configmap"]) == (dest, configmap)
