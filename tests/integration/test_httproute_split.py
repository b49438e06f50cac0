"""HTTPRoute splits (issue 24 section 2) against the lab's real API server, through the I/O layer
(plugins/module_utils/_httproute.py) called directly.

Expected values come from upstream: the routes Istio publishes for its traffic-shifting task
(samples/bookinfo/gateway-api/route-reviews-*.yaml), the per-version Services of
samples/bookinfo/platform/kube/bookinfo-versions.yaml, and Gateway API's reading of ``weight``
(a backend receives weight / sum of the rule's weights; default 1). What must stay is read back from
the API server; how many requests a change costs is read from the API server's audit log.

The lab runs no endpoints controller: tests write each per-version Service's Endpoints as the
controller would for its pods (ready ones under ``addresses``, not-ready under ``notReadyAddresses``).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from fractions import Fraction
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._httproute import RouteTarget, plan
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._traffic import write
from lab.dataplane.routing import Endpoint, Request, ServiceEntry, Snapshot
from lab.kube import KubeClient, KubeError
from tests.conformance import corpus
from tests.helpers.ansible import lab_auth

pytestmark = pytest.mark.lab

ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
SERVICES = "/api/v1/namespaces/{ns}/services"
ENDPOINTS = "/api/v1/namespaces/{ns}/endpoints"
SAMPLES = "samples/bookinfo/gateway-api"


def upstream_route(sample: str) -> dict[str, Any]:
    return corpus.istio_objects(f"{SAMPLES}/{sample}.yaml")[0]


def reviews_services() -> list[dict[str, Any]]:
    """Istio's reviews Service (bookinfo.yaml) and its per-version Services (bookinfo-versions.yaml)."""
    objects = corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo.yaml")
    objects += corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo-versions.yaml")
    return [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].startswith("reviews")]


def team_route() -> dict[str, Any]:
    """Istio's route-reviews-v1 as a team might really have it: a named catch-all rule with a timeout and
    a filter, a header rule for testers before it, labels and annotations of their own."""
    route = upstream_route("route-reviews-v1")
    route["metadata"].update(labels={"app": "reviews", "team": "books"},
                             annotations={"owner": "books-team@example.com"})
    primary = route["spec"]["rules"][0]
    primary.update(name="primary", timeouts={"request": "10s"},
                   filters=[{"type": "ResponseHeaderModifier",
                             "responseHeaderModifier": {"set": [{"name": "x-route", "value": "primary"}]}}])
    testers = {"name": "testers",
               "matches": [{"headers": [{"type": "Exact", "name": "end-user", "value": "jason"}]}],
               "filters": [{"type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-tester", "value": "yes"}]}}],
               "backendRefs": [{"name": "reviews-v3", "port": 9080}]}
    route["spec"]["rules"] = [testers, primary]
    return route


def endpoints(name: str, ready: int, not_ready: int = 0) -> dict[str, Any]:
    """What the endpoints controller writes for a Service with ``ready`` and ``not_ready`` pods."""
    subset: dict[str, Any] = {"ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]}
    if ready:
        subset["addresses"] = [{"ip": f"10.1.0.{i + 1}"} for i in range(ready)]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": f"10.1.1.{i + 1}"} for i in range(not_ready)]
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}, "subsets": [subset]}


@pytest.fixture
def services(kube: KubeClient, namespace: str):
    """Istio's reviews Services in the test's namespace, deleted afterwards: the lab's Service IP range
    is a /24 and the lab deletes no namespace."""
    for service in reviews_services():
        kube.create(SERVICES.format(ns=namespace), service)
    yield namespace
    for service in reviews_services():
        kube.delete(f"{SERVICES.format(ns=namespace)}/{service['metadata']['name']}")


@pytest.fixture
def reviews(kube: KubeClient, services: str) -> str:
    """reviews with v1 and v2 running (ready endpoints); reviews-v3 exists but its pods are not ready."""
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v1", 2))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v2", 1))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v3", 0, not_ready=1))
    kube.create(ROUTES.format(ns=services), team_route())
    return services


def stored(kube: KubeClient, ns: str, name: str = "reviews") -> dict[str, Any]:
    return kube.get(f"{ROUTES.format(ns=ns)}/{name}")


def published_rule(kube: KubeClient, ns: str, sample: str) -> dict[str, Any]:
    """The rule of Istio's published route as the API server stores it (its defaults filled in): the
    sample is created under another name beside the route under test and read back."""
    route = upstream_route(sample)
    route["metadata"]["name"] = f"published-{sample}"
    kube.create(ROUTES.format(ns=ns), route)
    return stored(kube, ns, route["metadata"]["name"])["spec"]["rules"][0]


def context(state: dict[str, Any], check: bool = False) -> Context:
    return Context(dict(lab_auth(state)), check_mode=check, diff_mode=False)


def split(state: dict[str, Any], ns: str, weights: dict[str, int], check: bool = False, name: str = "reviews",
          route_name: str | None = None, **options: Any) -> RouteTarget:
    """One change as traffic_split makes it: plan, then the guarded write (re-planned on a conflict)."""
    ctx = context(state, check)
    ready = options.pop("require_ready_endpoints", True)
    target = RouteTarget(name, ns, route_name=route_name, weights=weights, require_ready_endpoints=ready)
    options.setdefault("actor", "tester")
    try:
        plan(ctx, target, **options)
        write(ctx, target, lambda: plan(ctx, target, **options), 5)
    finally:
        ctx.close()
    return target


def mesh_router(route: dict[str, Any], ns: str) -> Snapshot:
    """The lab's router over ``route`` and Istio's reviews Services, each version running one workload."""
    entries = [ServiceEntry(ns, s["metadata"]["name"], s["spec"]["selector"]) for s in reviews_services()]
    endpoints = [Endpoint(ns, f"reviews-{v}", {"app": "reviews", "version": v}, 9080) for v in ("v1", "v2", "v3")]
    return Snapshot(http_routes=[route], services=entries, endpoints=endpoints)


def served_by(route: dict[str, Any] | Snapshot, ns: str, headers: dict[str, str], path: str = "/reviews/0",
              rng: random.Random | None = None) -> str:
    """The backend Service the lab's router picks for a request from a workload of ``ns`` to reviews:9080."""
    snapshot = route if isinstance(route, Snapshot) else mesh_router(route, ns)
    request = Request("GET", path, "reviews:9080", headers, source_namespace=ns)
    decision = snapshot.route_mesh(request, rng or random.Random(7))
    assert decision.target is not None, decision
    return decision.target.service.name


def shares(rule: dict[str, Any]) -> dict[str, Fraction]:
    """Gateway API's reading of a rule: weight (default 1) over the sum of the rule's weights."""
    total = sum(ref.get("weight", 1) for ref in rule["backendRefs"])
    return {ref["name"]: Fraction(ref.get("weight", 1), total) for ref in rule["backendRefs"]}


def without_weights(route: dict[str, Any]) -> dict[str, Any]:
    """The route with the weights and our own records taken out: what a split must never change."""
    route = copy.deepcopy(route)
    for rule in route["spec"]["rules"]:
        for ref in rule.get("backendRefs", []):
            ref.pop("weight", None)
    annotations = route["metadata"].get("annotations", {})
    for key in [k for k in annotations if k.startswith("canary.istio/")]:
        del annotations[key]
    for key in ("resourceVersion", "generation", "managedFields"):
        route["metadata"].pop(key, None)
    return route


def test_a_split_writes_istios_published_90_10_route_and_only_the_weights(lab_state, kube, reviews):
    original = stored(kube, reviews)
    target = split(lab_state, reviews, {"reviews-v1": 90, "reviews-v2": 10})
    assert target.written is not None and target.before == {"reviews-v1": 100}
    now = stored(kube, reviews)
    assert now["spec"]["rules"][1]["backendRefs"] == published_rule(kube, reviews, "route-reviews-90-10")["backendRefs"]
    assert shares(now["spec"]["rules"][1]) == {"reviews-v1": Fraction(9, 10), "reviews-v2": Fraction(1, 10)}
    # Everything but the weights (and the appended reviews-v2 entry) is as it was: the testers rule, the
    # primary rule's filter and timeout, parentRefs, labels, the team's annotation.
    kept = without_weights(now)
    kept["spec"]["rules"][1]["backendRefs"] = kept["spec"]["rules"][1]["backendRefs"][:1]
    assert kept == without_weights(original)
    state = json.loads(now["metadata"]["annotations"]["canary.istio/state"])
    assert state == {"base": "reviews-v1", "canary": "reviews-v2", "weight": 10, "route": "primary"}
    # The lab's router (held to Gateway API's HTTPRouteWeight case) sends a tenth of 2,000 seeded requests to
    # reviews-v2: within 4.5 standard deviations of a binomial(2000, 0.1) count; testers still reach v3.
    rng, router = random.Random(2024), mesh_router(now, reviews)
    canary = sum(served_by(router, reviews, {}, rng=rng) == "reviews-v2" for _request in range(2000))
    assert abs(canary - 200) <= 4.5 * math.sqrt(2000 * 0.1 * 0.9), canary
    assert served_by(now, reviews, {"end-user": "jason"}) == "reviews-v3"


def test_steps_record_history_and_a_repeat_writes_nothing(lab_state, kube, reviews, audit):
    for weight in (10, 50, 100, 0):
        split(lab_state, reviews, {"reviews-v1": 100 - weight, "reviews-v2": weight}, base="reviews-v1",
              canary="reviews-v2")
    now = stored(kube, reviews)
    history = json.loads(now["metadata"]["annotations"]["canary.istio/history"])
    assert [(h["from"], h["to"], h["actor"]) for h in history] == [
        ({"reviews-v1": 100}, {"reviews-v1": 90, "reviews-v2": 10}, "tester"),
        ({"reviews-v1": 90, "reviews-v2": 10}, {"reviews-v1": 50, "reviews-v2": 50}, "tester"),
        ({"reviews-v1": 50, "reviews-v2": 50}, {"reviews-v1": 0, "reviews-v2": 100}, "tester"),
        ({"reviews-v1": 0, "reviews-v2": 100}, {"reviews-v1": 100, "reviews-v2": 0}, "tester")]
    window = audit()
    again = split(lab_state, reviews, {"reviews-v1": 100, "reviews-v2": 0})
    events = window.requests(user="lab:admin")
    assert again.patch == [] and again.written is None
    assert [(e["verb"], e["objectRef"]["resource"]) for e in events] == [("get", "httproutes")]
    assert stored(kube, reviews)["metadata"]["resourceVersion"] == now["metadata"]["resourceVersion"]


def test_a_canary_step_costs_four_requests_and_one_write(lab_state, kube, reviews, audit):
    window = audit()
    split(lab_state, reviews, {"reviews-v1": 80, "reviews-v2": 20})
    events = window.requests(user="lab:admin")
    assert [(e["verb"], e["objectRef"]["resource"], e["objectRef"].get("name")) for e in events] == [
        ("get", "httproutes", "reviews"), ("get", "services", "reviews-v2"), ("get", "endpoints", "reviews-v2"),
        ("patch", "httproutes", "reviews")]
    assert len(window.writes()) == 1


def test_a_rollback_checks_the_base_not_the_canary(lab_state, kube, reviews, audit):
    split(lab_state, reviews, {"reviews-v1": 50, "reviews-v2": 50})
    # The canary's pods all stopped being ready: taking traffic from it must still work.
    kube.replace(f"{ENDPOINTS.format(ns=reviews)}/reviews-v2", endpoints("reviews-v2", 0, not_ready=1))
    window = audit()
    target = split(lab_state, reviews, {"reviews-v1": 100, "reviews-v2": 0})
    events = window.requests(user="lab:admin")
    assert target.checked == {"reviews-v1": 2}
    assert [e["objectRef"].get("name") for e in events if e["objectRef"]["resource"] in ("services", "endpoints")] \
        == ["reviews-v1", "reviews-v1"]
    assert shares(stored(kube, reviews)["spec"]["rules"][1]) == {"reviews-v1": 1, "reviews-v2": 0}


def test_check_mode_writes_nothing_yet_reports_the_change(lab_state, kube, reviews, audit):
    before = stored(kube, reviews)
    window = audit()
    target = split(lab_state, reviews, {"reviews-v1": 70, "reviews-v2": 30}, check=True)
    assert target.after == {"reviews-v1": 70, "reviews-v2": 30} and target.patch
    patches = window.writes()
    assert len(patches) == 1 and "dryRun=All" in patches[0]["requestURI"]
    assert stored(kube, reviews) == before


def test_no_ready_endpoints_is_refused_unless_allowed(lab_state, kube, reviews, audit):
    before = stored(kube, reviews)
    window = audit()
    with pytest.raises(ModuleFailure) as refused:
        split(lab_state, reviews, {"reviews-v1": 50, "reviews-v3": 50})
    assert "reviews-v3" in refused.value.msg and "no ready endpoints" in refused.value.msg
    assert "require_ready_endpoints" in refused.value.msg
    assert window.writes() == [] and stored(kube, reviews) == before
    target = split(lab_state, reviews, {"reviews-v1": 50, "reviews-v3": 50}, require_ready_endpoints=False)
    assert any("no ready endpoints" in note for note in target.notes)
    published = published_rule(kube, reviews, "route-reviews-50-v3")
    assert stored(kube, reviews)["spec"]["rules"][1]["backendRefs"] == published["backendRefs"]


def test_a_port_the_service_lacks_is_refused(lab_state, kube, services, audit):
    namespace = services
    kube.create(ENDPOINTS.format(ns=namespace), endpoints("reviews-v2", 1))
    route = upstream_route("route-reviews-v1")
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 9090
    kube.create(ROUTES.format(ns=namespace), route)
    window = audit()
    with pytest.raises(ModuleFailure) as refused:
        split(lab_state, namespace, {"reviews-v1": 90, "reviews-v2": 10})
    assert "port 9090" in refused.value.msg and "[9080]" in refused.value.msg
    assert window.writes() == []


@pytest.mark.parametrize("weights,route_name,fragment", [
    ({"reviews-v1": 0, "reviews-v2": 150}, None, "weight 150 for 'reviews-v2'"),
    ({"reviews-v1": 100, "reviews-v2": "abc"}, None, "'abc'"),
    ({"reviews-v1": 60, "reviews-v2": 50}, None, "sum to 110"),
    ({"reviews-v1": 90, "Reviews_V2": 10}, None, "'Reviews_V2'"),
    ({"reviews-v1": 90, "reviews-v2": 10}, "nightly", "no rule named 'nightly'"),
    # Make-before-break: a backend Service that does not exist, named with the rule that would send to it.
    ({"reviews-v1": 90, "reviews-v4": 10}, None, "rules[1] ('primary') to backend Service 'reviews-v4': no Service"),
])
def test_bad_input_is_refused_naming_value_and_rule(lab_state, kube, reviews, audit, weights, route_name, fragment):
    before = stored(kube, reviews)
    window = audit()
    with pytest.raises((CanaryInputError, ModuleFailure)) as refused:
        split(lab_state, reviews, weights, route_name=route_name)
    assert fragment in str(refused.value)
    assert window.writes() == []
    assert stored(kube, reviews) == before


def test_a_missing_route_is_refused_naming_it(lab_state, reviews, audit):
    window = audit()
    with pytest.raises(ModuleFailure) as refused:
        split(lab_state, reviews, {"reviews-v1": 90, "reviews-v2": 10}, name="ratings")
    assert f"HTTPRoute {reviews}/ratings not found" in refused.value.msg
    assert window.writes() == []


def test_a_concurrent_edit_is_kept_and_the_split_replanned(lab_state, kube, reviews):
    ctx = context(lab_state)
    target = RouteTarget("reviews", reviews, weights={"reviews-v1": 90, "reviews-v2": 10})
    plan(ctx, target, actor="tester")
    # Someone else edits the testers rule between our read and our write.
    kube.json_patch(f"{ROUTES.format(ns=reviews)}/reviews",
                    [{"op": "replace", "path": "/spec/rules/0/matches/0/headers/0/value", "value": "alice"}])
    write(ctx, target, lambda: plan(ctx, target, actor="tester"), 5)
    ctx.close()
    now = stored(kube, reviews)
    assert now["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] == "alice"
    assert shares(now["spec"]["rules"][1]) == {"reviews-v1": Fraction(9, 10), "reviews-v2": Fraction(1, 10)}


CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io"


def serve_v1(kube: KubeClient, served: bool) -> None:
    """Gateway API before 1.0 served HTTPRoute at v1beta1 only: the lab's CRD is made to do the same (v1
    stays the storage version, so stored objects are unchanged), and the test waits until the API server
    answers as such a cluster does."""
    crd = kube.get(CRD)
    for version in crd["spec"]["versions"]:
        if version["name"] == "v1":
            version["served"] = served
    kube.replace(CRD, crd)
    for _attempt in range(300):
        try:
            kube.get("/apis/gateway.networking.k8s.io/v1/httproutes", limit=1)
            answered = True
        except KubeError as exc:
            assert exc.status == 404, exc
            answered = False
        if answered == served:
            return
        time.sleep(0.1)
    raise AssertionError(f"the API server still {'does not serve' if served else 'serves'} HTTPRoute v1")


def test_a_cluster_serving_only_v1beta1_is_split_there(lab_state, kube, reviews, audit):
    serve_v1(kube, False)
    try:
        window = audit()
        split(lab_state, reviews, {"reviews-v1": 90, "reviews-v2": 10})
        events = window.requests(user="lab:admin")
        now = kube.get(f"/apis/gateway.networking.k8s.io/v1beta1/namespaces/{reviews}/httproutes/reviews")
    finally:
        serve_v1(kube, True)
    assert now["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert shares(now["spec"]["rules"][1]) == {"reviews-v1": Fraction(9, 10), "reviews-v2": Fraction(1, 10)}
    # One refused v1 read (the API server does not know that version), then the step at v1beta1 only.
    routes = [(e["verb"], e["requestURI"].split("/")[3], e["responseStatus"]["code"]) for e in events
              if e["objectRef"].get("resource") == "httproutes" or "/httproutes/" in e["requestURI"]]
    assert routes == [("get", "v1", 404), ("get", "v1beta1", 200), ("patch", "v1beta1", 200)], routes
