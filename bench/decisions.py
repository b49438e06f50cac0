"""``python -m bench --only decisions``: the decision-quality benchmark (docs/decisions*.md).

Healthy and bad canaries are simulated (bench/decision_sim.py) and each simulated release is judged
by canary.istio's pure decision code (plugins/module_utils/_logic/evidence.py, through
bench/decision_ours.py) and, on the same counts, by the rules users would pick instead
(bench/decision_rules.py: Flagger, Argo Rollouts, Kayenta). Per scenario it reports how often a
healthy canary is rolled back, how often a bad one is promoted, how often the release holds
undecided, and the seconds and canary requests until the decision. A smaller run feeds the same
kind of telemetry through the lab's real Prometheus into the real ``canary.istio.canary_analysis``
module and checks that it decides as the pure code does (bench/decision_e2e.py).
"""

from __future__ import annotations

import math
import subprocess
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import decision_rules as rules
from bench.decision_sim import Latency, Traffic, draw, fixed_sample_requests

SEED = 20261206
REPLICATIONS = 10_000
CHUNK = 1_000
RULES = ("ours", "flagger", "argo", "kayenta")
# Ours again with looks planned in requests (the driver's look_requests): a look when the canary is
# expected to have answered 200 more requests, no sooner than the window of two 10-s scrapes, no later
# than the interval; 15 looks per step so that a step still reaches the requests a healthy pass needs.
PLANNED_LOOKS = {"look_requests": 200, "looks_per_step": 15, "window": 20}


@dataclass(frozen=True)
class Scenario:
    """One simulated canary: the base's error rate, what is wrong with the canary, the traffic."""

    base_error: float  # fraction
    rate: float  # requests per second to the service (base + canary)
    error_factor: float = 1.0  # canary error rate = factor x base's (a base at 0 % gets factor x 0.1 %)
    latency_factor: float = 1.0  # every canary request this many times as slow (p99 moves as much)
    steps: tuple[int, ...] = (10, 25, 50)
    latency: Latency = field(default_factory=Latency)

    @property
    def kind(self) -> str:
        if self.error_factor == 1.0 and self.latency_factor == 1.0:
            return "healthy"
        if self.error_factor >= 2.0 or self.latency_factor >= 2.0:
            return "bad"
        return "between"  # x1.5: at the default tolerance (50 %), neither healthy nor bad

    @property
    def canary_error(self) -> float:
        if self.error_factor == 1.0:
            return self.base_error
        return self.error_factor * (self.base_error if self.base_error > 0 else 0.001)

    @property
    def limits(self) -> rules.Limits:
        """Absolute limits the base itself meets: ``min: 99`` up to 0.5 % errors, lowered above."""
        if self.base_error <= 0.005:
            minimum = 99.0
        elif self.base_error <= 0.01:
            minimum = 98.0
        else:
            minimum = 96.0
        return rules.Limits(min_success=minimum, max_p99_ms=500.0, latency=True)

    @property
    def name(self) -> str:
        what = {"healthy": "healthy"}.get(self.kind, "")
        if self.error_factor != 1.0:
            what = f"errors x{self.error_factor:g}"
        if self.latency_factor != 1.0:
            what = f"p99 +{(self.latency_factor - 1) * 100:.0f}%"
        steps = "/".join(str(step) for step in self.steps)
        return f"{what}, base {self.base_error * 100:g}%, {self.rate:g} req/s, steps {steps}%"

    def seed(self) -> int:
        return zlib.crc32(self.name.encode()) ^ SEED


def scenarios() -> list[Scenario]:
    rows: list[Scenario] = []
    for base_error in (0.0, 0.002, 0.005, 0.01, 0.02):
        for rate in (1.0, 10.0, 100.0, 1000.0):
            rows.append(Scenario(base_error, rate))
    for factor in (1.5, 2.0, 5.0):
        for rate in (10.0, 100.0, 1000.0):
            rows.append(Scenario(0.01, rate, error_factor=factor))
    for base_error in (0.002, 0.005, 0.02):
        rows.append(Scenario(base_error, 100.0, error_factor=2.0))
        rows.append(Scenario(base_error, 100.0, error_factor=5.0))
    for rate in (10.0, 100.0, 1000.0):
        rows.append(Scenario(0.005, rate, latency_factor=2.0))
    # Smaller canary shares: 5 % first.
    for kind in ({}, {"error_factor": 2.0}, {"error_factor": 5.0}, {"latency_factor": 2.0}):
        rows.append(Scenario(0.005, 100.0, steps=(5, 20, 50), **kind))
    return rows


@dataclass
class Tally:
    """Decisions of one rule on one scenario, summed over chunks."""

    decisions: list[int] = field(default_factory=lambda: [0, 0, 0])  # promote, rollback, hold
    seconds: list[np.ndarray] = field(default_factory=list)
    requests: list[np.ndarray] = field(default_factory=list)
    least_pass: float = math.inf

    def add(self, outcome: rules.Outcome, canary_requests: np.ndarray, interval: int) -> None:
        self.decisions[0] += int(np.sum(outcome.decision == rules.PROMOTE))
        self.decisions[1] += int(np.sum(outcome.decision == rules.ROLLBACK))
        self.decisions[2] += int(np.sum(outcome.decision == rules.HOLD))
        self.least_pass = min(self.least_pass, outcome.least_pass)
        decided = outcome.decision != rules.HOLD
        if outcome.seconds is not None and outcome.requests is not None:  # looks off whole intervals
            self.seconds.append(outcome.seconds[decided])
            self.requests.append(outcome.requests[decided])
            return
        per_slot = canary_requests.sum(axis=3).cumsum(axis=2)  # [replication, step, slot]
        index = np.clip(outcome.used - 1, 0, per_slot.shape[2] - 1)
        seen = np.take_along_axis(per_slot, index[:, :, None], 2)[:, :, 0] * (outcome.used > 0)
        self.seconds.append((outcome.used.sum(axis=1) * interval)[decided])
        self.requests.append(seen.sum(axis=1)[decided])

    def summary(self, replications: int) -> dict[str, Any]:
        seconds = np.concatenate(self.seconds) if self.seconds else np.array([])
        requests = np.concatenate(self.requests) if self.requests else np.array([])
        promote, rollback, hold = self.decisions

        def quantile(values: np.ndarray, q: float) -> float | None:
            return float(np.quantile(values, q)) if values.size else None

        return {"promote": promote / replications, "rollback": rollback / replications, "hold": hold / replications,
                "seconds_median": quantile(seconds, 0.5), "seconds_p90": quantile(seconds, 0.9),
                "requests_median": quantile(requests, 0.5), "requests_p90": quantile(requests, 0.9),
                "least_pass_requests": None if math.isinf(self.least_pass) else self.least_pass}


def run_scenario(scenario: Scenario, plan: rules.Plan, replications: int, judge: rules.Judge,
                 which: tuple[str, ...] = RULES) -> dict[str, Any]:
    rng = np.random.Generator(np.random.PCG64(scenario.seed()))
    base = Traffic(scenario.base_error, scenario.latency)
    canary = Traffic(scenario.canary_error, scenario.latency.scaled(scenario.latency_factor))
    shares = tuple(step / 100.0 for step in scenario.steps)
    tallies = {name: Tally() for name in which}
    limits = scenario.limits
    timings = dict.fromkeys(which, 0.0)
    done = 0
    while done < replications:
        size = min(CHUNK, replications - done)
        data = draw(rng, size, shares, plan.slots, plan.scrapes, plan.scrape, scenario.rate, base, canary)
        for name in which:
            started = time.perf_counter()
            if name == "ours":
                outcome = rules.ours(data, limits, plan, judge)
            else:
                outcome = getattr(rules, name)(data, limits, plan)
            timings[name] += time.perf_counter() - started
            tallies[name].add(outcome, data.canary_requests, plan.interval)
        done += size
    first_share = shares[0]
    reference = None
    if scenario.error_factor > 1.0:
        reference = fixed_sample_requests(scenario.base_error if scenario.base_error > 0 else 0.0,
                                          scenario.canary_error, first_share)
    from bench import decision_ours
    documented = decision_ours.documented_requests(limits, len(scenario.steps) * plan.looks_per_step)
    return {"scenario": scenario.name, "kind": scenario.kind, "documented_requests": documented,
            "first_look_requests": scenario.rate * first_share * plan.interval, "base_error": scenario.base_error,
            "canary_error": scenario.canary_error, "error_factor": scenario.error_factor,
            "latency_factor": scenario.latency_factor, "rate": scenario.rate, "steps": list(scenario.steps),
            "min_success": limits.min_success, "fixed_sample_requests": reference,
            "rules": {name: tallies[name].summary(replications) for name in which},
            "seconds_per_rule": {name: round(value, 2) for name, value in timings.items()}}


def run(replications: int = REPLICATIONS, plan: rules.Plan | None = None, only: str | None = None,
        e2e: bool = True, say=print) -> dict[str, Any]:
    from bench import decision_ours
    plan = plan or rules.Plan()
    judge = decision_ours.judge
    root, path = Path(__file__).resolve().parents[1], "plugins/module_utils/_logic/evidence.py"
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", path], capture_output=True, text=True,
                            check=False, cwd=root)
    # The file as imported: a working tree that differs from the commit is said on the page.
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", path], check=False, cwd=root).returncode != 0
    results: dict[str, Any] = {"replications": replications, "seed": SEED, "plan": asdict(plan),
                               "evidence_commit": (commit.stdout.strip() or "?") + (" + uncommitted changes" if dirty
                                                                                   else ""),
                               "evidence": decision_ours.describe(), "scenarios": []}
    started = time.monotonic()
    with decision_ours.fast_bounds():
        for scenario in scenarios():
            if only and only not in scenario.name:
                continue
            row = run_scenario(scenario, plan, replications, judge)
            decision_ours.clear_cache()
            results["scenarios"].append(row)
            figures = "  ".join(f"{name} P{row['rules'][name]['promote']:.3f}/R{row['rules'][name]['rollback']:.3f}"
                                f"/H{row['rules'][name]['hold']:.3f}" for name in RULES)
            say(f"[decisions] {scenario.name}: {figures} ({row['seconds_per_rule']['ours']:.0f} s)")
    results["planned"] = planned_looks(replications, plan, results["scenarios"], only, say)
    results["simulation_seconds"] = round(time.monotonic() - started)
    if e2e:
        from bench import decision_e2e
        try:
            results["e2e"] = decision_e2e.run(plan, say=say)
        except Exception as exc:  # no Prometheus, a busy machine: keep the simulation's numbers
            say(f"[decisions] end to end: not run: {exc}")
            results["e2e"] = {"skipped": str(exc)[:500]}
    return results



def planned_looks(replications: int, plan: rules.Plan, measured: list[dict[str, Any]], only: str | None = None,
                  say=print) -> dict[str, Any]:
    """Ours with looks planned in requests (``PLANNED_LOOKS``) on the bad canaries with an error
    reference and the healthy ones at 1,000 req/s, beside ours at a look every interval (``measured``).

    ``window_requests`` is what the canary answers in one window at the first step: no look reading
    Prometheus can come sooner, so no rule can decide on fewer canary requests than that."""
    planned = rules.Plan(**{**asdict(plan), **PLANNED_LOOKS})
    before = {row["scenario"]: row for row in measured}
    rows = []
    for scenario in scenarios():
        wanted = (scenario.kind == "bad" and scenario.error_factor > 1.0) or (
            scenario.kind == "healthy" and scenario.rate >= 1000 and scenario.steps == (10, 25, 50))
        if not wanted or (only and only not in scenario.name):
            continue
        from bench import decision_ours
        with decision_ours.fast_bounds():
            row = run_scenario(scenario, planned, replications, decision_ours.judge, which=("ours",))
            decision_ours.clear_cache()
        earlier = before.get(scenario.name, {}).get("rules", {}).get("ours", {})
        row["window_requests"] = scenario.rate * scenario.steps[0] / 100.0 * planned.window
        row["every_interval"] = earlier or None
        rows.append(row)
        ours = row["rules"]["ours"]
        say(f"[decisions] planned looks: {scenario.name}: P{ours['promote']:.3f}/R{ours['rollback']:.3f}"
            f"/H{ours['hold']:.3f}, median {ours['requests_median']} canary requests")
    return {"plan": asdict(planned), "scenarios": rows}
