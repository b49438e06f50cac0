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
