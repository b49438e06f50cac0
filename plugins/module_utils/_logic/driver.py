# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release driver: what a canary release does next.

Pure functions; no Kubernetes, no Prometheus, no Ansible. The ``canary_release`` role plans a run
once (:func:`plan_release`), then asks :func:`next_action` again after everything it did, and does
what the answer says - nothing more. The answer is one of:

=========  ==========================================================================================
move       move the canary's share to ``share`` (after ``wait`` seconds: the bake time between steps)
analyse    wait ``wait`` seconds, then run ``canary_analysis`` with ``look``, ``looks`` and ``since``
promote    all traffic to the canary
rollback   all traffic back to the base, canary removed
hold       leave the split as it is; a later run resumes from the history
ask        ask a person whether to promote, roll back or hold (then call again with the answer)
stop       fail the run, leaving the split as it is (Prometheus did not answer, ``on_error: stop``)
=========  ==========================================================================================

The rules of an analysed release (``policy`` is ``release.parse_analysis``'s answer):

- **Looks are planned.** Each step gets at most ``looks_per_step`` looks; the release's planned
  ``looks`` is the looks a resumed run found in the VirtualService's history, plus the steps left
  times ``looks_per_step``. Each analysis is told its ``look`` and the ``looks``, over which the
  canary_analysis module spends the error budget. An analysis that could not run is no look.
- **Evidence accumulates within a step.** Every look of a step counts from ``since``: the time the
  share was reached (for a resumed share, the time the history records) plus ``initial_delay``.
  Look *k* of a step comes ``interval`` seconds after the one before (the first ``interval`` after
  ``since``); ``interval`` is at least ``window``, so each look sees a whole window at this share.
- **Looks planned in requests** (``look_requests``, unset by default): look *k* of a step comes when
  the canary is expected to have answered *k* x ``look_requests`` requests since ``since``, at the
  canary's request rate that the last look measured (at another share: the service's rate times
  the new share), and never sooner than ``window`` nor later than ``interval`` after the look
  before (or after ``since``). The first look of a run, with no rate measured yet, comes at the
  earliest. The rate counts requests only, never their errors or latency, so when a look comes
  does not depend on what it will judge: each look's test keeps its level.
- **Analyses that could not run are retried**, ``interval`` apart, at the same look; after
  ``consecutive_error_limit`` in a row the run follows ``on_error`` (``stop`` or ``rollback``).
- **A failed look** rolls back once ``failure_limit`` looks of the run failed; below the limit the
  step is looked at again.
- **A step passes** after ``analyses`` passing looks at its share; then the next share moves.
- **An inconclusive step at its deadline** (``looks_per_step`` looks, none settling it) follows
  ``inconclusive``: ``hold`` (default), ``ask`` (hold when nobody can answer), or ``rollback``.
  Inconclusive never promotes.
- **After every step passed**, ``decision`` ``auto`` / ``promote`` promote, ``rollback`` / ``hold``
  do what they say, none asks (holds when nobody can answer).
- **dry_run**: every look runs and is recorded, but the analysis never acts: a step ends at its
  first settled verdict or its deadline and the next share moves; what the analysis *would* have
  done is said in the reason; the end is the decision input's (``auto`` is refused with dry_run).

Without an analysis the release moves through its shares (``step_interval`` seconds apart) and
ends with the decision input, or asks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    AnalysisInputError,
    duration_seconds,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

MOVE, ANALYSE = "move", "analyse"
FINAL_ACTIONS = ("promote", "rollback", "hold", "ask", "stop")
ACTIONS = (MOVE, ANALYSE, *FINAL_ACTIONS)
# Who made the final decision; the role says it in the output.
BY_ANALYSIS, BY_DECISION, BY_PERSON = "analysis", "decision", "person"
DECIDED_BY = {BY_ANALYSIS: "decided by the analysis", BY_DECISION: "decided by the decision input",
              BY_PERSON: "decided by a person at the prompt"}


def _time_of(value: Any) -> float | None:
    """Unix seconds from a number or an ISO 8601 text (the history's ``time``); ``None`` when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _share(weights: Any, canary: str) -> int:
    return int((weights or {}).get(canary) or 0) if isinstance(weights, Mapping) else 0


# --------------------------------------------------------------------------------------
# what a resumed run finds in the history


def recorded_looks(history: Sequence[Any], canary: str) -> dict[str, Any]:
    """The looks of the release in progress, and when its current share was reached, from the history.

    The release in progress began with the last traffic step that gave the canary a share from none;
    when the last traffic step took the canary's share back to none, no release is in progress.
    ``looks`` is the highest look number recorded since (entries without a number count one each;
    analyses that could not run are no looks); ``share_since`` is the time of the last traffic step.
    """
    entries = [entry for entry in history or () if isinstance(entry, Mapping)]
    steps = [index for index, entry in enumerate(entries) if "from" in entry and "to" in entry]
    if not steps or _share(entries[steps[-1]].get("to"), canary) == 0:
        return {"looks": 0, "share": 0, "share_since": None}
    start = next((index for index in reversed(steps)
                  if _share(entries[index].get("from"), canary) == 0 and _share(entries[index].get("to"), canary) > 0),
                 steps[0])
    looks = 0
    for entry in entries[start:]:
        analysis = entry.get("analysis")
        if not isinstance(analysis, Mapping) or analysis.get("verdict") == "error":
            continue
        number = analysis.get("look")
        looks = max(looks + 1, int(number)) if isinstance(number, int) and not isinstance(number, bool) else looks + 1
    last = entries[steps[-1]]
    return {"looks": looks, "share": _share(last.get("to"), canary), "share_since": _time_of(last.get("time"))}


# --------------------------------------------------------------------------------------
# looks planned in requests


def validate_look_requests(value: Any, window: float, interval: float, name: str = "analysis") -> int | None:
    """``look_requests`` as the driver takes it: ``None`` (a look every ``interval``) or a whole number.

    ``window`` and ``interval`` are the policy's, in seconds: the looks are placed between them, so
    a plan in requests needs ``interval`` longer than ``window``."""
    if value is None:
        return None
    digits = isinstance(value, str) and value.strip().isdigit()
    if isinstance(value, bool) or not (isinstance(value, int) or digits) or not 1 <= int(value) <= 10**9:
        raise CanaryInputError(f"{name}.look_requests must be a whole number of canary requests from 1 to 10^9, "
                               f"got {value!r}")
    if interval <= window:
        raise CanaryInputError(f"{name}.look_requests needs interval ({interval:g} s) longer than window "
                               f"({window:g} s): a look comes between window and interval seconds after the one "
                               f"before, so with no room between them every look comes interval apart; raise "
                               f"interval or leave look_requests unset")
    return int(value)


def _seconds_of(window: Any) -> float | None:
    """Seconds of the PromQL range an analysis read (``95s``, ``1m``); ``None`` when unreadable."""
    if not isinstance(window, str):
        return None
    try:
        seconds = duration_seconds(validate_window(window))
    except AnalysisInputError:
        return None
    return seconds if seconds > 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def canary_rate(analyses: Sequence[Mapping[str, Any]], share: int) -> float | None:
    """The canary's requests per second at ``share``, from the last analysis that ran.

    At the same share: its canary requests over the range it read. At another share: the service's
    requests (canary and base) over that range, times ``share``. ``None`` when no analysis of the
    run measured it. Requests only: errors and latency never move a look."""
    for analysis in reversed(analyses):
        if analysis.get("verdict") == "error":
            continue
        requests = analysis.get("requests")
        seconds = _seconds_of(analysis.get("window"))
        if not isinstance(requests, Mapping) or seconds is None:
            return None
        canary, base = _number(requests.get("canary")), _number(requests.get("base"))
        if analysis.get("step") == share:
            return None if canary is None else canary / seconds
        if canary is None and base is None:
            return None
        return ((canary or 0.0) + (base or 0.0)) / seconds * share / 100.0
    return None


def look_time(policy: Mapping[str, Any], start: float, since: float | None, looks_here: int,
              rate: float | None) -> tuple[float, str]:
    """When the next look of a step comes (Unix seconds), and why.

    ``start`` is the time of the look before (or the step's ``since``), ``looks_here`` the looks the
    step had, ``rate`` the canary's measured requests per second (:func:`canary_rate`)."""
    latest = start + float(policy["interval"])
    per_look = policy.get("look_requests")
    if not per_look:
        return latest, ""
    earliest = start + duration_seconds(policy["window"])
    if rate is None:
        return earliest, "no request rate measured yet: the look comes after one window"
    wanted = (looks_here + 1) * int(per_look)
    if rate <= 0:
        return latest, f"no canary requests measured: the look comes after interval, {wanted:,} requests planned"
    origin = since if since is not None else start
    expected = origin + wanted / rate
    planned = min(max(expected, earliest), latest)
    bound = " (window: the earliest)" if planned == earliest and expected < earliest else (
        " (interval: the latest)" if planned == latest and expected > latest else "")
    return planned, f"planned for {wanted:,} canary requests at {rate:.3g}/s{bound}"


# --------------------------------------------------------------------------------------
# the plan of a run


def plan_release(moves: Sequence[int], start_share: int, policy: Mapping[str, Any] | None, decision: str | None,
                 history: Sequence[Any] = (), canary: str = "", interactive: bool = False,
                 step_interval: int = 0) -> dict[str, Any]:
    """The plan of a run: the shares it moves to, the looks, and how many times the role asks.

    ``moves`` are the shares this run moves to, in order (none: judge the share the canary has);
    ``start_share`` the canary's share before them; ``decision`` the validated decision input
    (``auto``, ``promote``, ``rollback``, ``hold`` or ``None``); ``history`` the VirtualService's
    ``canary.istio/history`` entries, for the looks a resumed run continues from.
    ``slots`` is the most slots of a move followed by its looks that the run can need (the role's own loop,
    one action a slot, counts its slots in ``release_run``).
    """
    moves = [int(share) for share in moves]
    shares = moves or [int(start_share)]
    plan: dict[str, Any] = {"moves": moves, "shares": shares, "start_share": int(start_share),
                            "decision": decision, "policy": dict(policy) if policy else None,
                            "interactive": bool(interactive), "step_interval": int(step_interval or 0)}
    if not policy:
        plan.update(looks_before=0, looks=0, looks_per_step=0, share_since=None, slots=len(moves))
        return plan
    found = recorded_looks(history, canary)
    per_step = int(policy["looks_per_step"])
    # A share reached before this run (a resumed step) counts its evidence from the recorded time.
    share_since = found["share_since"] if found["share"] == int(start_share) and int(start_share) > 0 else None
    plan.update(looks_before=found["looks"], looks_per_step=per_step, looks=found["looks"] + len(shares) * per_step,
                share_since=share_since,
                # each look may be tried up to consecutive_error_limit times
                slots=len(shares) * per_step * int(policy["consecutive_error_limit"]))
    return plan


# --------------------------------------------------------------------------------------
# the next action


def _ceil(seconds: float) -> int:
    """Whole seconds to wait, rounded up; none when the time has come."""
    return max(0, int(-(-seconds // 1)))


def _answer(action: str, reason: str, **extra: Any) -> dict[str, Any]:
    answer = {"action": action, "reason": reason, "share": None, "wait": 0, "look": None, "looks": None,
              "since": None, "by": None, "would": []}
    answer.update(extra)
    answer["decided_by"] = DECIDED_BY.get(answer["by"], "")
    return answer


def answer_of(action: str, reason: str, **extra: Any) -> dict[str, Any]:
    """An answer in the driver's shape for an action the plan of a run names (a promotion, a gate)."""
    return _answer(action, reason, **extra)


def _numbers(analysis: Mapping[str, Any]) -> str:
    numbers = analysis.get("numbers")
    return f"; {numbers}" if numbers else ""


def _said(analyses: Sequence[Mapping[str, Any]], analysis: Mapping[str, Any]) -> str:
    """``analysis 2 at 10% failed (look 3 of 6)``: numbered within the run, with the release's look."""
    number = next((index for index, item in enumerate(analyses, 1) if item is analysis), len(analyses))
    verdict = {"fail": "failed", "pass": "passed", "inconclusive": "was inconclusive"}.get(
        str(analysis.get("verdict")), str(analysis.get("verdict")))
    look = (f" (look {analysis.get('look')} of {analysis.get('looks')})" if analysis.get("look") else "")
    return f"analysis {number} at {analysis.get('step')}% {verdict}{look}"


def _end(plan: Mapping[str, Any], head: str, would: list[str]) -> dict[str, Any]:
    """After every step: the decision input decides, or a person (hold when nobody can answer)."""
    decision = plan.get("decision")
    dry = bool((plan.get("policy") or {}).get("dry_run"))
    said = (" (dry run: " + "; ".join(would) + ")") if dry and would else (" (dry run)" if dry else "")
    if decision in ("auto", "promote") and not dry:
        by = BY_ANALYSIS if decision == "auto" else BY_DECISION
        return _answer("promote", f"{head}; the decision input is {decision}{said}", by=by, would=would)
    if decision in ("promote", "rollback", "hold"):
        return _answer(decision, f"{head}; the decision input is {decision}{said}", by=BY_DECISION, would=would)
    if plan.get("interactive"):
        return _answer("ask", f"{head}{said}", by=BY_PERSON, would=would)
    return _answer("hold", f"{head}; no decision given and nobody to ask: the split is held{said}", by=BY_DECISION,
                   would=would)


def next_action(plan: Mapping[str, Any], moved: Sequence[Mapping[str, Any]] = (),
                analyses: Sequence[Mapping[str, Any]] = (), now: float = 0.0,
                answer: str | None = None) -> dict[str, Any]:
    """What the release does next (see the table at the top of this module).

    ``moved`` holds this run's moves (``share``, ``at``: Unix seconds); ``analyses`` this run's
    analysis records (``release.analysis_record``: ``step``, ``look``, ``verdict``, ``at`` ...);
    ``now`` the time; ``answer`` the person's answer after an ``ask``.
    The answer: ``action``, ``reason``, ``share``, ``wait`` (seconds before acting), ``look``,
    ``looks`` and ``since`` (for an analysis), ``by`` (who decided a final action: ``analysis``,
    ``decision`` - the input - or ``person``) and ``would`` (dry run: what the analysis would have done).
    """
    if answer is not None:
        if answer not in ("promote", "rollback", "hold"):
            raise ValueError(f"the answer at the decision gate must be promote, rollback or hold, got {answer!r}")
        asked = next_action(plan, moved, analyses, now)
        if asked["action"] != "ask":
            raise ValueError(f"nothing was asked: the run ends with {asked['action']}")
        return {**asked, "action": answer, "by": BY_PERSON, "decided_by": DECIDED_BY[BY_PERSON],
                "reason": f"{asked['reason']}; {answer} was answered at the decision gate"}
    policy = plan.get("policy")
    moves = list(plan.get("moves") or [])
    moved_shares = [int(move["share"]) for move in moved]
    if not policy:
        if len(moved_shares) < len(moves):
            share = moves[len(moved_shares)]
            # the bake time runs from the last move
            baked = float(moved[-1]["at"]) + int(plan.get("step_interval") or 0) - float(now) if moved else 0.0
            return _answer(MOVE, f"move {share}% of the traffic to the canary", share=share, wait=_ceil(baked))
        shares = moved_shares or [plan.get("start_share")]
        return _end(plan, f"the canary is at {shares[-1]}%", [])
    return _analysed(plan, policy, moves, moved, list(analyses), float(now))


def _trailing_errors(analyses: Sequence[Mapping[str, Any]]) -> int:
    """Analyses that could not run in a row at the end, at the share of the last one."""
    errors = 0
    for analysis in reversed(analyses):
        if analysis.get("verdict") != "error" or analysis.get("step") != analyses[-1].get("step"):
            break
        errors += 1
    return errors


def _analysed(plan: Mapping[str, Any], policy: Mapping[str, Any], moves: list[int],
              moved: Sequence[Mapping[str, Any]], analyses: list[Mapping[str, Any]], now: float) -> dict[str, Any]:
    dry = bool(policy.get("dry_run"))
    looked = [a for a in analyses if a.get("verdict") != "error"]
    counts = {"looks_done": int(plan.get("looks_before") or 0) + len(looked)}
    would: list[str] = []

    # Analyses that could not run, in a row (the last ones).
    errors = _trailing_errors(analyses)
    limit = int(policy["consecutive_error_limit"])
    if errors >= limit:
        last = analyses[-1]
        problem = (f"analysis {len(analyses)} at {last.get('step')}% could not run: "
                   f"{str(last.get('msg') or 'no verdict').rstrip('.')} ({errors} in a row, consecutive_error_limit "
                   f"{limit}; analysis.on_error: {policy['on_error']}); a missing analysis never promotes")
        if not dry:
            return _answer(policy["on_error"], problem, by=BY_ANALYSIS, share=last.get("step"), **counts)
        would.append(f"{problem}: would {policy['on_error']}")

    failures = [a for a in looked if a.get("verdict") == "fail"]
    failure_limit = int(policy["failure_limit"])
    if failures and len(failures) >= failure_limit and not dry:
        last = failures[-1]
        return _answer("rollback", f"{_said(analyses, last)}: {last.get('summary')}"
                       f"{_numbers(last)} ({len(failures)} failed look(s), failure_limit {failure_limit})",
                       by=BY_ANALYSIS, share=last.get("step"), **counts)

    need, per_step = int(policy["analyses"]), int(plan["looks_per_step"])
    resumed = not moves
    for index, share in enumerate(plan["shares"]):
        here = [a for a in analyses if a.get("step") == share]
        looked_here = [a for a in here if a.get("verdict") != "error"]
        passes = sum(1 for a in looked_here if a.get("verdict") == "pass")
        if passes >= need:
            continue
        trailing_error = bool(here) and here[-1].get("verdict") == "error"
        if dry:
            settled = next((a for a in looked_here if a.get("verdict") == "fail"), None)
            if settled is not None:
                would.append(f"{_said(analyses, settled)}: would roll back")
                continue
            if trailing_error and _trailing_errors(here) >= limit:
                continue
            if len(looked_here) >= per_step:
                would.append(f"the step at {share}% was inconclusive at its deadline: would {policy['inconclusive']}")
                continue
        elif len(looked_here) >= per_step and not trailing_error:
            last = looked_here[-1]
            # Nobody to ask: the split is held, as a later run (or a person) may still decide.
            rule = "hold" if policy["inconclusive"] == "ask" and not plan.get("interactive") else policy["inconclusive"]
            return _answer(rule, f"the step at {share}% was inconclusive at its deadline "
                           f"({len(looked_here)} look(s), looks_per_step {per_step}): {_said(analyses, last)}: "
                           f"{last.get('summary')}{_numbers(last)} (analysis.inconclusive: "
                           f"{policy['inconclusive']}{'' if rule == policy['inconclusive'] else ', nobody to ask'}); "
                           "an inconclusive step never promotes",
                           by=BY_ANALYSIS, share=share, would=would, **counts)
        reached = [move for move in moved if int(move["share"]) == share]
        if not reached and not (resumed and index == 0):
            return _answer(MOVE, f"move {share}% of the traffic to the canary, then analyse it", share=share,
                           would=would, **counts)
        reached_at = float(reached[-1]["at"]) if reached else plan.get("share_since")
        since = None if reached_at is None else reached_at + float(policy["initial_delay"])
        previous = [float(a["at"]) for a in here if a.get("at") is not None]
        start = previous[-1] if previous else (since if since is not None else now + float(policy["initial_delay"]))
        # A retry after an analysis that could not run waits a whole interval, planned looks or not.
        at, planned = ((start + float(policy["interval"]), "") if trailing_error
                       else look_time(policy, start, since, len(looked_here), canary_rate(looked, share)))
        wait = _ceil(at - now)
        look = int(plan.get("looks_before") or 0) + len(looked) + 1
        if trailing_error:
            reason = f"analyse again at {share}% ({errors} could not run in a row, consecutive_error_limit {limit})"
        elif looked_here:
            reason = f"look again at {share}%: {_said(analyses, looked_here[-1])}"
        else:
            reason = f"analyse {share}%"
        if planned:
            reason += f" ({planned})"
        return _answer(ANALYSE, reason, share=share, wait=wait, look=look, looks=plan.get("looks"),
                       since=None if since is None else round(since, 3), would=would, **counts)
    shares = ", ".join(f"{share}%" for share in plan["shares"])
    head = (f"every step passed its analysis ({shares})" if not would
            else f"every step was analysed ({shares})")
    return {**_end(plan, head, would), **counts}
