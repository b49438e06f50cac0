"""The lab router on HTTPRoutes, beyond the conformance cases: Istio's own Gateway API samples and docs.

Expected values come from upstream: Istio's traffic-shifting task (``samples/bookinfo/gateway-api/
route-reviews-90-10.yaml``, "90% of traffic to reviews:v1 and 10% to reviews:v2"), Gateway API's
HTTPRoute documentation (timeouts, weights, 500 for a rule without usable backends, consumer
routes of GEP-1426) and, for a host both a VirtualService and an HTTPRoute claim, istiod's code
(test_routing_mixed_apis.py).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from lab.dataplane.routing import MIXED_APIS, Endpoint, Request, ServiceEntry, Snapshot, parse_gateway_api_duration

pytestmark = pytest.mark.unit

# Istio's samples/bookinfo/gateway-api/route-reviews-90-10.yaml, in the bookinfo namespace.
ROUTE_REVIEWS_90_10 = {
    "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "HTTPRoute",
    "metadata": {"name": "reviews", "namespace": "bookinfo", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"parentRefs": [{"kind": "Service", "name": "reviews", "port": 9080}],
             "rules": [{"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 90},
                                        {"name": "reviews-v2", "port": 9080, "weight": 10}]}]},
}

SERVICES = [ServiceEntry("bookinfo", "reviews", {"app": "reviews"}),
            ServiceEntry("bookinfo", "reviews-v1", {"app": "reviews", "version": "v1"}),
            ServiceEntry("bookinfo", "reviews-v2", {"app": "reviews", "version": "v2"})]
ENDPOINTS = [Endpoint("bookinfo", "reviews-v1", {"app": "reviews", "version": "v1"}, 9080),
             Endpoint("bookinfo", "reviews-v2", {"app": "reviews", "version": "v2"}, 9080)]


def _request(source_namespace: str = "bookinfo", authority: str = "reviews:9080") -> Request:
    return Request(method="GET", path="/reviews/0", authority=authority, headers={},
                   source_namespace=source_namespace)


def _shares(snapshot: Snapshot, requests: int = 4000, **kwargs: Any) -> dict[str, float]:
    rng = random.Random(7)
    counts: dict[str, int] = {}
    for _ in range(requests):
        decision = snapshot.route_mesh(_request(**kwargs), rng)
        key = decision.target.endpoint.workload if decision.target else str(decision.status)
        counts[key] = counts.get(key, 0) + 1
    return {key: count / requests for key, count in counts.items()}


def test_istios_90_10_sample_splits_90_10() -> None:
    shares = _shares(Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[ROUTE_REVIEWS_90_10]))
    assert set(shares) == {"reviews-v1", "reviews-v2"}
    assert shares["reviews-v2"] == pytest.approx(0.10, abs=0.02)


def test_the_route_applies_to_its_parent_port_only() -> None:
    snapshot = Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[ROUTE_REVIEWS_90_10])
    # Another port of the Service: the route does not apply, the Service spreads over both versions.
    assert set(_shares(snapshot, authority="reviews:8080")) == {"reviews-v1", "reviews-v2"}
    assert _shares(snapshot, authority="reviews:8080")["reviews-v2"] > 0.3


def test_weight_zero_takes_nothing_and_all_zero_answers_500() -> None:
    route = _with_weights(0, 1)
    assert _shares(Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[route])) == {"reviews-v2": 1.0}
    route = _with_weights(0, 0)
    assert _shares(Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[route])) == {"500": 1.0}


def test_a_backend_in_a_third_namespace_answers_500() -> None:
    route = _with_weights(1, 0)
    route["spec"]["rules"][0]["backendRefs"][0]["namespace"] = "elsewhere"  # needs a ReferenceGrant
    assert _shares(Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[route])) == {"500": 1.0}


def test_a_missing_backend_service_answers_500_for_its_share() -> None:
    route = _with_weights(50, 50)
    route["spec"]["rules"][0]["backendRefs"][1]["name"] = "reviews-v9"
    shares = _shares(Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[route]))
    assert set(shares) == {"reviews-v1", "500"}


def test_a_consumer_route_replaces_the_producer_route_for_its_namespace_only() -> None:
    consumer = _with_weights(0, 1)
    consumer["metadata"] = {"name": "reviews", "namespace": "frontend", "creationTimestamp": "2026-01-02T00:00:00Z"}
    consumer["spec"]["parentRefs"][0]["namespace"] = "bookinfo"
    for backend in consumer["spec"]["rules"][0]["backendRefs"]:
        backend["namespace"] = "bookinfo"  # the parent Service's namespace (as in MeshConsumerRoute)
    snapshot = Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[ROUTE_REVIEWS_90_10, consumer])
    host = "reviews.bookinfo:9080"
    assert _shares(snapshot, source_namespace="frontend", authority=host) == {"reviews-v2": 1.0}
    assert _shares(snapshot, source_namespace="bookinfo")["reviews-v2"] == pytest.approx(0.10, abs=0.02)
    assert _shares(snapshot, source_namespace="other", authority=host)["reviews-v2"] == pytest.approx(0.10, abs=0.02)


def test_timeouts_follow_the_rule() -> None:
    route = _with_weights(1, 0)
    route["spec"]["rules"][0]["timeouts"] = {"request": "1h30m500ms"}
    snapshot = Snapshot(services=SERVICES, endpoints=ENDPOINTS, http_routes=[route])
    assert snapshot.route_mesh(_request(), random.Random(0)).timeout_seconds == 5400.5
    assert parse_gateway_api_duration("0s") is None  # zero: no timeout
    assert parse_gateway_api_duration("10") is None  # not a GEP-2257 duration


def test_a_virtual_service_and_an_httproute_on_one_host_follow_istiods_order() -> None:
    """A client in the route's namespace follows the HTTPRoute, as istiod orders them (the other cases are
    in test_routing_mixed_apis.py)."""
    virtual_service = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews-v2"}}]}]},
    }
    snapshot = Snapshot(virtual_services=[virtual_service], services=SERVICES, endpoints=ENDPOINTS,
                        http_routes=[ROUTE_REVIEWS_90_10])
    decision = snapshot.route_mesh(_request(), random.Random(0))
    assert decision.status != 500 and decision.body != MIXED_APIS
    assert 0.85 < _shares(snapshot).get("reviews-v1", 0) < 0.95
    # Without the HTTPRoute the VirtualService routes as before.
    alone = Snapshot(virtual_services=[virtual_service], services=SERVICES, endpoints=ENDPOINTS)
    assert alone.route_mesh(_request(), random.Random(0)).target.endpoint.workload == "reviews-v2"


def _with_weights(first: int, second: int) -> dict[str, Any]:
    route: dict[str, Any] = {**ROUTE_REVIEWS_90_10, "spec": {
        "parentRefs": [dict(ROUTE_REVIEWS_90_10["spec"]["parentRefs"][0])],
        "rules": [{"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": first},
                                   {"name": "reviews-v2", "port": 9080, "weight": second}]}]}}
    return route
