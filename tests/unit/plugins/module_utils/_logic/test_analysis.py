"""canary_analysis's glue: options, PromQL, and the verdicts it returns from made-up answers.

The statistics themselves are checked exactly in test_evidence.py beside this file; here every built-in
check's part is driven to pass, to fail and to inconclusive through ``analyse``, so that replacing
any check's verdict with a constant breaks a test.
"""

from __future__ import annotations

import math

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    AnalysisInputError,
    AnalysisQueryError,
    AnalysisTarget,
    Budget,
    Check,
    analyse,
    buckets_from_vector,
    evidence_range,
    validate_checks,
    validate_confidence,
    validate_looks,
    validate_power,
    validate_scrape_interval,
    validate_since,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name

pytestmark = pytest.mark.unit

TARGET = AnalysisTarget(service="reviews", namespace="bookinfo", base="v1", canary="v2", window="30s")
INF = math.inf


# --------------------------------------------------------------------------- inputs


def test_default_checks_are_flaggers_two_with_their_defaults():
    checks = validate_checks(None)
    assert [c.name for c in checks] == ["request-success-rate", "request-duration"]
    assert checks[0].min == 99 and checks[0].tolerance_percent == 100 and checks[0].compare
    assert checks[0].negligible_percent == 0.1
    assert checks[1].max == 500 and checks[1].tolerance_percent == 20 and checks[1].tolerance_ms == 25
    assert checks[1].negligible_percent == 0.5
    assert checks[0].fail_percent is None and checks[0].fail_ratio == pytest.approx(1.2)
    assert checks[1].fail_percent is None and checks[1].fail_ratio == pytest.approx(2.0)
    given = validate_checks([{"name": "request-success-rate", "fail_percent": 0},
                             {"name": "request-duration", "fail_percent": "50"}])
    assert [check.fail_ratio for check in given] == [pytest.approx(1.0), pytest.approx(1.5)]
    lowered = validate_checks([{"name": "request-success-rate", "tolerance_percent": 10}])
    assert lowered[0].fail_ratio == pytest.approx(1.1)  # never above what the comparison passes


@pytest.mark.parametrize("checks,message", [
    ([], "non-empty list"),
    (["request-success-rate"], "must be a mapping"),
    ([{"name": "error-budget"}], "not a built-in check .* and has no query"),
    ([{"name": "request-success-rate", "min": 101}], "success rate in percent"),
    ([{"name": "request-success-rate", "min": 100}], "no count of requests shows a rate of exactly 100%"),
    ([{"name": "request-success-rate", "negligible_percent": -1}], "negligible_percent must be 0 or more"),
    ([{"name": "request-duration", "negligible_percent": 100}], "negligible_percent is a share .* below 100"),
    ([{"name": "x", "query": "up", "max": 1, "negligible_percent": 1}], "built-in checks only"),
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
    ([{"name": "request-success-rate", "fail_percent": 150}],
     "fail_percent 150 is above tolerance_percent 100; .* give fail_percent from 0 to 100"),
    ([{"name": "request-success-rate", "tolerance_percent": 30, "fail_percent": 40}],
     "fail_percent 40 is above tolerance_percent 30"),
    ([{"name": "request-success-rate", "fail_percent": -5}], "fail_percent must be 0 or more, got -5"),
    ([{"name": "request-success-rate", "fail_percent": "abc"}], "fail_percent must be a number, got 'abc'"),
    ([{"name": "request-duration", "fail_percent": 101}],
     "fail_percent 101 is above 100; .* up to 2 times the base's share of slow requests"),
    ([{"name": "x", "query": "up", "max": 1, "fail_percent": 10}], "built-in checks only"),
])
def test_bad_checks_are_refused_with_the_rule(checks, message):
    with pytest.raises(AnalysisInputError, match=message):
        validate_checks(checks)


@pytest.mark.parametrize("call,message", [
    (lambda: validate_window("30"), "Prometheus duration"),
    (lambda: validate_window("1 m"), "Prometheus duration"),
    (lambda: validate_name('v1"}or{', "canary"), "canary 'v1\"}or{' is not a valid Kubernetes name"),
    (lambda: validate_confidence(100), "confidence"),
    (lambda: validate_confidence(20), "confidence"),
    (lambda: validate_power(100), "power is a percentage"),
    (lambda: validate_power("high"), "power must be a number"),
    (lambda: validate_looks(0, 1), "look must be a whole number, 1 or more, got 0"),
    (lambda: validate_looks(4, 3), "look 4 is beyond looks 3"),
    (lambda: validate_looks(1, True), "looks must be a whole number"),
    (lambda: validate_scrape_interval("15s", "20s"), "window 20s is shorter than two scrape intervals"),
    (lambda: validate_scrape_interval("0s", "1m"), "scrape_interval must be a Prometheus duration above 0"),
    (lambda: validate_scrape_interval("often", "1m"), "scrape_interval must be a Prometheus duration"),
    (lambda: validate_since("yesterday", 1000.0), "since must be Unix seconds or an RFC 3339 time"),
    (lambda: validate_since("2026-12-06T17:30:00", 2e9), "RFC 3339 time with a time zone"),
    (lambda: validate_since(2000.0, 1000.0), "since 2000.0 is in the future"),
])
def test_bad_scalars(call, message):
    # One input-error family: the analysis errors are CanaryInputErrors, as the names' check is.
    with pytest.raises(CanaryInputError, match=message):
        call()


def test_windows_prometheus_accepts():
    for window in ("30s", "1m", "1m30s", "2h", "500ms"):
        assert validate_window(window) == window
    assert validate_scrape_interval("15s", "30s") == 15


def test_since_counts_the_evidence_from_then_never_less_than_the_window():
    assert validate_since("2026-12-06T17:30:00Z", 2e9) == 1796578200.0
    assert validate_since("2026-12-06T18:30:00+01:00", 2e9) == 1796578200.0
    assert validate_since(1796578200, 2e9) == validate_since("1796578200", 2e9) == 1796578200.0
    assert validate_since(None, 0.0) is None
    assert evidence_range("1m", 1000.0, 1000.0 + 734.2) == "735s"
    assert evidence_range("1m", 1000.0, 1000.0 + 20) == "1m"
    assert evidence_range("1m", None, 5000.0) == "1m"


# --------------------------------------------------------------------------- PromQL


def test_errors_count_failures_callers_saw_once():
    """Destination-reported requests, plus source-reported ones the destination never saw (Envoy's
    flags for no connection): one series each, so no request is counted twice."""
    import re

    from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import errors_query, requests_query
    requests, errors = requests_query(TARGET, "v2"), errors_query(TARGET, "v2")
    for promql in (requests, errors):
        assert promql.count('reporter="destination"') == 1 and promql.count('reporter="source"') == 1
        flags = re.search(r'response_flags=~"([^"]+)"', promql).group(1)
        for seen_only_by_the_caller in ("UF", "URX", "UH", "UF,URX", "URX,UF", "UO", "NR", "NC"):
            assert re.fullmatch(flags, seen_only_by_the_caller)
        for reached_the_destination in ("-", "UT", "DC", "FI", "UFX"):
            assert not re.fullmatch(flags, reached_the_destination)
    assert 'response_code=~"5.."' in errors and "response_code" not in requests
    # The caller's proxy labels a request without an answer from the endpoint's metadata: the version
    # is the canonical revision there (destination_version reads "unknown").
    source_part = requests[requests.index('reporter="source"'):]
    assert 'destination_canonical_revision="v2"' in source_part and "destination_version" not in source_part
    source_only = AnalysisTarget(**{**TARGET.__dict__, "reporter": "source"})
    assert 'reporter="destination"' not in requests_query(source_only, "v2")
    no_callers = AnalysisTarget(**{**TARGET.__dict__, "caller_failures": False})
    assert 'reporter="source"' not in errors_query(no_callers, "v2")


def test_buckets_from_prometheus_vector():
    result = [{"metric": {"le": "+Inf"}, "value": [1, "10"]}, {"metric": {"le": "100"}, "value": [1, "7.5"]},
              {"metric": {"le": "25"}, "value": [1, "NaN"]}]
    assert buckets_from_vector(result) == [(25.0, 0.0), (100.0, 7.5), (INF, 10.0)]
    with pytest.raises(AnalysisQueryError, match="le='fast' is not a number"):
        buckets_from_vector([{"metric": {"le": "fast"}, "value": [1, "1"]}])


# --------------------------------------------------------------------------- verdicts


# Latency as cumulative shares of requests per Istio boundary: a fast service (p99 within 100 ms,
# almost nothing above 250 ms), and the same with 3 % of requests above 500 ms.
FAST = [(25, 0.5), (50, 0.9), (100, 0.995), (250, 0.9999), (500, 1.0), (1000, 1.0), (INF, 1.0)]
SLOW_TAIL = [(25, 0.45), (50, 0.85), (100, 0.94), (250, 0.96), (500, 0.97), (1000, 1.0), (INF, 1.0)]
# Slower than the base but within max: 4 % above 250 ms, nothing above 500 ms.
SLOWER = [(25, 0.3), (50, 0.6), (100, 0.9), (250, 0.96), (500, 1.0), (1000, 1.0), (INF, 1.0)]


class FakePrometheus:
    """Answers by version, from the selector the query carries; records what it was asked."""

    def __init__(self, requests: dict[str, float | None], errors: dict[str, float],
                 latency: dict[str, list | None] | None = None, custom: dict[str, float | None] | None = None):
        self.requests, self.errors, self.custom = requests, errors, custom or {}
        self.latency = latency or {"v1": FAST, "v2": FAST}
        self.sent: list[str] = []

    def version(self, promql: str) -> str:
        return "v2" if 'version="v2"' in promql or "VERSION=v2" in promql else "v1"

    def __call__(self, check: str, promql: str) -> float | None:
        self.sent.append(promql)
        version = self.version(promql)
        if "response_code" in promql:
            return self.errors.get(version, 0.0)
        if promql.startswith("(sum(increase(istio_requests_total"):
            return self.requests[version]
        return self.custom.get(version)

    def buckets(self, check: str, promql: str) -> list[tuple[float, float]]:
        self.sent.append(promql)
        version = self.version(promql)
        shape, requests = self.latency.get(version), self.requests[version]
        if shape is None or not requests:
            return []
        return [(le, share * requests) for le, share in shape]


def run(fake: FakePrometheus, checks=None, min_requests: int | None = None, look: int = 1, looks: int = 1) -> dict:
    return analyse(TARGET, validate_checks(checks), min_requests, Budget(0.01, 0.05, look, looks), fake, fake.buckets)


def by_name(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


def parts(result: dict, name: str) -> dict[str, str]:
    """The verdict of each part of a check, read from its reason."""
    check = by_name(result)[name]
    return {part: ("pass" if f"{part}: pass" in check["reason"] else "fail" if f"{part}: fail" in check["reason"]
                   else "inconclusive") for part in check["bounds"]}


def test_a_healthy_canary_with_enough_requests_passes_every_check_and_part():
    fake = FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 450, "v2": 48})
    result = run(fake)
    assert result["verdict"] == PASS, result["summary"]
    assert [c["verdict"] for c in result["checks"]] == [PASS, PASS]
    assert parts(result, "request-success-rate") == {"limit": PASS, "base": PASS}
    assert parts(result, "request-duration") == {"limit": PASS, "base": PASS}
    assert result["more_requests"] == 0 and result["failed_checks"] == [] and result["inconclusive_checks"] == []
    assert by_name(result)["request-success-rate"]["canary"] == {"value": 99.52, "requests": 10000, "errors": 48}
    # Request counts are asked once per version however many checks use them.
    assert sum("response_code" in q for q in fake.sent) == 2


def test_errors_above_the_absolute_limit_fail_the_limit_part():
    # 2 % errors in both: the canary is no worse than its base, but outside min 99.
    result = run(FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 1800, "v2": 200}))
    assert by_name(result)["request-success-rate"]["verdict"] == FAIL and result["verdict"] == FAIL
    assert parts(result, "request-success-rate") == {"limit": FAIL, "base": PASS}
    assert by_name(result)["request-success-rate"]["bounds"]["limit"]["lower"] > 0.01
    assert result["failed_checks"] == ["request-success-rate"]


def test_errors_worse_than_the_base_fail_the_comparison_within_the_limit():
    # Base 0.1 %, canary 0.6 %: within min 99, six times the base.
    result = run(FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 90, "v2": 60}))
    assert parts(result, "request-success-rate") == {"limit": PASS, "base": FAIL}
    assert by_name(result)["request-success-rate"]["verdict"] == FAIL and result["verdict"] == FAIL
    assert by_name(result)["request-success-rate"]["bounds"]["base"]["ratio_lower"] > 1


def test_a_slow_tail_fails_the_latency_limit():
    fake = FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 0, "v2": 0}, {"v1": SLOW_TAIL, "v2": SLOW_TAIL})
    result = run(fake, [{"name": "request-duration"}])
    assert parts(result, "request-duration")["limit"] == FAIL and result["verdict"] == FAIL
    assert result["checks"][0]["bounds"]["limit"]["fail_boundary_ms"] == 500


def test_a_canary_slower_than_its_base_within_max_fails_the_latency_comparison():
    fake = FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 0, "v2": 0}, {"v1": FAST, "v2": SLOWER})
    result = run(fake, [{"name": "request-duration"}])
    assert parts(result, "request-duration") == {"limit": PASS, "base": FAIL}
    # The base's p99 is 50 + 50 * (0.99 - 0.9) / 0.095 = 97.4 ms, + 25 ms = 122 ms: the comparison
    # counts the requests slower than 100 ms (0.5 % of the base's, 10 % of the canary's).
    assert result["verdict"] == FAIL and result["checks"][0]["bounds"]["base"]["boundary_ms"] == 100


def test_too_little_traffic_is_inconclusive_with_the_requests_that_would_settle_it():
    result = run(FakePrometheus({"v1": 1000, "v2": 40}, {"v1": 0, "v2": 0}))
    assert result["verdict"] == INCONCLUSIVE
    assert all(c["verdict"] == INCONCLUSIVE for c in result["checks"])
    assert result["more_requests"] >= 299 - 40 and "more canary requests would settle it" in result["summary"]
    # 0 errors in 30 requests is not a pass however min_requests is set (the 95 % upper bound is 9.5 %).
    assert run(FakePrometheus({"v1": 1000, "v2": 30}, {"v1": 0, "v2": 0}), min_requests=30)["verdict"] == INCONCLUSIVE


def test_min_requests_given_holds_a_pass_back():
    fake = FakePrometheus({"v1": 90000, "v2": 10000}, {"v1": 450, "v2": 48})
    held = run(fake, min_requests=20000)
    assert held["verdict"] == INCONCLUSIVE and "fewer than min_requests 20000" in held["checks"][0]["reason"]


def test_no_data_is_inconclusive_but_a_clear_failure_still_fails():
    no_data = run(FakePrometheus({"v1": None, "v2": None}, {}, {"v1": None, "v2": None}))
    assert no_data["verdict"] == INCONCLUSIVE
    # The canary alone fails the threshold: no base to compare with does not hide that.
    result = run(FakePrometheus({"v1": None, "v2": 1000}, {"v2": 300}, {"v1": None, "v2": FAST}))
    assert by_name(result)["request-success-rate"]["verdict"] == FAIL
    assert by_name(result)["request-duration"]["verdict"] == INCONCLUSIVE


def test_looks_spend_the_budget_and_are_reported():
    fake = FakePrometheus({"v1": 9000, "v2": 1000}, {"v1": 45, "v2": 15})
    alone = run(fake, [{"name": "request-success-rate"}])
    ninth = run(fake, [{"name": "request-success-rate"}], look=1, looks=9)
    assert alone["verdict"] == FAIL and ninth["verdict"] == INCONCLUSIVE
    assert (ninth["look"], ninth["looks"]) == (1, 9)
    assert ninth["alpha"] == pytest.approx(0.01 / 9 / 2) and ninth["beta"] == pytest.approx(0.05 / 9)


def test_compare_false_judges_the_canary_alone():
    result = run(FakePrometheus({"v1": 0, "v2": 10000}, {"v1": 0, "v2": 0}, {"v1": None, "v2": FAST}),
                 [{"name": "request-success-rate", "compare": False}, {"name": "request-duration", "compare": False}])
    assert result["verdict"] == PASS
    assert all(list(c["bounds"]) == ["limit"] for c in result["checks"])


def test_custom_check_renders_per_version_and_judges_min_max():
    checks = [{"name": "ratings-calls", "query": 'sum(rate(x{ns="{{ namespace }}",v="{{ version }}"}[{{ window }}]))'
                                                 ' + 0 * VERSION={{ version }}', "max": 50}]
    fake = FakePrometheus({"v1": 500, "v2": 500}, {}, {}, custom={"v1": 10, "v2": 60})
    result = run(fake, checks)
    check = result["checks"][0]
    assert check["verdict"] == FAIL and check["canary"]["value"] == 60 and check["base"]["value"] == 10
    assert check["queries"]["canary"][0].startswith('sum(rate(x{ns="bookinfo",v="v2"}[30s]))')
    fake.custom["v2"] = 40
    assert run(fake, checks)["verdict"] == PASS
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
