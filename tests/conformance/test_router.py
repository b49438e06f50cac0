"""The lab's mesh router (its pure routing functions) routes every upstream sample as Istio would.

For each VirtualService of the corpus that applies to mesh traffic for a cluster service, a
snapshot holds it, the DestinationRules Istio would use (the sample's own, else Bookinfo's
``destination-rule-all``, else one defining just the subsets routed to) and one workload per
routed subset. Requests with and without ``end-user: jason`` are routed many times with evenly
spaced random draws, so the share of each subset is exact, and compared with the oracle.
Fault injection is taken out first: it decides whether a request is answered by a fault, not
where it goes, and its random draws would shift the split draws.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from lab.dataplane.routing import Endpoint, Request, ServiceEntry, Snapshot
from tests.conformance import corpus, oracle

pytestmark = pytest.mark.unit

DRAWS = 400
CLUSTER_SUFFIX = ".svc.cluster.local"
# name: (headers, whether the client sits in another namespace and so calls the FQDN)
REQUESTS = {"anyone": ({}, False), "jason": ({"end-user": "jason"}, False), "from-elsewhere": ({}, True)}
ELSEWHERE = "elsewhere"


class EvenDraws:
    """A stand-in for ``random.Random`` whose every draw is one fixed point of [0, 1)."""

    def __init__(self, point: float):
        self.point = point

    def random(self) -> float:
        return self.point

    def choices(self, population, weights=None, k=1):  # one workload per subset here
        return [population[0]] * k


def _routed(vs: dict[str, Any]) -> set[oracle.Destination]:
    return {key for shares in oracle.http_route_shares(vs) for key in shares}


def _routable(vs: dict[str, Any]) -> bool:
    """Mesh traffic to a cluster service, every destination a cluster service too."""
    hosts = (vs.get("spec") or {}).get("hosts") or []
    namespace = vs["metadata"]["namespace"]
    return (len(hosts) == 1 and oracle.applies_to(vs) and bool(vs["spec"].get("http"))
            and oracle.resolve_shortname(hosts[0], namespace).endswith(CLUSTER_SUFFIX)
            and all(host.endswith(CLUSTER_SUFFIX) for host, _subset in _routed(vs)))


def _virtual_services() -> Iterator[tuple[str, corpus.Sample | None, dict[str, Any]]]:
    for item in corpus.samples():
        for vs in corpus.sample_objects(item, "VirtualService"):
            yield f"{item.label}/{vs['metadata']['name']}", item, vs
    for case in corpus.validation_cases():
        if case.valid and case.object["kind"] == "VirtualService":
            yield f"case:{case.id}", None, corpus.with_namespace(case.object, corpus.SAMPLE_NAMESPACE)


def _cases() -> Iterator[Any]:
    for label, item, vs in _virtual_services():
        if _routable(vs):
            for request in REQUESTS:
                yield pytest.param(item, vs, request, id=f"{label}/{request}")


def _without_faults(vs: dict[str, Any]) -> dict[str, Any]:
    vs = copy.deepcopy(vs)
    for route in vs["spec"]["http"]:
        route.pop("fault", None)
    return vs


def _world(item: corpus.Sample | None, vs: dict[str, Any], client_namespace: str) -> Snapshot:
    """The VirtualService, the DestinationRules Istio would use, one workload per routed subset."""
    rules = list(corpus.sample_objects(item, "DestinationRule")) if item else []
    if item is None or "bookinfo" in item.id:
        rules += [r for r in corpus.sample_objects(corpus.sample("destination-rule-all"), "DestinationRule")
                  if r["metadata"]["name"] not in {o["metadata"]["name"] for o in rules}]
    routed = sorted(_routed(vs), key=str)
    services: dict[str, ServiceEntry] = {}
    endpoints = []
    for host, subset in routed:
        name, service_namespace = host.split(".")[:2]
        services[host] = ServiceEntry(service_namespace, name, {"app": name})
        labels = {"app": name, "version": "v1"}
        if subset:
            rule = oracle.destination_rule_for(host, client_namespace, service_namespace, rules)
            if rule is None:
                # The sample names subsets but publishes no rule for them: define just those.
                rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                        "metadata": {"name": name, "namespace": service_namespace},
                        "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}}
                                                           for h, s in routed if h == host and s]}}
                rules.append(rule)
            subsets = {s["name"]: s for s in rule.get("spec", {}).get("subsets") or []}
            labels = {"app": name, **(subsets.get(subset, {}).get("labels") or {})}
        endpoints.append(Endpoint(service_namespace, f"{name}-{subset or 'all'}", labels, 9080))
    for rule in rules:
        rule.setdefault("metadata", {}).setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
    stored = {**_without_faults(vs)}
    stored["metadata"] = {**stored["metadata"], "creationTimestamp": "2024-01-01T00:00:00Z"}
    return Snapshot([stored], rules, [], list(services.values()), endpoints)


@pytest.mark.parametrize(("item", "vs", "who"), list(_cases()))
def test_router_routes_each_sample_as_istio(item: corpus.Sample | None, vs: dict[str, Any], who: str) -> None:
    vs_name = vs["metadata"]["name"]
    headers, from_elsewhere = REQUESTS[who]
    host = vs["spec"]["hosts"][0]
    namespace = vs["metadata"]["namespace"]
    if from_elsewhere:
        host, namespace = oracle.resolve_shortname(host, namespace), ELSEWHERE
    expected = oracle.route_request(vs, oracle.Request(headers=headers, authority=host, source_namespace=namespace))
    snapshot = _world(item, vs, namespace)
    outcomes: Counter[Any] = Counter()
    for draw in range(DRAWS):
        request = Request("GET", "/", host, dict(headers), source_namespace=namespace)
        decision = snapshot.route_mesh(request, EvenDraws((draw + 0.5) / DRAWS))  # type: ignore[arg-type]
        if decision.target is not None:
            outcomes[(decision.target.service.fqdn, decision.target.subset)] += 1
        else:
            outcomes[("answered", decision.status, decision.flags)] += 1
    shares = {key: Fraction(count, DRAWS) for key, count in outcomes.items()}
    if expected.route_index is None:
        assert set(outcomes) == {("answered", 404, "NR")}, f"Istio has no route for this request; router: {shares}"
    elif expected.action == "route":
        assert shares == dict(expected.shares), f"route #{expected.route_index} of {vs_name}"
    else:
        assert all(key[0] == "answered" for key in outcomes), f"{expected.action}: router forwarded {shares}"
