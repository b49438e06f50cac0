"""The canary release on a Gateway API HTTPRoute (issue 24, section 3), run as AWX runs the playbooks.

Bookinfo is deployed by deploy_base.yml; the reviews route is then Istio's upstream
``samples/bookinfo/gateway-api/route-reviews-v1.yaml`` (an HTTPRoute parented by the reviews Service,
backend ``reviews-v1`` from ``platform/kube/bookinfo-versions.yaml``). With
``canary_release_traffic_api: auto`` the role refuses while the VirtualService exists too, and once
it is gone releases on the HTTPRoute: it creates ``reviews-v2`` as Istio's bookinfo-versions.yaml
has it, moves the weights Istio's route-reviews-90-10.yaml shows (as 70/30 here), and promotes.
Expected objects are Istio's files; what is checked is what the API server holds.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance import corpus
from tests.e2e.conftest import Cluster
from tests.e2e.test_release_flow import run_twice

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
SERVICES = "/api/v1/namespaces/{ns}/services"


def versions_service(name: str) -> dict[str, Any]:
    return next(o for o in corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo-versions.yaml")
                if o["metadata"]["name"] == name)


def backend_weights(kube, namespace: str) -> dict[str, int]:
    rule = kube.get(f"{ROUTES.format(ns=namespace)}/reviews")["spec"]["rules"][0]
    return {ref["name"]: ref.get("weight", 1) for ref in rule["backendRefs"]}


@pytest.fixture
def on_httproute(runner, kube, bookinfo_namespace):
    """Bookinfo at v1, with reviews routed by Istio's route-reviews-v1 HTTPRoute (and, for now, the
    VirtualService deploy_base.yml wrote too)."""
    ns = bookinfo_namespace
    assert runner("deploy_base.yml", {"canary_namespace": ns}).rc == 0
    kube.create(SERVICES.format(ns=ns), versions_service("reviews-v1"))
    kube.create(ROUTES.format(ns=ns),
                corpus.istio_objects("samples/bookinfo/gateway-api/route-reviews-v1.yaml")[0])
    yield Cluster(kube, ns)
    for name in ("reviews-v1", "reviews-v2"):
        try:
            kube.delete(f"{SERVICES.format(ns=ns)}/{name}")
        except Exception:
            pass


def test_auto_refuses_both_then_releases_and_promotes_on_the_httproute(runner, kube, on_httproute):
    cluster, ns = on_httproute, on_httproute.namespace
    args = {"canary_namespace": ns, "canary_release_ratio": 30, "canary_release_decision": "hold"}
    route_before = kube.get(f"{ROUTES.format(ns=ns)}/reviews")

    refused = runner("canary.yml", args)
    assert refused.rc != 0 and "Both a VirtualService and an HTTPRoute named" in refused.stdout
    assert kube.get(f"{ROUTES.format(ns=ns)}/reviews")["metadata"]["resourceVersion"] == \
        route_before["metadata"]["resourceVersion"]
    assert cluster.route_weights() == {"v1": 100} and "reviews-v2" not in cluster.deployments()

    kube.delete(f"/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/reviews")
    held = run_twice(runner, "canary.yml", args)
    assert "reviews sends v1 70%, v2 30%" in held.stdout
    assert backend_weights(kube, ns) == {"reviews-v1": 70, "reviews-v2": 30}
    # The per-version Service is Istio's bookinfo-versions.yaml reviews-v2.
    created = kube.get(f"{SERVICES.format(ns=ns)}/reviews-v2")
    upstream = versions_service("reviews-v2")
    assert created["spec"]["selector"] == upstream["spec"]["selector"]
    assert [{k: p[k] for k in ("name", "port")} for p in created["spec"]["ports"]] == upstream["spec"]["ports"]
    # Only the backendRefs moved: parentRefs stay; the DestinationRule is not touched on an HTTPRoute.
    route = kube.get(f"{ROUTES.format(ns=ns)}/reviews")
    assert route["spec"]["parentRefs"] == route_before["spec"]["parentRefs"]
    assert cluster.subsets() == ["v1"]

    status = runner("status.yml", {"canary_namespace": ns})
    assert status.rc == 0 and "in_progress" in status.stdout

    promoted = run_twice(runner, "promote.yml", {"canary_namespace": ns})
    assert "v2 is promoted" in promoted.stdout
    assert backend_weights(kube, ns) == {"reviews-v2": 100}
    assert "reviews-v1" not in cluster.deployments() and "reviews-v2" in cluster.deployments()
    history = kube.get(f"{ROUTES.format(ns=ns)}/reviews")["metadata"]["annotations"]["canary.istio/history"]
    assert "reviews-v2" in history


def test_a_missing_route_of_the_chosen_api_is_refused_without_a_write(runner, on_httproute):
    cluster = on_httproute
    result = runner("canary.yml", {"canary_namespace": cluster.namespace, "canary_release_ratio": 30,
                                   "canary_release_decision": "hold", "canary_release_traffic_api": "httproute",
                                   "canary_release_virtual_service": "nosuchroute"})
    assert result.rc != 0 and "nosuchroute" in result.stdout
    assert "reviews-v2" not in cluster.deployments()
