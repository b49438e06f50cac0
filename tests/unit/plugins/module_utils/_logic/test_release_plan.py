# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release phase machine and the run planner (plugins/module_utils/_logic/release.py).

The expected answers are the behaviour the canary_release role documents in its README and
argument specs (resume, re-run changes nothing, refuse a third version, fail at once without
answers); each phase is built the way the cluster looks after the steps that lead to it.
"""

from __future__ import annotations

import importlib

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import release
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release import (
    InputNames,
    Observed,
    plan_run,
    release_phase,
    validate_inputs,
)

pytestmark = pytest.mark.unit

WHERE = "bookinfo/reviews"
ROLE_NAMES = InputNames(ratio="canary_release_ratio", steps="canary_release_steps",
                        decision="canary_release_decision", base="canary_release_base_version",
                        canary="canary_release_canary_version")


def step(before, after):
    return {"time": "2026-11-27T08:00:00Z", "from": before, "to": after, "actor": "user:test"}


# The cluster as it looks in each phase of a v1 -> v2 release.
NO_VS = Observed(exists=False, where=WHERE)
BASE_ONLY = Observed(exists=True, weights={"v1": 100}, subsets=["v1"], where=WHERE, destination_rule="reviews")
DEPLOYED = Observed(exists=True, weights={"v1": 100}, subsets=["v1", "v2"], where=WHERE, destination_rule="reviews")
AT_30 = Observed(exists=True, weights={"v1": 70, "v2": 30}, subsets=["v1", "v2"],
                 recorded={"base": "v1", "canary": "v2", "weight": 30},
                 history=[step({"v1": 100}, {"v1": 70, "v2": 30})], where=WHERE, destination_rule="reviews")
# A failed step put the traffic back: the canary has no share, but this pair's step is recorded.
PUT_BACK = Observed(exists=True, weights={"v1": 100, "v2": 0}, subsets=["v1", "v2"],
                    recorded={"base": "v1", "canary": "v2", "weight": 0},
                    history=[step({"v1": 100}, {"v1": 70, "v2": 30}), step({"v1": 70, "v2": 30}, {"v1": 100, "v2": 0})],
                    where=WHERE, destination_rule="reviews")
PROMOTED = Observed(exists=True, weights={"v2": 100}, subsets=["v2"],
                    recorded={"base": "v2", "canary": "v2", "weight": 100},
                    history=[step({"v1": 70, "v2": 30}, {"v2": 100})], where=WHERE, destination_rule="reviews")
# Roll back: all traffic to v1 (recorded as base v1, canary v1), then the v2 subset removed.
ROLLED_BACK = Observed(exists=True, weights={"v1": 100}, subsets=["v1"],
                       recorded={"base": "v1", "canary": "v1", "weight": 100},
                       history=[step({"v1": 70, "v2": 30}, {"v1": 100})], where=WHERE, destination_rule="reviews")
THIRD_VERSION = Observed(exists=True, weights={"v1": 50, "v3": 50}, subsets=["v1", "v2", "v3"], where=WHERE,
                         destination_rule="reviews")


@pytest.mark.parametrize("observed,phase", [
    (NO_VS, "missing"),
    (BASE_ONLY, "fresh"),
    (DEPLOYED, "fresh"),
    (AT_30, "in_progress"),
    (PUT_BACK, "in_progress"),
    (PROMOTED, "promoted"),
    (ROLLED_BACK, "rolled_back"),
    (THIRD_VERSION, "conflict"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_every_phase(observed, phase):
    assert release_phase(observed, "v1", "v2") == phase
    assert phase in release.PHASES


def test_rolled_back_needs_the_subset_gone_and_the_canary_taken_back():
    # The subset is still there (the clean-up did not finish): not rolled back yet, a fresh start.
    half_done = Observed(**{**ROLLED_BACK.__dict__, "subsets": ["v1", "v2"]})
    assert release_phase(half_done, "v1", "v2") == "fresh"
    # Another canary (v3) was rolled back: for v2 this is a fresh start.
    assert release_phase(ROLLED_BACK, "v1", "v3") == "fresh"


def test_promoted_wins_over_the_rest_and_a_zero_weight_third_subset_is_no_conflict():
    assert release_phase(PROMOTED, "v1", "v2") == "promoted"
    idle_v3 = Observed(exists=True, weights={"v1": 100, "v3": 0}, subsets=["v1", "v3"], where=WHERE)
    assert release_phase(idle_v3, "v1", "v2") == "fresh"


def test_a_step_recorded_for_another_pair_is_not_progress():
    other = Observed(**{**BASE_ONLY.__dict__, "recorded": {"base": "v0", "canary": "v1", "weight": 100}})
    assert release_phase(other, "v1", "v2") == "fresh"


def plan(goal, observed, ratio=None, steps=(), decision=None):
    inputs = validate_inputs("v1", "v2", ratio, list(steps), decision, ROLE_NAMES)
    return plan_run(goal, observed, inputs.base, inputs.canary, inputs.ratio, inputs.steps, inputs.decision,
                    ROLE_NAMES)


# --------------------------------------------------------------------------------------
# the whole flow (role entry point main)


@pytest.mark.parametrize("observed,ratio,steps,decision,action,pending,ask", [
    # Fresh: the given ratio is the one step; else all the steps; else the gate asks.
    (DEPLOYED, 30, (), "hold", "release", (30,), ()),
    (DEPLOYED, None, (10, 30), "promote", "release", (10, 30), ()),
    (DEPLOYED, None, (0, 10), "promote", "release", (0, 10), ()),
    (DEPLOYED, None, (), None, "release", (), ("ratio", "decision")),
    (DEPLOYED, 30, (), None, "release", (30,), ("decision",)),
    # A given ratio replaces the steps.
    (DEPLOYED, 50, (10, 30), "hold", "release", (50,), ()),
    # Resumed at 30%: only the steps above the share; without ratio and steps, straight to the gate.
    (AT_30, None, (10, 30, 60), "promote", "release", (60,), ()),
    (AT_30, None, (10, 30), "hold", "release", (), ()),
    (AT_30, None, (), "hold", "release", (), ()),
    (AT_30, None, (), None, "release", (), ("decision",)),
    (AT_30, 50, (), "hold", "release", (50,), ()),
    # Resumed with no share (put back after a failure): the share is asked again.
    (PUT_BACK, None, (), "hold", "release", (), ("ratio",)),
    (PUT_BACK, None, (10, 30), "hold", "release", (10, 30), ()),
    # Promoted: only the clean-up, whatever the answers.
    (PROMOTED, None, (), None, "finish", (), ()),
    (PROMOTED, 30, (), "rollback", "finish", (), ()),
    # Rolled back: the same decision again does nothing; anything else starts over.
    (ROLLED_BACK, 30, (), "rollback", "nothing", (), ()),
    (ROLLED_BACK, None, (), "rollback", "nothing", (), ()),
    (ROLLED_BACK, 30, (), "hold", "release", (30,), ()),
    (BASE_ONLY, 30, (), "rollback", "release", (30,), ()),
])
def test_release_plan(observed, ratio, steps, decision, action, pending, ask):
    phase, result = plan("release", observed, ratio, steps, decision)
    assert phase == release_phase(observed, "v1", "v2")
    assert (result.action, result.pending_steps, result.ask, result.problem) == (action, pending, ask, None)
    assert result.summary


@pytest.mark.parametrize("goal", ["release", "set_ratio", "promote", "rollback"])
def test_missing_and_conflict_refuse_every_goal_that_changes_something(goal):
    phase, result = plan(goal, NO_VS, 30, (), "hold")
    assert (phase, result.action) == ("missing", "refuse")
    assert result.problem == ("VirtualService bookinfo/reviews does not exist: deploy the base release first "
                              "(role canary.istio.base_release)")
    phase, result = plan(goal, THIRD_VERSION, 30, (), "hold")
    assert (phase, result.action) == ("conflict", "refuse")
    assert "sends traffic to v3 (v1 50%, v3 50%), which is neither the base v1 nor the canary v2" in result.problem
    assert "set canary_release_base_version to the version that serves traffic now" in result.problem
    assert result.pending_steps == () and result.ask == ()


@pytest.mark.parametrize("observed", [NO_VS, BASE_ONLY, AT_30, PROMOTED, ROLLED_BACK, THIRD_VERSION])
def test_status_only_reads(observed):
    phase, result = plan("status", observed)
    assert phase == release_phase(observed, "v1", "v2")
    assert (result.action, result.pending_steps, result.ask, result.problem) == ("show", (), (), None)


def test_set_ratio():
    assert plan("set_ratio", AT_30, 50)[1].pending_steps == (50,)
    assert plan("set_ratio", AT_30, 0)[1].pending_steps == (0,)
    # The decision and the steps play no part in one step.
    _phase, result = plan("set_ratio", AT_30, None, (10, 60), None)
    assert (result.action, result.pending_steps, result.ask) == ("step", (), ("ratio",))


def test_promote_needs_the_canary_subset():
    _phase, result = plan("promote", BASE_ONLY)
    assert result.action == "refuse"
    assert result.problem == ("Nothing to promote: DestinationRule bookinfo/reviews has no subset v2. Deploy the "
                              "canary first (role canary.istio.canary_release)")
    assert plan("promote", AT_30)[1].action == "promote"
    assert plan("promote", PROMOTED)[1].action == "promote"  # re-running promote changes nothing, refuses nothing


def test_rollback_plans_a_rollback_from_any_phase_with_a_route():
    for observed in (BASE_ONLY, AT_30, PROMOTED, ROLLED_BACK):
        assert plan("rollback", observed)[1].action == "rollback"


def test_summary_says_what_the_next_run_does():
    assert plan("release", AT_30, None, (10, 30, 60), None)[1].summary == (
        "resume v2 at 30%, move 60% of the traffic to it, then ask whether to promote, roll back or hold")
    assert plan("release", DEPLOYED, None, (), "promote")[1].summary == (
        "deploy v2 beside v1, ask for its share, then promote")
    assert plan("release", AT_30, None, (), "hold")[1].summary == "resume v2 at 30%, keep its 30%, then hold"


def test_answer_is_what_canary_info_returns():
    inputs = validate_inputs("v1", "v2", None, [10, 30, 60], None, ROLE_NAMES)
    assert release.answer("release", AT_30, inputs) == {
        "phase": "in_progress", "pending_steps": [60],
        "next_run": {"action": "release", "ask": ["decision"], "problem": None,
                     "summary": "resume v2 at 30%, move 60% of the traffic to it, then ask whether to promote, "
                                "roll back or hold"},
        "analysis": None}


# --------------------------------------------------------------------------------------
# inputs: each validated here, once, with the caller's names


@pytest.mark.parametrize("value,expected", [(30, 30), ("30", 30), (" 30 ", 30), (0, 0), (100, 100), (50.0, 50),
                                            (None, None)])
def test_ratio_accepted(value, expected):
    assert release.parse_ratio(value, ROLE_NAMES) == expected


@pytest.mark.parametrize("value", [150, 101, -5, -1, 50.5, "50.5", "abc", "", True, False, [30], {"v2": 30}])
def test_ratio_refused_naming_the_variable_and_the_value(value):
    with pytest.raises(CanaryInputError) as error:
        release.parse_ratio(value, ROLE_NAMES)
    assert str(error.value).startswith("canary_release_ratio must be a whole number from 0 to 100 (the canary's "
                                       "percent of traffic), got ")


def test_module_names_by_default():
    with pytest.raises(CanaryInputError, match=r"^ratio must be a whole number from 0 to 100 .*got 150$"):
        release.parse_ratio(150)


@pytest.mark.parametrize("value", [[50, 10], [10, 10], [10, 500], [-1, 10], ["abc"], [True], "10,20", {"a": 1}, 30])
def test_steps_refused(value):
    with pytest.raises(CanaryInputError, match=r"^canary_release_steps must be whole numbers from 0 to 100 in "
                                               r"increasing order, got "):
        release.parse_steps(value, ROLE_NAMES)


def test_steps_accepted():
    assert release.parse_steps([0, "10", 30.0, 100]) == (0, 10, 30, 100)
    assert release.parse_steps([]) == () and release.parse_steps(None) == ()


def test_decision():
    assert [release.parse_decision(value) for value in ("promote", "rollback", "hold", " Hold ", None)] == [
        "promote", "rollback", "hold", "hold", None]
    with pytest.raises(CanaryInputError, match=r"^canary_release_decision must be promote, rollback or hold, "
                                               r'got "ship-it"$'):
        release.parse_decision("ship-it", ROLE_NAMES)


@pytest.mark.parametrize("base,canary", [("v1", "v1"), ("", "v2"), ("v1", ""), (None, "v2"), ("v1", None)])
def test_versions_must_differ(base, canary):
    with pytest.raises(CanaryInputError, match=r"canary_release_base_version .* and canary_release_canary_version "
                                               r".* must be two different, non-empty subset names"):
        validate_inputs(base, canary, names=ROLE_NAMES)


def test_input_names_from_a_mapping():
    assert InputNames.from_mapping({"ratio": "my_ratio"}).ratio == "my_ratio"
    assert InputNames.from_mapping(None) == InputNames()
    with pytest.raises(CanaryInputError, match="input_names has unknown key"):
        InputNames.from_mapping({"ratoi": "x"})


def test_unknown_goal_is_refused():
    with pytest.raises(CanaryInputError, match="goal"):
        plan_run("deploy", BASE_ONLY, "v1", "v2")


# --------------------------------------------------------------------------------------
# the gate_answer filter: answers typed at a prompt, by the same rule


def gate_answer():
    module = importlib.import_module("ansible_collections.canary.istio.plugins.filter.gate_answer")
    return module.FilterModule().filters()["gate_answer"]


@pytest.mark.parametrize("typed,gate,expected", [
    ("30", "ratio", 30), (" 030 ", "ratio", 30), ("100", "ratio", 100), ("0", "ratio", 0),
    ("abc", "ratio", None), ("101", "ratio", None), ("-1", "ratio", None), ("50.5", "ratio", None), ("", "ratio", None),
    ("promote", "decision", "promote"), (" Rollback", "decision", "rollback"), ("hold", "decision", "hold"),
    ("maybe", "decision", None), ("", "decision", None), ("30", "decision", None),
])
def test_gate_answer(typed, gate, expected):
    assert gate_answer()(typed, gate) == expected


def test_gate_answer_unknown_gate():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="gate_answer: gate"):
        gate_answer()("30", "share")
