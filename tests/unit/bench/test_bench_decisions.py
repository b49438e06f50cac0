"""The decision benchmark's simulator and peer rules (bench/decision_*.py) against exact computation.

Expected values come from exact sums (Poisson and binomial probabilities, dynamic programming over
the documented rules) or from hand-worked examples, never from the code under test. The seeded
simulations are compared with the exact values within Hoeffding's bound for 10^4 replications at
10^-4 (a correct simulator misses it with probability below 10^-4 whatever the seed).
"""

from __future__ import annotations

import copy
import math
import re
from statistics import NormalDist

import numpy as np
import pytest

from bench import decision_report, decision_rules, decisions, report
from bench.decision_sim import DURATION_BUCKETS_MS, Latency, Traffic, draw, fixed_sample_requests, histogram_quantile

pytestmark = pytest.mark.unit

REPLICATIONS = 10_000
# Hoeffding: P(|mean - p| >= t) <= 2 exp(-2 R t^2) = 1e-4.
HOEFFDING = math.sqrt(math.log(2 / 1e-4) / (2 * REPLICATIONS))


def poisson(k: int, mean: float) -> float:
    return math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) if mean > 0 else float(k == 0)


def binomial(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p ** k * (1 - p) ** (n - k)


def measurement_fails(mean: float, error_rate: float, condition) -> float:
    """P(one measurement fails): requests ~ Poisson(mean), errors ~ Binomial; no requests counts as failing."""
    total = poisson(0, mean)
    for n in range(1, int(mean + 12 * math.sqrt(mean) + 20)):
        weight = poisson(n, mean)
        total += weight * sum(binomial(x, n, error_rate) for x in range(n + 1) if not condition(n, x))
    return total


def telemetry(shares, plan, rate, error_rate, seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    traffic = Traffic(error_rate, Latency())
    return draw(rng, REPLICATIONS, shares, plan.slots, plan.scrapes, plan.scrape, rate, traffic, traffic)


# --------------------------------------------------------------------------- the simulator


def test_latency_buckets_follow_the_log_normal():
    latency = Latency(median_ms=40, sigma=0.65)
    probabilities = latency.bucket_probabilities()
    assert probabilities.shape == (len(DURATION_BUCKETS_MS) + 1,) and probabilities.sum() == pytest.approx(1.0)
    # P(40 ms < X <= 50 ms) = Phi(ln(50/40)/0.65) - Phi(0), by hand from the normal distribution.
    index = DURATION_BUCKETS_MS.index(50)
    expected = NormalDist().cdf(math.log(50 / 40) / 0.65) - NormalDist().cdf(math.log(25 / 40) / 0.65)
    assert probabilities[index] == pytest.approx(expected, rel=1e-9)
    assert latency.p99_ms == pytest.approx(40 * math.exp(0.65 * NormalDist().inv_cdf(0.99)))
    assert latency.scaled(2).p99_ms == pytest.approx(2 * latency.p99_ms)


def test_drawn_counts_have_the_planned_means():
    plan = decision_rules.Plan(interval=60, looks_per_step=2, scrape=10, flagger_threshold=2)
    data = telemetry((0.1, 0.5), plan, rate=100.0, error_rate=0.02, seed=7)
    # Each scrape: canary Poisson(100 x share x 10); the mean of 10^4 x 2 x 6 draws of Poisson(100) has sd 0.029.
    assert data.canary_requests[:, 0].mean() == pytest.approx(100.0, abs=0.2)
    assert data.canary_requests[:, 1].mean() == pytest.approx(500.0, abs=1.0)
    assert data.base_requests[:, 1].mean() == pytest.approx(500.0, abs=1.0)
    assert data.canary_errors.sum() / data.canary_requests.sum() == pytest.approx(0.02, abs=0.001)
    assert (data.canary_buckets.sum(axis=-1) == data.canary_requests).all()


def test_histogram_quantile_interpolates_as_prometheus_does():
    buckets = np.zeros(len(DURATION_BUCKETS_MS) + 1, dtype=int)
    buckets[DURATION_BUCKETS_MS.index(50)] = 50   # (25, 50]
    buckets[DURATION_BUCKETS_MS.index(100)] = 49  # (50, 100]
    buckets[DURATION_BUCKETS_MS.index(250)] = 1   # (100, 250]
    # rank 99 of 100: in (50, 100], 49 of its 49 requests -> 50 + 50 x 49/49 = 100.
    assert histogram_quantile(0.99, buckets) == pytest.approx(100.0)
    # rank 50: the last request of (25, 50] -> 50.
    assert histogram_quantile(0.5, buckets) == pytest.approx(50.0)
    in_inf = np.zeros_like(buckets)
    in_inf[-1] = 10
    assert histogram_quantile(0.99, in_inf) == DURATION_BUCKETS_MS[-1]
    assert math.isnan(histogram_quantile(0.99, np.zeros_like(buckets)))


def test_fixed_sample_minimum_is_the_issues_reference():
    # Issue #22: "about 205 canary requests at a 10% share to tell 5% from 1% errors at alpha = beta = 0.05".
    assert 195 <= fixed_sample_requests(0.01, 0.05, 0.10) <= 210
    assert fixed_sample_requests(0.01, 0.01, 0.10) == math.inf


# --------------------------------------------------------------------------- Argo Rollouts


def test_argo_promotes_as_often_as_the_exact_binomial_sums_say():
    plan = decision_rules.Plan(interval=60, looks_per_step=4, scrape=10, argo_failure_limit=2, flagger_threshold=4)
    limits = decision_rules.Limits(min_success=99.0, latency=False)
    shares, rate, error_rate = (0.1, 0.5), 60.0, 0.008
    data = telemetry(shares, plan, rate, error_rate, seed=11)
    promoted = np.mean(decision_rules.argo(data, limits, plan).decision == decision_rules.PROMOTE)

    def condition(n, x):  # successCondition: result[0] >= 0.99 on the last scrape's ratio
        return 1.0 - x / n >= 0.99

    # Failed measurements are independent: the run survives with at most failureLimit of them.
    # (Five scrapes in a row without requests - an error run - has probability below e^-150 here.)
    fail = [measurement_fails(rate * share * plan.scrape, error_rate, condition) for share in shares]
    distribution = [1.0]
    for share_fail in fail:
        for _look in range(plan.looks_per_step):
            distribution = [(distribution[k] if k < len(distribution) else 0) * (1 - share_fail)
                            + (distribution[k - 1] * share_fail if k >= 1 else 0) for k in range(len(distribution) + 1)]
    exact = sum(distribution[: plan.argo_failure_limit + 1])
    assert 0.2 < exact < 0.8  # a rate that can be wrong in both directions
    assert promoted == pytest.approx(exact, abs=HOEFFDING)


# --------------------------------------------------------------------------- Flagger


def test_flagger_promotes_as_often_as_the_exact_dynamic_program_says():
    plan = decision_rules.Plan(interval=60, looks_per_step=3, scrape=10, flagger_threshold=3)
    limits = decision_rules.Limits(min_success=99.0, latency=False)
    shares, rate, error_rate = (0.1, 0.25, 0.5), 4.0, 0.01
    data = telemetry(shares, plan, rate, error_rate, seed=13)
    promoted = np.mean(decision_rules.flagger(data, limits, plan).decision == decision_rules.PROMOTE)

    def condition(n, x):  # thresholdRange.min 99 on the interval's success rate
        return 100.0 * (1.0 - x / n) >= 99.0

    fail = [measurement_fails(rate * share * plan.interval, error_rate, condition) for share in shares]
    # States: (step, failed checks so far). A pass moves to the next step, a fail adds one; threshold rolls back.
    alive = {0: 1.0}
    for share_fail in fail:
        passed_on: dict[int, float] = {}
        for _check in range(plan.flagger_threshold):
            still = {}
            for failures, weight in alive.items():
                passed_on[failures] = passed_on.get(failures, 0.0) + weight * (1 - share_fail)
                if failures + 1 < plan.flagger_threshold:
                    still[failures + 1] = still.get(failures + 1, 0.0) + weight * share_fail
            alive = still
        alive = passed_on
    exact = sum(alive.values())
    assert 0.2 < exact < 0.8
    assert promoted == pytest.approx(exact, abs=HOEFFDING)


# --------------------------------------------------------------------------- Kayenta


def test_mann_whitney_interval_by_hand():
    # canary 10..19, base 0..9: the 100 differences take the value d (1..19) min(d, 20 - d) times.
    # m = n = 10, z = 1.96: k = floor(50 - 1.96 sqrt(100 x 21 / 12)) = floor(24.07) = 24;
    # the 24th smallest difference is 7 (1+2+...+6 = 21 are below 7), the 24th largest 13, the median 10.
    canary = np.arange(10, 20, dtype=float)[None, :]
    base = np.arange(0, 10, dtype=float)[None, :]
    lower, upper, estimate, has_data = decision_rules.mann_whitney_interval(canary, base, 0.95)
    assert (lower[0], upper[0], estimate[0], has_data[0]) == (7.0, 13.0, 10.0, True)
    plan = decision_rules.Plan()
    high, _interval = decision_rules.kayenta_high(canary, base, plan)
    assert high[0]  # 7 > 0.25 x 10
    same, _interval = decision_rules.kayenta_high(base, base, plan)
    assert not same[0]
    # NaN (no data in a scrape) is left out; no data at all is NODATA.
    holes = np.array([[np.nan, *range(10, 20)]], dtype=float)
    assert decision_rules.mann_whitney_interval(holes, base, 0.95)[0][0] == 7.0
    empty = np.full((1, 3), np.nan)
    assert not decision_rules.mann_whitney_interval(empty, base, 0.95)[3][0]


def test_kayenta_rolls_back_a_clearly_worse_canary_and_keeps_a_healthy_one():
    plan = decision_rules.Plan(interval=60, looks_per_step=3, scrape=10, flagger_threshold=3)
    limits = decision_rules.Limits(min_success=96.0, latency=False)
    rng = np.random.Generator(np.random.PCG64(17))
    healthy = draw(rng, 2000, (0.5,), plan.slots, plan.scrapes, plan.scrape, 200.0,
                   Traffic(0.02, Latency()), Traffic(0.02, Latency()))
    worse = draw(rng, 2000, (0.5,), plan.slots, plan.scrapes, plan.scrape, 200.0,
                 Traffic(0.02, Latency()), Traffic(0.2, Latency()))
    assert np.mean(decision_rules.kayenta(worse, limits, plan).decision == decision_rules.ROLLBACK) == 1.0
    # Equal series: the 95% interval misses 0 on the high side about 2.5% of the time per judgment.
    assert np.mean(decision_rules.kayenta(healthy, limits, plan).decision == decision_rules.PROMOTE) > 0.8


# --------------------------------------------------------------------------- the release as the role runs it


def test_ours_walks_steps_and_numbers_looks_over_the_release():
    plan = decision_rules.Plan(interval=60, looks_per_step=3, scrape=10, flagger_threshold=3)
    limits = decision_rules.Limits(latency=False)
    data = telemetry((0.1, 0.5), plan, rate=10.0, error_rate=0.0, seed=19)
    data = type(data)(*(getattr(data, name)[:3] for name in (
        "base_requests", "base_errors", "base_buckets", "canary_requests", "canary_errors", "canary_buckets")))
    seen = []

    def judge(base_n, base_x, canary_n, canary_x, base_b, canary_b, limits_, look, looks):
        seen.append((canary_n, look, looks))
        return "pass" if canary_n >= 100 else "inconclusive"

    outcome = decision_rules.ours(data, limits, plan, judge)
    # Step 1 sees about 60 canary requests a look: pass at the 2nd look (about 120, accumulated); step 2
    # (about 300 a look) passes at once: promoted, 2 + 1 intervals, looks 1, 2, 3 of 6.
    per_slot = data.canary_requests.sum(axis=3).cumsum(axis=2)
    for replication in range(3):
        first = int(np.argmax(per_slot[replication, 0] >= 100)) + 1
        assert outcome.used[replication].tolist() == [first, 1]
    assert (outcome.decision == decision_rules.PROMOTE).all()
    assert [look for _n, look, _looks in seen[:3]] == list(range(1, len(seen[:3]) + 1))
    assert {looks for *_rest, looks in seen} == {6}

    outcome = decision_rules.ours(data, limits, plan, lambda *args: "inconclusive")
    assert (outcome.decision == decision_rules.HOLD).all() and (outcome.used == [3, 0]).all()
    outcome = decision_rules.ours(data, limits, plan, lambda *args: "fail")
    assert (outcome.decision == decision_rules.ROLLBACK).all() and (outcome.used == [1, 0]).all()


def test_ours_with_looks_planned_in_requests_looks_when_the_driver_would():
    from bench.decision_sim import BUCKETS, Telemetry
    plan = decision_rules.Plan(interval=60, looks_per_step=3, scrape=10, flagger_threshold=3, look_requests=30,
                               window=20)
    limits = decision_rules.Limits(latency=False)
    shape = (1, 2, plan.slots, plan.scrapes)
    # Every scrape: 5 canary and 45 base requests at the first step (10 %), 25 and 25 at the second (50 %).
    canary = np.broadcast_to(np.array([5, 25]).reshape(1, 2, 1, 1), shape).copy()
    base = np.broadcast_to(np.array([45, 25]).reshape(1, 2, 1, 1), shape).copy()
    buckets = np.zeros((*shape, BUCKETS), dtype=np.int32)
    data = Telemetry(base, np.zeros(shape, dtype=int), buckets, canary, np.zeros(shape, dtype=int), buckets)
    seen = []

    def judge(base_n, base_x, canary_n, canary_x, base_b, canary_b, limits_, look, looks):
        seen.append((canary_n, look))
        return "inconclusive"

    # By hand: look 1 with no rate after one window (20 s: 10 requests, 0.5/s); look 2 wants 60 requests
    # (120 s), the interval caps it at 20 + 60 = 80 s (40); look 3 wants 90 (180 s), capped at 140 s (70).
    outcome = decision_rules.ours(data, limits, plan, judge)
    assert seen == [(10, 1), (40, 2), (70, 3)] and outcome.decision.tolist() == [decision_rules.HOLD]

    def passes_at_35(base_n, base_x, canary_n, *rest):
        return "pass" if canary_n >= 35 else "inconclusive"

    # Step 1 passes at 80 s (40 requests); the service's 400 requests in 80 s at 50 % give the canary
    # 2.5/s: 30 requests in 12 s, one window at the earliest: 20 s, 50 requests, pass, promote.
    outcome = decision_rules.ours(data, limits, plan, passes_at_35)
    assert outcome.decision.tolist() == [decision_rules.PROMOTE] and outcome.used.tolist() == [[2, 1]]
    assert (outcome.seconds.tolist(), outcome.requests.tolist(), outcome.least_pass) == ([100.0], [90.0], 40)


# --------------------------------------------------------------------------- ours: the fast bounds


def test_fast_bounds_are_evidences_bounds_and_give_its_verdicts():
    from bench import decision_ours
    ev = decision_ours.evidence()
    for bad, total, level in [(0, 50, 0.01), (1, 50, 0.01), (3, 200, 0.0033), (30, 5000, 0.05), (199, 200, 0.001),
                              (7, 60000, 0.000333), (450, 60000, 0.00167)]:
        expected_upper, expected_lower = ev.upper_bound(bad, total, level), ev.lower_bound(bad, total, level)
        assert decision_ours.upper_bound(bad, total, level) == pytest.approx(expected_upper, rel=1e-7, abs=1e-12)
        assert decision_ours.lower_bound(bad, total, level) == pytest.approx(expected_lower, rel=1e-7, abs=1e-12)
    rng = np.random.default_rng(23)
    limits = decision_rules.Limits()
    cases = []
    for _case in range(60):
        n = int(rng.choice([60, 600, 6000]))
        error_rate, factor, slower = rng.choice([0.0, 0.005, 0.02]), rng.choice([1, 2, 5]), rng.choice([1.0, 2.0])
        cases.append((9 * n, int(rng.binomial(9 * n, error_rate)), n, int(rng.binomial(n, error_rate * factor)),
                      rng.multinomial(9 * n, Latency().bucket_probabilities()),
                      rng.multinomial(n, Latency().scaled(slower).bucket_probabilities()),
                      limits, int(rng.integers(1, 10)), 9))
    exact = [decision_ours.judge(*case) for case in cases]
    with decision_ours.fast_bounds():
        fast = [decision_ours.judge(*case) for case in cases]
    assert fast == exact
    assert set(exact) == {"pass", "fail", "inconclusive"}


# --------------------------------------------------------------------------- the report


NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _figures(text: str) -> set[str]:
    static = set()
    for name in decision_report.TEMPLATE_FILES.values():
        static |= set(NUMBER.findall((report.TEMPLATES / name).read_text()))
    return set(NUMBER.findall(text)) - static


def _results() -> dict:
    plan = decision_rules.Plan()
    rows = []
    for scenario in (decisions.Scenario(0.01, 1000.0), decisions.Scenario(0.01, 1000.0, error_factor=5.0),
                     decisions.Scenario(0.01, 1000.0, error_factor=1.5)):
        rows.append(decisions.run_scenario(scenario, plan, 200, lambda *args: "pass" if args[2] > 3000 else
                                           "inconclusive", which=("ours", "flagger", "argo")))
        rows[-1]["rules"]["kayenta"] = dict(rows[-1]["rules"]["argo"], promote=0.123, rollback=0.877)
    e2e_row = {**{key: rows[0][key] for key in ("scenario", "kind", "error_factor", "latency_factor", "base_error",
                                                "rate", "steps")},
               "replications": 4, "e2e": {"promote": 3, "rollback": 1, "hold": 0}, "same_decision_as_pure": 4,
               "pure_rates": {"promote": 0.9, "rollback": 0.05, "hold": 0.05}, "agrees": True}
    evidence = {"alpha": "0.01", "beta": "0.05",
                "checks": {"request-success-rate": {"tolerance_percent": "100", "fail_percent": "20"}}}
    planned = dict(copy.deepcopy(rows[1]), window_requests=2000.0, every_interval=rows[1]["rules"]["ours"])
    planned["rules"]["ours"].update(requests_median=2017.0, seconds_median=20.0)
    return {"date": "2026-12-06 18:00 UTC", "replications": 200, "seed": 4242, "plan": vars(plan) | {},
            "evidence": evidence, "simulation_seconds": 77, "scenarios": rows,
            "planned": {"plan": vars(decision_rules.Plan(look_requests=200, looks_per_step=15, window=20)),
                        "scenarios": [planned]},
            "e2e": {"plan": {"interval": 6, "looks_per_step": 3, "scrape": 1, "rate": 2000.0}, "replications": 4,
                    "seconds": 93, "scenarios": [e2e_row], "looks": 31, "looks_checked": 29,
                    "looks_same_verdict": 28, "errors": []}}


def test_both_languages_show_the_same_figures():
    results = _results()
    english = _figures(decision_report.render(copy.deepcopy(results), decision_report.EN))
    chinese = _figures(decision_report.render(copy.deepcopy(results), decision_report.ZH))
    assert english == chinese, {"only in English": sorted(english - chinese),
                                "only in Chinese": sorted(chinese - english)}
    # Figures of the results are on the page (two empty pages would pass the comparison above).
    page = decision_report.render(results, decision_report.EN)
    for figure in ("12.3%", "seed 4242", "93 s", "in 28", "| 20 / 2,017 |"):
        assert figure in page, figure


def test_goals_say_met_and_missed_from_the_figures():
    results = _results()
    goals = {goal["id"]: goal for goal in decision_report.goals(results)}
    # The stand-in judge never fails: the x5 canary is promoted once 3000 canary requests are in.
    assert goals["bad"]["met"] is False and goals["bad"]["value"] == "100.00%"
    assert goals["healthy"]["met"] is True
    assert goals["peer-kayenta"]["met"] is False
    # A scenario lost says how many releases each rule decided wrongly: the stand-in judge promoted all
    # 200 x5 canaries, Kayenta's stand-in 12.3 % of them.
    lost = goals["peer-kayenta"]["where"]
    assert [(row["errors"], row["ours_wrong"], row["theirs_wrong"]) for row in lost] == [("5", "200", "25")]
    assert "(ours 200, theirs 25)" in decision_report.render(results, decision_report.EN)
    assert "（我们的规则 200，对方 25）" in decision_report.render(results, decision_report.ZH)  # noqa: RUF001
    # Looks planned in requests: 2017 canary requests against the fixed-sample minimum, and against one
    # window's 2000 requests when that is more (x5 at 1 %, 10 % share: about 200).
    fixed = results["scenarios"][1]["fixed_sample_requests"]
    assert goals["time-planned"]["value"] == f"{2017 / fixed:.2f}\u00d7" and goals["time-planned"]["met"] is False
    assert goals["time-window"]["value"] == f"{2017 / 2000:.2f}\u00d7" and goals["time-window"]["met"] is True
