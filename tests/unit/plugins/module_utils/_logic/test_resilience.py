# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resilience policies: options validated as Istio validates them, patches that write Istio's own examples.

Expected objects are Istio's: the examples of its API reference (istio/api, vendored under
tests/conformance/upstream/api), its Bookinfo samples (tests/conformance/upstream/istio) and the
EnvoyFilter of its "local rate limit" task (tests/traffic/istio_tasks). Each patch test starts from
the example with the policy taken out, sets the policy from snake_case options, and must give the
example back; removal must give the start back.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.resilience import (
    RETRY_ON_POLICIES,
    build_http_route_rule_patch,
    build_http_route_rule_removal,
    build_route_policy_patch,
    build_route_policy_removal,
    build_token_bucket_patch,
    build_traffic_policy_patch,
    build_traffic_policy_removal,
    fault_match,
    http_route_fields,
    local_rate_limit_envoy_filter,
    plan_fault_tester_route,
    removal_paths,
    remove_fault_tester_route,
    route_fields,
    token_bucket,
    traffic_policy_fields,
)
from tests.helpers.collection import REPO_ROOT
from tests.unit.plugins.module_utils._logic.support import PatchTestFailed, apply_patch

pytestmark = pytest.mark.unit

ROOT = REPO_ROOT
API = ROOT / "tests" / "conformance" / "upstream" / "api" / "networking" / "v1alpha3"
SAMPLES = ROOT / "tests" / "conformance" / "upstream" / "istio" / "samples" / "bookinfo" / "networking"
TASKS = ROOT / "tests" / "traffic" / "istio_tasks"
GATEWAY_API = ROOT / "tests" / "conformance" / "gateway_api" / "upstream" / "conformance" / "tests"


def upstream(path: Path, kind: str) -> dict:
    """The one ``kind`` object of an upstream file, as the API server would hold it (with a resourceVersion)."""
    found = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc and doc["kind"] == kind]
    assert len(found) == 1, path
    found[0]["metadata"]["resourceVersion"] = "41"
    return found[0]


def without(obj: dict, *path) -> dict:
    copied = copy.deepcopy(obj)
    holder = copied
    for token in path[:-1]:
        holder = holder[token]
    del holder[path[-1]]
    return copied


# --------------------------------------------------------------------------- VirtualService route fields

ROUTE_EXAMPLES = [
    # (istio/api example, the field it shows, the same policy as this collection's options)
    ("virtual_service/L0311.yaml", "timeout", {"timeout": "5s"}),
    ("virtual_service/L1319.yaml", "retries",
     {"retries": {"attempts": 3, "per_try_timeout": "2s", "retry_on": "gateway-error,connect-failure,refused-stream"}}),
    ("virtual_service/L1486.yaml", "fault", {"fault": {"delay": {"fixed_delay": "5s", "percentage": 0.1}}}),
    ("virtual_service/L1536.yaml", "fault", {"fault": {"abort": {"http_status": 400, "percentage": 0.1}}}),
]


@pytest.mark.parametrize("example,field,options", ROUTE_EXAMPLES, ids=[e[0] for e in ROUTE_EXAMPLES])
def test_setting_a_route_policy_writes_istios_example(example, field, options):
    expected = upstream(API / example, "VirtualService")
    start = without(expected, "spec", "http", 0, field)
    ops = build_route_policy_patch(start, 0, route_fields(**options))
    assert apply_patch(start, ops) == expected
    # Set again: nothing to do.
    assert build_route_policy_patch(expected, 0, route_fields(**options)) == []
    # Removed by name: back to the start, the route's match and destinations untouched.
    removal = build_route_policy_removal(expected, 0, removal_paths([field])["route"])
    assert apply_patch(expected, removal) == start
    assert build_route_policy_removal(start, 0, removal_paths([field])["route"]) == []


def test_setting_one_leaf_keeps_the_others_and_other_routes():
    expected = upstream(SAMPLES / "virtual-service-ratings-test-abort.yaml", "VirtualService")
    vs = copy.deepcopy(expected)
    vs["spec"]["http"][0]["fault"]["abort"]["httpStatus"] = 503
    ops = build_route_policy_patch(vs, 0, route_fields(fault={"abort": {"http_status": 500, "percentage": 100}}))
    assert apply_patch(vs, ops) == expected
    # A retry policy set on the default route leaves the jason route alone; attempts alone keeps perTryTimeout.
    vs = copy.deepcopy(expected)
    vs["spec"]["http"][1]["retries"] = {"attempts": 1, "perTryTimeout": "2s"}
    after = apply_patch(vs, build_route_policy_patch(vs, 1, route_fields(retries={"attempts": 3})))
    assert after["spec"]["http"][1]["retries"] == {"attempts": 3, "perTryTimeout": "2s"}
    assert after["spec"]["http"][0] == expected["spec"]["http"][0]


def test_removing_the_only_fault_kind_removes_the_fault():
    """Istio refuses a fault with neither delay nor abort (validateHTTPFaultInjection): none is left behind."""
    expected = upstream(API / "virtual_service/L1486.yaml", "VirtualService")
    after = apply_patch(expected, build_route_policy_removal(expected, 0, removal_paths(["fault.delay"])["route"]))
    assert "fault" not in after["spec"]["http"][0]
    assert after["spec"]["http"][0]["match"] == expected["spec"]["http"][0]["match"]


def test_a_concurrent_edit_fails_the_patch():
    vs = upstream(API / "virtual_service/L1319.yaml", "VirtualService")
    ops = build_route_policy_patch(vs, 0, route_fields(retries={"attempts": 5}))
    edited = copy.deepcopy(vs)
    edited["spec"]["http"][0]["retries"]["attempts"] = 4
    edited["metadata"]["resourceVersion"] = "42"
    with pytest.raises(PatchTestFailed):
        apply_patch(edited, ops)
    unversioned = without(edited, "metadata", "resourceVersion")
    with pytest.raises(PatchTestFailed):
        apply_patch(unversioned, [op for op in ops if op["path"] != "/metadata/resourceVersion"])


def test_fault_for_testers_only_builds_istios_test_route():
    """The test route of virtual-service-ratings-test-delay.yaml, made from the default route and a match."""
    expected = upstream(SAMPLES / "virtual-service-ratings-test-delay.yaml", "VirtualService")
    start = copy.deepcopy(expected)
    del start["spec"]["http"][0]
    options = {"delay": {"fixed_delay": "7s", "percentage": 100.0},
               "match": [{"headers": {"end-user": {"exact": "jason"}}}]}
    http = plan_fault_tester_route(start["spec"], 0, "ratings-fault-testers", fault_match(options),
                                   route_fields(fault=options)["fault"])
    assert [route.get("name") for route in http] == ["ratings-fault-testers", None]
    assert without({"route": http[0]}, "route", "name")["route"] == expected["spec"]["http"][0]
    assert http[1] == expected["spec"]["http"][1]
    # Again: the same list; removed: the start.
    assert plan_fault_tester_route({"http": http}, 1, "ratings-fault-testers", fault_match(options),
                                   route_fields(fault=options)["fault"]) == http
    assert remove_fault_tester_route({"http": http}, "ratings-fault-testers") == start["spec"]["http"]
    with pytest.raises(CanaryConflictError, match="no match"):
        remove_fault_tester_route({"http": [{"name": "all", "route": []}]}, "all")


# --------------------------------------------------------------------------- HTTPRoute rules


@pytest.mark.parametrize("example,options", [
    ("httproute-timeout-request.yaml", [{"timeout": "500ms"}, {"timeout": "0s"}]),
    ("httproute-timeout-backend-request.yaml", [{"retries": {"per_try_timeout": "500ms"}},
                                                {"retries": {"per_try_timeout": "0s"}}]),
])
def test_http_route_timeouts_write_gateway_apis_conformance_routes(example, options):
    expected = upstream(GATEWAY_API / example, "HTTPRoute")
    start = copy.deepcopy(expected)
    for rule in start["spec"]["rules"]:
        del rule["timeouts"]
    after = start
    for index, given in enumerate(options):
        after = apply_patch(after, build_http_route_rule_patch(after, index, http_route_fields(**given)))
    assert after == expected
    assert build_http_route_rule_patch(expected, 0, http_route_fields(**options[0])) == []
    names = list(options[0])
    removed = apply_patch(expected, build_http_route_rule_removal(expected, 0, names))
    assert "timeouts" not in removed["spec"]["rules"][0] and removed["spec"]["rules"][1] == expected["spec"]["rules"][1]


def test_http_route_refuses_what_gateway_api_refuses_or_lacks():
    route = upstream(GATEWAY_API / "httproute-timeout-request.yaml", "HTTPRoute")
    with pytest.raises(CanaryInputError, match="backendRequest '1s' is longer than request '500ms'"):
        build_http_route_rule_patch(route, 0, http_route_fields(retries={"per_try_timeout": "1s"}))
    with pytest.raises(CanaryInputError, match=r"'0\.5s' is not a Gateway API duration"):
        http_route_fields(timeout="0.5s")
    with pytest.raises(CanaryInputError, match="Gateway API has no fault injection"):
        http_route_fields(fault={"abort": {"http_status": 500, "percentage": 100}})
    with pytest.raises(CanaryInputError, match="only set per_try_timeout"):
        http_route_fields(retries={"attempts": 3})


# --------------------------------------------------------------------------- DestinationRule trafficPolicy


def test_circuit_breaker_writes_istios_example():
    expected = upstream(API / "destination_rule/L0778.yaml", "DestinationRule")
    start = without(expected, "spec", "trafficPolicy")
    fields = traffic_policy_fields({
        "connection_pool": {"tcp": {"max_connections": 100},
                            "http": {"http2_max_requests": 1000, "max_requests_per_connection": 10}},
        "outlier_detection": {"consecutive_5xx_errors": 7, "interval": "5m", "base_ejection_time": "15m"}})
    assert apply_patch(start, build_traffic_policy_patch(start, None, fields)) == expected
    assert build_traffic_policy_patch(expected, None, fields) == []
    removal = build_traffic_policy_removal(expected, None, removal_paths(["circuit_breaker"])["traffic_policy"])
    assert apply_patch(expected, removal) == start


def test_outlier_detection_beside_a_load_balancer_leaves_it():
    expected = upstream(API / "destination_rule/L1254.yaml", "DestinationRule")
    start = without(expected, "spec", "trafficPolicy", "outlierDetection")
    fields = traffic_policy_fields({"outlier_detection": {"consecutive_5xx_errors": 5, "interval": "30s",
                                                          "base_ejection_time": "30s"}})
    assert apply_patch(start, build_traffic_policy_patch(start, None, fields)) == expected
    paths = removal_paths(["circuit_breaker.outlier_detection"])["traffic_policy"]
    assert apply_patch(expected, build_traffic_policy_removal(expected, None, paths)) == start


def test_a_subset_gets_its_own_policy_and_the_others_stay():
    rules = [doc for doc in yaml.safe_load_all((SAMPLES / "destination-rule-all.yaml").read_text()) if doc]
    rule = next(doc for doc in rules if doc["metadata"]["name"] == "reviews")
    rule["metadata"]["resourceVersion"] = "7"
    fields = traffic_policy_fields({"outlier_detection": {"consecutive_5xx_errors": 1}})
    after = apply_patch(rule, build_traffic_policy_patch(rule, "v2", fields))
    assert after["spec"]["subsets"][1] == {**rule["spec"]["subsets"][1],
                                           "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 1}}}
    assert after["spec"]["subsets"][0] == rule["spec"]["subsets"][0]
    assert "trafficPolicy" not in after["spec"]
    paths = removal_paths(["circuit_breaker.outlier_detection.consecutive_5xx_errors"])["traffic_policy"]
    assert apply_patch(after, build_traffic_policy_removal(after, "v2", paths)) == rule
    with pytest.raises(CanaryInputError, match=r"'v9' is not defined.*v1, v2, v3"):
        build_traffic_policy_patch(rule, "v9", fields)


def test_circuit_breaking_task_destination_rule_from_options():
    """The Circuit Breaking task's connection pool (its deprecated consecutiveErrors has no option)."""
    task = yaml.safe_load((TASKS / "circuit-breaking-destination-rule.yaml").read_text())
    fields = traffic_policy_fields({"connection_pool": {"tcp": {"max_connections": 1},
                                                        "http": {"http1_max_pending_requests": 1,
                                                                 "max_requests_per_connection": 1}}})
    assert fields["connectionPool"] == task["spec"]["trafficPolicy"]["connectionPool"]


# --------------------------------------------------------------------------- local rate limit


def test_rate_limit_envoy_filter_is_the_tasks():
    task = yaml.safe_load((TASKS / "rate-limit-local-envoyfilter.yaml").read_text())
    bucket = token_bucket({"max_tokens": 4, "tokens_per_fill": 4, "fill_interval": "60s"})
    built = local_rate_limit_envoy_filter("filter-local-ratelimit-svc", "bookinfo", {"app": "productpage"}, bucket)
    assert built["spec"] == task["spec"]
    assert (built["apiVersion"], built["kind"], built["metadata"]) == (
        task["apiVersion"], task["kind"], {"name": task["metadata"]["name"], "namespace": "bookinfo"})
    stored = {**built, "metadata": {**built["metadata"], "resourceVersion": "3"}}
    assert build_token_bucket_patch(stored, bucket) == []
    faster = token_bucket({"max_tokens": 10, "tokens_per_fill": 10, "fill_interval": "1s"})
    after = apply_patch(stored, build_token_bucket_patch(stored, faster))
    assert after == {**stored, "spec": local_rate_limit_envoy_filter(
        "filter-local-ratelimit-svc", "bookinfo", {"app": "productpage"}, faster)["spec"]}
    assert removal_paths(["rate_limit"])["rate_limit"] is True


# --------------------------------------------------------------------------- bad input, refused with value and rule

BAD = [
    (dict(retries={"attempts": -1}), "retries.attempts -1 .*attempts >= 0"),
    (dict(timeout="abc"), "timeout 'abc' is not a duration"),
    (dict(timeout="0.5"), "timeout '0.5' is not a duration"),
    (dict(timeout="0.1ms"), "shorter than 1ms"),
    (dict(timeout="1.5ms"), "millisecond precision"),
    (dict(fault={"delay": {"fixed_delay": "2s", "percentage": 150}}), "percentage 150 .*0.0001 to 100"),
    (dict(fault={"abort": {"http_status": 503, "percentage": -1}}), "percentage -1 "),
    (dict(retries={"attempts": 2, "retry_on": "5xx,sometimes"}), "token 'sometimes' is not a retry policy"),
    (dict(retries={"attempts": 2, "retry_on": "599"}), "token '599' is not a retry policy"),
    (dict(retries={"attempts": 0, "per_try_timeout": "1s"}), "attempts 0 .*Istio refuses"),
    (dict(retries={"tries": 3}), "unknown option.*'tries'"),
    (dict(fault={"abort": {"http_status": 700, "percentage": 10}}), "http_status 700 .*200 to 599"),
    (dict(fault={"delay": {"fixed_delay": "2s"}}), "needs fixed_delay and percentage"),
    (dict(fault={}), "neither delay nor abort"),
]


@pytest.mark.parametrize("options,message", BAD, ids=[m for _o, m in BAD])
def test_bad_route_options_are_refused(options, message):
    with pytest.raises(CanaryInputError, match=message):
        route_fields(**options)


@pytest.mark.parametrize("options,message", [
    ({"outlier_detection": {"max_ejection_percent": 101}}, "max_ejection_percent 101 .*0 to 100"),
    ({"connection_pool": {"tcp": {"max_connections": 0}}}, "max_connections 0 .*treats 0 as unset"),
    ({"connection_pool": {"http": {"http1_max_pending_requests": -1}}}, "http1_max_pending_requests -1"),
    ({"outlier_detection": {"base_ejection_time": "abc"}}, "base_ejection_time 'abc' is not a duration"),
    ({"outlier_detection": {"consecutive_local_origin_failures": 3}}, "split_external_local_origin_errors"),
    ({"connection_pool": {}}, "sets nothing"),
    ({"load_balancer": {}}, "unknown option"),
])
def test_bad_circuit_breakers_are_refused(options, message):
    with pytest.raises(CanaryInputError, match=message):
        traffic_policy_fields(options)


@pytest.mark.parametrize("options,message", [
    ({"max_tokens": 0, "fill_interval": "1s"}, "max_tokens 0"),
    ({"max_tokens": 4, "fill_interval": "10ms"}, "at least 50ms"),
    ({"max_tokens": 4}, "needs max_tokens and fill_interval"),
])
def test_bad_rate_limits_are_refused(options, message):
    with pytest.raises(CanaryInputError, match=message):
        token_bucket(options)


def test_bad_names_to_remove_are_refused():
    with pytest.raises(CanaryInputError, match=r"'retries\.attempts' cannot be removed alone"):
        removal_paths(["retries.attempts"])
    with pytest.raises(CanaryInputError, match="'weights' is not one"):
        removal_paths(["weights"])


def test_every_retry_policy_envoy_accepts_and_status_codes_pass():
    assert route_fields(retries={"attempts": 1, "retry_on": list(RETRY_ON_POLICIES)})["retries"]["retryOn"] == \
        ",".join(RETRY_ON_POLICIES)
    assert route_fields(retries={"attempts": 1, "retry_on": "503,reset"})["retries"]["retryOn"] == "503,reset"
    assert fault_match({"abort": {}}) is None
    with pytest.raises(CanaryInputError, match="empty match would inject"):
        fault_match({"match": [{}]})
