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

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import validate_ratio

PHASES = ("missing", "promoted", "conflict", "in_progress", "rolled_back", "fresh")
GOALS = ("release", "set_ratio", "promote", "rollback", "status")
DECISIONS = ("promote", "rollback", "hold")
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


def parse_decision(value: Any, names: InputNames = InputNames()) -> str | None:
    """The promotion gate's answer, or ``None`` when not given."""
    if value is None:
        return None
    answer = value.strip().lower() if isinstance(value, str) else value
    if answer not in DECISIONS:
        raise CanaryInputError(f"{names.decision} must be promote, rollback or hold, got {_show(value)}")
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
    last_step = observed.history[-1] if observed.history else {}
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


def validate_inputs(base: Any, canary: Any, ratio: Any = None, steps: Any = None, decision: Any = None,
                    names: InputNames = InputNames()) -> Inputs:
    """Every input checked once, before anything is read or written."""
    base, canary = check_versions(base, canary, names)
    return Inputs(base, canary, parse_ratio(ratio, names), parse_steps(steps, names), parse_decision(decision, names),
                  names)


def answer(goal: str, observed: Observed, inputs: Inputs) -> dict[str, Any]:
    """What canary_info adds to its result: the phase, the pending steps and the next run."""
    phase, plan = plan_run(goal, observed, inputs.base, inputs.canary, inputs.ratio, inputs.steps, inputs.decision,
                           inputs.names)
    return {"phase": phase, "pending_steps": list(plan.pending_steps), "next_run": plan.as_dict()}
