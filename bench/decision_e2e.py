"""The decision benchmark end to end: simulated Istio telemetry through a real Prometheus into the
real ``canary.istio.canary_analysis`` module, judged release by release as the pure code judges it.

A small exporter on loopback serves ``istio_requests_total`` and
``istio_request_duration_milliseconds`` for every replication (its own namespace, service
``reviews``, base ``v1`` and canary ``v2``), reported by the destination and by the source as Istio
reports every request twice. Debian's Prometheus (started as the lab starts it, lab/prometheus.py)
scrapes it every second. Each replication runs a short release: the plan's steps, a look every
``interval`` seconds, evidence counted from the step's start (``since``), the look numbered over
the whole release (``look``/``looks``); the module's verdict moves, rolls back or holds the release.

Two agreements are measured:

- per look: the pure decision code, given the counts the module reports it read from Prometheus,
  returns the module's verdict (the module adds queries and rounding around the same function);
- per release: the decision of the module-driven release against the pure simulation's decision
  on the exporter's own counts (they can differ a little: Prometheus' ``increase()``
  extrapolates to the window's edges), and the decision rates against the pure simulation's.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import math
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import decision_ours
from bench import decision_rules as rules
from bench.decision_sim import DURATION_BUCKETS_MS, Telemetry, Traffic, draw

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK = REPO_ROOT / "build" / "bench-decisions"
SERVICE = "reviews"
# A short plan: Prometheus scrapes every second, so an interval of 6 s holds six scrapes.
E2E_PLAN = rules.Plan(interval=6, looks_per_step=3, scrape=1, flagger_threshold=3)
RATE = 2000.0
REPLICATIONS = 4


def _scenarios() -> list[Any]:
    from bench.decisions import Scenario
    return [Scenario(0.01, RATE), Scenario(0.01, RATE, error_factor=5.0), Scenario(0.005, RATE, latency_factor=2.0)]


# --------------------------------------------------------------------------- the exporter


def _format(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Exporter:
    """Istio's two HTTP metrics for many namespaces, counts added in bulk; Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], float] = {}  # (namespace, version, code) -> count
        self._buckets: dict[tuple[str, str], np.ndarray] = {}  # (namespace, version) -> bucket counts
        self._sums: dict[tuple[str, str], float] = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def declare(self, namespace: str) -> None:
        """Every series at 0 before any traffic, so that ``increase()`` counts from the first request."""
        with self._lock:
            for version in ("v1", "v2"):
                for code in ("200", "503"):
                    self._requests[(namespace, version, code)] = 0.0
                self._buckets[(namespace, version)] = np.zeros(len(DURATION_BUCKETS_MS) + 1, dtype=np.int64)
                self._sums[(namespace, version)] = 0.0

    def add(self, namespace: str, version: str, requests: int, errors: int, buckets: np.ndarray) -> None:
        midpoints = np.array([0.25, *((a + b) / 2 for a, b in itertools.pairwise(DURATION_BUCKETS_MS)),
                              DURATION_BUCKETS_MS[-1]])
        with self._lock:
            self._requests[(namespace, version, "200")] += requests - errors
            self._requests[(namespace, version, "503")] += errors
            self._buckets[(namespace, version)] += buckets
            self._sums[(namespace, version)] += float(np.dot(buckets, midpoints))

    def render(self) -> str:
        with self._lock:
            requests = dict(self._requests)
            buckets = {key: value.copy() for key, value in self._buckets.items()}
            sums = dict(self._sums)
        lines = ["# TYPE istio_requests_total counter"]
        for (namespace, version, code), count in sorted(requests.items()):
            for reporter in ("destination", "source"):
                lines.append(f"istio_requests_total{{{self._labels(namespace, version, reporter)},"
                             f'response_code="{code}",response_flags="-"}} {_format(count)}')
        lines.append("# TYPE istio_request_duration_milliseconds histogram")
        for (namespace, version), counts in sorted(buckets.items()):
            for reporter in ("destination", "source"):
                labels = f'{self._labels(namespace, version, reporter)},response_code="200",response_flags="-"'
                cumulative = np.cumsum(counts)
                for bound, total in zip(DURATION_BUCKETS_MS, cumulative, strict=False):
                    lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="{_format(bound)}"}} '
                                 f"{int(total)}")
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} {int(cumulative[-1])}')
                lines.append(f"istio_request_duration_milliseconds_sum{{{labels}}} {sums[(namespace, version)]:.3f}")
                lines.append(f"istio_request_duration_milliseconds_count{{{labels}}} {int(cumulative[-1])}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _labels(namespace: str, version: str, reporter: str) -> str:
        return ",".join(f'{name}="{value}"' for name, value in (
            ("reporter", reporter), ("source_workload", "productpage-v1"), ("source_workload_namespace", namespace),
            ("source_app", "productpage"), ("source_version", "v1"),
            ("destination_service", f"{SERVICE}.{namespace}.svc.cluster.local"),
            ("destination_service_name", SERVICE), ("destination_service_namespace", namespace),
            ("destination_workload", f"{SERVICE}-{version}"), ("destination_workload_namespace", namespace),
            ("destination_app", SERVICE), ("destination_version", version),
            ("destination_canonical_service", SERVICE), ("destination_canonical_revision", version),
            ("source_canonical_service", "productpage"), ("source_canonical_revision", "v1"),
            ("request_protocol", "http")))

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # Prometheus gives up on a scrape slower than its timeout (a busy machine): not our error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    super().handle()

        return Handler


# --------------------------------------------------------------------------- one release


@dataclass
class Release:
    """One replication's release, driven by the module's verdicts."""

    namespace: str
    scenario: Any
    data: Telemetry  # one replication: [1, step, slot, scrape]
    index: int = 0
    step: int = 0
    slot: int = 0
    scrape: int = 0
    look: int = 0
    since: float = 0.0
    decision: int | None = None
    looks: list[dict[str, Any]] = field(default_factory=list)
    true_counts: dict[str, Any] = field(default_factory=dict)

    def feed(self, exporter: Exporter) -> None:
        d, s, j, k = self.data, self.step, self.slot, self.scrape
        exporter.add(self.namespace, "v1", int(d.base_requests[0, s, j, k]), int(d.base_errors[0, s, j, k]),
                     d.base_buckets[0, s, j, k])
        exporter.add(self.namespace, "v2", int(d.canary_requests[0, s, j, k]), int(d.canary_errors[0, s, j, k]),
                     d.canary_buckets[0, s, j, k])
        self.scrape += 1


def _analyse(release: Release, prometheus_url: str, planned: int) -> dict[str, Any]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.canary.istio.plugins.module_utils._module import call, module_argument_spec
    from ansible_collections.canary.istio.plugins.modules import canary_analysis
    args = decision_ours.module_args(release.scenario.limits, look=release.look, looks=planned)
    args.update(service=SERVICE, namespace=release.namespace, base="v1", canary="v2", prometheus_url=prometheus_url,
                since=round(release.since, 3))
    validation = ArgumentSpecValidator(module_argument_spec(canary_analysis)).validate(args)
    if validation.error_messages:
        return {"failed": True, "msg": validation.error_messages[0]}
    return call(canary_analysis, validation.validated_parameters)


def _pure_on_module_counts(result: dict[str, Any], limits: rules.Limits, look: int, looks: int) -> str | None:
    """The pure code's request-success-rate verdict on the counts the module reports it read."""
    counts = decision_ours.counts_from_result(result)
    if counts is None:
        return None
    return decision_ours.judge_errors_only(*counts, limits, look, looks)


def _module_error_verdict(result: dict[str, Any]) -> str | None:
    return next((check.get("verdict") for check in result.get("checks", [])
                 if check.get("name") == "request-success-rate"), None)


def run(plan: rules.Plan | None = None, replications: int = REPLICATIONS, say=print) -> dict[str, Any]:
    """The end-to-end run; ``plan`` is the pure run's plan (reported), the e2e uses ``E2E_PLAN``."""
    del plan
    from lab import prometheus
    from tests.helpers.collection import COLLECTIONS_ROOT, ensure_collection_path
    ensure_collection_path()
    if str(COLLECTIONS_ROOT) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_ROOT))
    plan = E2E_PLAN
    scenarios = _scenarios()
    exporter = Exporter()
    releases: list[Release] = []
    for number, scenario in enumerate(scenarios):
        rng = np.random.Generator(np.random.PCG64(scenario.seed() + 1))
        base = Traffic(scenario.base_error, scenario.latency)
        canary = Traffic(scenario.canary_error, scenario.latency.scaled(scenario.latency_factor))
        shares = tuple(step / 100.0 for step in scenario.steps)
        data = draw(rng, replications, shares, plan.slots, plan.scrapes, plan.scrape, scenario.rate, base, canary)
        for replication in range(replications):
            one = Telemetry(*(getattr(data, name)[replication:replication + 1] for name in (
                "base_requests", "base_errors", "base_buckets", "canary_requests", "canary_errors", "canary_buckets")))
            namespace = f"bench-e2e-{number}-{replication}"
            exporter.declare(namespace)
            releases.append(Release(namespace, scenario, one, index=number))
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    exporter.thread.start()
    record = prometheus.start(WORK, exporter.url)
    started = time.monotonic()
    try:
        prometheus.wait_ready(WORK, timeout=60)
        time.sleep(2.5)  # two scrapes of the zeros: increase() counts from the first request on
        _drive(releases, exporter, record["url"], plan, say)
    finally:
        prometheus.stop(WORK)
        exporter.server.shutdown()
    return _summarise(releases, scenarios, plan, replications, round(time.monotonic() - started))


def _drive(releases: list[Release], exporter: Exporter, url: str, plan: rules.Plan, say) -> None:
    steps = len(releases[0].scenario.steps)
    planned = steps * plan.looks_per_step
    now = time.time()
    for release in releases:
        release.since = now - 1.2  # a sample with the step's starting counts lies inside the window
    pending: dict[int, Any] = {}
    with ThreadPoolExecutor(4) as pool:
        while any(release.decision is None for release in releases):
            tick = time.monotonic()
            for number, release in enumerate(releases):
                if release.decision is not None or number in pending:
                    continue
                if release.scrape < plan.scrapes:
                    release.feed(exporter)
                    continue
                # The interval is over: wait past the next scrape, then look.
                release.look += 1
                look_at = time.time() + 1.5
                pending[number] = pool.submit(_look_later, release, url, planned, look_at)
            for number in [n for n, future in pending.items() if future.done()]:
                release = releases[number]
                result = pending.pop(number).result()
                _advance(release, result, plan, planned, steps)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    say(f"[decisions] end to end: {len(releases)} releases decided")


def _look_later(release: Release, url: str, planned: int, at: float) -> dict[str, Any]:
    time.sleep(max(0.0, at - time.time()))
    return _analyse(release, url, planned)


def _advance(release: Release, result: dict[str, Any], plan: rules.Plan, planned: int, steps: int) -> None:
    limits = release.scenario.limits
    verdict = result.get("verdict", "error")
    entry = {"step": release.step, "look": release.look, "verdict": verdict,
             "pure_on_module_counts": _pure_on_module_counts(result, limits, release.look, planned)
             if "verdict" in result else None, "module_error_check": _module_error_verdict(result),
             "counts": decision_ours.counts_from_result(result),
             "msg": result.get("msg")}
    release.looks.append(entry)
    release.scrape = 0
    if verdict == "fail" or "verdict" not in result:
        release.decision = rules.ROLLBACK
        return
    if verdict == "pass":
        release.step += 1
        release.slot = 0
        release.since = time.time() - 1.2
        if release.step == steps:
            release.decision = rules.PROMOTE
        return
    release.slot += 1
    if release.slot == plan.looks_per_step:
        release.decision = rules.HOLD


def _summarise(releases: list[Release], scenarios: list[Any], plan: rules.Plan, replications: int,
               seconds: int) -> dict[str, Any]:
    rows = []
    looks = [entry for release in releases for entry in release.looks]
    checked = [entry for entry in looks if entry["pure_on_module_counts"] is not None]
    same_look = sum(entry["pure_on_module_counts"] == entry["module_error_check"] for entry in checked)
    for number, scenario in enumerate(scenarios):
        mine = [release for release in releases if release.index == number]
        pure = rules.ours(_stack([release.data for release in mine]), scenario.limits, plan, decision_ours.judge)
        e2e = np.array([release.decision for release in mine])
        # The pure simulation of the same scenario and plan, many replications: the rates to agree with.
        from bench.decisions import run_scenario
        with decision_ours.fast_bounds():
            reference = run_scenario(scenario, plan, 2_000, decision_ours.judge, which=("ours",))["rules"]["ours"]
        rows.append({"scenario": scenario.name, "kind": scenario.kind, "replications": len(mine),
                     "error_factor": scenario.error_factor, "latency_factor": scenario.latency_factor,
                     "base_error": scenario.base_error, "rate": scenario.rate, "steps": list(scenario.steps),
                     "e2e": {"promote": int(np.sum(e2e == rules.PROMOTE)),
                             "rollback": int(np.sum(e2e == rules.ROLLBACK)), "hold": int(np.sum(e2e == rules.HOLD))},
                     "same_decision_as_pure": int(np.sum(e2e == pure.decision)),
                     "pure_rates": {key: reference[key] for key in ("promote", "rollback", "hold")},
                     "agrees": _agrees(e2e, reference)})
    errors = [entry["msg"] for entry in looks if entry["msg"]]
    return {"plan": {"interval": plan.interval, "looks_per_step": plan.looks_per_step, "scrape": plan.scrape,
                     "rate": RATE}, "replications": replications, "seconds": seconds, "scenarios": rows,
            "looks": len(looks), "looks_checked": len(checked), "looks_same_verdict": same_look,
            "errors": errors[:5]}


def _agrees(e2e: np.ndarray, reference: dict[str, float]) -> bool:
    """The end-to-end counts are plausible under the pure simulation's rates: for each outcome, at
    least as extreme a count has probability above 1e-3 (binomial tails, exact)."""
    count = len(e2e)
    for key, code in (("promote", rules.PROMOTE), ("rollback", rules.ROLLBACK), ("hold", rules.HOLD)):
        seen = int(np.sum(e2e == code))
        rate = min(max(reference[key], 1e-4), 1 - 1e-4)
        low = sum(math.comb(count, i) * rate ** i * (1 - rate) ** (count - i) for i in range(seen + 1))
        high = sum(math.comb(count, i) * rate ** i * (1 - rate) ** (count - i) for i in range(seen, count + 1))
        if min(low, high) < 1e-3:
            return False
    return True


def _stack(parts: list[Telemetry]) -> Telemetry:
    return Telemetry(*(np.concatenate([getattr(part, name) for part in parts]) for name in (
        "base_requests", "base_errors", "base_buckets", "canary_requests", "canary_errors", "canary_buckets")))
