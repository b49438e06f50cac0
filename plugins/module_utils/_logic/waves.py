# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Release waves across clusters: which clusters run next, and what to do after a failure.

A cluster is a mapping with ``name``, ``wave`` (a whole number), ``phase`` (the canary_release
role's phase when the run started: ``fresh``, ``in_progress``, ``promoted``, ``rolled_back`` …) and
``outcome`` (what this run did there, ``None`` until its wave ran; or ``decision``, the role's
``canary_release_result.decision``, from which the outcome is read):

- ``promoted``: the canary takes all traffic (promoted by this run, or already promoted before it);
- ``rolled_back``: the role rolled the canary back there (a failed analysis, or a decision);
- ``held``: the split stays (an inconclusive analysis, or ``hold``);
- ``failed``: the role failed there (it put the traffic back itself when it could);
- ``skipped``: not run, because an earlier wave did not end promoted everywhere.

The rules:

1. Waves run in ascending order. A wave runs only when every cluster of every earlier wave ended
   ``promoted``; otherwise it and every later wave are skipped and left untouched.
2. In a wave that runs, a cluster already ``promoted`` when the run started is not run again (a
   re-run resumes); every other cluster runs the role (``in_progress`` continues its steps,
   ``fresh`` and ``rolled_back`` release anew).
3. After the last wave that ran, when a cluster ended ``rolled_back`` or ``failed`` and the policy is
   ``rollback``, every cluster that ended ``promoted`` is rolled back too; with ``keep`` they stay.
   A ``held`` cluster stops later waves but rolls nothing back: nothing failed yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

POLICIES = ("keep", "rollback")
OUTCOMES = ("promoted", "rolled_back", "held", "failed", "skipped")
FAILURES = ("rolled_back", "failed")


class WaveError(ValueError):
    """A cluster list or a policy the wave rules cannot work with."""


def _wave_of(cluster: Mapping[str, Any]) -> int:
    value = cluster.get("wave")
    if isinstance(value, bool):
        raise WaveError(f"cluster {cluster.get('name')!r}: wave {value!r} is not a whole number >= 1")
    try:
        wave = int(str(value).strip())
    except (TypeError, ValueError):
        raise WaveError(f"cluster {cluster.get('name')!r}: wave {value!r} is not a whole number >= 1; "
                        "set the host variable wave (1, 2 …)") from None
    if wave < 1:
        raise WaveError(f"cluster {cluster.get('name')!r}: wave {value!r} is not a whole number >= 1")
    return wave


def check_policy(policy: Any) -> str:
    if policy not in POLICIES:
        raise WaveError(f"canary_waves_on_failure {policy!r}: use one of {', '.join(POLICIES)}")
    return str(policy)


def normalise(clusters: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The clusters sorted by wave then name, each with an integer wave; names must be unique."""
    seen: set[str] = set()
    result = []
    for cluster in clusters:
        name = str(cluster.get("name") or "")
        if not name:
            raise WaveError(f"a cluster without a name: {dict(cluster)!r}")
        if name in seen:
            raise WaveError(f"cluster {name!r} is listed twice")
        seen.add(name)
        outcome = cluster.get("outcome")
        if outcome is None and cluster.get("decision") is not None:
            outcome = outcome_of_decision(cluster["decision"])
        if outcome not in (None, *OUTCOMES):
            raise WaveError(f"cluster {name!r}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        result.append({**cluster, "name": name, "wave": _wave_of(cluster), "outcome": outcome})
    return sorted(result, key=lambda cluster: (cluster["wave"], cluster["name"]))


def waves(clusters: Iterable[Mapping[str, Any]]) -> list[int]:
    """The wave numbers, ascending."""
    return sorted({cluster["wave"] for cluster in normalise(clusters)})


def outcome_of_decision(decision: Any) -> str:
    """The outcome of one role run, from ``canary_release_result.decision``."""
    return {"promote": "promoted", "rollback": "rolled_back", "hold": "held"}.get(str(decision), "failed")


def plan_wave(clusters: Sequence[Mapping[str, Any]], wave: int) -> dict[str, Any]:
    """What to do with wave ``wave``: ``run`` (names that run the role), ``done`` (names already
    promoted, not run again), ``skip`` (names left untouched) and ``reason``."""
    ordered = normalise(clusters)
    members = [cluster for cluster in ordered if cluster["wave"] == int(wave)]
    earlier = [cluster for cluster in ordered if cluster["wave"] < int(wave)]
    blockers = [cluster for cluster in earlier if cluster["outcome"] != "promoted"]
    names = [cluster["name"] for cluster in members]
    if blockers:
        described = ", ".join(f"{cluster['name']} {cluster['outcome'] or 'not run'}" for cluster in blockers)
        return {"wave": int(wave), "run": [], "done": [], "skip": names,
                "reason": f"wave {wave} skipped: an earlier wave did not end promoted everywhere ({described})"}
    done = [cluster["name"] for cluster in members if cluster.get("phase") == "promoted"]
    run = [name for name in names if name not in done]
    parts = []
    if run:
        parts.append(f"run {', '.join(run)}")
    if done:
        parts.append(f"already promoted: {', '.join(done)}")
    return {"wave": int(wave), "run": run, "done": done, "skip": [],
            "reason": f"wave {wave}: " + ("; ".join(parts) or "no clusters")}


def finish(clusters: Sequence[Mapping[str, Any]], policy: str = "keep") -> dict[str, Any]:
    """After the waves: ``rollback`` (promoted clusters to roll back under policy ``rollback``),
    ``failed``, ``held``, ``untouched`` and ``ok`` (every cluster promoted), and a ``summary``."""
    policy = check_policy(policy)
    ordered = normalise(clusters)

    def named(*outcomes: Any) -> list[str]:
        return [cluster["name"] for cluster in ordered if cluster["outcome"] in outcomes]

    failed, held = named(*FAILURES), named("held")
    untouched, promoted = named("skipped", None), named("promoted")
    rollback = promoted if failed and policy == "rollback" else []
    if not failed and not held and not untouched:
        summary = f"promoted in every cluster ({', '.join(promoted)})"
    else:
        parts = []
        if failed:
            parts.append("not promoted in " + ", ".join(
                f"{cluster['name']} ({cluster['outcome'].replace('_', ' ')})"
                for cluster in ordered if cluster["outcome"] in FAILURES))
        if held:
            parts.append(f"held in {', '.join(held)}")
        if untouched:
            parts.append(f"later waves untouched: {', '.join(untouched)}")
        if promoted:
            parts.append(("promoted clusters rolled back (canary_waves_on_failure: rollback): "
                          if rollback else "kept promoted: ") + ", ".join(promoted))
        summary = "; ".join(parts)
    return {"ok": not failed and not held and not untouched, "failed": failed, "held": held,
            "untouched": untouched, "promoted": [name for name in promoted if name not in rollback],
            "rollback": rollback, "summary": summary}


def last_verdict(history: Sequence[Mapping[str, Any]] | None) -> str:
    """The last analysis verdict recorded in a service's history, with its step ("-" when none)."""
    for entry in reversed(list(history or [])):
        analysis = entry.get("analysis") if isinstance(entry, Mapping) else None
        if isinstance(analysis, Mapping) and analysis.get("verdict"):
            step = analysis.get("step")
            return f"{analysis['verdict']} at {step}%" if step is not None else str(analysis["verdict"])
    return "-"


def status_table(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per cluster and service: cluster, wave, service, phase, weights, last verdict."""
    header = ("cluster", "wave", "service", "phase", "weights", "last verdict")
    body = []
    for row in sorted(rows, key=lambda row: (_wave_of(row), str(row.get("name")), str(row.get("service")))):
        weights = row.get("weights") or {}
        body.append((str(row.get("name")), str(_wave_of(row)), str(row.get("service") or "-"),
                     str(row.get("phase") or "-"),
                     " ".join(f"{subset}={weight}" for subset, weight in weights.items()) or "-",
                     last_verdict(row.get("history"))))
    widths = [max(len(line[column]) for line in (header, *body)) for column in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in (header, *body)]
