"""canary.istio.resilience without a cluster: what ``state: absent`` removes for the options given,
and that bad values are refused before the first request (the context here has no client at all).

Expected names follow Istio's fields (istio/api networking/v1alpha3 HTTPRetry, HTTPFaultInjection,
ConnectionPoolSettings, OutlierDetection); the lab tests (tests/integration/test_resilience_module.py)
show the same removals on what the API server stores.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.resilience import removal_names, removal_paths
from ansible_collections.canary.istio.plugins.module_utils._module import full_argument_spec
from ansible_collections.canary.istio.plugins.modules import resilience

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("options,paths", [
    ({"timeout": "0.5s"}, {"route": [("timeout",)]}),
    ({"retries": {}}, {"route": [("retries",)]}),
    ({"retries": {"attempts": 3, "per_try_timeout": "2s"}}, {"route": [("retries",)]}),
    ({"retries": {"per_try_timeout": "2s"}}, {"route": [("retries", "perTryTimeout")]}),
    ({"fault": {"delay": {"fixed_delay": "7s", "percentage": 100}}}, {"route": [("fault", "delay")]}),
    ({"fault": {}}, {"route": [("fault",)]}),
    ({"circuit_breaker": {}}, {"traffic_policy": [("connectionPool",), ("outlierDetection",)]}),
    ({"circuit_breaker": {"outlier_detection": {}}}, {"traffic_policy": [("outlierDetection",)]}),
    ({"circuit_breaker": {"connection_pool": {"tcp": {"max_connections": 1}}}},
     {"traffic_policy": [("connectionPool", "tcp", "maxConnections")]}),
    ({"circuit_breaker": {"connection_pool": {"http": {"http1_max_pending_requests": 1}},
                          "outlier_detection": {"consecutive_5xx_errors": 1}}},
     {"traffic_policy": [("connectionPool", "http", "http1MaxPendingRequests"),
                         ("outlierDetection", "consecutive5xxErrors")]}),
    ({"rate_limit": {"max_tokens": 4}}, {"rate_limit": True}),
])
def test_absent_removes_the_fields_the_options_name(options: dict[str, Any], paths: dict[str, Any]):
    expected = {"route": [], "traffic_policy": [], "rate_limit": False, **paths}
    assert removal_paths(removal_names(options)) == expected


def test_absent_refuses_a_name_istio_does_not_have():
    with pytest.raises(CanaryInputError, match=re.escape("'circuit_breaker.connection_pool.tcp.size' is not one")):
        removal_paths(removal_names({"circuit_breaker": {"connection_pool": {"tcp": {"size": 1}}}}))


class NoCluster:
    """A context whose every service fails the test if used: refusals must come before any request."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.check_mode = self.diff_mode = False
        self.default_namespace = "default"

    @property
    def istio(self) -> Any:
        raise AssertionError("a request was about to be made")

    client = istio


def params(**options: Any) -> dict[str, Any]:
    spec = full_argument_spec(resilience.ARGUMENT_SPEC, resilience.USES)
    return {**{name: option.get("default") for name, option in spec.items()}, "name": "reviews", **options}


@pytest.mark.parametrize("options,message", [
    ({"retries": {"attempts": -1}}, "retries.attempts -1 is not an integer from 0"),
    ({"timeout": "abc"}, "timeout 'abc' is not a duration"),
    ({"fault": {"abort": {"http_status": 503, "percentage": 150}}}, "fault.abort.percentage 150"),
    ({"retries": {"attempts": 2, "retry_on": "5xx,sometimes"}}, "token 'sometimes' is not a retry policy"),
    ({"subset": "v2", "timeout": "1s"}, "subset 'v2' applies to circuit_breaker only"),
    ({"kind": "HTTPRoute", "timeout": "0.5s"}, "timeout '0.5s' is not a Gateway API duration"),
    ({"kind": "HTTPRoute", "circuit_breaker": {"outlier_detection": {}}}, "cannot be used with kind HTTPRoute"),
    ({"fault": {"match": [{"headers": {"end-user": {"exact": "jason"}}}]}}, "has neither delay nor abort"),
    ({}, "no policy named"),
])
def test_bad_values_are_refused_before_any_request(options: dict[str, Any], message: str):
    with pytest.raises(CanaryInputError, match=re.escape(message)):
        resilience.execute(NoCluster(params(**options)))
