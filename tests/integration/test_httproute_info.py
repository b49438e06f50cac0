"""What canary_info reports for an HTTPRoute (issue 24 section 2), through the I/O layer's ``describe``
called directly against the lab's real API server.

Expected shares are Gateway API's reading of Istio's published routes (weight / sum of the rule's
weights); what exists and what is ready is what the test wrote, as the endpoints controller would.
"""

# ruff: noqa: F811 - test functions take the fixtures imported from test_httproute_split by name
from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._context import Context
from ansible_collections.canary.istio.plugins.module_utils._httproute import describe
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from tests.helpers.ansible import lab_auth, run_module

# The fixtures among these (reviews, services) are found by pytest by their names in this module.
from tests.integration.test_httproute_split import (  # noqa: F401  # pylint: disable=unused-import
    ROUTES,
    reviews,
    services,
    split,
    stored,
    upstream_route,
)

pytestmark = pytest.mark.lab


def read(state, ns, name="reviews", **options):
    ctx = Context(dict(lab_auth(state)), check_mode=False, diff_mode=False)
    try:
        return describe(ctx, name, ns, **options)
    finally:
        ctx.close()


def test_a_published_route_reads_as_gateway_api_weighs_it(lab_state, kube, reviews):
    route = upstream_route("route-reviews-50-v3")
    route["metadata"]["name"] = "published"
    kube.create(ROUTES.format(ns=reviews), route)
    info = read(lab_state, reviews, "published", services=("reviews-v2",))
    assert info["exists"] is True and info["kind"] == "HTTPRoute"
    assert info["weights"] == {"reviews-v1": 50, "reviews-v3": 50}
    assert info["api_version"] == "gateway.networking.k8s.io/v1"
    by_name = {b["name"]: b for b in info["backends"]}
    assert by_name == {
        "reviews-v1": {"name": "reviews-v1", "exists": True, "ready_endpoints": 2, "routed": True,
                       "selector": {"app": "reviews", "version": "v1"}},
        "reviews-v3": {"name": "reviews-v3", "exists": True, "ready_endpoints": 0, "routed": True,
                       "selector": {"app": "reviews", "version": "v3"}},
        "reviews-v2": {"name": "reviews-v2", "exists": True, "ready_endpoints": 1, "routed": False,
                       "selector": {"app": "reviews", "version": "v2"}}}
    assert [s["name"] for s in info["subsets"]] == ["reviews-v1", "reviews-v3", "reviews-v2"]


def test_every_rule_is_listed_and_the_catch_all_is_reported(lab_state, reviews):
    info = read(lab_state, reviews, services=("reviews-v4",))
    assert [(r["index"], r["name"], r["weights"]) for r in info["routes"]] == [
        (0, "testers", {"reviews-v3": 100}), (1, "primary", {"reviews-v1": 100})]
    assert info["routes"][0]["match"][0]["headers"] == [{"type": "Exact", "name": "end-user", "value": "jason"}]
    assert info["weights"] == {"reviews-v1": 100}
    exists = {"reviews-v3": True, "reviews-v1": True, "reviews-v4": False}
    assert {b["name"]: b["exists"] for b in info["backends"]} == exists
    assert info["state"] == {"base": None, "canary": None, "weight": None, "route": None}
    testers = read(lab_state, reviews, route_name="testers")
    assert testers["weights"] == {"reviews-v3": 100}


def test_the_recorded_state_and_history_are_read_back(lab_state, reviews):
    split(lab_state, reviews, {"reviews-v1": 80, "reviews-v2": 20}, base="reviews-v1", canary="reviews-v2")
    info = read(lab_state, reviews)
    assert info["weights"] == {"reviews-v1": 80, "reviews-v2": 20}
    assert info["state"] == {"base": "reviews-v1", "canary": "reviews-v2", "weight": 20, "route": "primary"}
    assert [(h["from"], h["to"]) for h in info["history"]] == [({"reviews-v1": 100},
                                                                {"reviews-v1": 80, "reviews-v2": 20})]


def test_a_missing_route_reads_as_absent_with_one_request(lab_state, reviews, audit):
    window = audit()
    info = read(lab_state, reviews, "ratings")
    assert info["exists"] is False and info["weights"] == {} and info["backends"] == []
    assert [(e["verb"], e["objectRef"]["resource"]) for e in window.requests(user="lab:admin")] == [
        ("get", "httproutes")]


def test_a_rule_name_that_does_not_exist_is_refused_naming_the_rules(lab_state, reviews):
    with pytest.raises(CanaryInputError) as refused:
        read(lab_state, reviews, route_name="nightly")
    assert "no rule named 'nightly'" in str(refused.value) and "('primary')" in str(refused.value)


def test_virtual_service_info_reads_httproutes_by_name_and_by_label(lab_state, kube, reviews):
    args = {**lab_auth(lab_state), "kind": "HTTPRoute", "namespace": reviews}
    named = run_module("virtual_service_info", {**args, "name": "reviews"})
    assert not named.get("failed"), named
    assert named["api_version"] == "gateway.networking.k8s.io/v1"
    [route] = named["resources"]
    expected = stored(kube, reviews)
    assert route["kind"] == "HTTPRoute" and route["spec"] == expected["spec"]
    assert "managedFields" not in route["metadata"]
    assert route["metadata"]["resourceVersion"] == expected["metadata"]["resourceVersion"]
    other = upstream_route("route-reviews-90-10")
    other["metadata"]["name"] = "unlabelled"
    kube.create(ROUTES.format(ns=reviews), other)
    listed = run_module("virtual_service_info", {**args, "label_selectors": ["team=books"]})
    assert [r["metadata"]["name"] for r in listed["resources"]] == ["reviews"]
    assert [r["kind"] for r in listed["resources"]] == ["HTTPRoute"]
    everything = run_module("virtual_service_info", args)
    assert sorted(r["metadata"]["name"] for r in everything["resources"]) == ["reviews", "unlabelled"]
    assert run_module("virtual_service_info", {**args, "name": "ratings"})["resources"] == []
