# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Verdicts on evidence: pass, fail or inconclusive from request counts and histogram counts.

Pure functions, standard library only (no I/O, no Ansible): the ``canary_analysis`` module feeds
them Prometheus' counts, the unit tests and the decision benchmark feed them simulated ones.

The rules (docs/analysis.md explains them with numbers):

- Every check is judged on **confidence bounds**, never on a point estimate. A part of a check
  *passes* when its bound at confidence ``1 - beta_look`` shows the canary inside the limit, and
  *fails* when its bound at confidence ``1 - alpha_look`` shows it outside; otherwise it is
  *inconclusive*, with the canary requests that would settle it if the canary kept showing what it
  shows now.
- **Absolute limits** (``min`` success rate, ``max`` p99) use exact one-sided Clopper-Pearson bounds
  on the canary's share of bad requests (errors; requests slower than a histogram boundary).
- **The comparison with the base** uses the exact conditional test for two Poisson counts: given
  ``x`` bad requests in both versions together, the canary's share of them is Binomial(x, pi) with
  ``pi = rho * n_canary / (rho * n_canary + n_base)``, ``rho`` the ratio of the two rates.
  Clopper-Pearson bounds on ``pi`` give bounds on ``rho``. The comparison *fails* when ``rho`` is
  shown above the fail ratio (``1 + fail_percent/100``; for errors by default 1.2, or the tolerated
  ratio when that is lower), and *passes* when ``rho`` is shown below the tolerated ratio
  (``1 + tolerance_percent/100``, default 2 for errors), or the canary's own rate is shown below a
  negligible level (so that a base with no errors does not block every pass). A canary shown both
  above the fail ratio and within the tolerance passes.
- **Latency** is judged on the histogram's counts: the share of requests slower than a bucket
  boundary. Against ``max``: the share above the boundaries at/below and at/above ``max`` against
  1 % (p99). Against the base: the boundary is the last one at or below the base's p99 +
  tolerance, and the shares of canary and base above it go through the same conditional count
  test: it passes when the ratio is shown below 2 and fails only when it is shown above its fail ratio
  (by default 2 as well: a canary a little slower than the base, within what the comparison
  tolerates, is not failed) and the canary's own p99 is shown above the boundary (more than 1 % of
  its requests slower).
  When p99 + tolerance is not a boundary, the result says which boundary was used instead.
- **One error budget for the whole release.** ``alpha`` (false rollback) and ``beta`` (false
  promotion) are spent over the ``looks`` planned for the release: look ``k`` tests every failing
  part at ``alpha / (looks * parts)`` and every passing part at ``beta / looks`` (Bonferroni
  spending: valid whatever the correlation between looks, so evidence may accumulate within a step).
  The union bound gives: a canary as healthy as its base is failed at some look of the release with
  probability at most ``alpha``; a canary that is bad on some part passes a look with probability at
  most ``beta / looks`` per look, hence at most ``beta`` over the looks of any one step.
- ``min_requests`` is the least evidence for a pass (by default the fewest canary requests with
  which a canary without a single bad request could pass the absolute limit at this look's beta).
  A fail needs only its bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
SUCCESS_RATE, DURATION = "request-success-rate", "request-duration"
# p99: the share of requests allowed above a latency.
QUANTILE = 0.99
SLOW_SHARE_LIMIT = 1.0 - QUANTILE
# The comparison of latency: the canary's share of slow requests may be up to twice the base's (a
# canary shown below ``negligible_percent`` slow requests passes whatever the base shows).
LATENCY_RATIO = 2.0
# The error comparison fails a canary only when its error rate is shown more than this many percent
# above the base's (or above the tolerance, when that is lower): a canary within a fifth of its base's
# rate is passed or held, never rolled back by the comparison. Failing at the base's own rate spent the
# release's alpha on healthy canaries; docs/analysis.md has the measured trade-off.
ERROR_FAIL_PERCENT = 20.0
# Release defaults: at most 1 % false rollbacks, at most 5 % false promotions.
DEFAULT_ALPHA = 0.01
DEFAULT_BETA = 0.05
# What "more requests" says when even a billion would not settle a check at the rates seen.
MORE_REQUESTS_CAP = 10**9


# --------------------------------------------------------------------------- binomial arithmetic


def _log_binomial_term(k: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def _tail_sum(start: int, stop: int, step: int, n: int, p: float) -> float:
    """Sum of Binomial(n, p) probabilities from ``start`` towards ``stop`` (exclusive), moving away
    from the mode so that the terms only shrink and the sum can stop once they no longer count."""
    odds = p / (1.0 - p)
    total, term, k = 0.0, 1.0, start
    while k != stop:
        total += term
        if term < total * 1e-17:
            break
        if step > 0:
            term *= (n - k) / (k + 1) * odds
        else:
            term *= k / (n - k + 1) / odds
        k += step
    return min(1.0, math.exp(_log_binomial_term(start, n, p) + math.log(total)))


def _mode(trials: int, probability: float) -> int:
    return math.floor((trials + 1) * probability)


def binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), summed from the small end."""
    if successes <= 0:
        return 1.0
    if successes > trials or probability <= 0.0:
        return 0.0
    if probability >= 1.0:
        return 1.0
    if successes > _mode(trials, probability):
        return _tail_sum(successes, trials + 1, 1, trials, probability)
    return max(0.0, 1.0 - _tail_sum(successes - 1, -1, -1, trials, probability))


def binomial_lower_tail(successes: int, trials: int, probability: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, probability), summed from the small end."""
    if successes < 0:
        return 0.0
    if successes >= trials or probability <= 0.0:
        return 1.0
    if probability >= 1.0:
        return 0.0
    if successes < _mode(trials, probability):
        return _tail_sum(successes, -1, -1, trials, probability)
    return max(0.0, 1.0 - _tail_sum(successes + 1, trials + 1, 1, trials, probability))


def _bisect(function, low: float, high: float, target: float, decreasing: bool) -> float:
    """The point in [low, high] where a monotone ``function`` crosses ``target`` (60 halvings)."""
    for _step in range(60):
        middle = (low + high) / 2.0
        above = function(middle) > target
        if above == decreasing:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def upper_bound(bad: int, total: int, level: float) -> float:
    """One-sided Clopper-Pearson upper bound of a proportion at confidence ``1 - level``.

    The largest ``p`` with ``P(X <= bad; p) >= level``; 1 without data."""
    if total <= 0 or bad >= total:
        return 1.0
    if bad == 0:  # closed form: (1 - p)^n = level
        return -math.expm1(math.log(level) / total)
    return _bisect(lambda p: binomial_lower_tail(bad, total, p), bad / total, 1.0, level, decreasing=True)


def lower_bound(bad: int, total: int, level: float) -> float:
    """One-sided Clopper-Pearson lower bound of a proportion at confidence ``1 - level``."""
    if total <= 0 or bad <= 0:
        return 0.0
    if bad >= total:
        return math.exp(math.log(level) / total)
    return _bisect(lambda p: binomial_upper_tail(bad, total, p), 0.0, bad / total, level, decreasing=False)


def _ratio(share: float, canary_requests: int, base_requests: int) -> float:
    """The rate ratio rho for which the canary's expected share of the bad requests is ``share``."""
    if share >= 1.0:
        return math.inf
    return share * base_requests / ((1.0 - share) * canary_requests)


def ratio_bounds(canary_bad: int, canary_requests: int, base_bad: int, base_requests: int,
                 lower_level: float, upper_level: float) -> tuple[float, float]:
    """Bounds of canary rate / base rate from the exact conditional test (Poisson counts).

    ``lower_level`` and ``upper_level`` are the one-sided error levels of the two bounds."""
    together = canary_bad + base_bad
    low = lower_bound(canary_bad, together, lower_level)
    high = upper_bound(canary_bad, together, upper_level)
    return _ratio(low, canary_requests, base_requests), _ratio(high, canary_requests, base_requests)


def combine(verdicts: Sequence[str]) -> str:
    """fail if any fails, else inconclusive if any is (or there is nothing), else pass."""
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts or not verdicts:
        return INCONCLUSIVE
    return PASS


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Check:
    """A check and its limits, as ``validate_checks`` in _logic/analysis.py fills them in.

    ``min`` is a success rate in percent (request-success-rate) and ``max`` a p99 in milliseconds
    (request-duration); custom checks (``query``) compare one number with them."""

    name: str
    query: str | None = None
    min: float | None = None
    max: float | None = None
    compare: bool = True
    tolerance_percent: float = 0.0
    tolerance_ms: float = 0.0
    negligible_percent: float = 0.0
    fail_percent: float | None = None

    @property
    def builtin(self) -> bool:
        return self.query is None

    @property
    def fail_ratio(self) -> float:
        """The canary/base ratio of bad-request rates the comparison must show exceeded to fail.

        ``fail_percent`` when given; else, for errors, :data:`ERROR_FAIL_PERCENT` or the tolerance when
        that is lower, and for latency :data:`LATENCY_RATIO` (the share of slow requests it tolerates)."""
        if self.fail_percent is not None:
            return 1.0 + self.fail_percent / 100.0
        if self.name == SUCCESS_RATE:
            return 1.0 + min(ERROR_FAIL_PERCENT, self.tolerance_percent) / 100.0
        return LATENCY_RATIO


@dataclass(frozen=True)
class Counts:
    """What one version showed since the start of the evidence: requests, errors and latency.

    ``buckets`` are the histogram's cumulative counts ``(le, count)``, ``le`` in milliseconds and
    ``math.inf`` for ``+Inf``, as Prometheus' ``*_bucket`` series hold them. Fractions (from
    ``increase()``) are rounded to whole requests."""

    requests: float | None = None
    errors: float | None = None
    buckets: tuple[tuple[float, float], ...] | None = None

    def scaled(self, factor: float) -> Counts:
        """The counts ``factor`` times as many requests would show at the same rates."""
        return Counts(None if self.requests is None else self.requests * factor,
                      None if self.errors is None else self.errors * factor,
                      None if self.buckets is None else tuple((le, count * factor) for le, count in self.buckets))


@dataclass(frozen=True)
class Budget:
    """The error budget of one look: the release's alpha and beta spent over its planned looks."""

    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    look: int = 1
    looks: int = 1

    def __post_init__(self):
        if not 0 < self.alpha < 1 or not 0 < self.beta < 1:
            raise ValueError(f"alpha and beta must lie between 0 and 1, got {self.alpha!r} and {self.beta!r}")
        if not 1 <= self.look <= self.looks:
            raise ValueError(f"look must be 1 to looks ({self.looks}), got {self.look}")

    @property
    def alpha_look(self) -> float:
        """The alpha this look spends (shared by all failing parts of all checks)."""
        return self.alpha / self.looks

    @property
    def beta_look(self) -> float:
        """The beta this look spends (each check's passing part in full: all must pass)."""
        return self.beta / self.looks


def failing_parts(checks: Sequence[Check]) -> int:
    """How many tests can fail a healthy canary at one look: the alpha of a look is shared by them."""
    parts = 0
    for check in checks:
        if not check.builtin:
            continue
        limit = check.min if check.name == SUCCESS_RATE else check.max
        parts += (limit is not None) + bool(check.compare)
    return max(parts, 1)


# --------------------------------------------------------------------------- results


@dataclass
class Part:
    """One test of a check: its verdict and the bounds it was judged on."""

    name: str
    verdict: str
    bounds: dict[str, Any]
    reason: str


@dataclass
class CheckVerdict:
    name: str
    verdict: str
    reason: str
    parts: list[Part] = field(default_factory=list)
    more_requests: int = 0
    min_requests: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def bounds(self) -> dict[str, Any]:
        return {part.name: part.bounds for part in self.parts}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "reason": self.reason, "bounds": self.bounds,
                "more_requests": self.more_requests, "min_requests": self.min_requests, "notes": self.notes}


@dataclass
class Decision:
    verdict: str
    checks: list[CheckVerdict]
    alpha: float
    beta: float
    look: int
    looks: int

    @property
    def more_requests(self) -> int:
        return max((check.more_requests for check in self.checks), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "checks": [check.as_dict() for check in self.checks], "alpha": self.alpha,
                "beta": self.beta, "look": self.look, "looks": self.looks, "more_requests": self.more_requests}


def _whole(value: float | None) -> int:
    return 0 if value is None or math.isnan(value) or math.isinf(value) else max(0, round(value))


def _sig(value: float) -> float | None:
    """A bound for people (and JSON) to read: 4 significant digits; None for no bound (infinity)."""
    if math.isinf(value):
        return None
    if value == 0:
        return value
    return float(f"{value:.4g}")


# --------------------------------------------------------------------------- parts


def share_part(name: str, bad_for_fail: int, bad_for_pass: int, total: int, limit: float, alpha_level: float,
               beta_level: float, what: str) -> Part:
    """The canary's share of bad requests against an absolute limit (fraction)."""
    low = lower_bound(bad_for_fail, total, alpha_level)
    high = upper_bound(bad_for_pass, total, beta_level)
    if low > limit:
        verdict = FAIL
    elif high <= limit:
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
    reason = (f"{what}: {bad_for_pass} of {total}, bounds {100 * low:.3g}%..{100 * high:.3g}% against "
              f"the limit {100 * limit:.3g}%")
    return Part(name, verdict, {"lower": _sig(low), "upper": _sig(high), "limit": _sig(limit),
                                "lower_confidence": _sig(1 - alpha_level), "upper_confidence": _sig(1 - beta_level)},
                reason)


def ratio_part(name: str, canary_bad: int, canary_requests: int, base_bad: int, base_requests: int, ratio: float,
               negligible: float, alpha_level: float, beta_level: float, what: str, fail_ratio: float = 1.0) -> Part:
    """The canary's rate of bad requests against the base's (exact conditional test).

    fail: rho shown above ``fail_ratio``; pass: rho shown below ``ratio``, or the canary's own rate shown
    below ``negligible`` (each of the two ways to pass spends half of ``beta_level``)."""
    pass_level = beta_level / 2.0 if negligible > 0 else beta_level
    low, high = ratio_bounds(canary_bad, canary_requests, base_bad, base_requests, alpha_level, pass_level)
    canary_high = upper_bound(canary_bad, canary_requests, pass_level) if negligible > 0 else 1.0
    within = high < ratio
    small = negligible > 0 and canary_high < negligible
    if within or small:
        verdict = PASS
    elif low > fail_ratio:
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    reason = (f"{what}: canary {canary_bad} of {canary_requests}, base {base_bad} of {base_requests}; "
              f"canary/base rate ratio bounds {low:.3g}..{high:.3g} "
              f"(fails above {fail_ratio:g}, passes below {ratio:g})")
    if negligible > 0:
        reason += f"; canary rate upper bound {100 * canary_high:.3g}% (passes below {100 * negligible:.3g}%)"
    return Part(name, verdict, {"ratio_lower": _sig(low), "ratio_upper": _sig(high), "ratio_limit": ratio,
                                "fail_ratio": fail_ratio,
                                "canary_upper": _sig(canary_high), "negligible": negligible,
                                "lower_confidence": _sig(1 - alpha_level), "upper_confidence": _sig(1 - pass_level)},
                reason)


# --------------------------------------------------------------------------- histograms


def normalise_buckets(buckets: Sequence[tuple[float, float]] | None) -> list[tuple[float, int]]:
    """Sorted ``(le, whole count)`` pairs, cumulative counts made non-decreasing; [] without data."""
    if not buckets:
        return []
    pairs = sorted((float(le), float(count)) for le, count in buckets)
    result, running = [], 0
    for le, count in pairs:
        running = max(running, _whole(count))
        result.append((le, running))
    return result


def histogram_total(buckets: list[tuple[float, int]]) -> int:
    return buckets[-1][1] if buckets else 0


def count_at(buckets: list[tuple[float, int]], boundary: float) -> int:
    """Requests at or below ``boundary`` (a boundary of the histogram)."""
    for le, count in buckets:
        if le == boundary:
            return count
    raise ValueError(f"{boundary} is not a bucket boundary")


def histogram_quantile(quantile: float, buckets: list[tuple[float, int]]) -> float | None:
    """The quantile as Prometheus' histogram_quantile() reads it: linear inside the bucket, the
    lowest bucket starting at 0, and the last finite boundary for a quantile in the +Inf bucket."""
    total = histogram_total(buckets)
    if total <= 0 or len(buckets) < 2:
        return None
    rank = quantile * total
    previous_le, previous_count = 0.0, 0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return previous_le
            if count == previous_count:
                return le
            start = previous_le if previous_le > 0 or le > 0 else 0.0
            return start + (le - start) * (rank - previous_count) / (count - previous_count)
        previous_le, previous_count = le, count
    return previous_le


def _finite(buckets: list[tuple[float, int]]) -> list[float]:
    return [le for le, _count in buckets if not math.isinf(le)]


def pooled(base: list[tuple[float, int]], canary: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Both histograms added up, on the boundaries they share."""
    canary_counts = dict(canary)
    return [(le, count + canary_counts[le]) for le, count in base if le in canary_counts]


# --------------------------------------------------------------------------- checks


def judge_errors(check: Check, base: Counts, canary: Counts, alpha_level: float, beta_level: float,
                 min_requests: int) -> CheckVerdict:
    """request-success-rate: the canary's error rate against ``min`` and against the base's."""
    n_canary, x_canary = _whole(canary.requests), _whole(canary.errors)
    n_base, x_base = _whole(base.requests), _whole(base.errors)
    x_canary, x_base = min(x_canary, n_canary), min(x_base, n_base)
    parts: list[Part] = []
    reasons: list[str] = []
    if n_canary <= 0:
        return CheckVerdict(check.name, INCONCLUSIVE, "no data for the canary: no requests counted yet",
                            min_requests=min_requests)
    if check.min is not None:
        limit = 1.0 - check.min / 100.0
        parts.append(share_part("limit", x_canary, x_canary, n_canary, limit, alpha_level, beta_level,
                                "canary error rate"))
    if check.compare:
        if n_base <= 0:
            parts.append(Part("base", INCONCLUSIVE, {}, "no requests to the base: cannot compare"))
        else:
            parts.append(ratio_part("base", x_canary, n_canary, x_base, n_base, 1.0 + check.tolerance_percent / 100.0,
                                    check.negligible_percent / 100.0, alpha_level, beta_level, "errors",
                                    fail_ratio=check.fail_ratio))
    return _finish(check, parts, reasons, n_canary, min_requests)


def judge_latency(check: Check, base: Counts, canary: Counts, alpha_level: float, beta_level: float,
                  min_requests: int) -> CheckVerdict:
    """request-duration on the histogram's counts: shares of requests slower than a boundary."""
    canary_buckets, base_buckets = normalise_buckets(canary.buckets), normalise_buckets(base.buckets)
    n_canary = histogram_total(canary_buckets)
    parts: list[Part] = []
    notes: list[str] = []
    if n_canary <= 0:
        return CheckVerdict(check.name, INCONCLUSIVE, "no data for the canary: no latency counted yet",
                            min_requests=min_requests)
    boundaries = _finite(canary_buckets)
    if check.max is not None:
        below = [le for le in boundaries if le <= check.max]
        above = [le for le in boundaries if le >= check.max]
        pass_at, fail_at = (below[-1] if below else None), (above[0] if above else None)
        slow_pass = n_canary - count_at(canary_buckets, pass_at) if pass_at is not None else n_canary
        slow_fail = n_canary - count_at(canary_buckets, fail_at) if fail_at is not None else 0
        part = share_part("limit", slow_fail, slow_pass, n_canary, SLOW_SHARE_LIMIT, alpha_level, beta_level,
                          "canary requests slower than the limit")
        part.bounds.update(pass_boundary_ms=pass_at, fail_boundary_ms=fail_at)
        if pass_at != fail_at:
            notes.append(f"max {check.max:g} ms is not a bucket boundary: a pass needs the canary's p99 shown at or "
                         f"below {pass_at} ms, a fail shown above {fail_at} ms")
        part.reason = (f"canary requests slower than {pass_at} ms: {slow_pass} of {n_canary}, upper bound "
                       f"{100 * part.bounds['upper']:.3g}%; slower than {fail_at} ms: {slow_fail}, lower bound "
                       f"{100 * part.bounds['lower']:.3g}% (p99 limit {check.max:g} ms: at most 1% slower)")
        parts.append(part)
    if check.compare:
        parts.append(_latency_comparison(check, base_buckets, canary_buckets, alpha_level, beta_level, notes))
    result = _finish(check, parts, [], n_canary, min_requests)
    result.notes.extend(notes)
    return result


def _latency_comparison(check: Check, base_buckets: list[tuple[float, int]], canary_buckets: list[tuple[float, int]],
                        alpha_level: float, beta_level: float, notes: list[str]) -> Part:
    n_base, n_canary = histogram_total(base_buckets), histogram_total(canary_buckets)
    if n_base <= 0:
        return Part("base", INCONCLUSIVE, {}, "no latency data for the base: cannot compare")
    both = pooled(base_buckets, canary_buckets)
    # The base's p99: the canary's own requests would move it (a slow canary at half the traffic
    # would push the boundary into its own tail). Seeded simulations of equal latency show no
    # false fail from choosing it on the base's counts (tests/unit/plugins/module_utils/_logic/test_evidence.py).
    p99 = histogram_quantile(QUANTILE, base_buckets)
    if p99 is None:
        return Part("base", INCONCLUSIVE, {}, "the two histograms share no buckets: cannot compare")
    allowed = max(p99 * check.tolerance_percent / 100.0, check.tolerance_ms)
    wanted = p99 + allowed
    finite = _finite(both)
    if not finite:
        return Part("base", INCONCLUSIVE, {"p99_ms": _sig(p99), "wanted_ms": _sig(wanted)},
                    "the histograms have no finite boundary: cannot compare")
    # The last boundary at or below p99 + tolerance: a boundary above it could lie so far above
    # (Istio's buckets grow 2-2.5x) that a canary twice as slow still has under 1 % slower.
    below = [le for le in finite if le <= wanted]
    boundary = below[-1] if below else finite[0]
    slow_canary = n_canary - count_at(canary_buckets, boundary)
    slow_base = n_base - count_at(base_buckets, boundary)
    part = ratio_part("base", slow_canary, n_canary, slow_base, n_base, LATENCY_RATIO, check.negligible_percent / 100.0,
                      alpha_level, beta_level, f"requests slower than {boundary:g} ms", fail_ratio=check.fail_ratio)
    part.bounds.update(boundary_ms=boundary, p99_ms=_sig(p99), tolerance_ms=_sig(allowed), wanted_ms=_sig(wanted))
    # A fail also needs the canary's own p99 shown above the boundary (more than 1 % of its requests
    # slower): a canary whose p99 is at or below the boundary is within p99 + tolerance whatever the
    # base shows. Both at the look's alpha: a fail needs both, so no alpha is spent twice.
    canary_low = lower_bound(slow_canary, n_canary, alpha_level)
    part.bounds["canary_lower"] = _sig(canary_low)
    if part.verdict == FAIL and canary_low <= SLOW_SHARE_LIMIT:
        part.verdict = INCONCLUSIVE
        part.reason += (f"; the canary's p99 is not shown above {boundary:g} ms (lower bound {100 * canary_low:.3g}% "
                        "of its requests slower, a fail needs more than 1%)")
    if boundary != wanted:
        notes.append(f"the tolerance ({allowed:.1f} ms over the p99 of {p99:.1f} ms, {wanted:.1f} ms) is finer than "
                     f"the histogram: the comparison counts the requests slower than the bucket boundary "
                     f"{boundary:g} ms and tolerates up to {LATENCY_RATIO:g} times the base's share of them")
    return part


def _finish(check: Check, parts: list[Part], reasons: list[str], n_canary: int, min_requests: int) -> CheckVerdict:
    verdict = combine([part.verdict for part in parts])
    reasons = reasons + [f"{part.name}: {part.verdict} ({part.reason})" for part in parts]
    if verdict == PASS and n_canary < min_requests:
        verdict = INCONCLUSIVE
        reasons.append(f"the canary answered {n_canary} requests, fewer than min_requests {min_requests} "
                       "needed for a pass")
    return CheckVerdict(check.name, verdict, "; ".join(reasons), parts=parts, min_requests=min_requests)


# --------------------------------------------------------------------------- the decision


def auto_min_requests(check: Check, beta_level: float) -> int:
    """The fewest canary requests with which a check could pass at all at this look.

    A canary with no bad request passes the absolute limit once the upper bound ``1 - beta^(1/n)``
    is at or below it: ``n >= ln(beta) / ln(1 - limit)``. Without an absolute limit, 1."""
    if check.name == SUCCESS_RATE and check.min is not None:
        limit = 1.0 - check.min / 100.0
    elif check.name == DURATION and check.max is not None:
        limit = SLOW_SHARE_LIMIT
    else:
        return 1
    if limit <= 0:
        return MORE_REQUESTS_CAP
    if limit >= 1:
        return 1
    return max(1, math.ceil(math.log(beta_level) / math.log1p(-limit) - 1e-9))


def judge(check: Check, base: Counts, canary: Counts, budget: Budget, parts: int = 1,
          min_requests: int | None = None, project: bool = True) -> CheckVerdict:
    """One built-in check's verdict at one look, with its bounds and the more requests it needs.

    ``parts`` is how many failing tests share this look's alpha (``failing_parts(checks)``);
    ``min_requests`` None means the automatic floor of :func:`auto_min_requests`; ``project=False``
    leaves ``more_requests`` at 0 (simulations that only need the verdict run faster)."""
    alpha_level = budget.alpha_look / max(parts, 1)
    beta_level = budget.beta_look
    floor = auto_min_requests(check, beta_level) if min_requests is None else max(1, min_requests)
    judge_one = judge_errors if check.name == SUCCESS_RATE else judge_latency
    result = judge_one(check, base, canary, alpha_level, beta_level, floor)
    if result.verdict == INCONCLUSIVE and project:
        result.more_requests = more_requests(judge_one, check, base, canary, alpha_level, beta_level, floor)
    return result


def evaluate(checks: Sequence[Check], base: Counts, canary: Counts, budget: Budget | None = None,
             min_requests: int | None = None, project: bool = True) -> Decision:
    """The verdict of a look on the built-in checks (custom checks are the module's business).

    >>> from math import inf
    >>> base = Counts(requests=20000, errors=100, buckets=((100, 19900), (250, 20000), (inf, 20000)))
    >>> canary = Counts(requests=2000, errors=10, buckets=((100, 1990), (250, 2000), (inf, 2000)))
    >>> evaluate([Check("request-success-rate", min=99, tolerance_percent=100, negligible_percent=0.1)],
    ...          base, canary, Budget(alpha=0.01, beta=0.05, look=1, looks=3)).verdict
    'inconclusive'
    """
    budget = budget or Budget()
    builtin = [check for check in checks if check.builtin]
    parts = failing_parts(builtin)
    results = [judge(check, base, canary, budget, parts, min_requests, project) for check in builtin]
    return Decision(combine([r.verdict for r in results]), results, alpha=budget.alpha_look,
                    beta=budget.beta_look, look=budget.look, looks=budget.looks)


def more_requests(judge_one, check: Check, base: Counts, canary: Counts, alpha_level: float, beta_level: float,
                  floor: int) -> int:
    """Canary requests beyond those seen that would settle the check, if both versions kept showing
    what they show now (their counts grow in proportion); MORE_REQUESTS_CAP when none would."""
    seen = _canary_requests(check, canary)
    if seen <= 0:  # nothing to project from: at least the floor
        return floor

    def settles(extra: int) -> bool:
        factor = (seen + extra) / seen
        outcome = judge_one(check, base.scaled(factor), canary.scaled(factor), alpha_level, beta_level, floor)
        return outcome.verdict != INCONCLUSIVE

    low, high = 0, max(1, floor - seen, seen // 4)
    while not settles(high):
        low, high = high, high * 2
        if high > MORE_REQUESTS_CAP:
            return MORE_REQUESTS_CAP
    while high - low > max(1, high // 100):
        middle = (low + high) // 2
        if settles(middle):
            high = middle
        else:
            low = middle
    return high


def _canary_requests(check: Check, counts: Counts) -> int:
    if check.name == SUCCESS_RATE:
        return _whole(counts.requests)
    return histogram_total(normalise_buckets(counts.buckets))


# --------------------------------------------------------------------------- planning


def expected_counts(requests: float, error_rate: float, buckets: Sequence[tuple[float, float]] | None = None) -> Counts:
    """The counts a version at ``error_rate`` (fraction) and a latency distribution given as the
    cumulative share per boundary would show on average after ``requests`` requests."""
    return Counts(requests=requests, errors=requests * error_rate,
                  buckets=None if buckets is None else tuple((le, share * requests) for le, share in buckets))


def requests_to_decide(check: Check, base_rate: float, canary_rate: float, canary_share: float,
                       budget: Budget | None = None, parts: int = 4) -> tuple[str, int]:
    """Canary requests after which a check decides when both versions show exactly their expected
    error counts (the median path): the verdict reached and the count. For planning and docs."""
    budget = budget or Budget()
    alpha_level, beta_level = budget.alpha_look / parts, budget.beta_look
    floor = auto_min_requests(check, beta_level)

    def outcome(canary_requests: int) -> str:
        base_requests = canary_requests * (1 - canary_share) / canary_share
        return judge_errors(check, expected_counts(base_requests, base_rate),
                            expected_counts(canary_requests, canary_rate), alpha_level, beta_level, floor).verdict

    low, high = 0, 8
    while outcome(high) == INCONCLUSIVE:
        low, high = high, high * 2
        if high > MORE_REQUESTS_CAP:
            return INCONCLUSIVE, MORE_REQUESTS_CAP
    while high - low > 1:
        middle = (low + high) // 2
        if outcome(middle) == INCONCLUSIVE:
            low = middle
        else:
            high = middle
    return outcome(high), high
