"""canary.istio's decision code as the benchmark calls it: plugins/module_utils/_logic/evidence.py.

The checks are built the way the ``canary_analysis`` module builds them (``validate_checks`` of
plugins/module_utils/_logic/analysis.py, its defaults included) from the scenario's limits, and each look
is judged by ``evidence.evaluate`` with the release's error budget (``Budget(look, looks)``).

Speed: ``evaluate`` computes its Clopper-Pearson bounds by bisection over exact binomial sums, and
the extra requests an inconclusive check needs by a search over more such evaluations; a look
takes milliseconds, and 10^4 releases of up to 15 looks in each of 40 scenarios would take hours.
``fast_bounds()`` swaps, for the pure simulation only, the two bound functions for the same
Clopper-Pearson bounds from the beta distribution's quantiles (scipy; the bound of x bad in n at
level a is the a-quantile of Beta(x, n-x+1), resp. the (1-a)-quantile of Beta(x+1, n-x)) and skips
the extra-requests search, which no verdict depends on. tests/unit/bench/test_bench_decisions.py checks
that both give the same bounds and the same verdicts; the end-to-end run uses the module unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy.special import betaincinv

from bench.decision_rules import Limits
from bench.decision_sim import DURATION_BUCKETS_MS

_LES = (*DURATION_BUCKETS_MS, math.inf)


def _collection_path() -> None:
    from tests.helpers.collection import COLLECTIONS_ROOT, ensure_collection_path
    ensure_collection_path()
    if str(COLLECTIONS_ROOT) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_ROOT))


@functools.cache
def evidence() -> Any:
    _collection_path()
    from ansible_collections.canary.istio.plugins.module_utils._logic import evidence as module
    return module


@functools.cache
def _analysis() -> Any:
    _collection_path()
    from ansible_collections.canary.istio.plugins.module_utils._logic import analysis as module
    return module


def raw_checks(limits: Limits) -> list[dict[str, Any]]:
    """The checks as a user writes them: the built-ins with the scenario's limits, defaults otherwise."""
    checks = [{"name": "request-success-rate", "min": limits.min_success}]
    if limits.latency:
        checks.append({"name": "request-duration", "max": limits.max_p99_ms})
    return checks


@functools.cache
def checks(limits: Limits) -> tuple[Any, ...]:
    """evidence.Check objects with the module's defaults, as the module fills them in."""
    ev = evidence()
    names = {item.name for item in dataclasses.fields(ev.Check)}
    validated = _analysis().validate_checks(raw_checks(limits))
    return tuple(ev.Check(**{name: getattr(check, name) for name in names if hasattr(check, name)})
                 for check in validated)


def module_args(limits: Limits, look: int, looks: int) -> dict[str, Any]:
    """The canary_analysis options for one look of a release with these limits."""
    return {"checks": raw_checks(limits), "look": look, "looks": looks, "window": "2s"}


def _cumulative(buckets: np.ndarray | None) -> tuple[tuple[float, int], ...] | None:
    if buckets is None:
        return None
    return tuple(zip(_LES, np.cumsum(buckets).tolist(), strict=True))


def judge(base_requests: int, base_errors: int, canary_requests: int, canary_errors: int,
          base_buckets: np.ndarray | None, canary_buckets: np.ndarray | None, limits: Limits, look: int,
          looks: int) -> str:
    """The verdict of one look (pass / fail / inconclusive) on counts accumulated since the step began."""
    return _judge(base_requests, base_errors, canary_requests, canary_errors, _cumulative(base_buckets),
                  _cumulative(canary_buckets), limits, look, looks, _bounds_in_use())


def clear_cache() -> None:
    """Forget cached verdicts (each scenario's counts differ: the cache only helps within one)."""
    _judge.cache_clear()


def _bounds_in_use() -> object:
    # Part of the cache key: verdicts cached with the fast bounds are not reused without them.
    return evidence().upper_bound


@functools.lru_cache(maxsize=1 << 15)
def _judge(base_requests: int, base_errors: int, canary_requests: int, canary_errors: int,
           base_buckets: tuple | None, canary_buckets: tuple | None, limits: Limits, look: int, looks: int,
           _bounds: object) -> str:
    ev = evidence()
    base = ev.Counts(base_requests, base_errors, base_buckets)
    canary = ev.Counts(canary_requests, canary_errors, canary_buckets)
    return ev.evaluate(checks(limits), base, canary, ev.Budget(look=look, looks=looks), **_verdict_only()).verdict


@functools.cache
def _verdict_only() -> dict[str, Any]:
    """``project=False`` where evaluate() takes it: no projection of more requests, which no verdict uses."""
    return {"project": False} if "project" in inspect.signature(evidence().evaluate).parameters else {}


def judge_errors_only(base_requests: int, base_errors: int, canary_requests: int, canary_errors: int,
                      limits: Limits, look: int, looks: int) -> str:
    """The request-success-rate check's verdict at a look where both checks share the alpha."""
    ev = evidence()
    all_checks = checks(limits)
    check = next(item for item in all_checks if item.name == "request-success-rate")
    return ev.judge(check, ev.Counts(base_requests, base_errors), ev.Counts(canary_requests, canary_errors),
                    ev.Budget(look=look, looks=looks), ev.failing_parts(all_checks)).verdict


def counts_from_result(result: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """Base and canary requests and errors that the module's success-rate check reports it read."""
    for check in result.get("checks", []):
        if check.get("name") == "request-success-rate":
            try:
                return (round(check["base"]["requests"]), round(check["base"]["errors"]),
                        round(check["canary"]["requests"]), round(check["canary"]["errors"]))
            except (KeyError, TypeError):
                return None
    return None


def documented_requests(limits: Limits, looks: int) -> int:
    """The fewest canary requests a pass needs at the release's per-look beta (evidence.auto_min_requests)."""
    ev = evidence()
    budget = ev.Budget(look=1, looks=looks)
    return max(ev.auto_min_requests(check, budget.beta_look) for check in checks(limits))


def describe() -> dict[str, Any]:
    """The decision code's settings the benchmark ran with (figures only; the pages put them into words)."""
    ev = evidence()
    budget = ev.Budget()
    shown = {}
    for check in checks(Limits()):
        shown[check.name] = {key: f"{value:g}" for key, value in dataclasses.asdict(check).items()
                             if isinstance(value, float) and key not in ("min", "max")}
        # fail_percent's default follows from the tolerance: the one in use, from the check's fail ratio.
        shown[check.name]["fail_percent"] = f"{(check.fail_ratio - 1.0) * 100.0:g}"
    return {"alpha": f"{budget.alpha:g}", "beta": f"{budget.beta:g}", "checks": shown}


# --------------------------------------------------------------------------- fast exact bounds


def upper_bound(bad: int, total: int, level: float) -> float:
    """Clopper-Pearson upper bound at confidence 1 - level (as evidence.upper_bound)."""
    if total <= 0 or bad >= total:
        return 1.0
    if bad == 0:
        return -math.expm1(math.log(level) / total)
    return float(betaincinv(bad + 1, total - bad, 1.0 - level))


def lower_bound(bad: int, total: int, level: float) -> float:
    """Clopper-Pearson lower bound at confidence 1 - level (as evidence.lower_bound)."""
    if total <= 0 or bad <= 0:
        return 0.0
    if bad >= total:
        return math.exp(math.log(level) / total)
    return float(betaincinv(bad, total - bad + 1, level))


def _no_more_requests(*_args: Any, **_kwargs: Any) -> int:
    return 0


@contextlib.contextmanager
def fast_bounds() -> Iterator[None]:
    """evidence's bounds from beta quantiles, and no extra-requests search, while the block runs."""
    ev = evidence()
    saved = {name: getattr(ev, name) for name in ("upper_bound", "lower_bound", "more_requests")}
    ev.upper_bound, ev.lower_bound, ev.more_requests = upper_bound, lower_bound, _no_more_requests
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ev, name, value)
