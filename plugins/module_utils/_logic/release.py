# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a canary release stands, and what the next run does about it.

Pure functions over what ``canary_info`` read; no Kubernetes, no Ansible. The ``canary_release``
role runs ``canary_info`` with its inputs and acts on the answer, so every decision below is
reachable from a unit test.

The phase of a base/canary pair on one service's route is the first of these that holds:

=============  =========================================================================
missing        the VirtualService does not exist
promoted       the route sends to the canary alone (the base is no longer in it)
conflict       the route sends traffic to a version that is neither the base nor the canary
in_progress    the canary has a share, or a step of this base/canary pair is recorded
rolled_back    the last recorded step took the canary's share back to the base, and the
               canary's subset is gone
fresh          none of these: the canary has not started
=============  =========================================================================

What a run does depends on its goal (the role's entry point) and the phase:

- ``release`` (the whole flow): ``promoted`` only finishes the clean-up; ``rolled_back`` with the
  decision ``rollback`` does nothing; otherwise it releases: the given ratio is the one step, else
  the given steps above the canary's current share (all of them on a fresh start), else the ratio
  gate asks - unless a resumed canary already has a share, which goes straight to the promotion
  gate. The decision is asked when not given.
- ``set_ratio``: one step, the given ratio or the ratio gate's answer.
- ``promote`` / ``rollback``: all traffic to the canary / the base, then the clean-up.
- ``status``: reads only.

``missing`` and ``conflict`` refuse every goal but ``status``; ``promote`` also refuses a canary
without a subset. Inputs are validated here and nowhere else, with messages that name the input
the way the caller calls it (:class:`InputNames`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    REPORTERS,
    AnalysisInputError,
    duration_seconds,
    validate_checks,
    validate_confidence,
    validate_power,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.driver import validate_look_requests
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import validate_ratio

PHASES = ("missing", "promoted", "conflict", "in_progress", "rolled_back", "fresh")
GOALS = ("release", "set_ratio", "promote", "rollback", "status")
DECISIONS = ("promote", "rollback", "hold")
# ``auto``: promote once every analysed step passed (needs an analysis); never an answer at the gate.
AUTO = "auto"
# What a run does: the role has one branch for each.
ACTIONS = ("refuse", "release", "finish", "nothing", "step", "promote", "rollback", "show")
# Gates that may ask a person; each answers one input.
GATES = ("ratio", "decision")


@dataclass(frozen=True)
class InputNames:
    """How messages name the inputs: a module names its options, a role its variables."""

    ratio: str = "ratio"
    steps: str = "steps"
    decision: str = "decision"
    base: str = "base"
    canary: str = "canary"
    analysis: str = "analysis"

    @classmethod
    def from_mapping(cls, names: Mapping[str, Any] | None) -> InputNames:
        names = names or {}
        unknown = sorted(set(names) - set(cls.__dataclass_fields__))
        if unknown:
            raise CanaryInputError(f"input_names has unknown key(s) {', '.join(unknown)}; "
                                   f"use {', '.join(cls.__dataclass_fields__)}")
        return cls(**{key: str(value) for key, value in names.items() if value})


@dataclass(frozen=True)
class Observed:
    """What canary_info read: the route's weights, the DestinationRule's subsets, the recorded state."""

    exists: bool
    weights: Mapping[str, int] = field(default_factory=dict)
    subsets: Sequence[str] = ()
    recorded: Mapping[str, Any] = field(default_factory=dict)
    history: Sequence[Mapping[str, Any]] = ()
    where: str = ""
    destination_rule: str = ""
    kind: str = "VirtualService"

    def canary_weight(self, canary: str) -> int:
        return int(self.weights.get(canary) or 0)


@dataclass(frozen=True)
class Plan:
    """What the next run does. ``ask`` lists the gates that need an answer nobody gave."""

    action: str
    pending_steps: tuple[int, ...] = ()
    ask: tuple[str, ...] = ()
    problem: str | None = None
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "ask": list(self.ask), "problem": self.problem, "summary": self.summary}


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# --------------------------------------------------------------------------------------
# inputs


def parse_ratio(value: Any, names: InputNames = InputNames()) -> int | None:
    """The canary's share in percent, or ``None`` when not given. The rule is ``validate_ratio``'s."""
    if value is None:
        return None
    try:
        return validate_ratio(value)
    except CanaryInputError:
        raise CanaryInputError(f"{names.ratio} must be a whole number from 0 to 100 (the canary's percent of "
                               f"traffic), got {_show(value)}") from None


def parse_steps(value: Any, names: InputNames = InputNames()) -> tuple[int, ...]:
    """Shares for successive steps: whole numbers 0..100, strictly increasing. ``None`` is no steps."""
    if value is None:
        return ()
    problem = f"{names.steps} must be whole numbers from 0 to 100 in increasing order, got {_show(value)}"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise CanaryInputError(problem)
    try:
        steps = tuple(validate_ratio(step) for step in value)
    except CanaryInputError:
        raise CanaryInputError(problem) from None
    if any(steps[index + 1] <= steps[index] for index in range(len(steps) - 1)):
        raise CanaryInputError(problem)
    return steps


def parse_decision(value: Any, names: InputNames = InputNames(), allow_auto: bool = False) -> str | None:
    """The promotion gate's answer, or ``None`` when not given. ``auto`` only where an analysis decides."""
    if value is None:
        return None
    answer = value.strip().lower() if isinstance(value, str) else value
    if answer == AUTO and allow_auto:
        return answer
    if answer not in DECISIONS:
        raise CanaryInputError(f"{names.decision} must be promote, rollback or hold"
                               f"{' (or auto)' if allow_auto else ''}, got {_show(value)}")
    return answer


def check_versions(base: Any, canary: Any, names: InputNames = InputNames()) -> tuple[str, str]:
    if not isinstance(base, str) or not isinstance(canary, str) or not base or not canary or base == canary:
        raise CanaryInputError(f"{names.base} ({base}) and {names.canary} ({canary}) must be two different, "
                               "non-empty subset names")
    return base, canary


def parse_answer(gate: str, answer: Any) -> int | str | None:
    """A typed answer at a gate's prompt, normalised; ``None`` when it is not a valid answer."""
    if gate not in GATES:
        raise CanaryInputError(f"gate {_show(gate)} is not one of {', '.join(GATES)}")
    text = answer.strip() if isinstance(answer, str) else answer
    if text == "" or text is None:
        return None
    try:
        return parse_ratio(text) if gate == "ratio" else parse_decision(text)
    except CanaryInputError:
        return None


# --------------------------------------------------------------------------------------
# phase


def release_phase(observed: Observed, base: str, canary: str) -> str:
    """One of PHASES; see the table at the top of this module."""
    if not observed.exists:
        return "missing"
    if list(observed.weights) == [canary]:
        return "promoted"
    if _foreign_subsets(observed, base, canary):
        return "conflict"
    recorded = observed.recorded or {}
    if observed.canary_weight(canary) > 0 or (recorded.get("base") == base and recorded.get("canary") == canary
                                              and recorded.get("weight") is not None):
        return "in_progress"
    # Analysis verdicts are recorded in the history too; the phase reads the last traffic step.
    steps = [entry for entry in observed.history if isinstance(entry, Mapping) and "from" in entry]
    last_step = steps[-1] if steps else {}
    taken_back = int(((last_step.get("from") or {}) if isinstance(last_step, Mapping) else {}).get(canary) or 0)
    if recorded.get("canary") == base and taken_back > 0 and canary not in observed.subsets:
        return "rolled_back"
    return "fresh"


def _foreign_subsets(observed: Observed, base: str, canary: str) -> list[str]:
    return [subset for subset, weight in observed.weights.items() if weight and subset not in (base, canary)]


def weights_text(weights: Mapping[str, int]) -> str:
    """``v1 70%, v2 30%``, the way the role shows a split."""
    return ", ".join(f"{subset} {weight}%" for subset, weight in weights.items())


def phase_problem(phase: str, observed: Observed, base: str, canary: str,
                  names: InputNames = InputNames()) -> str | None:
    """Why a run that changes the release cannot start from this phase (``None`` when it can)."""
    if phase == "missing":
        if observed.kind == "HTTPRoute":
            return (f"HTTPRoute {observed.where} does not exist: create the service's HTTPRoute first, sending "
                    "to the base version's Service (as Istio's samples/bookinfo/gateway-api/route-reviews-v1.yaml "
                    "does)")
        return (f"VirtualService {observed.where} does not exist: deploy the base release first "
                "(role canary.istio.base_release)")
    if phase == "conflict":
        return (f"{observed.where} sends traffic to {', '.join(_foreign_subsets(observed, base, canary))} "
                f"({weights_text(observed.weights)}), which is neither the base {base} nor the canary {canary}: "
                f"finish that release first, or set {names.base} to the version that serves traffic now")
    return None


# --------------------------------------------------------------------------------------
# plan


def plan_run(goal: str, observed: Observed, base: str, canary: str, ratio: int | None = None,
             steps: Sequence[int] = (), decision: str | None = None,
             names: InputNames = InputNames()) -> tuple[str, Plan]:
    """The phase, and what a run with this goal and these (validated) inputs does next."""
    if goal not in GOALS:
        raise CanaryInputError(f"goal {_show(goal)} is not one of {', '.join(GOALS)}")
    phase = release_phase(observed, base, canary)
    if goal == "status":
        return phase, Plan("show", summary="read only: nothing changes")
    problem = phase_problem(phase, observed, base, canary, names)
    if problem is None and goal == "promote" and canary not in observed.subsets:
        problem = (f"Nothing to promote: DestinationRule {observed.where.split('/')[0]}/"
                   f"{observed.destination_rule or '(none)'} has no subset {canary}. Deploy the canary first "
                   "(role canary.istio.canary_release)")
    if problem is not None:
        return phase, Plan("refuse", problem=problem, summary=f"refuse: {problem}")
    if goal == "promote":
        return phase, Plan("promote", summary=f"send all traffic to {canary}, then the clean-up of {base}")
    if goal == "rollback":
        return phase, Plan("rollback", summary=f"send all traffic to {base}, then remove {canary}")
    if goal == "set_ratio":
        if ratio is None:
            return phase, Plan("step", ask=("ratio",), summary=f"ask for the share of {canary}, then move it")
        return phase, Plan("step", pending_steps=(ratio,), summary=f"move {ratio}% of the traffic to {canary}")
    return phase, _plan_release(phase, observed, base, canary, ratio, tuple(steps), decision)


def _plan_release(phase: str, observed: Observed, base: str, canary: str, ratio: int | None,
                  steps: tuple[int, ...], decision: str | None) -> Plan:
    if phase == "promoted":
        return Plan("finish", summary=f"{canary} is promoted already: only the clean-up of {base} may be left")
    if phase == "rolled_back" and decision == "rollback":
        return Plan("nothing", summary=f"{canary} was rolled back already: nothing to do")
    current = observed.canary_weight(canary)
    resuming = phase == "in_progress"
    if ratio is not None:
        pending: tuple[int, ...] = (ratio,)
    elif steps:
        pending = tuple(step for step in steps if step > current) if resuming else steps
    else:
        pending = ()
    # A resumed canary that has a share needs no new one: it goes straight to the promotion gate.
    ask_ratio = ratio is None and not steps and not (resuming and current > 0)
    ask = (("ratio",) if ask_ratio else ()) + (("decision",) if decision is None else ())
    moves = ("ask for its share" if ask_ratio
             else (f"move {', '.join(f'{step}%' for step in pending)} of the traffic to it" if pending
                   else f"keep its {current}%"))
    gate = "ask whether to promote, roll back or hold" if decision is None else decision
    start = f"resume {canary} at {current}%" if resuming else f"deploy {canary} beside {base}"
    return Plan("release", pending_steps=pending, ask=ask, summary=f"{start}, {moves}, then {gate}")


@dataclass(frozen=True)
class Inputs:
    """The validated inputs of a run."""

    base: str
    canary: str
    ratio: int | None = None
    steps: tuple[int, ...] = ()
    decision: str | None = None
    names: InputNames = InputNames()
    analysis: dict[str, Any] | None = None


def validate_inputs(base: Any, canary: Any, ratio: Any = None, steps: Any = None, decision: Any = None,
                    names: InputNames = InputNames(), analysis: Any = None) -> Inputs:
    """Every input checked once, before anything is read or written."""
    base, canary = check_versions(base, canary, names)
    policy = parse_analysis(analysis, names)
    chosen = parse_decision(decision, names, allow_auto=True)
    if chosen == AUTO and policy is None:
        raise CanaryInputError(f"{names.decision}=auto promotes on the analysis' verdicts, but {names.analysis} is "
                               "not set: give the checks to run, or choose promote, rollback or hold")
    if chosen == AUTO and policy is not None and policy["dry_run"]:
        raise CanaryInputError(f"{names.decision}=auto lets the analysis promote, but {names.analysis}.dry_run is true "
                               "(the analysis reports and never acts): choose promote, rollback or hold, or leave "
                               f"{names.decision} unset to be asked")
    return Inputs(base, canary, parse_ratio(ratio, names), parse_steps(steps, names), chosen, names, policy)


def answer(goal: str, observed: Observed, inputs: Inputs) -> dict[str, Any]:
    """What canary_info adds to its result: the phase, the pending steps, the next run and the analysis."""
    # auto is a decision given (no gate asks); it plans as promote, subject to the analysis.
    given = "promote" if inputs.decision == AUTO else inputs.decision
    phase, plan = plan_run(goal, observed, inputs.base, inputs.canary, inputs.ratio, inputs.steps, given,
                           inputs.names)
    if inputs.analysis is not None and plan.action == "release":
        then = ("promote once every step passed" if inputs.decision == AUTO
                else "act on the verdicts, then " + (inputs.decision or "ask whether to promote, roll back or hold"))
        analyse = "analyse each step (a failed analysis rolls back)"
        if inputs.analysis["dry_run"]:
            then = inputs.decision or "ask whether to promote, roll back or hold"
            analyse = "analyse each step and report (dry run: the analysis never acts)"
        head = plan.summary.rsplit(", then ", 1)[0]
        plan = Plan(plan.action, plan.pending_steps, plan.ask, plan.problem, f"{head}, {analyse}, then {then}")
    return {"phase": phase, "pending_steps": list(plan.pending_steps), "next_run": plan.as_dict(),
            "analysis": inputs.analysis}


# --------------------------------------------------------------------------------------
# progressive delivery: the analysis settings
#
# What the release does with the analyses is the driver's (``_logic/driver.py``); here the settings
# are read and checked, once, with the other inputs.

ANALYSIS_DEFAULTS: dict[str, Any] = {
    "checks": None, "window": "1m", "interval": 60, "analyses": 1, "failure_limit": 1,
    "looks_per_step": None, "consecutive_error_limit": 4, "initial_delay": 0, "dry_run": False,
    "scrape_interval": None, "inconclusive": "hold", "on_error": "rollback", "look_requests": None,
    # Passed to canary_analysis when set; unset, the module's own defaults apply (min_requests from power).
    "min_requests": None, "confidence": None, "power": None, "caller_failures": None, "reporter": "destination",
}
INCONCLUSIVE_POLICIES = ("hold", "ask", "rollback")
ERROR_POLICIES = ("stop", "rollback")


def _whole(value: Any, key: str, low: int, high: int, names: InputNames) -> int:
    problem = f"{names.analysis}.{key} must be a whole number from {low} to {high}, got {_show(value)}"
    digits = isinstance(value, str) and value.strip().isdigit()
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        raise CanaryInputError(problem)
    number = int(value)
    if not low <= number <= high:
        raise CanaryInputError(problem)
    return number


def _seconds(value: Any, key: str, names: InputNames) -> float:
    """A duration given as seconds (a whole number) or as a Prometheus duration (``15s``)."""
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return duration_seconds(validate_window(value.strip()))
        except AnalysisInputError:
            pass
        raise CanaryInputError(f"{names.analysis}.{key} must be seconds or a Prometheus duration such as 15s, "
                               f"got {_show(value)}")
    return float(_whole(value, key, 1, 86400, names))


def _flag(value: Any, key: str, names: InputNames) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "yes", "on"):
        return True
    if text in ("false", "no", "off"):
        return False
    raise CanaryInputError(f"{names.analysis}.{key} must be true or false, got {_show(value)}")


def parse_analysis(value: Any, names: InputNames = InputNames()) -> dict[str, Any] | None:
    """The analysis settings with their defaults filled in, or ``None`` (no analysis) for nothing / ``{}``."""
    if value is None or value in ({}, ""):
        return None
    if not isinstance(value, Mapping):
        raise CanaryInputError(f"{names.analysis} must be a mapping (checks, window, interval, analyses, "
                               f"failure_limit, inconclusive, on_error, ...), got {_show(value)}")
    unknown = sorted(set(value) - set(ANALYSIS_DEFAULTS))
    if unknown:
        raise CanaryInputError(f"{names.analysis} has unknown key(s) {', '.join(unknown)}; "
                               f"known: {', '.join(ANALYSIS_DEFAULTS)}")
    policy = dict(ANALYSIS_DEFAULTS)
    policy.update({key: item for key, item in value.items() if item is not None})
    try:
        validate_checks(policy["checks"])
        policy["window"] = validate_window(policy["window"])
        if policy["confidence"] is not None:
            policy["confidence"] = validate_confidence(policy["confidence"])
        if policy["power"] is not None:
            policy["power"] = validate_power(policy["power"])
    except AnalysisInputError as error:
        raise CanaryInputError(f"{names.analysis}: {error}") from None
    policy["interval"] = _whole(policy["interval"], "interval", 1, 86400, names)
    policy["analyses"] = _whole(policy["analyses"], "analyses", 1, 100, names)
    policy["failure_limit"] = _whole(policy["failure_limit"], "failure_limit", 1, 100, names)
    policy["consecutive_error_limit"] = _whole(policy["consecutive_error_limit"], "consecutive_error_limit", 1, 100,
                                               names)
    policy["initial_delay"] = _whole(policy["initial_delay"], "initial_delay", 0, 86400, names)
    if policy["min_requests"] is not None:
        policy["min_requests"] = _whole(policy["min_requests"], "min_requests", 1, 10**9, names)
    policy["dry_run"] = _flag(policy["dry_run"], "dry_run", names)
    if policy["caller_failures"] is not None:
        policy["caller_failures"] = _flag(policy["caller_failures"], "caller_failures", names)
    for key, choices in (("inconclusive", INCONCLUSIVE_POLICIES), ("on_error", ERROR_POLICIES),
                         ("reporter", REPORTERS)):
        if policy[key] not in choices:
            raise CanaryInputError(f"{names.analysis}.{key} must be {', '.join(choices[:-1])} or {choices[-1]}, "
                                   f"got {_show(policy[key])}")
    # By default a step has room for its passes and the failures below the limit, as before looks were planned.
    least = policy["analyses"]
    if policy["looks_per_step"] is None:
        policy["looks_per_step"] = least + policy["failure_limit"] - 1
    policy["looks_per_step"] = _whole(policy["looks_per_step"], "looks_per_step", 1, 100, names)
    if policy["looks_per_step"] < least:
        raise CanaryInputError(f"{names.analysis}.looks_per_step ({policy['looks_per_step']}) is less than analyses "
                               f"({least}): a step could never pass; set looks_per_step to at least {least}")
    window = duration_seconds(policy["window"])
    if policy["interval"] < window:
        raise CanaryInputError(f"{names.analysis}.interval ({policy['interval']} s) is shorter than window "
                               f"({policy['window']}): the first look after a step would count requests of the share "
                               f"before it, and looks would overlap; set interval to at least {window:g}")
    if policy["scrape_interval"] is not None:
        scrape = _seconds(policy["scrape_interval"], "scrape_interval", names)
        if window < 2 * scrape:
            raise CanaryInputError(f"{names.analysis}.window ({policy['window']}) is shorter than two scrape intervals "
                                   f"({2 * scrape:g} s with scrape_interval {_show(policy['scrape_interval'])}): "
                                   "Prometheus' increase() needs two samples in the window; set window to at least "
                                   f"{2 * scrape:g}s")
        # canary_analysis takes it as a Prometheus duration
        policy["scrape_interval"] = (policy["scrape_interval"].strip() if isinstance(policy["scrape_interval"], str)
                                     and not policy["scrape_interval"].strip().isdigit() else f"{scrape:g}s")
    policy["look_requests"] = validate_look_requests(policy["look_requests"], window, policy["interval"],
                                                     names.analysis)
    return policy


def _numbers(checks: Sequence[Mapping[str, Any]]) -> str:
    """The numbers behind an analysis, one clause per check, with the bounds when the module gave them."""
    parts = []
    for check in checks:
        canary = (check.get("canary") or {}).get("value")
        base = (check.get("base") or {}).get("value")
        shown = "no data" if canary is None else f"{canary:g}"
        bounds = bounds_text(check.get("bounds"))
        parts.append(f"{check.get('name')} {check.get('verdict')} (canary {shown}"
                     f"{'' if base is None else f', base {base:g}'}{f', bounds {bounds}' if bounds else ''})")
    return "; ".join(parts)


def _number_at(bounds: Mapping[str, Any], key: str) -> float | None:
    value = bounds.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _interval_text(bounds: Mapping[str, Any]) -> str:
    """One part's bounds: shares in percent, the canary/base ratio as a number, the latency boundary used."""
    pieces = []
    low, high = _number_at(bounds, "lower"), _number_at(bounds, "upper")
    if low is not None or high is not None:
        pieces.append(f"{'' if low is None else f'{100 * low:.3g}'}%..{'' if high is None else f'{100 * high:.3g}'}%")
    low, high = _number_at(bounds, "ratio_lower"), _number_at(bounds, "ratio_upper")
    if low is not None or high is not None:
        pieces.append(f"ratio {'0' if low is None else f'{low:.3g}'}..{'inf' if high is None else f'{high:.3g}'}")
    boundary = _number_at(bounds, "boundary_ms")
    if boundary is None:
        boundary = _number_at(bounds, "fail_boundary_ms")
    if boundary is not None:
        pieces.append(f"slower than {boundary:g} ms")
    return " ".join(pieces)


def bounds_text(bounds: Any) -> str:
    """A check's confidence bounds as a short text, one clause per part (``errors 0.1%..2.3%``)."""
    if not isinstance(bounds, Mapping):
        return ""
    if any(isinstance(value, Mapping) for value in bounds.values()):
        parts = [(str(name), _interval_text(part)) for name, part in bounds.items() if isinstance(part, Mapping)]
        return "; ".join(f"{name} {text}" for name, text in parts if text)
    return _interval_text(bounds)


def analysis_record(step: int, result: Mapping[str, Any], look: int | None = None, looks: int | None = None,
                    since: float | None = None, at: float | None = None) -> dict[str, Any]:
    """What the role keeps of one canary_analysis result (and records in the history): the verdict and its numbers.

    ``look`` / ``looks`` / ``since`` are what the analysis was asked; ``at`` when the answer came
    (the driver times the next look from it). An analysis that could not run is an ``error``.
    """
    asked = {"look": look, "looks": looks, "since": since, "at": at if at is not None else result.get("evaluated_at")}
    if result.get("failed") or "verdict" not in result:
        return {"step": step, "verdict": "error", "msg": str(result.get("msg") or "the analysis failed"),
                "summary": "the analysis could not run", "checks": [], "requests": {},
                "evaluated_at": result.get("evaluated_at"), "numbers": "", **asked}
    checks = [{"name": check.get("name"), "verdict": check.get("verdict"), "reason": check.get("reason"),
               "canary": (check.get("canary") or {}), "base": (check.get("base") or {}),
               "min": check.get("min"), "max": check.get("max"), "bounds": check.get("bounds"),
               "more_requests": check.get("more_requests")} for check in result.get("checks") or []]
    requests = result.get("requests") or {}
    numbers = _numbers(checks)
    if requests:
        numbers += (f"; requests in {result.get('window')}: canary {float(requests.get('canary') or 0):g}, "
                    f"base {float(requests.get('base') or 0):g}")
    return {"step": step, "verdict": result["verdict"], "summary": result.get("summary"), "checks": checks,
            "requests": requests, "evaluated_at": result.get("evaluated_at"), "window": result.get("window"),
            "alpha": result.get("alpha"), "more_requests": result.get("more_requests"), "numbers": numbers, **asked}
