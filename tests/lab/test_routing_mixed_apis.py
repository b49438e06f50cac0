"""A mesh host claimed by both a VirtualService and an HTTPRoute: the lab's router does what istiod's code
does for sidecars (issue 24 section 1), since Istio's documentation gives no rule.

Expected winners come from istio/istio (read at commit 86c9f01fd735, the rules restated at the top of
lab/dataplane/routing.py):
- mesh HTTPRoutes become one VirtualService per route namespace, parentRef port and host, named
  "<namespace>~<port>~<host>" and dated by the oldest route (pilot/pkg/config/kube/gateway/
  route_collections.go, mergeHTTPRoutes);
- a sidecar keeps the first virtual host built for a host and drops later ones as "duplicate domain from
  virtual service" (pilot/pkg/networking/core/httproute.go, buildVirtualHost), in SelectVirtualServices'
  order (pilot/pkg/model/virtualservice.go): private to the client's namespace, exported to it, public;
  within each, routes converted from HTTPRoutes in the client's namespace first (PILOT_UNIFIED_SIDECAR_SCOPE,
  on by default); then configCompareByCreationTime (pilot/pkg/model/config.go): creation time, name,
  namespace.
IST0109 (istio.io/latest/docs/reference/config/analysis/ist0109/) reports such hosts as a conflict and
istio/istio#36621 says mesh VirtualServices for one host are not merged; neither names a winner.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from lab.dataplane.routing import MIXED_APIS, Endpoint, Request, ServiceEntry, Snapshot
from tests.conformance import corpus

pytestmark = pytest.mark.unit

OLDER, NEWER = "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"
SERVICES = [ServiceEntry("bookinfo", "reviews", {"app": "reviews"}),
            ServiceEntry("bookinfo", "reviews-v1", {"app": "reviews", "version": "v1"}),
            ServiceEntry("bookinfo", "reviews-v2", {"app": "reviews", "version": "v2"})]
ENDPOINTS = [Endpoint("bookinfo", "reviews-v1", {"app": "reviews", "version": "v1"}, 9080),
             Endpoint("bookinfo", "reviews-v2", {"app": "reviews", "version": "v2"}, 9080)]


def http_route(created: str, namespace: str = "bookinfo") -> dict[str, Any]:
    """Istio's samples/bookinfo/gateway-api/route-reviews-v1.yaml: everything to reviews-v1."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reviews", "namespace": namespace, "creationTimestamp": created},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
                     "rules": [{"backendRefs": [{"name": "reviews-v1", "port": 9080}]}]}}


def virtual_service(created: str, name: str = "reviews", export_to: list[str] | None = None) -> dict[str, Any]:
    """A VirtualService for the same host sending everything to the reviews-v2 Service."""
    spec: dict[str, Any] = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews-v2"}}]}]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "bookinfo", "creationTimestamp": created}, "spec": spec}


def winner(vs: dict[str, Any], route: dict[str, Any], client_namespace: str) -> str:
    snapshot = Snapshot(virtual_services=[vs], http_routes=[route], services=SERVICES, endpoints=ENDPOINTS)
    request = Request(method="GET", path="/reviews/0", authority="reviews.bookinfo:9080", headers={},
                      source_namespace=client_namespace)
    decision = snapshot.route_mesh(request, random.Random(0))
    assert decision.status == 200 or decision.target is not None, decision
    workload = decision.target.endpoint.workload
    return {"reviews-v1": "HTTPRoute", "reviews-v2": "VirtualService"}[workload]


def test_a_client_in_the_routes_namespace_follows_the_httproute_even_if_newer() -> None:
    # Unified sidecar scoping puts converted HTTPRoutes of the client's namespace first.
    assert winner(virtual_service(OLDER), http_route(NEWER), "bookinfo") == "HTTPRoute"


@pytest.mark.parametrize(("vs_created", "route_created", "expected"), [
    (OLDER, NEWER, "VirtualService"),
    (NEWER, OLDER, "HTTPRoute"),
    # Same second: by name, "bookinfo~9080~reviews.bookinfo.svc.cluster.local" < "reviews".
    (OLDER, OLDER, "HTTPRoute"),
])
def test_other_clients_follow_the_older(vs_created: str, route_created: str, expected: str) -> None:
    assert winner(virtual_service(vs_created), http_route(route_created), "default") == expected


def test_same_second_name_order_can_favour_the_virtual_service() -> None:
    assert winner(virtual_service(OLDER, name="a-reviews"), http_route(OLDER), "default") == "VirtualService"


def test_a_virtual_service_private_to_the_clients_namespace_comes_first() -> None:
    # exportTo "." puts it in the client's private list, read before public ones (converted routes have
    # no exportTo: the mesh default "*").
    assert winner(virtual_service(NEWER, export_to=["."]), http_route(OLDER), "bookinfo") == "VirtualService"


def test_a_virtual_service_not_exported_to_the_client_takes_no_part() -> None:
    assert winner(virtual_service(OLDER, export_to=["."]), http_route(NEWER), "default") == "HTTPRoute"


def test_ingress_for_both_kinds_of_gateway_is_refused_with_the_reason() -> None:
    """Istio's two Bookinfo ingress samples at once (networking/bookinfo-gateway.yaml: an Istio Gateway and a
    VirtualService for "*"; gateway-api/bookinfo-gateway.yaml: a Gateway API Gateway and an HTTPRoute). On a
    cluster each Gateway has a gateway deployment of its own; the lab has one ingress port for both."""
    istio = corpus.istio_objects("samples/bookinfo/networking/bookinfo-gateway.yaml")
    gateway_api = corpus.istio_objects("samples/bookinfo/gateway-api/bookinfo-gateway.yaml")
    for obj in istio + gateway_api:
        obj["metadata"]["namespace"] = "bookinfo"
        obj["metadata"]["creationTimestamp"] = OLDER

    def of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        return [o for o in objects if o["kind"] == kind]

    services = [*SERVICES, ServiceEntry("bookinfo", "productpage", {"app": "productpage"})]
    endpoints = [*ENDPOINTS, Endpoint("bookinfo", "productpage-v1", {"app": "productpage", "version": "v1"}, 9080)]
    request = Request(method="GET", path="/productpage", authority="bookinfo.example", headers={})
    both = Snapshot(virtual_services=of(istio, "VirtualService"), gateways=of(istio, "Gateway"),
                    http_routes=of(gateway_api, "HTTPRoute"), kubernetes_gateways=of(gateway_api, "Gateway"),
                    services=services, endpoints=endpoints)
    decision = both.route_gateway(request, random.Random(0))
    assert decision.status == 500 and decision.body == MIXED_APIS
    assert "Istio Gateway" in MIXED_APIS and "Gateway API Gateway" in MIXED_APIS and "one ingress port" in MIXED_APIS
    for alone in (Snapshot(virtual_services=of(istio, "VirtualService"), gateways=of(istio, "Gateway"),
                           services=services, endpoints=endpoints),
                  Snapshot(http_routes=of(gateway_api, "HTTPRoute"), kubernetes_gateways=of(gateway_api, "Gateway"),
                           services=services, endpoints=endpoints)):
        assert alone.route_gateway(request, random.Random(0)).target.endpoint.workload == "productpage-v1"
