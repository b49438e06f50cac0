"""The statistics of canary_analysis (plugins/module_utils/_logic/evidence.py).

Expected values come from exact computation, independent of the code under test: binomial sums
in rational arithmetic, exact binomial and hypergeometric distributions summed over every
outcome, and, where the state space is too large (latency histograms over a release), seeded
simulation with bounds set so that a correct implementation fails by chance less than once in
10^4 (each threshold below says why).
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.evidence import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Budget,
    Check,
    Counts,
    auto_min_requests,
    binomial_lower_tail,
    binomial_upper_tail,
    evaluate,
    failing_parts,
    histogram_quantile,
    judge,
    judge_errors,
    lower_bound,
    normalise_buckets,
    ratio_part,
    share_part,
    upper_bound,
)

pytestmark = pytest.mark.unit

ERRORS = Check("request-success-rate", min=99.0, tolerance_percent=100.0, negligible_percent=0.1)
LATENCY = Check("request-duration", max=500.0, tolerance_percent=20.0, tolerance_ms=25.0, negligible_percent=0.5)
INF = math.inf


# --------------------------------------------------------------------------- exact references


def exact_pmf(k: int, n: int, p: Fraction) -> Fraction:
    return Fraction(math.comb(n, k)) * p ** k * (1 - p) ** (n - k)


def pmf(k: int, n: int, p: float) -> float:
    if p <= 0:
        return 1.0 if k == 0 else 0.0
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def likely(n: int, p: float) -> range:
    """The outcomes of Binomial(n, p) that carry all but about 1e-11 of the probability (mean +- 7 sd
    and 10 more on each side: Chernoff's bound puts less than 1e-11 beyond)."""
    spread = 7 * math.sqrt(n * p * (1 - p)) + 10
    return range(max(0, math.floor(n * p - spread)), min(n, math.ceil(n * p + spread)) + 1)


@pytest.mark.parametrize("successes,trials,probability", [
    (0, 10, Fraction(1, 2)), (1, 1, Fraction(1, 3)), (5, 10, Fraction(1, 2)), (9, 10, Fraction(1, 2)),
    (3, 40, Fraction(1, 10)), (30, 40, Fraction(3, 5)), (41, 40, Fraction(1, 2)), (7, 200, Fraction(1, 100)),
    (50, 1000, Fraction(1, 100)), (2, 1000, Fraction(1, 100)), (1, 1000, Fraction(1, 10000)),
])
def test_binomial_tails_match_exact_arithmetic(successes, trials, probability):
    upper = sum((exact_pmf(k, trials, probability) for k in range(max(successes, 0), trials + 1)), Fraction(0))
    lower = sum((exact_pmf(k, trials, probability) for k in range(0, min(successes, trials) + 1)), Fraction(0))
    assert binomial_upper_tail(successes, trials, float(probability)) == pytest.approx(float(upper), rel=1e-9,
                                                                                       abs=1e-300)
    assert binomial_lower_tail(successes, trials, float(probability)) == pytest.approx(float(lower), rel=1e-9,
                                                                                       abs=1e-300)


@pytest.mark.parametrize("trials", [10, 40, 150])
@pytest.mark.parametrize("level", [0.05, 0.001])
def test_clopper_pearson_bounds_cover_exactly_as_promised(trials, level):
    """For every true rate, the chance that the bound lies on the wrong side of it is at most ``level``
    (exact sum over all outcomes), and each bound is tight: at the bound the tail is exactly ``level``."""
    uppers = [upper_bound(k, trials, level) for k in range(trials + 1)]
    lowers = [lower_bound(k, trials, level) for k in range(trials + 1)]
    for step in range(1, 400):
        p = step / 400
        assert sum(pmf(k, trials, p) for k in range(trials + 1) if uppers[k] < p) <= level * (1 + 1e-9)
        assert sum(pmf(k, trials, p) for k in range(trials + 1) if lowers[k] > p) <= level * (1 + 1e-9)
    for k in (0, 1, trials // 2, trials - 1):
        assert float(sum((exact_pmf(j, trials, Fraction(uppers[k])) for j in range(k + 1)), Fraction(0))) \
            == pytest.approx(level, rel=1e-6)
    assert upper_bound(0, trials, level) == pytest.approx(1 - level ** (1 / trials), rel=1e-12)
    # The case: 0 errors in 30 requests; the 95% upper bound is 9.5%, no pass against 1%.
    assert upper_bound(0, 30, 0.05) == pytest.approx(0.0950, abs=5e-5)


def hypergeometric_upper_tail(k: int, canary: int, base: int, together: int) -> float:
    """P(at least k of ``together`` bad requests fall on the canary) when canary and base are equal:
    the bad requests are a uniform draw from all requests (exact, binomial coefficients)."""
    total = math.comb(canary + base, together)
    return sum(math.comb(canary, j) * math.comb(base, together - j)
               for j in range(k, min(canary, together) + 1)) / total


@pytest.mark.parametrize("canary_n,base_n,rate", [(300, 2700, 0.01), (1000, 1000, 0.02), (2000, 8000, 0.005)])
def test_comparison_fails_equal_versions_at_most_alpha_exactly(canary_n, base_n, rate):
    """Exact false-fail chance of the comparison for binomial requests with equal error rates:
    over the total of errors (binomial) and its split (hypergeometric given the total)."""
    level = 0.001
    chance = 0.0
    for together in likely(canary_n + base_n, rate):
        weight = pmf(together, canary_n + base_n, rate)
        first_fail = next((k for k in range(together + 1)
                           if ratio_part("base", k, canary_n, together - k, base_n, 2.0, 0.001, level, 0.05,
                                         "errors").verdict == FAIL), None)
        if first_fail is not None:
            chance += weight * hypergeometric_upper_tail(first_fail, canary_n, base_n, together)
    assert chance <= level


def poisson_likely(mean: float) -> range:
    spread = 7 * math.sqrt(mean) + 10
    return range(max(0, math.floor(mean - spread)), math.ceil(mean + spread) + 1)


def poisson_pmf(k: int, mean: float) -> float:
    return math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))


def comparison_fail_chance(check: Check, canary_n: int, base_n: int, canary_rate: float, base_rate: float,
                           level: float) -> float:
    """Exact chance that the error comparison fails at ``level`` for Poisson error counts: over the
    total of errors (Poisson) and the canary's share of it (binomial given the total)."""
    canary_mean, base_mean = canary_n * canary_rate, base_n * base_rate
    share = canary_mean / (canary_mean + base_mean)
    chance = 0.0
    for together in poisson_likely(canary_mean + base_mean):
        # More of the errors on the canary only moves the bounds up: the fails are k >= the first (bisection).
        low, high = -1, together + 1
        while high - low > 1:
            middle = (low + high) // 2
            verdict = judge_errors(check, Counts(base_n, together - middle), Counts(canary_n, middle), level, 0.05,
                                   1).verdict
            low, high = (low, middle) if verdict == FAIL else (middle, high)
        chance += poisson_pmf(together, canary_mean + base_mean) * sum(
            pmf(k, together, share) for k in likely(together, share) if k >= high)
    return chance


@pytest.mark.parametrize("canary_n,base_n,base_rate", [(3000, 27000, 0.01), (2000, 2000, 0.02)])
def test_the_error_comparison_fails_a_canary_a_fifth_worse_than_its_base_at_most_alpha_exactly(
        canary_n, base_n, base_rate):
    """By default the error comparison fails only a canary shown more than 20 % worse than its base
    (fail_percent): one exactly 20 % worse is failed at most alpha of the time, however many requests
    are seen. Failing every canary shown worse at all (fail_percent 0, the rule before) fails it more
    than five times as often here, and ever more often the more requests there are."""
    compare_only = Check("request-success-rate", tolerance_percent=100.0, negligible_percent=0.1)
    assert compare_only.fail_ratio == pytest.approx(1.2)
    level = 0.001
    chance = comparison_fail_chance(compare_only, canary_n, base_n, 1.2 * base_rate, base_rate, level)
    assert chance <= level
    at_the_base = Check("request-success-rate", tolerance_percent=100.0, negligible_percent=0.1, fail_percent=0.0)
    before = comparison_fail_chance(at_the_base, canary_n, base_n, 1.2 * base_rate, base_rate, level)
    assert before > 5 * level


def test_fail_percent_defaults_and_its_ratio_in_the_bounds():
    assert Check("request-success-rate", tolerance_percent=100.0).fail_ratio == pytest.approx(1.2)
    assert Check("request-success-rate", tolerance_percent=10.0).fail_ratio == pytest.approx(1.1)  # the tolerance
    assert Check("request-success-rate", tolerance_percent=100.0, fail_percent=50).fail_ratio == pytest.approx(1.5)
    assert Check("request-duration", tolerance_percent=20.0).fail_ratio == pytest.approx(2.0)
    # Exact bounds: 16 errors in 1,000 against 45 in 9,000 show the ratio above 1.27 at the only look.
    shown = judge(ERRORS, Counts(9000, 45), Counts(1000, 16), Budget(0.01, 0.05, 1, 1), 4, project=False)
    assert shown.verdict == FAIL and shown.bounds["base"]["fail_ratio"] == pytest.approx(1.2)
    stricter = Check("request-success-rate", min=99.0, tolerance_percent=100.0, negligible_percent=0.1,
                     fail_percent=30)
    held = judge(stricter, Counts(9000, 45), Counts(1000, 16), Budget(0.01, 0.05, 1, 1), 4, project=False)
    assert held.verdict == INCONCLUSIVE and held.bounds["base"]["ratio_lower"] < 1.3


@pytest.mark.parametrize("canary_n,base_n,base_rate", [(300, 2700, 0.01), (500, 500, 0.02)])
def test_comparison_passes_a_canary_twice_as_bad_at_most_beta_exactly(canary_n, base_n, base_rate):
    level = 0.05
    canary_rate = 2 * base_rate
    chance = 0.0
    for canary_bad in likely(canary_n, canary_rate):
        for base_bad in likely(base_n, base_rate):
            if ratio_part("base", canary_bad, canary_n, base_bad, base_n, 2.0, 0.001, 0.001, level,
                          "errors").verdict == PASS:
                chance += pmf(canary_bad, canary_n, canary_rate) * pmf(base_bad, base_n, base_rate)
    assert chance <= level


# --------------------------------------------------------------------------- the release's budget


# A release as the benchmark plans it: three steps (10 %, 30 %, 50 % to the canary), three looks
# each, evidence accumulating within a step; the service answers 20,000 requests between looks.
STEPS = (0.1, 0.3, 0.5)
LOOKS_PER_STEP = 3
PER_LOOK = 10000


def release_looks():
    look = 0
    for share in STEPS:
        for within in range(1, LOOKS_PER_STEP + 1):
            look += 1
            total = PER_LOOK * within
            yield look, round(total * share), total - round(total * share)


def exact_error_verdict_chance(check: Check, canary_n: int, base_n: int, canary_rate: float, base_rate: float,
                               budget: Budget, verdict: str) -> float:
    """P(the success-rate check gives ``verdict``) over all outcomes of two binomials (exact sum).

    For a given count of base errors, more canary errors never turn a fail into a pass: the fail
    region is ``canary errors >= k`` and the pass region ``<= k'``, so the sum over the canary's
    errors is a binomial tail at a threshold. The thresholds are found by walking from the last
    one (they move little from one base count to the next), each step checked by ``judge``."""

    def outcome(canary_bad: int, base_bad: int) -> str:
        return judge(check, Counts(base_n, base_bad), Counts(canary_n, canary_bad), budget, parts=4,
                     project=False).verdict

    chance = 0.0
    threshold = round(canary_n * canary_rate)
    for base_bad in likely(base_n, base_rate):
        if verdict == FAIL:  # smallest canary count that fails
            while threshold > 0 and outcome(threshold - 1, base_bad) == FAIL:
                threshold -= 1
            while threshold <= canary_n and outcome(threshold, base_bad) != FAIL:
                threshold += 1
            tail = binomial_upper_tail(threshold, canary_n, canary_rate)
        else:  # largest canary count that passes (-1: none)
            while threshold >= 0 and outcome(threshold, base_bad) != PASS:
                threshold -= 1
            while threshold < canary_n and outcome(threshold + 1, base_bad) == PASS:
                threshold += 1
            tail = binomial_lower_tail(threshold, canary_n, canary_rate)
        chance += pmf(base_bad, base_n, base_rate) * tail
    return chance


@pytest.mark.parametrize("base_rate,check", [
    (0.0, ERRORS), (0.002, ERRORS), (0.005, ERRORS),
    # Above 0.5 % the absolute limit is lowered so that the base meets it with room (as the issue's
    # goal); 1 % and 2 % take 20-40 s each here and are left to the benchmark.
])
def test_a_healthy_canary_is_rolled_back_at_most_alpha_over_the_release(base_rate, check):
    """Union over the release's nine looks of the exact per-look chance that the success-rate check
    fails a canary exactly as good as its base: at most its half of the release's 1 % (the other
    half is the latency check's)."""
    looks = LOOKS_PER_STEP * len(STEPS)
    total = 0.0
    for look, canary_n, base_n in release_looks():
        if base_rate == 0.0:
            continue  # no errors: nothing can fail (checked below)
        total += exact_error_verdict_chance(check, canary_n, base_n, base_rate, base_rate,
                                            Budget(0.01, 0.05, look, looks), FAIL)
    assert total <= 0.005
    if base_rate == 0.0:
        assert judge(check, Counts(18000, 0), Counts(2000, 0), Budget(0.01, 0.05, 1, looks), 4).verdict != FAIL


@pytest.mark.parametrize("base_rate,check", [(0.002, ERRORS), (0.005, ERRORS)])
def test_a_canary_with_twice_the_errors_passes_a_step_at_most_beta(base_rate, check):
    """Union over the looks of each step of the exact chance that a canary with twice the base's
    error rate passes: at most 5 % (a step that does not pass holds the release)."""
    looks = LOOKS_PER_STEP * len(STEPS)
    per_step: dict[int, float] = {}
    for look, canary_n, base_n in release_looks():
        step = (look - 1) // LOOKS_PER_STEP
        per_step[step] = per_step.get(step, 0.0) + exact_error_verdict_chance(
            check, canary_n, base_n, 2 * base_rate, base_rate, Budget(0.01, 0.05, look, looks), PASS)
    assert max(per_step.values()) <= 0.05


def test_spending_splits_alpha_over_looks_and_failing_parts():
    budget = Budget(alpha=0.01, beta=0.05, look=2, looks=4)
    assert budget.alpha_look == pytest.approx(0.0025) and budget.beta_look == pytest.approx(0.0125)
    assert failing_parts([ERRORS, LATENCY]) == 4
    assert failing_parts([Check("request-success-rate", min=99.0, compare=False), LATENCY]) == 3
    assert failing_parts([Check("custom", query="up", max=1)]) == 1
    for bad in ({"look": 0, "looks": 1}, {"look": 3, "looks": 2}, {"alpha": 0}, {"beta": 1}):
        with pytest.raises(ValueError):
            Budget(**bad)


def test_a_look_spends_less_than_one_look_alone():
    # The same evidence that fails at the only look is not enough at the first of nine looks.
    one = judge(ERRORS, Counts(9000, 45), Counts(1000, 16), Budget(0.01, 0.05, 1, 1), 4, project=False)
    nine = judge(ERRORS, Counts(9000, 45), Counts(1000, 16), Budget(0.01, 0.05, 1, 9), 4, project=False)
    assert one.verdict == FAIL and nine.verdict == INCONCLUSIVE
    assert one.bounds["base"]["lower_confidence"] < nine.bounds["base"]["lower_confidence"]


def test_min_requests_follows_from_the_power():
    # A canary without errors passes min 99 once (1 - 0.99)^n <= beta: n >= ln(0.05)/ln(0.99) = 298.07.
    assert auto_min_requests(ERRORS, 0.05) == 299
    assert auto_min_requests(LATENCY, 0.05) == 299  # p99: at most 1 % slower than max
    assert auto_min_requests(ERRORS, 0.05 / 3) == math.ceil(math.log(0.05 / 3) / math.log(0.99))
    clean = judge(ERRORS, Counts(100000, 0), Counts(298, 0), Budget(0.01, 0.05), 4, project=False)
    assert clean.verdict == INCONCLUSIVE and clean.min_requests == 299
    assert judge(ERRORS, Counts(100000, 0), Counts(4000, 0), Budget(0.01, 0.05), 4).verdict == PASS


# --------------------------------------------------------------------------- verdicts on bounds


def test_absolute_limit_three_ways():
    limit = 0.01
    assert share_part("limit", 0, 0, 400, limit, 0.001, 0.05, "e").verdict == PASS
    assert share_part("limit", 0, 0, 200, limit, 0.001, 0.05, "e").verdict == INCONCLUSIVE  # 1.5 % upper bound
    assert share_part("limit", 12, 12, 200, limit, 0.001, 0.05, "e").verdict == FAIL
    # 2 errors in 150 (1.3 %): the point estimate is above 1 %, the bounds are not - inconclusive.
    assert share_part("limit", 2, 2, 150, limit, 0.001, 0.05, "e").verdict == INCONCLUSIVE


def test_comparison_three_ways_and_the_negligible_rate():
    # No errors anywhere: the ratio is unknown; only the negligible rate can pass the canary.
    assert ratio_part("base", 0, 1000, 0, 9000, 2.0, 0.001, 0.001, 0.05, "e").verdict == INCONCLUSIVE
    assert ratio_part("base", 0, 4000, 0, 36000, 2.0, 0.001, 0.001, 0.05, "e").verdict == PASS
    assert ratio_part("base", 0, 4000, 0, 36000, 2.0, 0.0, 0.001, 0.05, "e").verdict == INCONCLUSIVE
    # Five times the base's errors.
    assert ratio_part("base", 50, 1000, 90, 9000, 2.0, 0.001, 0.001, 0.05, "e").verdict == FAIL
    # Equal rates with plenty of errors: the ratio's upper bound is below 2.
    assert ratio_part("base", 100, 10000, 1000, 100000, 2.0, 0.001, 0.001, 0.05, "e").verdict == PASS


def test_more_requests_settle_an_inconclusive_check_at_the_rates_seen():
    base, canary = Counts(9000, 45), Counts(1000, 5)
    budget = Budget(0.01, 0.05, 1, 3)
    result = judge(ERRORS, base, canary, budget, 4)
    assert result.verdict == INCONCLUSIVE and result.more_requests > 0
    after = 1 + result.more_requests / 1000
    assert judge(ERRORS, base.scaled(after), canary.scaled(after), budget, 4, project=False).verdict == PASS
    short = 1 + 0.9 * result.more_requests / 1000
    assert judge(ERRORS, base.scaled(short), canary.scaled(short), budget, 4, project=False).verdict == INCONCLUSIVE
    assert judge(ERRORS, base, Counts(0, 0), budget, 4).more_requests == result.min_requests


# --------------------------------------------------------------------------- latency on counts


# Istio's default buckets (ms) and two latency distributions as cumulative shares per boundary.
BOUNDARIES = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, INF)


def shares(tail: dict[float, float]) -> list[tuple[float, float]]:
    """Cumulative shares per boundary from the share of requests *above* the boundaries of the tail."""
    return [(le, 1.0 - tail.get(le, 1.0 if le < min(tail) else 0.0)) for le in BOUNDARIES]


# p99 just above 100 ms (1.05 % of requests slower than 100 ms): the noisy case.
NEAR_BOUNDARY = shares({50: 0.2, 100: 0.0105, 250: 0.002, 500: 0.0002, 1000: 0.0})
# The same service twice as slow: every request takes twice as long, so the share above a boundary
# b is the base's share above b/2 (above 125 ms read linearly inside the base's (100, 250] bucket).
TWICE_AS_SLOW = shares({50: 0.6, 100: 0.2, 250: 0.0105 - 0.0085 * 25 / 150, 500: 0.002, 1000: 0.0002, 2500: 0.0})


def histogram(requests: int, cumulative: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    return tuple((le, requests * share) for le, share in cumulative)


def test_histogram_quantile_reads_as_prometheus_does():
    # Prometheus: linear inside the bucket; rank 99 of 100 lies 4 of 5 requests into (100, 250].
    buckets = normalise_buckets([(50, 80), (100, 95), (250, 100), (INF, 100)])
    assert histogram_quantile(0.99, buckets) == pytest.approx(100 + 150 * 4 / 5)
    assert histogram_quantile(0.5, buckets) == pytest.approx(50 * 50 / 80)
    # In the +Inf bucket: the last finite boundary.
    assert histogram_quantile(0.99, normalise_buckets([(100, 90), (INF, 100)])) == 100


def test_latency_result_names_the_boundary_and_the_tolerance_finer_than_the_buckets():
    base, canary = Counts(buckets=histogram(90000, NEAR_BOUNDARY)), Counts(buckets=histogram(10000, NEAR_BOUNDARY))
    result = judge(LATENCY, base, canary, Budget(0.01, 0.05), 4)
    comparison = result.bounds["base"]
    # p99 is in (100, 250]: 1.05 % above 100 ms, 0.2 % above 250 ms; linear inside the bucket.
    p99 = 100 + 150 * (0.99 - 0.9895) / (0.998 - 0.9895)
    assert comparison["p99_ms"] == pytest.approx(p99, abs=0.05)
    assert comparison["wanted_ms"] == pytest.approx(p99 + 25, abs=0.05)  # max(20 % of p99, 25 ms)
    assert comparison["boundary_ms"] == 100  # the last boundary at or below p99 + tolerance
    assert any("finer than the histogram" in note and "boundary 100 ms" in note for note in result.notes)
    assert result.bounds["limit"]["pass_boundary_ms"] == 500 and result.verdict == PASS


@pytest.mark.parametrize("canary_share", [0.1, 0.5])
def test_twice_the_latency_fails_the_comparison_alone_at_any_share(canary_share):
    """Without a max, the comparison alone catches a canary twice as slow, also when it carries half
    the traffic (its requests do not move the boundary: the p99 is the base's)."""
    check = Check("request-duration", tolerance_percent=20.0, tolerance_ms=25.0, negligible_percent=0.5)
    base = Counts(buckets=histogram(round(20000 * (1 - canary_share)), NEAR_BOUNDARY))
    canary = Counts(buckets=histogram(round(20000 * canary_share), TWICE_AS_SLOW))
    result = judge(check, base, canary, Budget(0.01, 0.05), 2)
    assert result.verdict == FAIL and result.bounds["base"]["boundary_ms"] == 100
    same = judge(check, base, Counts(buckets=histogram(round(20000 * canary_share), NEAR_BOUNDARY)),
                 Budget(0.01, 0.05), 2)
    assert same.verdict == PASS


def test_max_between_boundaries_is_said_and_judged_conservatively():
    check = Check("request-duration", max=300.0, compare=False)
    canary = Counts(buckets=histogram(10000, NEAR_BOUNDARY))
    result = judge(check, Counts(), canary, Budget(0.01, 0.05), 1)
    limit = result.bounds["limit"]
    assert (limit["pass_boundary_ms"], limit["fail_boundary_ms"]) == (250, 500)
    assert any("not a bucket boundary" in note for note in result.notes)


def _binomial(rng: random.Random, trials: int, probability: float) -> int:
    """A Binomial(trials, probability) draw by geometric skips (exact; fast for small probabilities)."""
    if probability <= 0:
        return 0
    if probability >= 1:
        return trials
    log_q = math.log1p(-probability)
    count, position = 0, -1
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position >= trials:
            return count
        count += 1


def draw_histogram(rng: random.Random, requests: int, cumulative: list[tuple[float, float]]
                   ) -> tuple[tuple[float, float], ...]:
    """A histogram of ``requests`` drawn from ``cumulative``: the counts above the tail boundaries
    (share above <= 5 %) are drawn exactly, one conditional binomial per bucket from the top; the
    bulk below them is filled with its expected counts, which no check reads (p99 and every
    comparison lie in the tail)."""
    above_share = {le: 1.0 - share for le, share in cumulative}
    finite = [le for le, _share in cumulative if not math.isinf(le)]
    above: dict[float, int] = {}
    previous_share, previous_count = 0.0, 0
    for le in reversed(finite):
        share = above_share[le]
        if share > 0.05:
            break
        step = (share - previous_share) / (1.0 - previous_share)
        previous_count += _binomial(rng, requests - previous_count, step)
        previous_share = share
        above[le] = previous_count
    counts = []
    ceiling = requests - max(above.values(), default=0)
    for le in finite:
        expected = min(ceiling, round(requests * (1 - above_share[le])))
        counts.append((le, requests - above[le] if le in above else expected))
    counts.append((INF, requests))
    return tuple(counts)


def latency_release_fails(rng: random.Random, base_shape, canary_shape, check: Check, per_look: int) -> str:
    """The first decisive verdict of the latency check over the release's looks (or inconclusive)."""
    looks = LOOKS_PER_STEP * len(STEPS)
    look = 0
    for share in STEPS:
        base_so_far, canary_so_far = None, None
        for _within in range(LOOKS_PER_STEP):
            look += 1
            canary_n = round(per_look * share)
            base_new = draw_histogram(rng, per_look - canary_n, base_shape)
            canary_new = draw_histogram(rng, canary_n, canary_shape)
            base_so_far = base_new if base_so_far is None else tuple(
                (le, a + b) for (le, a), (_le, b) in zip(base_so_far, base_new, strict=True))
            canary_so_far = canary_new if canary_so_far is None else tuple(
                (le, a + b) for (le, a), (_le, b) in zip(canary_so_far, canary_new, strict=True))
            verdict = judge(check, Counts(buckets=base_so_far), Counts(buckets=canary_so_far),
                            Budget(0.01, 0.05, look, looks), 4, project=False).verdict
            if verdict == FAIL:
                return FAIL
            if verdict == PASS:
                break  # the step passed: on to the next
        else:
            return INCONCLUSIVE
    return PASS


@pytest.mark.parametrize("check", [LATENCY, Check("request-duration", max=500.0, tolerance_percent=0.0,
                                                  tolerance_ms=0.0, negligible_percent=0.5)])
def test_equal_latency_near_a_bucket_boundary_is_not_rolled_back(check):
    """Seeded: 300 releases of a canary with the base's latency, p99 just above a boundary. The
    design bound is 0.5 % (the latency check's half of alpha); at that rate more than 9 of 300 has
    a chance of 4e-6. The old p99 rule failed 7 of 30 single looks."""
    rng = random.Random(2022)
    outcomes = [latency_release_fails(rng, NEAR_BOUNDARY, NEAR_BOUNDARY, check, 20000) for _run in range(300)]
    assert outcomes.count(FAIL) <= 9
    assert outcomes.count(PASS) >= 270  # and the healthy canary does get through


def test_twice_the_latency_is_caught():
    """Seeded: 200 releases of a canary twice as slow; at the design bound (5 %) more than 30 of 200
    promoted has a chance below 1e-4."""
    rng = random.Random(7)
    outcomes = [latency_release_fails(rng, NEAR_BOUNDARY, TWICE_AS_SLOW, LATENCY, 20000) for _run in range(200)]
    assert outcomes.count(PASS) <= 30 and outcomes.count(FAIL) >= 150


def test_evaluate_combines_checks_and_reports_the_budget():
    base = Counts(90000, 450, histogram(90000, NEAR_BOUNDARY))
    canary = Counts(10000, 300, histogram(10000, TWICE_AS_SLOW))
    decision = evaluate([ERRORS, LATENCY, Check("custom", query="up", max=1)], base, canary,
                        Budget(0.01, 0.05, 2, 6))
    assert decision.verdict == FAIL and [c.verdict for c in decision.checks] == [FAIL, FAIL]
    assert decision.alpha == pytest.approx(0.01 / 6) and decision.look == 2 and decision.looks == 6
    assert decision.as_dict()["checks"][0]["bounds"]["limit"]["lower"] > 0.01


# A canary somewhat slower than the base, within what the comparison tolerates: 1.7 times the base's
# share of requests slower than 100 ms (1.785 % against 1.05 %; at most LATENCY_RATIO = 2 passes).
SLOWER_WITHIN = shares({50: 0.3, 100: 0.0105 * 1.7, 250: 0.0034, 500: 0.0003, 1000: 0.0})


def test_the_latency_comparison_fails_only_beyond_what_it_tolerates():
    """Counts seen in the decision benchmark: a healthy canary at 1,000 req/s with 28 of 6,069 requests
    slower than 250 ms against the base's 106 of 54,266 (the base's p99 near 225 ms: 250 ms is the
    boundary). The ratio is shown above 1 but not above 2, the share of slow requests the comparison
    tolerates: no fail (it was rolled back before)."""
    check = Check("request-duration", tolerance_percent=20.0, tolerance_ms=25.0, negligible_percent=0.5)
    top = [(le, 0) for le in BOUNDARIES if le > 250]

    def counts(total: int, slow: int) -> Counts:
        buckets = [(le, total * 0.9) for le in BOUNDARIES if le < 100] + [(100, total * 0.95), (250, total - slow)]
        return Counts(buckets=tuple(buckets + [(le, total) for le, _zero in top]))

    result = judge(check, counts(54266, 106), counts(6069, 28), Budget(0.01, 0.05, 1, 15), 4)
    comparison = result.bounds["base"]
    assert comparison["boundary_ms"] == 250 and comparison["fail_ratio"] == 2.0
    assert 1.0 < comparison["ratio_lower"] < 2.0 < comparison["ratio_upper"]
    assert result.verdict == INCONCLUSIVE
    # Shown above twice the base's share, and the canary's p99 above 250 ms (150 of 6,069 slower): fails.
    assert judge(check, counts(54266, 106), counts(6069, 150), Budget(0.01, 0.05, 1, 15), 4).verdict == FAIL


def test_a_canary_slower_within_the_tolerance_is_not_rolled_back():
    """Seeded: 200 releases of a canary with 1.7 times the base's share of slow requests, 20,000
    requests per look. It is not bad (a pass tolerates twice the base's share); under the old rule
    (fail once shown above the base's share) most of these releases were rolled back. A fail needs
    the ratio shown above 2 at the look's alpha: the chance of more than 2 of 200 is below 1e-4."""
    rng = random.Random(11)
    outcomes = [latency_release_fails(rng, NEAR_BOUNDARY, SLOWER_WITHIN, LATENCY, 20000) for _run in range(200)]
    assert outcomes.count(FAIL) <= 2


def test_a_canary_whose_p99_is_within_the_boundary_is_not_failed_by_the_comparison():
    """The lab's healthy reviews-v2 on a loaded machine (a fresh-clone test run): canary p99 about
    243 ms, base about 58 ms, the demo's tolerance of 250 ms; 6 of 680 canary requests slower than
    250 ms, none of the base's 6,200 (ratio lower bound 2.53, as the run showed). The ratio is shown
    above 2, yet the canary's p99 is below 250 ms, within p99 + tolerance: not a fail (it was rolled
    back). The same canary with 5 % of its requests slower than 250 ms (p99 beyond the boundary) fails."""
    check = Check("request-duration", max=500.0, tolerance_ms=250.0, negligible_percent=1.0)
    top = [(le, 0) for le in BOUNDARIES if le > 250]
    base = Counts(buckets=tuple([(le, 6100) for le in BOUNDARIES if le <= 50] + [(100, 6200), (250, 6200)]
                                + [(le, 6200) for le, _zero in top]))

    def canary(slow: int) -> Counts:
        return Counts(buckets=tuple([(le, 500) for le in BOUNDARIES if le <= 50] + [(100, 600), (250, 680 - slow)]
                                    + [(le, 680) for le, _zero in top]))

    result = judge(check, base, canary(6), Budget(0.01, 0.05, 7, 24), 4)
    comparison = result.bounds["base"]
    assert comparison["boundary_ms"] == 250 and comparison["ratio_lower"] > 2.0
    assert comparison["canary_lower"] <= 0.01
    assert result.verdict == INCONCLUSIVE and "not shown above 250 ms" in result.reason
    assert judge(check, base, canary(34), Budget(0.01, 0.05, 7, 24), 4).verdict == FAIL
