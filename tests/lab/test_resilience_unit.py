"""The lab's resilience behaviour as pure functions (lab/dataplane/resilience.py), against Istio and Envoy.

Expected values: Istio's pilot (pilot/pkg/networking/core/route/retry/retry.go and its test: the
default policy, status codes in retryOn implying retriable-status-codes), Envoy's documentation
(x-envoy-retry-on conditions, the access log's flag order, outlier detection's ejection rule and
backoff, the local rate limit token bucket) and the EnvoyFilters of Istio's rate limit task.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from lab.dataplane.resilience import (
    ConnectionPools,
    OutlierDetector,
    RetryPolicy,
    TokenBuckets,
    join_flags,
    local_rate_limits,
    merged_traffic_policy,
)

TASKS = Path(__file__).resolve().parents[1] / "traffic" / "istio_tasks"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_retries_field_is_istios_default_policy():
    policy = RetryPolicy.from_route(None)
    assert policy.attempts == 2
    assert policy.conditions == {"connect-failure", "refused-stream", "unavailable", "cancelled",
                                 "retriable-status-codes"}
    assert policy.retries_connect_failure() and not policy.retries_timeout()
    assert not any(policy.retries_answer(status) for status in (500, 502, 503, 504))


def test_attempts_zero_disables_retries():
    assert RetryPolicy.from_route({"attempts": 0}).attempts == 0


def test_status_codes_in_retry_on_imply_retriable_status_codes():
    # retry_test.go: "gateway-error,retriable-status-codes,503" gives those policies and code 503;
    # retry.go: codes without "retriable-status-codes" get it added.
    policy = RetryPolicy.from_route({"attempts": 3, "retryOn": "gateway-error,retriable-status-codes,503"})
    assert policy.conditions == {"gateway-error", "retriable-status-codes"} and policy.status_codes == {503}
    only_code = RetryPolicy.from_route({"attempts": 1, "retryOn": "409"})
    assert only_code.retries_answer(409) and not only_code.retries_answer(503)


@pytest.mark.parametrize("retry_on,retried,not_retried,timeout", [
    ("5xx", [500, 501, 503, 599], [200, 404, 409], True),
    ("gateway-error", [502, 503, 504], [500, 501, 409], True),
    ("retriable-4xx", [409], [404, 500, 503], False),
    ("reset", [], [500, 503], True),
    ("connect-failure", [], [500, 503, 504], False),
])
def test_envoy_retry_on_conditions(retry_on, retried, not_retried, timeout):
    """Envoy's router filter, x-envoy-retry-on: which answers, and whether a per-try timeout, are retried."""
    policy = RetryPolicy.from_route({"attempts": 2, "retryOn": retry_on, "perTryTimeout": "0.5s"})
    assert policy.per_try_timeout == 0.5
    assert all(policy.retries_answer(status) for status in retried)
    assert not any(policy.retries_answer(status) for status in not_retried)
    assert policy.retries_timeout() is timeout


def test_backoff_is_jittered_below_envoys_ceiling():
    policy = RetryPolicy.from_route({"attempts": 5})
    rng = random.Random(7)
    for retry in range(1, 6):
        ceiling = min((2 ** retry - 1) * 0.025, 0.25)
        assert all(0 <= policy.backoff_seconds(retry, rng) <= ceiling for _draw in range(50))


def test_flags_in_envoys_order():
    assert join_flags(["URX", "UF"]) == "UF,URX"
    assert join_flags(["FI", "DI"]) == "DI,FI"
    assert join_flags(["UT,URX", "DI"]) == "UT,DI,URX"
    assert join_flags(["-", ""]) == "-"


def test_subset_traffic_policy_wins_field_by_field():
    rule = {"spec": {"trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}},
                                       "loadBalancer": {"simple": "LEAST_REQUEST"}},
                     "subsets": [{"name": "v2", "labels": {"version": "v2"},
                                  "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 1}}}}]}}
    assert merged_traffic_policy(rule, "v2") == {"connectionPool": {"http": {"http1MaxPendingRequests": 1}},
                                                 "loadBalancer": {"simple": "LEAST_REQUEST"}}
    assert merged_traffic_policy(rule, None) == rule["spec"]["trafficPolicy"]


def test_connection_pool_limits_active_and_pending_then_overflows():
    task = yaml.safe_load((TASKS / "circuit-breaking-destination-rule.yaml").read_text())
    limits = ConnectionPools.limits(task["spec"]["trafficPolicy"])
    assert limits == (1, 1)
    pools = ConnectionPools()
    key = ("ns", "fortio", "httpbin", "")
    assert pools.acquire(key, limits, 1.0)  # active
    # A second would wait in the pending queue; a third, with the queue full, overflows at once.
    assert not pools.acquire(key, (1, 0), 0.01)
    pools.release(key)
    assert pools.acquire(key, limits, 0.01)
    assert ConnectionPools.limits({}) is None


def test_consecutive_5xx_eject_for_base_time_times_ejections():
    clock = Clock()
    detector = OutlierDetector(clock)
    cluster = (("ns", "client"), "ratings", "")
    hosts = ["ratings-v1", "ratings-v2"]
    outlier = {"consecutive5xxErrors": 2, "baseEjectionTime": "10s", "maxEjectionPercent": 50}
    assert not detector.record(cluster, "ratings-v2", hosts, 503, outlier)
    assert not detector.record(cluster, "ratings-v2", hosts, 200, outlier)  # a success resets the count
    assert not detector.record(cluster, "ratings-v2", hosts, 503, outlier)
    assert detector.record(cluster, "ratings-v2", hosts, 0, outlier)  # no answer counts as a 5xx
    assert detector.ejected(cluster, hosts) == {"ratings-v2"}
    clock.now += 10.0
    assert detector.ejected(cluster, hosts) == set()
    assert not detector.record(cluster, "ratings-v2", hosts, 500, outlier)
    assert detector.record(cluster, "ratings-v2", hosts, 500, outlier)
    clock.now += 19.0  # the second ejection lasts twice the base time
    assert detector.ejected(cluster, hosts) == {"ratings-v2"}
    clock.now += 1.0
    assert detector.ejected(cluster, hosts) == set()


def test_max_ejection_percent_caps_ejections():
    """Envoy ejects only while (ejected + 1) / hosts stays within max_ejection_percent (default 10)."""
    clock = Clock()
    detector = OutlierDetector(clock)
    cluster = (("ns", "client"), "ratings", "")
    hosts = ["ratings-v1", "ratings-v2"]
    for _call in range(10):
        assert not detector.record(cluster, "ratings-v2", hosts, 503, {})  # defaults: 5 in a row, 10 %
    half = {"consecutive5xxErrors": 1, "maxEjectionPercent": 50}
    assert detector.record(cluster, "ratings-v2", hosts, 503, half)
    assert not detector.record(cluster, "ratings-v1", hosts, 503, half)  # a second would be 100 %
    assert detector.ejected(cluster, hosts) == {"ratings-v2"}


def test_gateway_errors_only_count_502_503_504():
    detector = OutlierDetector(Clock())
    cluster = (("ns", "client"), "ratings", "")
    outlier = {"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 2, "maxEjectionPercent": 100}
    assert not detector.record(cluster, "a", ["a"], 500, outlier)
    assert not detector.record(cluster, "a", ["a"], 500, outlier)
    assert not detector.record(cluster, "a", ["a"], 502, outlier)
    assert detector.record(cluster, "a", ["a"], 504, outlier)


@pytest.mark.parametrize("task_file", ["rate-limit-local-envoyfilter.yaml",
                                       "rate-limit-local-envoyfilter-per-route.yaml"])
def test_both_local_rate_limit_envoyfilters_of_the_task_give_four_tokens_a_minute(task_file):
    envoy_filter = yaml.safe_load((TASKS / task_file).read_text())
    [(namespace, selector, _key, bucket)] = local_rate_limits([envoy_filter])
    assert (namespace, selector) == ("istio-system", {"app": "productpage"})
    assert (bucket.max_tokens, bucket.tokens_per_fill, bucket.fill_interval) == (4, 4, 60.0)
    clock = Clock()
    buckets = TokenBuckets(clock)
    key = ("istio-system/filter-local-ratelimit-svc", "ns", "productpage-v1")
    assert [buckets.take(key, bucket) for _call in range(5)] == [True, True, True, True, False]
    clock.now += 59.0
    assert not buckets.take(key, bucket)
    clock.now += 1.0
    assert [buckets.take(key, bucket) for _call in range(5)] == [True, True, True, True, False]
    assert buckets.take(("other", "ns", "productpage-v1"), bucket)  # one bucket per filter and workload


def test_an_envoyfilter_without_the_local_rate_limit_filter_limits_nothing():
    envoy_filter = yaml.safe_load((TASKS / "rate-limit-local-envoyfilter-per-route.yaml").read_text())
    envoy_filter["spec"]["configPatches"] = envoy_filter["spec"]["configPatches"][1:]  # the route patch alone
    assert local_rate_limits([envoy_filter]) == []
