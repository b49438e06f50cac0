"""Istio's semantics, not ours: the modules against the lab's real apiserver.

Expected answers come from Istio, cited per test, never from the collection's own functions:
- istio/istio ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN`` (a host without a dot
  lives in the namespace of the object naming it; a host with a dot is literal);
- istio/istio ``pilot/pkg/model/push_context.go`` ``destinationRule`` (the client's namespace
  first, then the service's namespace, then the root namespace);
- istio/api ``networking/v1alpha3/virtual_service.proto`` (routes are evaluated in order, the
  first match wins; weights are relative, a lone destination receives all traffic);
- istio/istio ``pkg/config/validation/`` (``validateHTTPRouteConflict``, ``ValidateVirtualService``,
  ``validateSubsetName``);
- istio/istio ``samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml``.
Every refusal is checked in the audit log: nothing was written.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lab.kube import KubeClient
from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"
ADMIN = "lab:admin"


def make_namespace(kube: KubeClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def rule(name: str, host: str, subsets: tuple[str, ...]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name},
            "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


def virtual_service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
            "spec": spec}


@pytest.fixture
def two_namespaces(kube: KubeClient) -> dict[str, str]:
    """frontend holds the VirtualService; staging holds the reviews service's DestinationRule.

    frontend also holds a DestinationRule named ``reviews`` whose host ``reviews`` means
    reviews.<frontend>.svc.cluster.local - another service - and which defines v2: a rule named
    like the host in the VirtualService's namespace is not the one Istio applies to
    reviews.<staging>.svc.cluster.local.
    """
    frontend, staging = make_namespace(kube, "front"), make_namespace(kube, "stage")
    fqdn = f"reviews.{staging}.svc.cluster.local"
    kube.create(DR.format(ns=staging), rule("reviews", "reviews", ("v1",)))
    kube.create(DR.format(ns=frontend), rule("reviews", "reviews", ("v1", "v2")))
    kube.create(VS.format(ns=frontend), virtual_service("reviews", {
        "hosts": [fqdn], "http": [{"name": "primary", "route": [
            {"destination": {"host": fqdn, "subset": "v1"}, "weight": 100}]}]}))
    return {"frontend": frontend, "staging": staging, "fqdn": fqdn}


# --------------------------------------------------------------------------------------
# 1. host names and which DestinationRule applies


def test_split_checks_the_destination_rule_of_the_service_namespace(lab_state, kube, audit, two_namespaces):
    frontend, staging = two_namespaces["frontend"], two_namespaces["staging"]
    before = kube.get(f"{VS.format(ns=frontend)}/reviews")
    window = audit()
    result = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": frontend,
                                          "base": "v1", "canary": "v2", "canary_weight": 30})
    assert result.get("failed") is True, result
    assert "subset(s) v2" in result["msg"] and f"DestinationRule {staging}/reviews" in result["msg"]
    assert "defines only v1" in result["msg"]
    assert window.writes() == [], [e["requestURI"] for e in window.writes()]
    assert kube.get(f"{VS.format(ns=frontend)}/reviews") == before


def test_split_across_namespaces_succeeds_once_the_subset_exists_there(lab_state, kube, audit, two_namespaces):
    frontend, staging, fqdn = two_namespaces["frontend"], two_namespaces["staging"], two_namespaces["fqdn"]
    stored = kube.get(f"{DR.format(ns=staging)}/reviews")
    stored["spec"]["subsets"].append({"name": "v2", "labels": {"version": "v2"}})
    kube.replace(f"{DR.format(ns=staging)}/reviews", stored)
    window = audit()
    result = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": frontend,
                                          "base": "v1", "canary": "v2", "canary_weight": 30})
    made = window.requests(user=ADMIN)
    assert result.get("failed") is not True, result
    assert result["services"][0]["destination_rule_namespace"] == staging
    # GET the VirtualService; in its namespace no rule named after the service, and the watch cache's
    # host table shows none for this host - a cache may lag, so a full LIST there confirms it; LIST
    # rules in the service's namespace; one PATCH: six requests for a cross-namespace split.
    assert [(e["verb"], e["objectRef"].get("namespace")) for e in made] == [
        ("get", frontend), ("get", frontend), ("list", frontend), ("list", frontend), ("list", staging),
        ("patch", frontend)]
    assert "resourceVersion=0" in made[2]["requestURI"] and "resourceVersion" not in made[3]["requestURI"]
    assert result["api_requests"] == 6
    route = kube.get(f"{VS.format(ns=frontend)}/reviews")["spec"]["http"][0]["route"]
    assert route == [{"destination": {"host": fqdn, "subset": "v1"}, "weight": 70},
                     {"destination": {"host": fqdn, "subset": "v2"}, "weight": 30}]


def test_canary_info_reads_the_rule_and_workloads_of_the_service_namespace(lab_state, kube, two_namespaces):
    frontend, staging = two_namespaces["frontend"], two_namespaces["staging"]
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": frontend})
    assert info.get("failed") is not True, info
    assert (info["destination_rule"], info["destination_rule_namespace"]) == ("reviews", staging)
    assert [subset["name"] for subset in info["subsets"]] == ["v1"]


def test_destination_rule_routed_check_follows_istio_hosts(lab_state, kube, audit, two_namespaces):
    frontend, staging = two_namespaces["frontend"], two_namespaces["staging"]
    auth = lab_auth(lab_state)
    # v1 of reviews.<staging> is routed to by the VirtualService in frontend: removing it is refused.
    window = audit()
    refused = run_module("destination_rule", {**auth, "name": "reviews", "namespace": staging,
                                              "remove_subsets": ["v1"]})
    assert refused.get("failed") is True, refused
    assert "still routed" in refused["msg"] and f"{frontend}/reviews" in refused["msg"]
    assert window.writes() == []
    # frontend's own rule is for reviews.<frontend>, which nothing routes to: v1 may go.
    allowed = run_module("destination_rule", {**auth, "name": "reviews", "namespace": frontend,
                                              "remove_subsets": ["v1"]})
    assert allowed.get("failed") is not True and allowed["removed_subsets"] == ["v1"], allowed


# --------------------------------------------------------------------------------------
# 2. first match wins


def test_header_route_below_a_route_that_takes_its_requests_is_refused(lab_state, kube, audit, namespace):
    # istio/istio samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml
    kube.create(VS.format(ns=namespace), virtual_service("reviews", {
        "hosts": ["reviews"],
        "http": [{"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                  "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                 {"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}))
    kube.create(DR.format(ns=namespace), rule("reviews", "reviews", ("v1", "v2", "v3")))
    before = kube.get(f"{VS.format(ns=namespace)}/reviews")
    window = audit()
    result = run_module("header_route", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                         "route": "testers", "headers": {"end-user": "jason"}, "subset": "v1"})
    assert result.get("failed") is True, result
    assert "#0 (unnamed)" in result["msg"] and "never receive traffic" in result["msg"]
    assert window.writes() == []
    assert kube.get(f"{VS.format(ns=namespace)}/reviews") == before


# --------------------------------------------------------------------------------------
# 3. reading weights


def test_weights_are_read_as_istio_routes_them(lab_state, kube, namespace):
    # virtual_service.proto: "A destination will receive weight/(sum of all weights) requests. If
    # there is only one destination in a rule, it will receive all traffic."
    kube.create(VS.format(ns=namespace), virtual_service("reviews", {
        "hosts": ["reviews"],
        "http": [{"name": "lone", "match": [{"uri": {"prefix": "/lone"}}],
                  "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 0}]},
                 {"name": "primary", "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 900},
                                               {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]}]}))
    kube.create(DR.format(ns=namespace), rule("reviews", "reviews", ("v1", "v2")))
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace})
    assert info.get("failed") is not True, info
    assert info["weights"] == {"v1": 90, "v2": 10}
    assert [route["weights"] for route in info["routes"]] == [{"v1": 100}, {"v1": 90, "v2": 10}]
    moved = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                         "weights": {"v1": 50, "v2": 50}})
    assert moved.get("failed") is not True, moved
    assert moved["before"] == {"v1": 90, "v2": 10} and moved["after"] == {"v1": 50, "v2": 50}
    # virtual_service accepts what Istio accepts (weights need not sum to 100 since Istio 1.15).
    spec = kube.get(f"{VS.format(ns=namespace)}/reviews")["spec"]
    spec["http"][1]["route"][0]["weight"] = 900
    kept = run_module("virtual_service", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                          "spec": spec})
    assert kept.get("failed") is not True, kept


# --------------------------------------------------------------------------------------
# 4. routes that must not carry weights


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("redirect", {"uri": "/v2/reviews"}, "redirects"),
    ("directResponse", {"status": 503}, "answers directly"),
    ("delegate", {"name": "reviews-v2"}, "delegates to another VirtualService"),
])
def test_weights_on_a_route_without_destinations_are_refused(lab_state, kube, audit, namespace, field, value,
                                                             fragment):
    kube.create(VS.format(ns=namespace), virtual_service("reviews", {
        "hosts": ["reviews"],
        "http": [{"name": "legacy", "match": [{"uri": {"prefix": "/old"}}], field: value},
                 {"name": "primary", "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}))
    kube.create(DR.format(ns=namespace), rule("reviews", "reviews", ("v1", "v2")))
    before = kube.get(f"{VS.format(ns=namespace)}/reviews")
    window = audit()
    result = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                          "route_name": "legacy", "weights": {"v1": 90, "v2": 10}})
    assert result.get("failed") is True, result
    assert fragment in result["msg"] and "'legacy'" in result["msg"] and "validateHTTPRouteConflict" in result["msg"]
    assert window.writes() == []
    assert kube.get(f"{VS.format(ns=namespace)}/reviews") == before


# --------------------------------------------------------------------------------------
# 5. delegate VirtualServices


def test_delegate_virtual_service_is_accepted(lab_state, kube, namespace):
    # The delegate of istio/api virtual_service.proto ("Delegate"): no hosts, routes only.
    spec = {"http": [{"match": [{"uri": {"prefix": "/productpage/v1/"}}],
                      "route": [{"destination": {"host": f"productpage-v1.{namespace}.svc.cluster.local"}}]}]}
    created = run_module("virtual_service", {**lab_auth(lab_state), "name": "productpage-v1",
                                             "namespace": namespace, "spec": spec})
    assert created.get("failed") is not True and created["changed"] is True, created
    assert kube.get(f"{VS.format(ns=namespace)}/productpage-v1")["spec"]["http"] == spec["http"]
    again = run_module("virtual_service", {**lab_auth(lab_state), "name": "productpage-v1",
                                           "namespace": namespace, "spec": spec})
    assert again["changed"] is False, again


# --------------------------------------------------------------------------------------
# 7. messages that send users the right way


def test_messages_name_istio_behaviour(lab_state, kube, audit, namespace):
    auth = {**lab_auth(lab_state), "namespace": namespace}
    kube.create(DR.format(ns=namespace), rule("reviews", "reviews", ("v1", "v2")))
    kube.create(VS.format(ns=namespace), virtual_service("reviews", {"hosts": ["reviews"], "http": [
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
        {"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}))
    kube.create(VS.format(ns=namespace), virtual_service("mongo", {"hosts": ["mongo"], "tcp": [
        {"route": [{"destination": {"host": "mongo", "subset": "v1"}}]}]}))
    kube.create(VS.format(ns=namespace), virtual_service("ratings", {"hosts": ["ratings"], "http": [
        {"route": [{"destination": {"host": "ratings"}}]}]}))
    window = audit()
    dead = run_module("traffic_split", {**auth, "name": "reviews", "weights": {"v1": 50, "v2": 50}})
    assert "to the first, #0 (unnamed)" in dead["msg"] and "#1 (unnamed) never receive traffic" in dead["msg"]
    tcp = run_module("traffic_split", {**auth, "name": "mongo", "weights": {"v1": 100}})
    assert "only tcp routes" in tcp["msg"] and "manages http routes only" in tcp["msg"]
    whole = run_module("traffic_split", {**auth, "name": "ratings", "weights": {"v1": 100}})
    assert "host 'ratings' with no subset" in whole["msg"] and "not a missing subset" in whole["msg"]
    assert window.writes() == []
