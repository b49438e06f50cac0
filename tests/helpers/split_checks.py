"""How often a check of a random split fails when the router is right.

A router that sends each request to a subset at random by weight makes the counts of a sample
multinomial. A check that an interval around the observed share contains the weight fails a
correct router with the probability summed here exactly, over every outcome the sample can have
(binomial for one share, multinomial when several shares of one sample are checked together).
The tests that check random splits call this with their own settings and hold the result to
``MAX_FALSE_FAILURE``, so a setting cannot drift above it unnoticed; docs/testing.md lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

# A correct router may fail a check of a random split at most once in this many runs.
MAX_FALSE_FAILURE = 1e-4

# (successes, total) -> (low, high), in the same unit as the expected shares given below.
Interval = Callable[[int, int], tuple[float, float]]


def _log_factorials(n: int) -> list[float]:
    return [math.lgamma(i + 1) for i in range(n + 1)]


def _outcomes(n: int, parts: int) -> Sequence[tuple[int, ...]]:
    if parts == 1:
        return [(n,)]
    return [(first, *rest) for first in range(n + 1) for rest in _outcomes(n - first, parts - 1)]


def false_failure_rate(requests: int, true_shares: Mapping[str, float], interval: Interval,
                       checked: Mapping[str, float]) -> float:
    """P(some checked value lies outside its interval) for ``requests`` answers drawn at ``true_shares``.

    ``true_shares``: the router's probabilities (summing to 1, every subset that can answer).
    ``checked``: per subset, the value the test expects inside the interval, in the interval's
    unit (percent for traffic_probe, a fraction for the conformance test's own interval).
    """
    names = list(true_shares)
    probabilities = [true_shares[name] for name in names]
    if not math.isclose(sum(probabilities), 1.0, abs_tol=1e-9):
        raise ValueError(f"true shares {dict(true_shares)} do not sum to 1")
    log_fact = _log_factorials(requests)
    failed = 0.0
    for counts in _outcomes(requests, len(names)):
        log_p = log_fact[requests]
        possible = True
        for count, probability in zip(counts, probabilities, strict=True):
            if probability == 0:
                possible = possible and count == 0
                continue
            log_p += count * math.log(probability) - log_fact[count]
        if not possible:
            continue
        for name, count in zip(names, counts, strict=True):
            if name in checked:
                low, high = interval(count, requests)
                if not low <= checked[name] <= high:
                    failed += math.exp(log_p)
                    break
    return failed


def no_answer_rate(requests: float, share: float) -> float:
    """P(a subset with ``share`` answers none of ``requests`` requests): 'it served at least once' checks."""
    return (1 - share) ** requests
