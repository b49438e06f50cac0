"""Simulated Istio telemetry for the decision-quality benchmark (seeded, vectorised with numpy).

A replication is one canary release: the plan's steps (canary shares, e.g. 10/25/50 %), each
observed for up to ``slots`` intervals; an interval is cut into scrapes (``scrape`` seconds, the
resolution Prometheus and Kayenta see). For every scrape of every interval of every step the
simulator draws, for the base and the canary:

- requests: Poisson(rate x share x scrape seconds) - traffic arrives at random;
- 5xx answers: Binomial(requests, error rate);
- latency: the counts of Istio's ``istio_request_duration_milliseconds`` buckets (Istio's default
  boundaries), Multinomial(requests, bucket probabilities of a log-normal latency).

Every rule judged on a replication reads these same counts: a rule that looks at a step's first
interval reads the same numbers whichever rule it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Istio's default buckets for istio_request_duration_milliseconds (the lab's router uses the same list;
# https://istio.io/latest/docs/reference/config/metrics/ - the proxy's default histogram buckets).
DURATION_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                       300000, 600000, 1800000, 3600000)
BUCKETS = len(DURATION_BUCKETS_MS) + 1  # the last one is (3600000, +Inf)
Z99 = 2.3263478740408408  # the standard normal's 0.99 quantile


@dataclass(frozen=True)
class Latency:
    """A log-normal request latency: ``median_ms`` and the log-scale spread ``sigma``."""

    median_ms: float = 40.0
    sigma: float = 0.65

    def scaled(self, factor: float) -> Latency:
        """Every request ``factor`` times as slow (its p99 moves by the same factor)."""
        return Latency(self.median_ms * factor, self.sigma)

    @property
    def p99_ms(self) -> float:
        return self.median_ms * math.exp(Z99 * self.sigma)

    def cdf(self, ms: float) -> float:
        return 0.5 * math.erfc(-(math.log(ms / self.median_ms) / self.sigma) / math.sqrt(2.0))

    def bucket_probabilities(self) -> np.ndarray:
        """Probability of each bucket (le=0.5, (0.5,1], ..., (3600000,+Inf)); sums to 1."""
        upper = np.array([self.cdf(bound) for bound in DURATION_BUCKETS_MS] + [1.0])
        return np.diff(np.concatenate(([0.0], upper)))


@dataclass(frozen=True)
class Traffic:
    """What one version sees: its error rate and latency."""

    error_rate: float
    latency: Latency


@dataclass
class Telemetry:
    """Counts of one chunk of replications. Shapes: [replication, step, slot, scrape] (+ [bucket])."""

    base_requests: np.ndarray
    base_errors: np.ndarray
    base_buckets: np.ndarray
    canary_requests: np.ndarray
    canary_errors: np.ndarray
    canary_buckets: np.ndarray


def draw(rng: np.random.Generator, replications: int, shares: tuple[float, ...], slots: int, scrapes: int,
         scrape_seconds: float, rate: float, base: Traffic, canary: Traffic) -> Telemetry:
    """Draws the counts of ``replications`` releases: ``shares`` (fractions 0..1) per step."""
    shape = (replications, len(shares), slots, scrapes)
    share = np.asarray(shares, dtype=float).reshape(1, -1, 1, 1)
    mean_canary = np.broadcast_to(rate * share * scrape_seconds, shape)
    mean_base = np.broadcast_to(rate * (1.0 - share) * scrape_seconds, shape)
    out = {}
    for side, mean, traffic in (("base", mean_base, base), ("canary", mean_canary, canary)):
        requests = rng.poisson(mean)
        errors = rng.binomial(requests, traffic.error_rate)
        buckets = rng.multinomial(requests, traffic.latency.bucket_probabilities()).astype(np.int32)
        out[f"{side}_requests"], out[f"{side}_errors"], out[f"{side}_buckets"] = requests, errors, buckets
    return Telemetry(**out)


def histogram_quantile(q: float, buckets: np.ndarray) -> np.ndarray:
    """Prometheus' ``histogram_quantile`` over bucket counts (last axis, Istio's boundaries + the +Inf bucket).

    As Prometheus computes it (https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile):
    the rank ``q x count`` is found in the cumulative counts, the value is interpolated linearly inside
    its bucket (the first bucket starts at 0), a rank in the +Inf bucket gives the highest finite
    boundary, and no requests give NaN.
    """
    cumulative = np.cumsum(buckets, axis=-1, dtype=float)
    total = cumulative[..., -1]
    rank = q * total
    index = np.argmax(cumulative >= rank[..., None], axis=-1)
    upper_bounds = np.array([*DURATION_BUCKETS_MS, math.inf])
    lower_bounds = np.array([0.0, *DURATION_BUCKETS_MS])
    below = np.where(index > 0, np.take_along_axis(cumulative, np.maximum(index - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(cumulative, index[..., None], -1)[..., 0] - below
    upper, lower = upper_bounds[index], lower_bounds[index]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * (rank - below) / inside
    value = np.where(index == len(DURATION_BUCKETS_MS), DURATION_BUCKETS_MS[-1], value)
    return np.where(total > 0, value, np.nan)


def fixed_sample_requests(p_base: float, p_canary: float, share: float, alpha: float = 0.05,
                          beta: float = 0.05) -> float:
    """Canary requests a single fixed-size one-sided test needs to tell ``p_canary`` from ``p_base``.

    The textbook normal-approximation sample size for two proportions with unequal allocation
    (Fleiss, Statistical Methods for Rates and Proportions, 3rd ed., 4.3): the base answers
    ``k = (1 - share) / share`` requests per canary request. At 1 % against 5 %, a 10 % share and
    alpha = beta = 0.05 it gives about 200 canary requests (the issue's reference: about 205).
    """
    if p_canary <= p_base:
        return math.inf
    k = (1.0 - share) / share
    z_alpha = _z(1.0 - alpha)
    z_beta = _z(1.0 - beta)
    pooled = (p_canary + k * p_base) / (1.0 + k)
    spread_null = math.sqrt(pooled * (1.0 - pooled) * (1.0 + 1.0 / k))
    spread_alt = math.sqrt(p_canary * (1.0 - p_canary) + p_base * (1.0 - p_base) / k)
    return (z_alpha * spread_null + z_beta * spread_alt) ** 2 / (p_canary - p_base) ** 2


def _z(probability: float) -> float:
    from statistics import NormalDist
    return NormalDist().inv_cdf(probability)
