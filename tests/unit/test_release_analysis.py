# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Progressive delivery's decisions (release.analysis_progress / settle_decision / parse_analysis).

The expected behaviour is the one issue 13 asks for and Flagger / Argo Rollouts document: a failed
analysis up to ``failure_limit`` rolls back, missing data never passes, ``auto`` promotes only once
every step passed, an analysis that could not run stops or rolls back and never promotes.
"""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import release
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release import (
    InputNames,
    Observed,
    analysis_progress,
    analysis_slots,
    parse_analysis,
    settle_decision,
    validate_inputs,
)

pytestmark = pytest.mark.unit

STEPS = (10, 25, 50)
ROLE = InputNames(analysis="canary_release_analysis", decision="canary_release_decision")


def policy(**overrides):
    return parse_analysis({"window": "15s", "interval": 0, **overrides})


def verdict(step, verdict_, **extra):
    return {"step": step, "verdict": verdict_, "summary": f"canary v2 {verdict_}ed", **extra}


def run_to_end(verdicts, steps=STEPS, current=0, **overrides):
    """Drives the loop as the role does: ask, act, analyse (next verdict from the list), ask again."""
    rules = policy(**overrides)
    results, moves = [], []
    queue = list(verdicts)
    for _slot in range(analysis_slots(steps, rules)):
        progress = analysis_progress(steps, current, rules, results)
        if progress["action"] == "move":
            moves.append(progress["share"])
            current = progress["share"]
        elif progress["action"] != "analyse":
            return progress, moves, results
        results.append(verdict(progress["share"], queue.pop(0)))
    return analysis_progress(steps, current, rules, results), moves, results


def test_a_healthy_canary_moves_through_every_step_and_auto_promotes():
    progress, moves, results = run_to_end(["pass"] * 3)
    assert moves == [10, 25, 50] and [r["step"] for r in results] == [10, 25, 50]
    assert progress["action"] == "done" and progress["passed_steps"] == [10, 25, 50]
    assert settle_decision("auto", progress)["decision"] == "promote"


def test_a_failed_analysis_rolls_back_at_once_with_its_numbers():
    failed = verdict(10, "fail", checks=[{"name": "request-success-rate", "verdict": "fail",
                                          "canary": {"value": 80.5}, "base": {"value": 100.0}}])
    progress = analysis_progress(STEPS, 10, policy(), [failed])
    assert progress["action"] == "rollback"
    assert "analysis 1 at 10% failed" in progress["reason"]
    assert "request-success-rate fail (canary 80.5, base 100)" in progress["reason"]
    for decision in ("auto", "promote", "hold", None):
        assert settle_decision(decision, progress)["decision"] == "rollback"


def test_failures_below_the_limit_repeat_the_step_and_never_advance_it():
    progress, moves, results = run_to_end(["fail", "pass", "pass", "pass"], failure_limit=2)
    assert moves == [10, 25, 50] and [r["step"] for r in results] == [10, 10, 25, 50]
    assert progress["action"] == "done"
    progress, moves, _results = run_to_end(["pass", "fail", "fail"], failure_limit=2)
    assert progress["action"] == "rollback" and moves == [10, 25]


def test_several_analyses_per_step():
    progress, _moves, results = run_to_end(["pass"] * 6, analyses=2)
    assert [r["step"] for r in results] == [10, 10, 25, 25, 50, 50] and progress["action"] == "done"


@pytest.mark.parametrize("rule", ["hold", "ask", "rollback"])
def test_inconclusive_never_promotes_and_follows_the_policy(rule):
    progress, moves, _results = run_to_end(["pass", "inconclusive"], inconclusive=rule)
    assert progress["action"] == rule and moves == [10, 25]
    assert "inconclusive" in progress["reason"] and "never promotes" in progress["reason"]
    assert settle_decision("auto", progress)["decision"] == rule
    assert settle_decision("promote", progress)["decision"] == rule


@pytest.mark.parametrize("rule", ["stop", "rollback"])
def test_prometheus_unreachable_stops_or_rolls_back_and_never_promotes(rule):
    unreachable = {"step": 25, "verdict": "error", "msg": "cannot reach Prometheus at http://127.0.0.1:9"}
    progress = analysis_progress(STEPS, 25, policy(on_error=rule), [verdict(10, "pass"), unreachable])
    assert progress["action"] == rule
    assert "cannot reach Prometheus at http://127.0.0.1:9" in progress["reason"]
    assert settle_decision("auto", progress)["decision"] == rule


def test_an_analysis_that_did_not_finish_never_promotes():
    unfinished = analysis_progress(STEPS, 10, policy(), [verdict(10, "pass")])
    assert unfinished["action"] == "move"
    assert settle_decision("auto", unfinished)["decision"] == "hold"
    assert settle_decision(None, analysis_progress(STEPS, 0, policy(), []))["decision"] == "hold"


def test_after_every_step_passed_the_decision_input_is_followed():
    done, _moves, _results = run_to_end(["pass"] * 3)
    assert settle_decision("hold", done)["decision"] == "hold"
    assert settle_decision("rollback", done)["decision"] == "rollback"
    assert settle_decision(None, done)["decision"] == "ask"


def test_a_resumed_canary_without_steps_is_analysed_at_its_share():
    progress = analysis_progress((), 30, policy(), [])
    assert progress["action"] == "analyse" and progress["share"] == 30
    assert analysis_progress((), 30, policy(), [verdict(30, "pass")])["action"] == "done"


def test_the_record_keeps_the_verdict_and_its_numbers():
    result = {"verdict": "fail", "summary": "canary v2 failed: request-success-rate", "requests": {"base": 400.0,
              "canary": 50.0}, "evaluated_at": 1.5, "window": "15s",
              "checks": [{"name": "request-success-rate", "verdict": "fail", "reason": "80% < 99%",
                          "canary": {"value": 80.0, "requests": 50.0, "errors": 10.0}, "base": {"value": 100.0},
                          "min": 99.0, "max": None, "queries": {"canary": ["..."]}}]}
    record = release.analysis_record(10, result)
    assert record["verdict"] == "fail" and record["requests"] == {"base": 400.0, "canary": 50.0}
    assert record["checks"][0]["canary"]["errors"] == 10.0 and "queries" not in record["checks"][0]
    error = release.analysis_record(25, {"failed": True, "msg": "cannot reach Prometheus"})
    assert error["verdict"] == "error" and error["msg"] == "cannot reach Prometheus"


BAD = [
    ("often", "must be a mapping"),
    ({"intervall": 10}, "unknown key(s) intervall"),
    ({"checks": [{"name": "error-budget"}]}, "'error-budget' is not a built-in check"),
    ({"checks": [{"name": "request-success-rate", "min": 150}]}, "got 150"),
    ({"window": "30"}, "window must be a Prometheus duration"),
    ({"interval": -1}, "interval must be a whole number from 0 to 86400, got -1"),
    ({"analyses": 0}, "analyses must be a whole number from 1 to 100, got 0"),
    ({"failure_limit": "x"}, "failure_limit must be a whole number from 1 to 100, got \"x\""),
    ({"inconclusive": "promote"}, "inconclusive must be hold, ask or rollback, got \"promote\""),
    ({"on_error": "ignore"}, "on_error must be stop or rollback, got \"ignore\""),
    ({"confidence": 100}, "confidence is a percentage"),
]


@pytest.mark.parametrize(("value", "fragment"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_analysis_input_names_the_variable_and_the_rule(value, fragment):
    with pytest.raises(CanaryInputError) as error:
        validate_inputs("v1", "v2", steps=[10], decision="auto", analysis=value, names=ROLE)
    assert "canary_release_analysis" in str(error.value) and fragment in str(error.value)


def test_auto_needs_an_analysis_and_is_not_an_answer_at_the_gate():
    with pytest.raises(CanaryInputError, match="canary_release_decision=auto promotes on the analysis"):
        validate_inputs("v1", "v2", decision="auto", names=ROLE)
    assert release.parse_answer("decision", "auto") is None
    assert parse_analysis({}) is None and parse_analysis(None) is None


def test_auto_plans_a_release_that_asks_nothing():
    inputs = validate_inputs("v1", "v2", steps=[10, 25, 50], decision="auto", analysis={"window": "15s"})
    answer = release.answer("release", Observed(exists=True, weights={"v1": 100}, subsets=["v1"]), inputs)
    assert answer["next_run"]["ask"] == [] and answer["pending_steps"] == [10, 25, 50]
    assert "promote once every step passed" in answer["next_run"]["summary"]
    assert answer["analysis"]["window"] == "15s" and answer["analysis"]["failure_limit"] == 1


def test_an_analysis_entry_in_the_history_does_not_hide_a_rollback():
    history = [{"from": {"v1": 90, "v2": 10}, "to": {"v1": 100}}, {"analysis": {"verdict": "fail"}}]
    observed = Observed(exists=True, weights={"v1": 100}, subsets=["v1"],
                        recorded={"base": "v2", "canary": "v1", "weight": 100}, history=history)
    assert release.release_phase(observed, "v1", "v2") == "rolled_back"
