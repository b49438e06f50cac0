"""A destination is its resolved host plus its subset (issue 28): the modules against the lab's apiserver.

Expected answers come from Istio, through ``tests/conformance/oracle.py`` (written from Istio's code,
importing nothing of ours) and the upstream files it cites:
- istio/istio ``pilot/pkg/networking/core/route/route.go``: each route entry is a weighted cluster
  named by resolved host and subset, so entries for one destination add up
  (``oracle.destination_shares``); routes after the first catch-all are never built
  (``BuildHTTPRoutesForVirtualService``; ``analyzeUnreachableHTTPRules``: ``oracle.unreachable_rules``);
- istio/istio ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN`` (``oracle.resolve_shortname``);
- istio/istio ``pkg/config/validation/validation.go`` ``validateSubsetName`` with
  ``pkg/config/labels`` ``IsDNS1123Label`` (``oracle.validate_subset_name``: ``V2`` is valid).
Every refusal is checked in the audit log: nothing was written.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from lab.kube import KubeClient
from tests.conformance import oracle
from tests.helpers.ansible import lab_auth, run_module
from tests.integration.test_istio_semantics import DR, VS, make_namespace

pytestmark = pytest.mark.lab


def rule(host: str, subsets: tuple[str, ...], name: str = "reviews") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name},
            "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s.lower()}} for s in subsets]}}


def virtual_service(http: list[dict[str, Any]], hosts: tuple[str, ...] = ("reviews",)) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"hosts": list(hosts), "http": http}}


def to(host: str, subset: str | None = None, weight: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": host, **({"subset": subset} if subset else {})}}
    if weight is not None:
        entry["weight"] = weight
    return entry


def percent(shares: dict[Any, Fraction]) -> dict[Any, float]:
    return {key: float(share * 100) for key, share in shares.items()}


@pytest.fixture
def bookinfo_and_staging(kube: KubeClient) -> dict[str, str]:
    """Issue 28, section 1: VirtualService ``reviews`` in bookinfo whose route ``primary`` sends to the
    reviews service of staging; bookinfo's rule (host reviews = reviews.<bookinfo>...) defines v1 and v2,
    staging's rule (the service the route sends to) only v1."""
    bookinfo, staging = make_namespace(kube, "book"), make_namespace(kube, "stage")
    fqdn = f"reviews.{staging}.svc.cluster.local"
    kube.create(DR.format(ns=bookinfo), rule("reviews", ("v1", "v2")))
    kube.create(DR.format(ns=staging), rule("reviews", ("v1",)))
    kube.create(VS.format(ns=bookinfo), virtual_service([{"name": "primary", "route": [to(fqdn, "v1")]}]))
    return {"bookinfo": bookinfo, "staging": staging, "fqdn": fqdn}


def split(lab_state: dict[str, Any], namespace: str, **options: Any) -> dict[str, Any]:
    return run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace, **options})


def test_a_split_never_sends_a_routes_traffic_to_another_service(lab_state, kube, audit, bookinfo_and_staging):
    bookinfo, staging, fqdn = (bookinfo_and_staging[k] for k in ("bookinfo", "staging", "fqdn"))
    path = f"{VS.format(ns=bookinfo)}/reviews"
    before = kube.get(path)
    window = audit()
    result = split(lab_state, bookinfo, route_name="primary", weights={"v1": 90, "v2": 10})
    # Refused: v2 is not in the rule Istio applies to reviews.<staging> (push_context.go destinationRule).
    assert result.get("failed") is True, result
    assert "subset(s) v2" in result["msg"] and f"DestinationRule {staging}/reviews" in result["msg"], result["msg"]
    assert window.writes() == [], [e["requestURI"] for e in window.writes()]
    assert kube.get(path) == before

    # With v2 added to staging's rule the same task succeeds, and v2 lands on the staging service.
    stored = kube.get(f"{DR.format(ns=staging)}/reviews")
    stored["spec"]["subsets"].append({"name": "v2", "labels": {"version": "v2"}})
    kube.replace(f"{DR.format(ns=staging)}/reviews", stored)
    result = split(lab_state, bookinfo, route_name="primary", weights={"v1": 90, "v2": 10})
    assert result.get("failed") is not True, result
    route = kube.get(path)["spec"]["http"][0]["route"]
    assert route == [to(fqdn, "v1", 90), to(fqdn, "v2", 10)]
    # What Istio builds from it: every request stays on reviews.<staging>.
    shares = oracle.destination_shares(route, bookinfo)
    assert shares == {(fqdn, "v1"): Fraction(9, 10), (fqdn, "v2"): Fraction(1, 10)}
    assert result["after"] == {"v1": 90, "v2": 10}
    assert result["services"][0]["destination_rule_namespace"] == staging
    # The VirtualService's own host is another service: the result says which one moved.
    assert any(fqdn in note for note in result["services"][0]["notes"]), result["services"][0]


def test_a_service_host_other_than_the_routes_is_refused_naming_both(lab_state, kube, audit, bookinfo_and_staging):
    bookinfo, fqdn = bookinfo_and_staging["bookinfo"], bookinfo_and_staging["fqdn"]
    window = audit()
    result = split(lab_state, bookinfo, route_name="primary", service_host="reviews", weights={"v1": 90, "v2": 10})
    assert result.get("failed") is True, result
    assert fqdn in result["msg"] and f"reviews.{bookinfo}.svc.cluster.local" in result["msg"], result["msg"]
    assert window.writes() == []


def test_duplicate_entries_add_up_as_istio_builds_them(lab_state, kube, namespace):
    route = [to("reviews", "v1", 50), to("reviews", "v1", 50)]
    kube.create(DR.format(ns=namespace), rule("reviews", ("v1", "v2")))
    kube.create(VS.format(ns=namespace), virtual_service([{"name": "primary", "route": route}]))
    expected = percent(oracle.destination_shares(route, namespace))
    assert expected == {(f"reviews.{namespace}.svc.cluster.local", "v1"): 100.0}
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace})
    assert info["weights"] == {"v1": 100}, info
    # A split merges the repeated entry into the first and writes one weight per destination.
    result = split(lab_state, namespace, weights={"v1": 80, "v2": 20})
    assert result.get("failed") is not True, result
    written = kube.get(f"{VS.format(ns=namespace)}/reviews")["spec"]["http"][0]["route"]
    assert percent(oracle.destination_shares(written, namespace)) == {
        (f"reviews.{namespace}.svc.cluster.local", "v1"): 80.0, (f"reviews.{namespace}.svc.cluster.local", "v2"): 20.0}


def test_an_upper_case_subset_is_a_subset_as_istio_accepts_it(lab_state, kube, namespace):
    assert oracle.validate_subset_name("V2") == [] and oracle.validate_subset_name("v2.1") != []
    created = run_module("destination_rule", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace,
                                              "spec": {"host": "reviews"}, "subsets": [
                                                  {"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "V2", "labels": {"version": "v2"}}]})
    assert created.get("failed") is not True, created
    kube.create(VS.format(ns=namespace), virtual_service([{"route": [to("reviews", "v1")]}]))
    result = split(lab_state, namespace, weights={"v1": 90, "V2": 10})
    assert result.get("failed") is not True, result
    route = kube.get(f"{VS.format(ns=namespace)}/reviews")["spec"]["http"][0]["route"]
    assert route == [to("reviews", "v1", 90), to("reviews", "V2", 10)]


def test_weights_after_a_catch_all_are_refused_naming_it(lab_state, kube, audit, namespace):
    vs = virtual_service([{"name": "a", "route": [to("reviews", "v1")]},
                          {"name": "b", "route": [to("reviews", "v1")]}])
    kube.create(DR.format(ns=namespace), rule("reviews", ("v1", "v2")))
    kube.create(VS.format(ns=namespace), vs)
    # analyzeUnreachableHTTPRules: route b (index 1) comes after a route without matches.
    assert [(kind, index) for kind, index, _reason in oracle.unreachable_rules(vs)] == [("http", 1)]
    window = audit()
    result = split(lab_state, namespace, route_name="b", weights={"v1": 90, "v2": 10})
    assert result.get("failed") is True, result
    assert "'a'" in result["msg"] and "never receives traffic" in result["msg"], result["msg"]
    assert window.writes() == []


def test_a_destination_without_subset_is_the_host_itself(lab_state, kube, namespace):
    route = [to("reviews")]
    kube.create(DR.format(ns=namespace), rule("reviews", ("v1", "v2")))
    kube.create(VS.format(ns=namespace), virtual_service([{"route": route}]))
    assert oracle.destination_shares(route, namespace) == {(f"reviews.{namespace}.svc.cluster.local", None): 1}
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace})
    assert info["weights"] == {"reviews": 100}, info
    # weights name it by its host; the canary subset joins it.
    result = split(lab_state, namespace, weights={"reviews": 90, "v2": 10})
    assert result.get("failed") is not True, result
    assert result["before"] == {"reviews": 100} and result["after"] == {"reviews": 90, "v2": 10}
    written = kube.get(f"{VS.format(ns=namespace)}/reviews")["spec"]["http"][0]["route"]
    fqdn = f"reviews.{namespace}.svc.cluster.local"
    assert oracle.destination_shares(written, namespace) == {(fqdn, None): Fraction(9, 10),
                                                             (fqdn, "v2"): Fraction(1, 10)}


def test_a_route_across_two_hosts_is_read_per_host_and_split_within_one(lab_state, kube, audit, namespace):
    other = make_namespace(kube, "other")
    far = f"reviews.{other}.svc.cluster.local"
    route = [to("reviews", "v1", 60), to(far, "v1", 40)]
    kube.create(DR.format(ns=namespace), rule("reviews", ("v1", "v2")))
    kube.create(DR.format(ns=other), rule("reviews", ("v1",)))
    kube.create(VS.format(ns=namespace), virtual_service([{"name": "primary", "route": route}]))
    near = f"reviews.{namespace}.svc.cluster.local"
    assert percent(oracle.destination_shares(route, namespace)) == {(near, "v1"): 60.0, (far, "v1"): 40.0}
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": namespace})
    assert info["weights"] == {"reviews:v1": 60, f"{far}:v1": 40}, info

    # Plain subset names cannot say which host moves: refused, naming the hosts.
    window = audit()
    refused = split(lab_state, namespace, route_name="primary", weights={"v1": 90, "v2": 10})
    assert refused.get("failed") is True and far in refused["msg"] and "service_host" in refused["msg"], refused
    assert window.writes() == []

    result = split(lab_state, namespace, route_name="primary", service_host="reviews", weights={"v1": 50, "v2": 50})
    assert result.get("failed") is not True, result
    written = kube.get(f"{VS.format(ns=namespace)}/reviews")["spec"]["http"][0]["route"]
    shares = oracle.destination_shares(written, namespace)
    # The other service keeps exactly its 40%; the moved host's 60% is split half and half.
    assert shares[(far, "v1")] == Fraction(40, 100)
    assert shares == {(near, "v1"): Fraction(30, 100), (near, "v2"): Fraction(30, 100), (far, "v1"): Fraction(40, 100)}
    assert result["after"] == {"reviews:v1": 30, "reviews:v2": 30, f"{far}:v1": 40}


def test_a_header_route_sends_testers_to_the_service_everyone_else_gets(lab_state, kube, audit, bookinfo_and_staging):
    bookinfo, staging, fqdn = (bookinfo_and_staging[k] for k in ("bookinfo", "staging", "fqdn"))
    options = {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo, "route": "testers",
               "headers": {"end-user": "jason"}, "subset": "v2"}
    window = audit()
    refused = run_module("header_route", options)
    # bookinfo's own rule defines v2, but the route everyone gets sends to reviews.<staging>, whose rule does not.
    assert refused.get("failed") is True and f"DestinationRule {staging}/reviews" in refused["msg"], refused
    assert window.writes() == []
    stored = kube.get(f"{DR.format(ns=staging)}/reviews")
    stored["spec"]["subsets"].append({"name": "v2", "labels": {"version": "v2"}})
    kube.replace(f"{DR.format(ns=staging)}/reviews", stored)
    result = run_module("header_route", options)
    assert result.get("failed") is not True, result
    vs = kube.get(f"{VS.format(ns=bookinfo)}/reviews")
    testers = next(route for route in vs["spec"]["http"] if route.get("name") == "testers")
    assert oracle.destination_shares(testers["route"], bookinfo) == {(fqdn, "v2"): 1}
    # Istio's first match: jason reaches staging's v2, everyone else staging's v1.
    assert oracle.route_request(vs, oracle.Request(headers={"end-user": "jason"}), bookinfo).shares == {(fqdn, "v2"): 1}
    assert oracle.route_request(vs, oracle.Request(), bookinfo).shares == {(fqdn, "v1"): 1}
