"""The router's pure logic, without a lab."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.dataplane.routing import (
    Endpoint,
    Request,
    ServiceEntry,
    Snapshot,
    expand_request_host,
    host_matches,
    parse_duration,
    string_matches,
)
from lab.dataplane.runner import parse_image

pytestmark = pytest.mark.unit


def test_string_match_semantics() -> None:
    assert string_matches({"regex": "ja.*"}, "jason")
    assert not string_matches({"regex": "jas"}, "jason")  # RE2 full match
    assert string_matches({"prefix": "/api"}, "/api/v1")
    assert not string_matches({"exact": "a"}, None)
    assert string_matches({}, "")  # presence only
    assert string_matches({"exact": "/A"}, "/a", ignore_case=True)


def test_host_resolution() -> None:
    assert expand_request_host("reviews", "ns") == "reviews.ns.svc.cluster.local"
    assert expand_request_host("reviews.other", "ns") == "reviews.other.svc.cluster.local"
    assert expand_request_host("reviews.other.svc", "ns") == "reviews.other.svc.cluster.local"
    assert host_matches("*.ns.svc.cluster.local", "reviews.ns.svc.cluster.local")
    assert not host_matches("*.ns.svc.cluster.local", "reviews.other.svc.cluster.local")


def test_durations_and_images() -> None:
    assert parse_duration("5s") == 5 and parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("1m") == 60
    # Go's time.ParseDuration, which istiod's validation uses, reads compound durations.
    assert parse_duration("1m30s") == 90 and parse_duration("1h0.5s") == pytest.approx(3600.5)
    assert parse_image("docker.io/istio/examples-bookinfo-reviews-v2:1.16.2") == ("reviews", "v2")
    assert parse_image("registry.example.com/mirror/examples-bookinfo-ratings-v1") == ("ratings", "v1")
    assert parse_image("nginx:1.25") is None
    assert parse_image("docker.io/istio/examples-bookinfo-reviews-v9:1.16.2") is None


def snapshot(weights: dict[str, int]) -> Snapshot:
    vs = {"metadata": {"name": "reviews", "namespace": "ns", "creationTimestamp": "2024-01-01T00:00:00Z"},
          "spec": {"hosts": ["reviews"],
                   "http": [{"route": [{"destination": {"host": "reviews", "subset": s}, "weight": w}
                                       for s, w in weights.items()]}]}}
    dr = {"metadata": {"name": "reviews", "namespace": "ns"},
          "spec": {"host": "reviews", "subsets": [{"name": s, "labels": {"version": s}} for s in weights]}}
    endpoints = [Endpoint("ns", f"reviews-{s}", {"app": "reviews", "version": s}, 1000 + i)
                 for i, s in enumerate(weights)]
    return Snapshot([vs], [dr], [], [ServiceEntry("ns", "reviews", {"app": "reviews"})], endpoints)


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=0, max_value=2**32))
def test_zero_weight_never_chosen_and_full_weight_always(weight: int, seed: int) -> None:
    snap = snapshot({"v1": weight, "v2": 100 - weight})
    rng = random.Random(seed)
    for _ in range(20):
        decision = snap.route_mesh(Request("GET", "/", "reviews:9080", {}, source_namespace="ns"), rng)
        assert decision.target is not None
        chosen = decision.target.endpoint.version
        assert (chosen == "v1" and weight > 0) or (chosen == "v2" and weight < 100)


# --- rules taken from Istio 1.30.3 (see the docstring of lab/dataplane/routing.py for the functions)


def _meta(name: str, namespace: str, created: str = "2024-01-01T00:00:00Z") -> dict[str, str]:
    return {"name": name, "namespace": namespace, "creationTimestamp": created}


def _dr(name: str, namespace: str, host: str, subsets: dict[str, str], created: str = "2024-01-01T00:00:00Z",
        **spec: object) -> dict[str, object]:
    return {"metadata": _meta(name, namespace, created),
            "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": v}} for s, v in subsets.items()],
                     **spec}}


def _reviews(namespace: str, *versions: str) -> tuple[ServiceEntry, list[Endpoint]]:
    return (ServiceEntry(namespace, "reviews", {"app": "reviews"}),
            [Endpoint(namespace, f"reviews-{v}", {"app": "reviews", "version": v}, 2000 + i)
             for i, v in enumerate(versions)])


def _count(snap: Snapshot, client_namespace: str, host: str = "reviews.a.svc.cluster.local:9080",
           requests: int = 2000, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(requests):
        decision = snap.route_mesh(Request("GET", "/", host, {}, source_namespace=client_namespace), rng)
        key = f"{decision.target.endpoint.namespace}/{decision.target.endpoint.version}" if decision.target \
            else str(decision.status)
        seen[key] = seen.get(key, 0) + 1
    return seen


def test_short_host_resolves_in_the_namespace_of_the_virtual_service() -> None:
    # Two namespaces each run "reviews"; a VirtualService in "a" that says "reviews" means reviews.a,
    # whoever the client is (ResolveShortnameToFQDN with the VirtualService's namespace).
    service_a, endpoints_a = _reviews("a", "v1")
    service_b, endpoints_b = _reviews("b", "v1")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}
    snap = Snapshot([vs], [], [], [service_a, service_b], endpoints_a + endpoints_b)
    assert _count(snap, "b", requests=50) == {"a/v1": 50}
    assert _count(snap, "a", requests=50) == {"a/v1": 50}


def test_a_host_with_a_dot_is_taken_literally() -> None:
    # "reviews.a" is not expanded to reviews.a.svc.cluster.local: no such service, no healthy upstream.
    service_a, endpoints_a = _reviews("a", "v1")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews.a"}}]}]}}
    snap = Snapshot([vs], [], [], [service_a], endpoints_a)
    assert _count(snap, "a", requests=10) == {"503": 10}


def test_weights_are_relative_900_100_is_90_10() -> None:
    service, endpoints = _reviews("a", "v1", "v2")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [
              {"destination": {"host": "reviews", "subset": "v1"}, "weight": 900},
              {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]}]}}
    snap = Snapshot([vs], [_dr("reviews", "a", "reviews", {"v1": "v1", "v2": "v2"})], [], [service], endpoints)
    seen = _count(snap, "a", requests=4000)
    assert set(seen) == {"a/v1", "a/v2"}
    assert 0.87 < seen["a/v1"] / 4000 < 0.93


def test_a_lone_destination_with_weight_zero_takes_everything() -> None:
    service, endpoints = _reviews("a", "v1", "v2")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [
              {"destination": {"host": "reviews", "subset": "v2"}, "weight": 0}]}]}}
    snap = Snapshot([vs], [_dr("reviews", "a", "reviews", {"v1": "v1", "v2": "v2"})], [], [service], endpoints)
    assert _count(snap, "a", requests=200) == {"a/v2": 200}


def test_first_matching_route_wins() -> None:
    service, endpoints = _reviews("a", "v1", "v2")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [
              {"match": [{"uri": {"prefix": "/"}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
              {"match": [{"uri": {"exact": "/reviews/1"}}],
               "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}}
    snap = Snapshot([vs], [_dr("reviews", "a", "reviews", {"v1": "v1", "v2": "v2"})], [], [service], endpoints)
    decision = snap.route_mesh(Request("GET", "/reviews/1", "reviews.a.svc.cluster.local", {},
                                       source_namespace="a"), random.Random(1))
    assert decision.target is not None and decision.target.endpoint.version == "v2"


def test_destination_rule_of_the_client_namespace_wins_then_service_then_root() -> None:
    # Subset "canary" means version v2 in the client's namespace "c", v1 in the service's namespace
    # "a", and v3 in the root namespace: push_context.go destinationRule looks in that order.
    service, endpoints = _reviews("a", "v1", "v2", "v3")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"],
                   "http": [{"route": [{"destination": {"host": "reviews", "subset": "canary"}}]}]}}
    in_client = _dr("client-view", "c", "reviews.a.svc.cluster.local", {"canary": "v2"})
    in_service = _dr("reviews", "a", "reviews", {"canary": "v1"})
    in_root = _dr("mesh-wide", "istio-system", "*.a.svc.cluster.local", {"canary": "v3"})
    snap = Snapshot([vs], [in_client, in_service, in_root], [], [service], endpoints)
    assert _count(snap, "c", requests=20) == {"a/v2": 20}
    assert _count(snap, "d", requests=20) == {"a/v1": 20}
    without_service_rule = Snapshot([vs], [in_client, in_root], [], [service], endpoints)
    assert _count(without_service_rule, "d", requests=20) == {"a/v3": 20}


def test_a_destination_rule_exported_only_to_its_namespace_is_invisible_elsewhere() -> None:
    service, endpoints = _reviews("a", "v1", "v2")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}}
    private = _dr("reviews", "a", "reviews", {"v2": "v2"}, exportTo=["."])
    snap = Snapshot([vs], [private], [], [service], endpoints)
    assert _count(snap, "a", requests=20) == {"a/v2": 20}
    # From namespace "d" no DestinationRule defines v2: Envoy has no such cluster.
    assert _count(snap, "d", requests=20) == {"503": 20}


def test_destination_rules_for_one_host_merge_their_subsets_oldest_first() -> None:
    service, endpoints = _reviews("a", "v1", "v2")
    vs = {"metadata": _meta("reviews", "a"),
          "spec": {"hosts": ["reviews"], "http": [{"route": [
              {"destination": {"host": "reviews", "subset": "one"}, "weight": 50},
              {"destination": {"host": "reviews", "subset": "two"}, "weight": 50}]}]}}
    older = _dr("older", "a", "reviews", {"one": "v1"}, created="2024-01-01T00:00:00Z")
    newer = _dr("newer", "a", "reviews", {"one": "v2", "two": "v2"}, created="2024-02-01T00:00:00Z")
    snap = Snapshot([vs], [newer, older], [], [service], endpoints)
    seen = _count(snap, "a", requests=400)
    assert set(seen) == {"a/v1", "a/v2"} and 150 < seen["a/v1"] < 250
