"""Pure logic of canary_analysis: the error-rate test, check validation and verdicts.

The statistical claims of docs/analysis.md are checked by simulation with a seeded random number
generator, so the numbers are the same on every run.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from ansible_collections.canary.istio.plugins.module_utils._analysis import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    AnalysisInputError,
    AnalysisQueryError,
    Check,
    Target,
    analyse,
    binomial_upper_tail,
    error_rate_test,
    validate_checks,
    validate_confidence,
    validate_name,
    validate_window,
)

pytestmark = pytest.mark.unit

TARGET = Target(service="reviews", namespace="bookinfo", base="v1", canary="v2", window="30s")
# The request count docs/analysis.md states for catching a canary with 5x the base's error rate.
DOCUMENTED_REQUESTS_PER_VERSION = 1000
DOCUMENTED_TEN_PERCENT_SPLIT = (3600, 400)  # base, canary: 4,000 requests with 10% to the canary


# --------------------------------------------------------------------------- the test itself


def exact_tail(successes: int, trials: int, probability: Fraction) -> Fraction:
    """Binomial upper tail in exact rational arithmetic, as the reference."""
    return sum((Fraction(math.comb(trials, k)) * probability ** k * (1 - probability) ** (trials - k)
                for k in range(successes, trials + 1)), Fraction(0))


@pytest.mark.parametrize("successes,trials,probability", [
    (0, 10, Fraction(1, 2)), (1, 1, Fraction(1, 3)), (5, 10, Fraction(1, 2)), (9, 10, Fraction(1, 2)),
    (3, 40, Fraction(1, 10)), (30, 40, Fraction(3, 5)), (41, 40, Fraction(1, 2)), (7, 200, Fraction(1, 100)),
])
def test_binomial_tail_matches_exact_arithmetic(successes, trials, probability):
    expected = float(exact_tail(successes, trials, probability))
    assert binomial_upper_tail(successes, trials, float(probability)) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_no_canary_errors_is_never_worse():
    assert not error_rate_test(1000, 50, 1000, 0, 0, 95).worse
    assert error_rate_test(1000, 50, 1000, 0, 0, 95).p_value == 1.0


def test_errors_only_in_the_canary_are_worse_once_there_are_enough():
    # Equal traffic, no tolerance: every error in the canary halves the p-value (0.5 ** k).
    assert error_rate_test(500, 0, 500, 4, 0, 95).p_value == pytest.approx(0.5 ** 4)
    assert not error_rate_test(500, 0, 500, 4, 0, 95).worse
    assert error_rate_test(500, 0, 500, 5, 0, 95).worse  # 0.5 ** 5 = 0.031


def test_tolerance_and_traffic_split_move_the_null_share():
    # A canary with 10% of the traffic is expected to have 10% of the errors; with a 50% tolerance, 1.5/10.5.
    assert error_rate_test(900, 10, 100, 1, 0, 95).null_share == pytest.approx(0.1)
    assert error_rate_test(900, 10, 100, 1, 50, 95).null_share == pytest.approx(150 / 1050)
    strict = error_rate_test(1000, 10, 1000, 25, 0, 95)
    tolerant = error_rate_test(1000, 10, 1000, 25, 50, 95)
    assert strict.worse and not tolerant.worse


def _binomial(rng: random.Random, trials: int, probability: float) -> int:
    """A Binomial(trials, probability) draw by geometric skips: fast for small probabilities."""
    if probability <= 0:
        return 0
    log_q = math.log1p(-probability)
    count, position = 0, -1
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position >= trials:
            return count
        count += 1


def _fail_share(base_n: int, canary_n: int, base_rate: float, canary_rate: float, tolerance: float,
                runs: int, seed: int) -> float:
    rng = random.Random(seed)
    failed = 0
    for _round in range(runs):
        base_errors = _binomial(rng, base_n, base_rate)
        canary_errors = _binomial(rng, canary_n, canary_rate)
        failed += error_rate_test(base_n, base_errors, canary_n, canary_errors, tolerance, 95).worse
    return failed / runs


@pytest.mark.parametrize("error_rate", [0.001, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("base_n,canary_n", [(1000, 1000), (900, 100), (200, 1800)])
@pytest.mark.parametrize("tolerance", [0.0, 50.0])
def test_equal_versions_falsely_fail_at_most_5_percent(error_rate, base_n, canary_n, tolerance):
    share = _fail_share(base_n, canary_n, error_rate, error_rate, tolerance, runs=1000, seed=13)
    assert share <= 0.05, f"equal versions at {error_rate:.1%} errors failed {share:.1%} of the time"


@pytest.mark.parametrize("base_n,canary_n,base_rate", [
    (DOCUMENTED_REQUESTS_PER_VERSION, DOCUMENTED_REQUESTS_PER_VERSION, 0.01),
    (DOCUMENTED_REQUESTS_PER_VERSION, DOCUMENTED_REQUESTS_PER_VERSION, 0.02),
    (*DOCUMENTED_TEN_PERCENT_SPLIT, 0.01),
])
def test_five_times_the_error_rate_is_caught_at_the_documented_request_count(base_n, canary_n, base_rate):
    share = _fail_share(base_n, canary_n, base_rate, 5 * base_rate, 50.0, runs=1500, seed=7)
    assert share >= 0.95, f"a canary at 5x {base_rate:.0%} errors was caught only {share:.1%} of the time"


def test_too_few_requests_have_little_power_which_is_why_min_requests_exists():
    share = _fail_share(100, 100, 0.01, 0.05, 50.0, runs=1000, seed=7)
    assert share < 0.5


# --------------------------------------------------------------------------- inputs


def test_default_checks_are_flaggers_two_with_their_defaults():
    checks = validate_checks(None)
    assert [c.name for c in checks] == ["request-success-rate", "request-duration"]
    assert checks[0].min == 99 and checks[0].tolerance_percent == 50 and checks[0].compare
    assert checks[1].max == 500 and checks[1].tolerance_percent == 20 and checks[1].tolerance_ms == 25


@pytest.mark.parametrize("checks,message", [
    ([], "non-empty list"),
    (["request-success-rate"], "must be a mapping"),
    ([{"name": "error-budget"}], "not a built-in check .* and has no query"),
    ([{"name": "request-success-rate", "min": 101}], "success rate in percent"),
    ([{"name": "request-success-rate", "min": "abc"}], "min must be a number, got 'abc'"),
    ([{"name": "request-success-rate", "max": 5}], "max and tolerance_ms belong to request-duration"),
    ([{"name": "request-duration", "max": -1}], "above 0"),
    ([{"name": "request-duration", "min": 10}], "min belongs to request-success-rate"),
    ([{"name": "request-duration", "tolerance_ms": -5}], "tolerance_ms must be 0 or more"),
    ([{"name": "request-success-rate", "threshold": 5}], "unknown keys \\['threshold'\\]"),
    ([{"name": "x", "query": "up", "min": 5, "max": 1}], "min 5 is above max 1"),
    ([{"name": "x", "query": "up"}], "needs min, max or both"),
    ([{"name": "x", "query": "up", "max": 1, "compare": True}], "built-in checks only"),
    ([{"name": "request-duration", "query": "up"}], "takes no query"),
    ([{"name": "request-duration"}, {"name": "request-duration"}], "listed twice"),
    ([{"name": "request-success-rate", "compare": "yes"}], "compare must be true or false"),
])
def test_bad_checks_are_refused_with_the_rule(checks, message):
    with pytest.raises(AnalysisInputError, match=message):
        validate_checks(checks)


@pytest.mark.parametrize("call,message", [
    (lambda: validate_window("30"), "Prometheus duration"),
    (lambda: validate_window("1 m"), "Prometheus duration"),
    (lambda: validate_name('v1"}or{', "canary"), "canary must be a Kubernetes name"),
    (lambda: validate_confidence(100), "confidence"),
    (lambda: validate_confidence(20), "confidence"),
])
def test_bad_scalars(call, message):
    with pytest.raises(AnalysisInputError, match=message):
        call()


def test_windows_prometheus_accepts():
    for window in ("30s", "1m", "1m30s", "2h", "500ms"):
        assert validate_window(window) == window


# --------------------------------------------------------------------------- verdicts


class FakePrometheus:
    """Answers by version, from the selector the query carries; records what it was asked."""

    def __init__(self, requests: dict[str, float | None], errors: dict[str, float], p99: dict[str, float | None],
                 custom: dict[str, float | None] | None = None):
        self.requests, self.errors, self.p99, self.custom = requests, errors, p99, custom or {}
        self.sent: list[str] = []

    def __call__(self, check: str, promql: str) -> float | None:
        self.sent.append(promql)
        version = "v2" if 'version="v2"' in promql or "VERSION=v2" in promql else "v1"
        if promql.startswith("histogram_quantile"):
            return self.p99[version]
        if "response_code" in promql:
            return self.errors.get(version, 0.0)
        if promql.startswith("sum(increase(istio_requests_total"):
            return self.requests[version]
        return self.custom.get(version)


def run(fake: FakePrometheus, checks=None, min_requests: int = 100) -> dict:
    return analyse(TARGET, validate_checks(checks), min_requests, 95.0, fake)


def by_name(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


def test_a_healthy_canary_passes_every_check():
    fake = FakePrometheus({"v1": 1000, "v2": 1000}, {"v1": 2, "v2": 3}, {"v1": 40, "v2": 45})
    result = run(fake)
    assert result["verdict"] == PASS, result
    checks = by_name(result)
    assert checks["request-success-rate"]["canary"] == {"value": 99.7, "requests": 1000, "errors": 3}
    assert checks["request-success-rate"]["comparison"]["verdict"] == PASS
    assert checks["request-duration"]["canary"]["value"] == 45
    # Request counts are asked once per version however many checks use them.
    assert sum("response_code" in q for q in fake.sent) == 2


def test_a_faulty_canary_fails_the_success_rate_alone_and_against_the_base():
    result = run(FakePrometheus({"v1": 1000, "v2": 1000}, {"v1": 0, "v2": 200}, {"v1": 40, "v2": 45}))
    assert result["verdict"] == FAIL and result["failed_checks"] == ["request-success-rate"]
    check = by_name(result)["request-success-rate"]
    assert check["canary"]["value"] == 80.0 and check["comparison"]["p_value"] < 0.05
    assert "80.00% < min 99%" in check["reason"]


def test_a_slow_canary_fails_the_latency_check():
    result = run(FakePrometheus({"v1": 1000, "v2": 1000}, {"v1": 0, "v2": 0}, {"v1": 20, "v2": 990}))
    check = by_name(result)["request-duration"]
    assert result["verdict"] == FAIL and check["verdict"] == FAIL
    assert "990.0 ms > max 500 ms" in check["reason"]
    assert check["comparison"]["allowed_increase_ms"] == 25  # max(20% of 20 ms, 25 ms)


def test_a_canary_slower_than_its_base_by_more_than_the_tolerance_fails_even_under_max():
    checks = [{"name": "request-duration", "max": 500}]
    assert run(FakePrometheus({"v1": 500, "v2": 500}, {}, {"v1": 100, "v2": 119}), checks)["verdict"] == PASS
    assert run(FakePrometheus({"v1": 500, "v2": 500}, {}, {"v1": 100, "v2": 130}), checks)["verdict"] == FAIL


def test_too_little_traffic_is_inconclusive_never_pass():
    result = run(FakePrometheus({"v1": 1000, "v2": 40}, {"v1": 0, "v2": 0}, {"v1": 40, "v2": 45}))
    assert result["verdict"] == INCONCLUSIVE
    assert all(c["verdict"] == INCONCLUSIVE for c in result["checks"])
    assert "saw 40 requests in the window, fewer than min_requests 100" in result["checks"][0]["reason"]


def test_no_data_is_inconclusive_but_a_clear_failure_still_fails():
    no_data = run(FakePrometheus({"v1": None, "v2": None}, {}, {"v1": None, "v2": None}))
    assert no_data["verdict"] == INCONCLUSIVE and "no data for the canary" in no_data["checks"][0]["reason"]
    # The canary alone fails the threshold: no base to compare with does not hide that.
    result = run(FakePrometheus({"v1": None, "v2": 1000}, {"v2": 300}, {"v1": None, "v2": 45}))
    assert by_name(result)["request-success-rate"]["verdict"] == FAIL
    assert by_name(result)["request-duration"]["verdict"] == INCONCLUSIVE


def test_nan_latency_is_no_data():
    result = run(FakePrometheus({"v1": 1000, "v2": 1000}, {"v1": 0, "v2": 0}, {"v1": 40, "v2": math.nan}))
    assert by_name(result)["request-duration"]["verdict"] == INCONCLUSIVE


def test_compare_false_judges_the_canary_alone():
    result = run(FakePrometheus({"v1": 0, "v2": 1000}, {"v1": 0, "v2": 0}, {"v1": None, "v2": 45}),
                 [{"name": "request-success-rate", "compare": False}, {"name": "request-duration", "compare": False}])
    assert result["verdict"] == PASS


def test_custom_check_renders_per_version_and_judges_min_max():
    checks = [{"name": "ratings-calls", "query": 'sum(rate(x{ns="{{ namespace }}",v="{{ version }}"}[{{ window }}]))'
                                                 ' + 0 * VERSION={{ version }}', "max": 50}]
    fake = FakePrometheus({"v1": 500, "v2": 500}, {}, {}, custom={"v1": 10, "v2": 60})
    result = run(fake, checks)
    check = result["checks"][0]
    assert check["verdict"] == FAIL and check["canary"]["value"] == 60 and check["base"]["value"] == 10
    assert check["queries"]["canary"][0].startswith('sum(rate(x{ns="bookinfo",v="v2"}[30s]))')
    fake.custom["v2"] = None
    assert run(fake, checks)["verdict"] == INCONCLUSIVE


@pytest.mark.parametrize("template,message", [
    ("sum(rate(x{v='{{ versoin }}'}[1m]))", "'versoin' is undefined"),
    ("sum(rate(x{v='{{ version }'}[1m]))", "TemplateSyntaxError"),
    ("{{ ''.__class__.__mro__ }}", "does not render"),
])
def test_bad_templates_are_refused_before_any_query(template, message):
    fake = FakePrometheus({"v1": 500, "v2": 500}, {}, {})
    with pytest.raises(AnalysisQueryError, match=message):
        run(fake, [{"name": "custom", "query": template, "max": 1}])
    assert fake.sent == []


def test_check_dataclass_builtin_flag():
    assert Check(name="request-duration").builtin and not Check(name="x", query="up").builtin
