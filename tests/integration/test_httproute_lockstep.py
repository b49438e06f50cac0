"""Lockstep moves that mix a VirtualService and an HTTPRoute (issue 24 section 2): all or nothing, in
the lab's real API server, through the lockstep code (plugins/module_utils/_lockstep.py) called directly.

Bookinfo's ratings service on Istio's VirtualService (virtual-service-all-v1.yaml with
destination-rule-all.yaml) and its reviews service on Gateway API (route-reviews-v1.yaml with the
per-version Services of bookinfo-versions.yaml), as a mesh half-way through a migration has them.
Expected weights come from those samples and Istio's and Gateway API's weight semantics.
"""

# ruff: noqa: F811 - test functions take the fixtures imported from test_httproute_split by name
from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._httproute import RouteTarget, plan_either
from ansible_collections.canary.istio.plugins.module_utils._lockstep import move
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, write
from lab.kube import KubeClient
from tests.conformance import corpus
from tests.helpers.ansible import lab_auth

# The fixtures among these (reviews, services) are found by pytest by their names in this module.
from tests.integration.test_httproute_split import (  # noqa: F401  # pylint: disable=unused-import
    ENDPOINTS,
    ROUTES,
    endpoints,
    published_rule,
    services,
    stored,
    upstream_route,
)

pytestmark = pytest.mark.lab

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"
RATINGS = {"v1": 90, "v2": 10}
REVIEWS = {"reviews-v1": 90, "reviews-v2": 10}


def istio_sample(path: str, name: str) -> dict[str, Any]:
    return next(o for o in corpus.istio_objects(f"samples/bookinfo/networking/{path}.yaml")
                if o["metadata"]["name"] == name)


@pytest.fixture
def migrating(kube: KubeClient, services: str) -> str:
    """ratings on a VirtualService, reviews on an HTTPRoute, in one namespace."""
    kube.create(VS.format(ns=services), istio_sample("virtual-service-all-v1", "ratings"))
    kube.create(DR.format(ns=services), istio_sample("destination-rule-all", "ratings"))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v1", 1))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v2", 1))
    kube.create(ROUTES.format(ns=services), upstream_route("route-reviews-v1"))
    return services


def move_all(state: dict[str, Any], targets: list[Any], user: str = "admin", concurrency: int = 2) -> list[Any]:
    """The targets moved as traffic_split moves a ``services:`` list: plan all, then write all or none."""
    ctx = Context(dict(lab_auth(state, user)), check_mode=False, diff_mode=False)
    options = {"remove_unnamed": False, "record": True, "actor": "tester", "history_limit": 20}
    try:
        move(ctx, targets, lambda worker, target: plan_either(worker, target, **options),
             lambda worker, target: write(worker, target, lambda: plan_either(worker, target, **options), 5),
             concurrency)
    finally:
        ctx.close()
    return targets


def lockstep(state: dict[str, Any], ns: str, reviews_weights: dict[str, int], user: str = "admin") -> list[Any]:
    """ratings (a VirtualService) and reviews (an HTTPRoute) in one move."""
    targets = [Target("ratings", ns, weights=RATINGS), RouteTarget("reviews", ns, weights=reviews_weights)]
    return move_all(state, targets, user)


def ratings_weights(kube: KubeClient, ns: str) -> dict[str, int]:
    route = kube.get(f"{VS.format(ns=ns)}/ratings")["spec"]["http"][0]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route}


def test_both_kinds_move_together(lab_state, kube, migrating):
    ratings, reviews = lockstep(lab_state, migrating, REVIEWS)
    assert ratings.written is not None and reviews.written is not None
    assert ratings_weights(kube, migrating) == RATINGS
    rule = stored(kube, migrating)["spec"]["rules"][0]
    assert rule["backendRefs"] == published_rule(kube, migrating, "route-reviews-90-10")["backendRefs"]


def test_a_missing_backend_service_stops_both_before_any_write(lab_state, kube, migrating, audit):
    window = audit()
    with pytest.raises(ModuleFailure) as refused:
        lockstep(lab_state, migrating, {"reviews-v1": 90, "reviews-v4": 10})
    assert f"{migrating}/reviews" in refused.value.msg and "'reviews-v4'" in refused.value.msg
    assert "(no VirtualService or HTTPRoute was changed)" in refused.value.msg
    assert window.writes() == []
    assert ratings_weights(kube, migrating) == {"v1": 100}
    reported = {s["name"]: s for s in refused.value.result["services"]}
    assert not reported["ratings"]["moved"] and not reported["reviews"]["moved"]


def test_a_forbidden_httproute_write_puts_the_virtual_service_back(lab_state, kube, migrating):
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{migrating}"
    kube.create(f"{rbac}/roles", {"metadata": {"name": "split-ratings-only"}, "rules": [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules"],
         "verbs": ["get", "list", "patch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["get"]}]})
    kube.create(f"{rbac}/rolebindings", {"metadata": {"name": "split-ratings-only"},
                                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "split-ratings-only"},
                                         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                                       "name": "lab:nobody"}]})
    before = stored(kube, migrating)
    with pytest.raises(ModuleFailure) as failed:
        lockstep(lab_state, migrating, REVIEWS, user="nobody")
    assert "Grant verb 'patch' on resource 'httproutes' (apiGroup gateway.networking.k8s.io)" in failed.value.msg
    assert f"put back the services already moved: {migrating}/ratings" in failed.value.msg
    assert ratings_weights(kube, migrating) == {"v1": 100}
    annotations = kube.get(f"{VS.format(ns=migrating)}/ratings")["metadata"].get("annotations") or {}
    assert "canary.istio/state" not in annotations
    assert stored(kube, migrating) == before


def test_fifty_httproutes_of_one_namespace_move_together(lab_state, kube, services, audit):
    """From 50 VirtualServices of one namespace the lockstep code lists that namespace's VirtualServices and
    DestinationRules once; 50 HTTPRoutes are read and moved one by one, four requests each, no listing."""
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v1", 1))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v2", 1))
    names = [f"reviews-{index}" for index in range(50)]
    for name in names:
        route = upstream_route("route-reviews-v1")
        route["metadata"]["name"] = name
        kube.create(ROUTES.format(ns=services), route)
    window = audit()
    move_all(lab_state, [RouteTarget(name, services, weights=REVIEWS) for name in names], concurrency=4)
    verbs = [(e["verb"], e["objectRef"]["resource"]) for e in window.requests(user="lab:admin")]
    assert sorted(set(verbs)) == [("get", "endpoints"), ("get", "httproutes"), ("get", "services"),
                                  ("patch", "httproutes")]
    assert len(verbs) == 4 * 50
    published = published_rule(kube, services, "route-reviews-90-10")["backendRefs"]
    for name in names:
        assert stored(kube, services, name)["spec"]["rules"][0]["backendRefs"] == published
