# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release driver (``_logic/driver.py``): every transition of ``next_action``.

The rules are the ones issue 22 asks for, in Argo Rollouts' and Flagger's terms: looks planned
over the release, evidence counted from the step's start, analyses that could not run retried up
to ``consecutive_error_limit``, a failed look rolling back at ``failure_limit``, an inconclusive
step held at its deadline, ``initial_delay``, ``dry_run`` never acting, and a resumed run
continuing the looks the VirtualService's history records. The runs below are driven the way the
role drives them: ask, do what the answer says on a simulated clock, ask again.
"""

from __future__ import annotations

import calendar
import random

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import driver
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import duration_seconds
from ansible_collections.canary.istio.plugins.module_utils._logic.release import parse_analysis

pytestmark = pytest.mark.unit

STEPS = (10, 25, 50)
T0 = float(calendar.timegm((2026, 12, 9, 0, 0, 0)))  # days after the history below


def settings(**overrides):
    return parse_analysis({"window": "10s", "interval": 12, **overrides})


class Run:
    """A loop on a simulated clock: slots of move-then-analyse, as many as the plan's slots."""

    def __init__(self, verdicts, moves=STEPS, start=0, decision="auto", history=(), interactive=False,
                 step_interval=0, analysis=True, **overrides):
        self.policy = settings(**overrides) if analysis else None
        self.plan = driver.plan_release(moves, start, self.policy, decision, list(history), "v2", interactive,
                                        step_interval)
        self.verdicts = list(verdicts)
        self.now = T0
        self.moved, self.analyses, self.asked, self.waits = [], [], [], []

    def ask(self):
        return driver.next_action(self.plan, self.moved, self.analyses, self.now)

    def slot(self):
        step = self.ask()
        if step["action"] == "move":
            self.now += step["wait"]
            self.waits.append(("move", step["wait"]))
            self.moved.append({"share": step["share"], "at": self.now})
            step = self.ask()
        if step["action"] == "analyse":
            self.asked.append(step)
            self.waits.append(("analyse", step["wait"]))
            self.now += step["wait"]
            verdict = self.verdicts.pop(0)
            record = {"step": step["share"], "look": step["look"], "looks": step["looks"], "since": step["since"],
                      "verdict": verdict, "summary": f"canary v2 {verdict}", "at": self.now}
            if verdict == "error":
                record["msg"] = "cannot reach Prometheus at http://127.0.0.1:9"
            self.analyses.append(record)
            self.now += 1  # the analysis itself takes a moment

    def to_end(self):
        for _slot in range(self.plan["slots"]):
            self.slot()
        end = self.ask()
        assert end["action"] in driver.FINAL_ACTIONS, end
        return end


# --------------------------------------------------------------------------------------
# analysed releases


def test_a_healthy_canary_moves_step_by_step_one_planned_look_each_and_auto_promotes():
    run = Run(["pass"] * 3)
    end = run.to_end()
    assert end["action"] == "promote" and end["by"] == "analysis" and end["decided_by"] == "decided by the analysis"
    assert end["reason"].startswith("every step passed its analysis (10%, 25%, 50%)")
    assert [m["share"] for m in run.moved] == list(STEPS)
    assert [(a["look"], a["looks"], a["share"]) for a in run.asked] == [(1, 3, 10), (2, 3, 25), (3, 3, 50)]
    # Each look comes one interval after its step started and counts from the move.
    assert [a["since"] for a in run.asked] == [m["at"] for m in run.moved]
    assert [wait for kind, wait in run.waits if kind == "analyse"] == [12, 12, 12]


def test_a_failed_look_rolls_back_at_once_and_says_the_analysis_did_it():
    run = Run(["fail"])
    end = run.to_end()
    assert end["action"] == "rollback" and end["by"] == "analysis"
    assert end["reason"].startswith("analysis 1 at 10% failed (look 1 of 3): canary v2 fail")
    assert "(1 failed look(s), failure_limit 1)" in end["reason"]
    assert [m["share"] for m in run.moved] == [10]


@pytest.mark.parametrize("decision", ["auto", "promote", "hold", None])
def test_a_failed_look_rolls_back_whatever_the_decision_input(decision):
    assert Run(["fail"], decision=decision).to_end()["action"] == "rollback"


def test_failures_below_the_limit_look_again_at_the_same_share():
    run = Run(["fail", "pass", "pass", "pass"], failure_limit=2)
    assert run.plan["looks_per_step"] == 2 and run.plan["looks"] == 6
    end = run.to_end()
    assert end["action"] == "promote"
    assert [(a["share"], a["look"]) for a in run.asked] == [(10, 1), (10, 2), (25, 3), (50, 4)]
    # The second look at 10% counts from the same start: the evidence accumulates within the step.
    assert run.asked[1]["since"] == run.asked[0]["since"] == run.moved[0]["at"]
    assert run.asked[1]["reason"] == "look again at 10%: analysis 1 at 10% failed (look 1 of 6)"
    assert Run(["pass", "fail", "fail"], failure_limit=2).to_end()["action"] == "rollback"


def test_an_inconclusive_look_looks_again_with_more_evidence_until_the_step_settles():
    run = Run(["inconclusive", "inconclusive", "pass", "pass", "pass"], looks_per_step=3)
    end = run.to_end()
    assert end["action"] == "promote"
    assert [(a["share"], a["look"], a["looks"]) for a in run.asked] == [
        (10, 1, 9), (10, 2, 9), (10, 3, 9), (25, 4, 9), (50, 5, 9)]
    assert len({a["since"] for a in run.asked[:3]}) == 1


@pytest.mark.parametrize(("rule", "interactive", "expected"), [
    ("hold", False, "hold"), ("rollback", False, "rollback"), ("ask", True, "ask"), ("ask", False, "hold")])
def test_an_inconclusive_step_at_its_deadline_follows_the_rule_and_never_promotes(rule, interactive, expected):
    run = Run(["pass", "inconclusive", "inconclusive"], looks_per_step=2, inconclusive=rule, interactive=interactive)
    end = run.to_end()
    assert end["action"] == expected and end["by"] == "analysis"
    assert end["reason"].startswith("the step at 25% was inconclusive at its deadline (2 look(s), looks_per_step 2)")
    assert "never promotes" in end["reason"]
    assert [m["share"] for m in run.moved] == [10, 25]


def test_analyses_that_could_not_run_are_retried_and_are_no_looks():
    run = Run(["error", "error", "error", "pass", "pass", "pass"])
    end = run.to_end()
    assert end["action"] == "promote"
    assert [(a["share"], a["look"]) for a in run.asked] == [(10, 1)] * 4 + [(25, 2), (50, 3)]
    assert run.asked[1]["reason"] == "analyse again at 10% (1 could not run in a row, consecutive_error_limit 4)"
    # A retry comes one interval after the failed attempt, not at once.
    assert run.asked[1]["wait"] == 11


@pytest.mark.parametrize("rule", ["stop", "rollback"])
def test_consecutive_errors_at_the_limit_follow_on_error_and_never_promote(rule):
    run = Run(["pass", "error", "error"], consecutive_error_limit=2, on_error=rule)
    end = run.to_end()
    assert end["action"] == rule and end["by"] == "analysis"
    assert end["reason"].startswith("analysis 3 at 25% could not run: cannot reach Prometheus at http://127.0.0.1:9 "
                                    "(2 in a row, consecutive_error_limit 2; analysis.on_error: " + rule)


def test_errors_in_a_row_are_counted_afresh_after_a_look_that_ran():
    run = Run(["error", "pass", "error", "pass", "error", "pass"], consecutive_error_limit=2)
    assert run.to_end()["action"] == "promote"


def test_initial_delay_moves_the_start_of_the_evidence_and_the_first_look():
    run = Run(["pass"] * 3, initial_delay=30)
    run.to_end()
    assert [a["since"] - m["at"] for a, m in zip(run.asked, run.moved, strict=True)] == [30, 30, 30]
    assert [wait for kind, wait in run.waits if kind == "analyse"] == [42, 42, 42]


@pytest.mark.parametrize(("decision", "expected", "by"), [
    ("promote", "promote", "decision"), ("hold", "hold", "decision"), ("rollback", "rollback", "decision")])
def test_after_every_step_passed_the_decision_input_is_followed(decision, expected, by):
    end = Run(["pass"] * 3, decision=decision).to_end()
    assert end["action"] == expected and end["by"] == by


def test_with_no_decision_a_person_is_asked_and_the_answer_is_acted_on():
    run = Run(["pass"] * 3, decision=None, interactive=True)
    assert run.to_end()["action"] == "ask"
    answered = driver.next_action(run.plan, run.moved, run.analyses, run.now, answer="rollback")
    assert answered["action"] == "rollback" and answered["by"] == "person"
    assert answered["reason"].endswith("; rollback was answered at the decision gate")
    assert Run(["pass"] * 3, decision=None).to_end()["action"] == "hold"  # nobody to ask


def test_an_answer_where_nothing_was_asked_is_refused():
    run = Run(["fail"], decision=None, interactive=True)
    run.to_end()
    with pytest.raises(ValueError, match="nothing was asked: the run ends with rollback"):
        driver.next_action(run.plan, run.moved, run.analyses, run.now, answer="promote")
    with pytest.raises(ValueError, match="must be promote, rollback or hold"):
        driver.next_action(run.plan, run.moved, run.analyses, run.now, answer="auto")


def test_dry_run_analyses_every_step_and_never_acts_on_the_verdicts():
    run = Run(["fail", "inconclusive", "pass"], decision="promote", dry_run=True)
    end = run.to_end()
    assert [m["share"] for m in run.moved] == list(STEPS)
    assert end["action"] == "promote" and end["by"] == "decision"
    assert end["would"] == ["analysis 1 at 10% failed (look 1 of 3): would roll back",
                            "the step at 25% was inconclusive at its deadline: would hold"]
    assert "dry run: analysis 1 at 10% failed" in end["reason"]


def test_dry_run_keeps_going_when_the_analysis_cannot_run():
    run = Run(["error", "error", "pass", "pass"], decision="hold", dry_run=True, consecutive_error_limit=2)
    end = run.to_end()
    assert [m["share"] for m in run.moved] == list(STEPS) and end["action"] == "hold"
    assert [a["share"] for a in run.asked] == [10, 10, 25, 50]


def test_the_slots_the_plan_gives_are_enough_for_any_sequence_of_verdicts():
    rng = random.Random(22)
    for _case in range(300):
        overrides = {"looks_per_step": rng.randint(1, 3), "consecutive_error_limit": rng.randint(1, 4),
                     "failure_limit": rng.randint(1, 3), "dry_run": rng.random() < 0.3}
        verdicts = [rng.choice(["pass", "fail", "inconclusive", "error"]) for _verdict in range(200)]
        run = Run(verdicts, decision="hold" if overrides["dry_run"] else "auto", **overrides)
        run.to_end()  # asserts a final action after the planned slots
        looks = [a["look"] for a in run.asked]
        assert looks == sorted(looks) and max(looks) <= run.plan["looks"]


# --------------------------------------------------------------------------------------
# a resumed run continues from the history


def step(before, after, time):
    return {"time": time, "from": {"v1": 100 - before, "v2": before}, "to": {"v1": 100 - after, "v2": after},
            "actor": "alice"}


def look(number, share, verdict="inconclusive"):
    return {"time": "2026-12-06T17:00:30Z", "analysis": {"step": share, "look": number, "looks": 3,
                                                         "verdict": verdict}}


HELD_AT_10 = [step(0, 10, "2026-12-06T17:00:00Z"), look(1, 10)]
HELD_SINCE = float(calendar.timegm((2026, 12, 6, 17, 0, 0)))


def test_a_resumed_run_continues_the_looks_and_the_evidence_of_its_share():
    found = driver.recorded_looks(HELD_AT_10, "v2")
    assert found == {"looks": 1, "share": 10, "share_since": HELD_SINCE}
    run = Run(["pass"], moves=[], start=10, history=HELD_AT_10)
    assert run.plan["looks_before"] == 1 and run.plan["looks"] == 2
    end = run.to_end()
    assert end["action"] == "promote"
    [asked] = run.asked
    assert asked["look"] == 2 and asked["looks"] == 2 and asked["since"] == HELD_SINCE
    assert asked["wait"] == 0  # the step started long ago: its evidence is there to be read


def test_a_resumed_run_with_steps_left_moves_on_and_numbers_its_looks_after_the_recorded_ones():
    run = Run(["pass", "pass"], moves=[25, 50], start=10, history=HELD_AT_10)
    run.to_end()
    assert [(a["share"], a["look"], a["looks"]) for a in run.asked] == [(25, 2, 3), (50, 3, 3)]


def test_looks_of_an_earlier_release_do_not_count():
    rolled_back = [*HELD_AT_10, look(2, 10, "fail"), step(10, 0, "2026-12-06T17:01:00Z")]
    assert driver.recorded_looks(rolled_back, "v2") == {"looks": 0, "share": 0, "share_since": None}
    again = [*rolled_back, step(0, 10, "2026-12-06T18:00:00Z"), look(1, 10, "pass"),
             {"analysis": {"step": 10, "verdict": "error"}}, look(2, 10)]
    assert driver.recorded_looks(again, "v2")["looks"] == 2
    # Entries recorded before looks were numbered count one each.
    assert driver.recorded_looks([step(0, 10, "x"), {"analysis": {"verdict": "pass"}}], "v2") == {
        "looks": 1, "share": 10, "share_since": None}


# --------------------------------------------------------------------------------------
# releases without analysis


def test_without_analysis_the_steps_bake_then_the_decision_input_acts():
    run = Run([], analysis=False, decision="promote", step_interval=300)
    end = run.to_end()
    assert [m["share"] for m in run.moved] == list(STEPS) and run.waits == [("move", 0), ("move", 300), ("move", 300)]
    assert end["action"] == "promote" and end["by"] == "decision" and run.asked == []
    # The bake time runs from the last move: asked 100 s after it, 200 s are left; after 300 s, none.
    later = Run([], moves=[10, 25], analysis=False, decision="promote", step_interval=300)
    later.slot()
    assert driver.next_action(later.plan, later.moved, [], later.now + 100)["wait"] == 200
    assert driver.next_action(later.plan, later.moved, [], later.now + 300)["wait"] == 0


def test_without_analysis_and_decision_a_person_is_asked():
    run = Run([], analysis=False, decision=None, interactive=True)
    assert run.to_end()["action"] == "ask"
    assert driver.next_action(run.plan, run.moved, [], run.now, answer="hold")["action"] == "hold"


def test_durations():
    assert duration_seconds("1m30s") == 90 and duration_seconds("500ms") == 0.5


# --------------------------------------------------------------------------------------
# looks planned in requests (look_requests)


def planned(look_requests=300, **overrides):
    policy = settings(**{"window": "10s", "interval": 60, "looks_per_step": 5, **overrides})
    policy["look_requests"] = look_requests
    return policy


def look_record(share, at, canary, base, window="10s", verdict="inconclusive"):
    return {"step": share, "verdict": verdict, "at": at, "window": window,
            "requests": {"canary": canary, "base": base}, "summary": f"canary v2 {verdict}"}


def test_looks_planned_in_requests_come_when_the_canary_has_answered_them():
    policy = planned(300)
    plan = driver.plan_release([10, 25], 0, policy, "auto", [], "v2")
    moved = [{"share": 10, "at": T0}]
    # No rate measured yet: the first look comes after one window.
    first = driver.next_action(plan, moved, [], T0)
    assert (first["action"], first["wait"]) == ("analyse", 10)
    # 100 canary requests in 10 s: 10/s, so 2 x 300 requests are expected 60 s after the move.
    looked = [look_record(10, T0 + 10, 100, 900)]
    second = driver.next_action(plan, moved, looked, T0 + 11)
    assert (second["action"], second["wait"], second["look"]) == ("analyse", 49, 2)
    assert "planned for 600 canary requests at 10/s" in second["reason"]
    # The step passes; at 25 % the service's 100 requests/s give the canary 25/s: 300 in 12 s.
    passed = [*looked, look_record(10, T0 + 60, 600, 5400, window="60s", verdict="pass")]
    moved.append({"share": 25, "at": T0 + 61})
    third = driver.next_action(plan, moved, passed, T0 + 61)
    assert (third["action"], third["share"], third["wait"]) == ("analyse", 25, 12)


def test_looks_planned_in_requests_stay_between_window_and_interval():
    policy = planned(300)
    plan = driver.plan_release([10], 0, policy, "auto", [], "v2")
    moved = [{"share": 10, "at": T0}]
    # 10,000 canary requests in 10 s: 600 would have come long ago, yet a look waits a window.
    busy = driver.next_action(plan, moved, [look_record(10, T0 + 10, 10000, 90000)], T0 + 10)
    assert busy["wait"] == 10 and "(window: the earliest)" in busy["reason"]
    # 1 canary request in 10 s: 600 would take 600 s; the look comes one interval after the last.
    quiet = driver.next_action(plan, moved, [look_record(10, T0 + 10, 1, 9)], T0 + 10)
    assert quiet["wait"] == 60 and "(interval: the latest)" in quiet["reason"]
    # No canary request at all: one interval.
    none = driver.next_action(plan, moved, [look_record(10, T0 + 10, 0, 90)], T0 + 10)
    assert none["wait"] == 60 and "no canary requests measured" in none["reason"]
    # An answer without request counts (or with an unreadable range) measures no rate: a window.
    unread = driver.next_action(plan, moved, [look_record(10, T0 + 10, 100, 900, window="soon")], T0 + 10)
    assert unread["wait"] == 10


def test_a_retry_after_an_analysis_that_could_not_run_waits_an_interval_even_with_planned_looks():
    policy = planned(300)
    plan = driver.plan_release([10], 0, policy, "auto", [], "v2")
    moved = [{"share": 10, "at": T0}]
    failed = [{"step": 10, "verdict": "error", "at": T0 + 10, "msg": "cannot reach Prometheus"}]
    retry = driver.next_action(plan, moved, failed, T0 + 10)
    assert (retry["action"], retry["wait"]) == ("analyse", 60)


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "many", "", 10**9 + 1, [300]])
def test_look_requests_refuses_what_is_not_a_whole_number_of_requests(value):
    with pytest.raises(driver.CanaryInputError, match=r"analysis\.look_requests must be a whole number of canary "
                                                      r"requests from 1 to 10\^9, got"):
        driver.validate_look_requests(value, 10.0, 60.0)


def test_look_requests_needs_room_between_window_and_interval():
    with pytest.raises(driver.CanaryInputError, match=r"needs interval \(60 s\) longer than window \(60 s\)"):
        driver.validate_look_requests(300, 60.0, 60.0)
    assert driver.validate_look_requests("300", 10.0, 60.0) == 300
    assert driver.validate_look_requests(None, 60.0, 60.0) is None
