"""traffic_split, header_route and canary_info with ``kind: HTTPRoute``, run as Ansible runs them, against
the lab's real API server (issue 24 section 2).

Expected values: Istio's published Gateway API routes (route-reviews-90-10.yaml, route-reviews-50-v3.yaml)
as the API server stores them, and Gateway API's weight semantics; refusals are checked in the audit log
(nothing written) and by what the API server holds afterwards.
"""

# ruff: noqa: F811 - test functions take the fixtures imported from test_httproute_split by name
from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.ansible import lab_auth, run_module
from tests.integration.test_httproute_lockstep import DR, VS, istio_sample

# The fixtures among these (reviews, services) are found by pytest by their names in this module.
from tests.integration.test_httproute_split import (  # noqa: F401  # pylint: disable=unused-import
    ENDPOINTS,
    ROUTES,
    endpoints,
    published_rule,
    reviews,
    services,
    stored,
    upstream_route,
)
from tests.integration.test_least_privilege import _bind as bind_role

pytestmark = pytest.mark.lab


def split(state: dict[str, Any], ns: str, weight: Any, check: bool = False, diff: bool = False,
          **extra: Any) -> dict[str, Any]:
    args = {**lab_auth(state), "kind": "HTTPRoute", "name": "reviews", "namespace": ns, "base": "reviews-v1",
            "canary": "reviews-v2", "canary_weight": weight, "actor": "tester", **extra}
    return run_module("traffic_split", args, check=check, diff=diff)


def test_traffic_split_writes_istios_published_route_then_repeats_unchanged(lab_state, kube, reviews, audit):
    window = audit()
    result = split(lab_state, reviews, 10)
    assert result["changed"] is True and not result.get("failed"), result
    assert len(window.requests(user="lab:admin")) == 4 and len(window.writes()) == 1
    assert result["before"] == {"reviews-v1": 100} and result["after"] == {"reviews-v1": 90, "reviews-v2": 10}
    assert result["route"] == "primary"
    assert result["api_version"] == "gateway.networking.k8s.io/v1"
    assert result["services"][0]["kind"] == "HTTPRoute" and result["services"][0]["moved"] is True
    now = stored(kube, reviews)
    assert now["spec"]["rules"][1]["backendRefs"] == published_rule(kube, reviews, "route-reviews-90-10")["backendRefs"]
    again = split(lab_state, reviews, 10)
    assert again["changed"] is False and again["after"] == {"reviews-v1": 90, "reviews-v2": 10}
    assert stored(kube, reviews)["metadata"]["resourceVersion"] == now["metadata"]["resourceVersion"]


def test_traffic_split_check_and_diff_mode(lab_state, kube, reviews):
    before = stored(kube, reviews)
    result = split(lab_state, reviews, 30, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"] == {"before": {f"{reviews}/reviews": {"reviews-v1": 100}},
                              "after": {f"{reviews}/reviews": {"reviews-v1": 70, "reviews-v2": 30}}}
    assert stored(kube, reviews) == before


@pytest.mark.parametrize("extra,fragment", [
    ({"canary_weight": 150}, "150"),
    ({"canary_weight": "abc"}, "'abc'"),
    ({"canary": "reviews-v4"}, "no Service 'reviews-v4' exists"),
    ({"name": "ratings"}, "HTTPRoute {ns}/ratings not found"),
    ({"route_name": "nightly"}, "no rule named 'nightly'"),
    ({"canary": "reviews-v3"}, "no ready endpoints"),
    ({"service_host": "reviews"}, "service_host is for VirtualServices"),
])
def test_bad_input_is_refused_naming_value_and_rule_without_a_write(lab_state, kube, reviews, audit, extra,
                                                                    fragment):
    before = stored(kube, reviews)
    window = audit()
    extra = dict(extra)
    result = split(lab_state, reviews, extra.pop("canary_weight", 20), **extra)
    assert result.get("failed") is True, result
    assert fragment.format(ns=reviews) in result["msg"]
    assert window.writes() == []
    assert stored(kube, reviews) == before


def test_not_ready_endpoints_move_when_allowed_with_a_warning(lab_state, kube, reviews):
    result = split(lab_state, reviews, 50, canary="reviews-v3", require_ready_endpoints=False)
    # ansible-core 2.19 wraps each warning of a module's raw output in a WarningSummary mapping.
    assert result["changed"] is True and "no ready endpoints" in str(result.get("warnings")), result
    assert stored(kube, reviews)["spec"]["rules"][1]["backendRefs"] == \
        published_rule(kube, reviews, "route-reviews-50-v3")["backendRefs"]


def test_header_route_adds_and_removes_a_testers_rule(lab_state, kube, reviews):
    original = stored(kube, reviews)
    args = {**lab_auth(lab_state), "kind": "HTTPRoute", "name": "reviews", "namespace": reviews,
            "route": "canary-testers"}
    added = run_module("header_route", {**args, "headers": {"end-user": "alice"}, "service": "reviews-v2"}, diff=True)
    assert added["changed"] is True and not added.get("failed"), added
    assert added["routes"] == ["testers", "canary-testers", "primary"]
    rule = stored(kube, reviews)["spec"]["rules"][1]
    assert [(h["name"], h["value"]) for h in rule["matches"][0]["headers"]] == [("end-user", "alice")]
    assert [(r["name"], r["port"]) for r in rule["backendRefs"]] == [("reviews-v2", 9080)]
    assert run_module("header_route", {**args, "headers": {"end-user": "alice"},
                                       "service": "reviews-v2"})["changed"] is False
    refused = run_module("header_route", {**args, "headers": {"end-user": "bob"}, "subset": "v2"})
    assert refused.get("failed") is True and "service" in refused["msg"]
    removed = run_module("header_route", {**args, "state": "absent"})
    assert removed["changed"] is True and stored(kube, reviews)["spec"] == original["spec"]


def test_canary_info_reads_the_route_and_the_release_phase(lab_state, reviews):
    split(lab_state, reviews, 20)
    info = run_module("canary_info", {**lab_auth(lab_state), "kind": "HTTPRoute", "name": "reviews",
                                      "namespace": reviews, "base": "reviews-v1", "canary": "reviews-v2"})
    assert not info.get("failed"), info
    assert info["exists"] is True and info["weights"] == {"reviews-v1": 80, "reviews-v2": 20}
    assert info["state"] == {"base": "reviews-v1", "canary": "reviews-v2", "weight": 20, "route": "primary"}
    assert info["phase"] == "in_progress"
    assert {b["name"]: b["ready_endpoints"] for b in info["backends"]} == {"reviews-v3": 0, "reviews-v1": 2,
                                                                           "reviews-v2": 1}


def test_one_traffic_split_task_moves_a_virtual_service_and_an_httproute(lab_state, kube, services):
    kube.create(VS.format(ns=services), istio_sample("virtual-service-all-v1", "ratings"))
    kube.create(DR.format(ns=services), istio_sample("destination-rule-all", "ratings"))
    kube.create(ENDPOINTS.format(ns=services), endpoints("reviews-v2", 1))
    kube.create(ROUTES.format(ns=services), upstream_route("route-reviews-v1"))
    result = run_module("traffic_split", {**lab_auth(lab_state), "namespace": services, "services": [
        {"name": "ratings", "weights": {"v1": 90, "v2": 10}},
        {"name": "reviews", "kind": "HTTPRoute", "weights": {"reviews-v1": 90, "reviews-v2": 10}}]})
    assert result["changed"] is True and not result.get("failed"), result
    assert [(s["name"], s["moved"]) for s in result["services"]] == [("ratings", True), ("reviews", True)]
    ratings = kube.get(f"{VS.format(ns=services)}/ratings")["spec"]["http"][0]["route"]
    assert [(d["destination"]["subset"], d["weight"]) for d in ratings] == [("v1", 90), ("v2", 10)]
    assert stored(kube, services)["spec"]["rules"][0]["backendRefs"] == \
        published_rule(kube, services, "route-reviews-90-10")["backendRefs"]


@pytest.mark.parametrize("role_file", ["canary-traffic-role.yaml", "canary-traffic-clusterrole.yaml"])
def test_the_shipped_traffic_role_is_enough_on_an_httproute(lab_state, kube, reviews, role_file):
    bind_role(kube, reviews, role_file)
    nobody = {**lab_auth(lab_state, "nobody"), "kind": "HTTPRoute", "name": "reviews", "namespace": reviews}
    moved = run_module("traffic_split", {**nobody, "base": "reviews-v1", "canary": "reviews-v2", "canary_weight": 10})
    assert moved["changed"] is True and not moved.get("failed"), moved
    testers = run_module("header_route", {**nobody, "route": "canary-testers", "headers": {"end-user": "alice"},
                                          "service": "reviews-v2"})
    assert testers["changed"] is True and not testers.get("failed"), testers
    info = run_module("canary_info", nobody)
    assert info["weights"] == {"reviews-v1": 90, "reviews-v2": 10}, info
