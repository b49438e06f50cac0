# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Progressive delivery's settings and records (release.parse_analysis / analysis_record).

What the release does with the analyses is the driver's: tests/unit/plugins/module_utils/_logic/test_release_driver.py.
"""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import driver, release
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release import (
    InputNames,
    Observed,
    parse_analysis,
    validate_inputs,
)

pytestmark = pytest.mark.unit

ROLE = InputNames(analysis="canary_release_analysis", decision="canary_release_decision")


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
    ({"interval": -1}, "interval must be a whole number from 1 to 86400, got -1"),
    ({"window": "1m", "interval": 30}, "interval (30 s) is shorter than window (1m): the first look after a step "
                                       "would count requests of the share before it, and looks would overlap; set "
                                       "interval to at least 60"),
    ({"window": "10s", "interval": 10, "scrape_interval": "15s"},
     "window (10s) is shorter than two scrape intervals (30 s with scrape_interval \"15s\")"),
    ({"scrape_interval": "often"}, "scrape_interval must be seconds or a Prometheus duration such as 15s, got "
                                   "\"often\""),
    ({"consecutive_error_limit": 0}, "consecutive_error_limit must be a whole number from 1 to 100, got 0"),
    ({"initial_delay": -5}, "initial_delay must be a whole number from 0 to 86400, got -5"),
    ({"dry_run": "maybe"}, "dry_run must be true or false, got \"maybe\""),
    ({"looks_per_step": 0}, "looks_per_step must be a whole number from 1 to 100, got 0"),
    ({"analyses": 3, "looks_per_step": 2}, "looks_per_step (2) is less than analyses (3): a step could never pass"),
    ({"analyses": 0}, "analyses must be a whole number from 1 to 100, got 0"),
    ({"failure_limit": "x"}, "failure_limit must be a whole number from 1 to 100, got \"x\""),
    ({"inconclusive": "promote"}, "inconclusive must be hold, ask or rollback, got \"promote\""),
    ({"on_error": "ignore"}, "on_error must be stop or rollback, got \"ignore\""),
    ({"dry_run": True}, "canary_release_decision=auto lets the analysis promote, but canary_release_analysis.dry_run "
                        "is true"),
    ({"confidence": 100}, "confidence is a percentage"),
    ({"power": 40}, "power is a percentage"),
    ({"caller_failures": "sometimes"}, "caller_failures must be true or false"),
    ({"look_requests": 0}, "look_requests must be a whole number of canary requests from 1 to 10^9, got 0"),
    ({"look_requests": "many"}, "look_requests must be a whole number of canary requests from 1 to 10^9"),
    ({"window": "1m", "interval": 60, "look_requests": 200},
     "look_requests needs interval (60 s) longer than window (60 s)"),
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
    # The defaults of the settings the driver reads: Argo Rollouts' consecutiveErrorLimit is 4.
    keys = ("consecutive_error_limit", "initial_delay", "dry_run", "looks_per_step", "inconclusive")
    assert {key: answer["analysis"][key] for key in keys} == {
        "consecutive_error_limit": 4, "initial_delay": 0, "dry_run": False, "looks_per_step": 1,
        "inconclusive": "hold"}


def test_settings_in_other_spellings_are_read_as_meant():
    policy = parse_analysis({"window": "1m30s", "interval": "90", "scrape_interval": 30, "dry_run": "yes",
                             "analyses": 2, "failure_limit": 3})
    assert policy["interval"] == 90 and policy["scrape_interval"] == "30s" and policy["dry_run"] is True
    assert policy["looks_per_step"] == 4  # room for two passes and the two failures below the limit
    assert parse_analysis({"window": "30s", "interval": 30, "scrape_interval": "15s"})["scrape_interval"] == "15s"
    # Unset, the module's own defaults apply (min_requests follows from the power it needs).
    assert {key: policy[key] for key in ("min_requests", "confidence", "power", "caller_failures")} == dict.fromkeys(
        ("min_requests", "confidence", "power", "caller_failures"))


def test_looks_planned_in_requests_reach_the_driver_from_the_role_setting():
    # canary_release_analysis.look_requests: 300 with a 10-s window; the canary answered 100 requests in its
    # first 10 s (10/s), so look 2 is due when 2 x 300 are expected: 60 s after the move, 49 s after now.
    policy = parse_analysis({"window": "10s", "interval": 120, "looks_per_step": 5, "look_requests": "300"})
    assert policy["look_requests"] == 300
    plan = driver.plan_release([10], 0, policy, "auto", [], "v2")
    looked = [{"step": 10, "verdict": "inconclusive", "at": 1010.0, "window": "10s",
               "requests": {"canary": 100, "base": 900}, "summary": "canary v2 inconclusive"}]
    upcoming = driver.next_action(plan, [{"share": 10, "at": 1000.0}], looked, 1011.0)
    assert (upcoming["action"], upcoming["wait"]) == ("analyse", 49)
    # Unset, a look comes every interval.
    every = driver.plan_release([10], 0, parse_analysis({"window": "10s", "interval": 120, "looks_per_step": 5}),
                                "auto", [], "v2")
    assert driver.next_action(every, [{"share": 10, "at": 1000.0}], looked, 1011.0)["wait"] == 119


def test_an_analysis_entry_in_the_history_does_not_hide_a_rollback():
    history = [{"from": {"v1": 90, "v2": 10}, "to": {"v1": 100}}, {"analysis": {"verdict": "fail"}}]
    observed = Observed(exists=True, weights={"v1": 100}, subsets=["v1"],
                        recorded={"base": "v2", "canary": "v1", "weight": 100}, history=history)
    assert release.release_phase(observed, "v1", "v2") == "rolled_back"
