"""The collection against upstream: ``canary_info`` reads what Istio routes for every sample, and
``traffic_split`` / ``header_route`` turn Bookinfo's all-v1 sample into what Istio's own split and
jason samples route (compared as shares per subset, as the oracle computes them, not as text)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from lab.kube import KubeClient
from tests.conformance import corpus, oracle
from tests.conformance.conftest import object_path
from tests.conformance.oracle import Request
from tests.helpers.ansible import lab_auth, run_module, run_playbook, task_results

pytestmark = pytest.mark.lab

JASON = Request(headers={"end-user": "jason"})
ANYONE = Request()


# ---------------------------------------------------------------- canary_info over the corpus


def _info_cases() -> Iterator[Any]:
    for item in corpus.samples():
        if any(vs["spec"].get("http") for vs in item.virtual_services):
            yield pytest.param(item.id, list(item.objects), id=item.label)
    for case in corpus.validation_cases():
        if case.valid and case.object["kind"] == "VirtualService" and case.object["spec"].get("http"):
            yield pytest.param(f"case:{case.id}", [case.object], id=f"case:{case.id}")


def _expected_weights(vs: dict[str, Any]) -> list[dict[str, Fraction]]:
    """Per http route, the oracle's shares keyed as canary_info keys weights: subset, else host as written."""
    namespace = vs["metadata"]["namespace"]
    expected = []
    for route, shares in zip(vs["spec"]["http"], oracle.http_route_shares(vs), strict=True):
        by_key: dict[str, Fraction] = {}
        for entry in route.get("route") or []:
            destination = entry.get("destination") or {}
            key = oracle.destination_key(destination, namespace)
            if key in shares:
                by_key[destination.get("subset") or destination["host"]] = shares[key]
        expected.append(by_key)
    return expected


def _as_shares(weights: dict[str, Any]) -> dict[str, Fraction] | dict[str, Any]:
    """canary_info reports percentages of traffic (whole numbers when exact, else two decimals), as
    docs/modules.md says; here as fractions of 1, with the destinations that get nothing left out."""
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights.values()):
        return weights  # not numbers: shown as reported
    return {key: Fraction(str(weight)) / 100 for key, weight in weights.items() if weight}


def _same_shares(reported: list[dict[str, Any]], expected: list[dict[str, Fraction]]) -> bool:
    """Equal per route, allowing only the rounding to two decimals of a percentage."""
    if len(reported) != len(expected):
        return False
    for got, exact in zip(reported, expected, strict=True):
        want = {key: share for key, share in exact.items() if share}
        if set(got) != set(want):
            return False
        if any(not isinstance(got[key], Fraction) or abs(got[key] - want[key]) > Fraction(5, 100_000)
               for key in want):
            return False
    return True


def _http_virtual_services(objects: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == "VirtualService" and o["spec"].get("http")]


@pytest.fixture(scope="session")
def canary_info_runs(request: pytest.FixtureRequest, lab_state, place_upstream) -> dict[tuple[str, str], Any]:
    """canary_info on every VirtualService the selected tests ask about, as one playbook run.

    One ``ansible-playbook`` with a task per VirtualService (errors ignored, so each keeps its own
    result) costs a fraction of one module process per VirtualService.
    """
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.originalname == "test_canary_info_reads_what_istio_routes" and callspec is not None:
            key, objects = callspec.params["key"], callspec.params["objects"]
            placed = place_upstream(key, objects)
            wanted += [(key, placed.namespace, name) for name in _http_virtual_services(objects)
                       if ("VirtualService", name) not in placed.refused]
    if not wanted:
        return {}
    tasks = [{"name": f"{index}", "ignore_errors": True,
              "canary.istio.canary_info": {**lab_auth(lab_state), "name": name, "namespace": namespace}}
             for index, (_key, namespace, name) in enumerate(wanted)]
    proc = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    results = {int(result["task"]): result for result in task_results(proc)}
    assert len(results) == len(wanted), proc.stdout[-3000:]
    return {(key, name): results[index] for index, (key, _namespace, name) in enumerate(wanted)}


@pytest.mark.parametrize(("key", "objects"), list(_info_cases()))
def test_canary_info_reads_what_istio_routes(key: str, objects: list[dict[str, Any]], kube: KubeClient,
                                             place_upstream, canary_info_runs) -> None:
    placed = place_upstream(key, objects)
    for name in _http_virtual_services(objects):
        if ("VirtualService", name) in placed.refused:
            pytest.fail(f"the lab refused {name}: {placed.refused[('VirtualService', name)]}")
        stored = kube.get(object_path("VirtualService", placed.namespace, name))
        info = canary_info_runs[(key, name)]
        assert not info.get("failed"), f"canary_info on {name}: {info.get('msg')}"
        reported = [_as_shares(route["weights"]) for route in info["routes"]]
        expected = _expected_weights(stored)
        assert _same_shares(reported, expected), f"weights of {name}'s http routes: {reported} != {expected}"


# ---------------------------------------------------------------- traffic_split / header_route from all-v1


def _reviews(item_name: str, namespace: str) -> dict[str, Any]:
    vs = next(v for v in corpus.sample(item_name).virtual_services if v["metadata"]["name"] == "reviews")
    return corpus.with_namespace(vs, namespace)


@pytest.fixture
def bookinfo_all_v1(kube: KubeClient, namespace: str) -> str:
    """Istio's ``virtual-service-all-v1.yaml`` and ``destination-rule-all.yaml``, as published."""
    for name in ("destination-rule-all", "virtual-service-all-v1"):
        for obj in corpus.sample(name).objects:
            kube.create(object_path(obj["kind"], namespace), corpus.with_namespace(obj, namespace))
    return namespace


def _stored_reviews(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return kube.get(object_path("VirtualService", namespace, "reviews"))


def _split(lab_state, namespace: str, canary: str, weight: int) -> dict[str, Any]:
    result = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                          "base": "v1", "canary": canary, "canary_weight": weight})
    assert not result.get("failed"), result.get("msg")
    return result


@pytest.mark.parametrize(("canary", "weight", "sample"), [
    ("v2", 10, "virtual-service-reviews-90-10"),
    ("v2", 20, "virtual-service-reviews-80-20"),
    ("v3", 50, "virtual-service-reviews-50-v3"),
])
def test_traffic_split_gives_what_istios_split_sample_routes(lab_state, kube: KubeClient, bookinfo_all_v1: str,
                                                             canary: str, weight: int, sample: str) -> None:
    _split(lab_state, bookinfo_all_v1, canary, weight)
    stored = _stored_reviews(kube, bookinfo_all_v1)
    assert oracle.accepts(stored), oracle.validation_errors(stored)
    assert oracle.http_route_shares(stored) == oracle.http_route_shares(_reviews(sample, bookinfo_all_v1))
    # The other services of the sample still send everything to v1.
    for service in ("productpage", "ratings", "details"):
        other = kube.get(object_path("VirtualService", bookinfo_all_v1, service))
        assert oracle.http_route_shares(other) == [{(f"{service}.{bookinfo_all_v1}.svc.cluster.local", "v1"): 1}]


@pytest.mark.parametrize(("start", "expected"), [
    ("virtual-service-all-v1", "virtual-service-reviews-test-v2"),
    ("virtual-service-reviews-v3", "virtual-service-reviews-jason-v2-v3"),
])
def test_header_route_for_jason_gives_what_istios_jason_sample_routes(lab_state, kube: KubeClient, namespace: str,
                                                                      start: str, expected: str) -> None:
    for obj in [*corpus.sample("destination-rule-all").objects, *corpus.sample(start).objects]:
        kube.create(object_path(obj["kind"], namespace), corpus.with_namespace(obj, namespace))
    result = run_module("header_route", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                         "route": "jason", "headers": {"end-user": "jason"}, "subset": "v2"})
    assert not result.get("failed"), result.get("msg")
    stored = _stored_reviews(kube, namespace)
    published = _reviews(expected, namespace)
    assert oracle.accepts(stored), oracle.validation_errors(stored)
    assert oracle.unreachable_rules(stored) == [], "the jason route must not sit below a route that takes everything"
    for request in (JASON, ANYONE):
        assert oracle.route_request(stored, request).shares == oracle.route_request(published, request).shares


def test_split_below_istios_jason_route_leaves_jason_alone(lab_state, kube: KubeClient, namespace: str) -> None:
    """From ``virtual-service-reviews-test-v2.yaml``: the split lands on the route everyone else takes."""
    for obj in [*corpus.sample("destination-rule-all").objects,
                *corpus.sample("virtual-service-reviews-test-v2").objects]:
        kube.create(object_path(obj["kind"], namespace), corpus.with_namespace(obj, namespace))
    _split(lab_state, namespace, "v2", 10)
    stored = _stored_reviews(kube, namespace)
    published = _reviews("virtual-service-reviews-test-v2", namespace)
    assert oracle.route_request(stored, JASON).shares == oracle.route_request(published, JASON).shares
    assert oracle.route_request(stored, ANYONE).shares == oracle.http_route_shares(
        _reviews("virtual-service-reviews-90-10", namespace))[0]


def _in_service_namespace(obj: dict[str, Any], client: str, service: str) -> dict[str, Any]:
    """An API-reference object with its ``prod`` namespace (the service's) made ``service``."""
    text = json.dumps(obj).replace(".prod.svc.cluster.local", f".{service}.svc.cluster.local")
    return corpus.with_namespace(json.loads(text), client)


def _reference(label: str) -> dict[str, Any]:
    return next(s for s in corpus.samples() if s.label == label).objects[0]


@pytest.mark.parametrize("rule_host", ["as published (FQDN)", "short, as in the foo example"])
def test_traffic_split_finds_the_rule_in_the_services_namespace(lab_state, kube: KubeClient, namespace: str,
                                                                rule_host: str) -> None:
    """virtual_service.proto's reviews-route (L0067) lives with the client; the service and its
    DestinationRule (L0099) live in the service's namespace. Istio looks the rule up there (client
    namespace first, then the service's), so a 25% split must give what L0881 routes."""
    service = f"{namespace}-svc"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": service}})
    rule = _in_service_namespace(_reference("virtual_service:L0099"), service, service)
    if rule_host.startswith("short"):
        rule["spec"]["host"] = "reviews"  # read in the rule's namespace, as L0284 explains
    kube.create(object_path("DestinationRule", service), rule)
    kube.create(object_path("VirtualService", namespace),
                _in_service_namespace(_reference("virtual_service:L0067"), namespace, service))
    result = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews-route", "namespace": namespace,
                                          "base": "v1", "canary": "v2", "canary_weight": 25})
    assert not result.get("failed"), result.get("msg")
    stored = kube.get(object_path("VirtualService", namespace, "reviews-route"))
    published = _in_service_namespace(_reference("virtual_service:L0881"), namespace, service)
    assert oracle.route_request(stored, ANYONE).shares == oracle.http_route_shares(published)[0]
    # The /wpcatalog route of L0067 still sends everything to v2.
    catalog = Request(path="/wpcatalog")
    assert oracle.route_request(stored, catalog).shares == {(f"reviews.{service}.svc.cluster.local", "v2"): 1}
