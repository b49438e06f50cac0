"""canary.istio.resilience run as Ansible runs it, against the lab's real API server (issue 25 section 1).

Expected values come from Istio: the objects of Istio's own tasks (Request Timeouts, Fault Injection,
Circuit Breaking, local rate limiting; vendored under tests/traffic/istio_tasks and Istio's Bookinfo
samples) as the API server stores them. After every set and every remove, the stored object must be the
object before with exactly the named fields changed; refusals are checked in the audit log (no write)
and by what the API server holds afterwards.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conformance import corpus
from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

TASKS = Path(__file__).resolve().parents[1] / "traffic" / "istio_tasks"
VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"
EF = "/apis/networking.istio.io/v1alpha3/namespaces/{ns}/envoyfilters"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
JASON = [{"headers": {"end-user": {"exact": "jason"}}}]
# Istio's Circuit Breaking task, its DestinationRule's trafficPolicy in the module's options (consecutiveErrors
# of the task is consecutive5xxErrors since Istio 1.5; the task's value is kept).
CIRCUIT_BREAKING = {
    "connection_pool": {"tcp": {"max_connections": 1},
                        "http": {"http1_max_pending_requests": 1, "max_requests_per_connection": 1}},
    "outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s", "base_ejection_time": "3m",
                          "max_ejection_percent": 100},
}


def task(name: str) -> dict[str, Any]:
    return yaml.safe_load((TASKS / f"{name}.yaml").read_text(encoding="utf-8"))


def sample(path: str, name: str) -> dict[str, Any]:
    return next(o for o in corpus.istio_objects(f"samples/bookinfo/networking/{path}.yaml")
                if o["metadata"]["name"] == name)


def resilience(lab: dict[str, Any], ns: str, check: bool = False, diff: bool = False,
               **options: Any) -> dict[str, Any]:
    return run_module("resilience", {**lab_auth(lab), "namespace": ns, **options}, check=check, diff=diff)


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert not result.get("failed"), result
    return result


@pytest.fixture
def bookinfo(kube, namespace: str) -> str:
    """Istio's Bookinfo routes: reviews to v2 (Request Timeouts task, step 1), ratings to v1, and
    destination-rule-all's reviews and ratings rules."""
    reviews = task("request-timeouts-1-reviews-v2")
    reviews["apiVersion"] = "networking.istio.io/v1"
    kube.create(VS.format(ns=namespace), reviews)
    kube.create(VS.format(ns=namespace), sample("virtual-service-all-v1", "ratings"))
    for name in ("reviews", "ratings"):
        kube.create(DR.format(ns=namespace), sample("destination-rule-all", name))
    return namespace


def vs(kube, ns: str, name: str) -> dict[str, Any]:
    return kube.get(f"{VS.format(ns=ns)}/{name}")


def dr(kube, ns: str, name: str) -> dict[str, Any]:
    return kube.get(f"{DR.format(ns=ns)}/{name}")


def test_request_timeouts_task_timeout_set_alone_repeated_unchanged_and_removed(lab_state, kube, bookinfo, audit):
    before = vs(kube, bookinfo, "reviews")
    window = audit()
    result = ok(resilience(lab_state, bookinfo, name="reviews", timeout="0.5s"))
    assert result["changed"] is True and result["route"] == "http[0]"
    assert len(window.requests(user="lab:admin")) == 2 and len(window.writes()) == 1
    expected = copy.deepcopy(before["spec"])
    # Istio's Request Timeouts task, step 3: the reviews route to v2 with timeout 0.5s.
    expected["http"][0]["timeout"] = task("request-timeouts-3-reviews-timeout")["spec"]["http"][0]["timeout"]
    now = vs(kube, bookinfo, "reviews")
    assert now["spec"] == expected == task("request-timeouts-3-reviews-timeout")["spec"]
    assert now["metadata"].get("annotations") == before["metadata"].get("annotations")
    again = ok(resilience(lab_state, bookinfo, name="reviews", timeout="0.5s"))
    assert again["changed"] is False
    assert vs(kube, bookinfo, "reviews")["metadata"]["resourceVersion"] == now["metadata"]["resourceVersion"]
    removed = ok(resilience(lab_state, bookinfo, name="reviews", timeout="0.5s", state="absent"))
    assert removed["changed"] is True and vs(kube, bookinfo, "reviews")["spec"] == before["spec"]
    assert ok(resilience(lab_state, bookinfo, name="reviews", timeout="1s", state="absent"))["changed"] is False


def test_retries_merge_leaf_by_leaf_and_absent_removes_only_the_named_leaf(lab_state, kube, bookinfo):
    before = vs(kube, bookinfo, "ratings")
    ok(resilience(lab_state, bookinfo, name="ratings", timeout="10s",
                  retries={"attempts": 3, "per_try_timeout": "2s", "retry_on": "gateway-error,connect-failure"}))
    ok(resilience(lab_state, bookinfo, name="ratings", retries={"attempts": 2}))
    route = vs(kube, bookinfo, "ratings")["spec"]["http"][0]
    assert route["retries"] == {"attempts": 2, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure"}
    assert route["timeout"] == "10s" and route["route"] == before["spec"]["http"][0]["route"]
    ok(resilience(lab_state, bookinfo, name="ratings", retries={"per_try_timeout": "2s"}, state="absent"))
    route = vs(kube, bookinfo, "ratings")["spec"]["http"][0]
    assert route["retries"] == {"attempts": 2, "retryOn": "gateway-error,connect-failure"}
    ok(resilience(lab_state, bookinfo, name="ratings", retries={}, timeout="x", state="absent"))
    assert vs(kube, bookinfo, "ratings")["spec"] == before["spec"]


@pytest.mark.parametrize("sample_name,fault", [
    ("virtual-service-ratings-test-delay", {"delay": {"fixed_delay": "7s", "percentage": 100}}),
    ("virtual-service-ratings-test-abort", {"abort": {"http_status": 500, "percentage": 100}}),
])
def test_fault_injection_task_for_jason_only_is_istios_sample_then_removed(lab_state, kube, bookinfo,
                                                                           sample_name, fault):
    before = vs(kube, bookinfo, "ratings")
    result = ok(resilience(lab_state, bookinfo, name="ratings", fault={**fault, "match": JASON}, diff=True))
    assert result["changed"] is True and result["fault_route"]["name"] == "ratings-fault-testers"
    assert result["route"] == "http[1]" and result["route_policy"] == {}
    http = vs(kube, bookinfo, "ratings")["spec"]["http"]
    # Istio's Fault Injection task: a route for jason with the fault, above the route everyone else takes.
    published = sample(sample_name, "ratings")["spec"]["http"]
    assert [{k: v for k, v in route.items() if k != "name"} for route in http] == published
    assert http[0]["name"] == "ratings-fault-testers" and http[1] == before["spec"]["http"][0]
    assert result["diff"]["before"] == {f"VirtualService {bookinfo}/ratings": before["spec"]}
    assert ok(resilience(lab_state, bookinfo, name="ratings", fault={**fault, "match": JASON}))["changed"] is False
    removed = ok(resilience(lab_state, bookinfo, name="ratings", fault={"match": JASON}, state="absent"))
    assert removed["changed"] is True and removed["fault_route"] is None
    assert vs(kube, bookinfo, "ratings")["spec"] == before["spec"]


def test_fault_for_everyone_on_the_route_and_removed_by_part(lab_state, kube, bookinfo):
    before = vs(kube, bookinfo, "ratings")
    fault = {"delay": {"fixed_delay": "2s", "percentage": 100}, "abort": {"http_status": 503, "percentage": 10}}
    ok(resilience(lab_state, bookinfo, name="ratings", fault=fault))
    assert vs(kube, bookinfo, "ratings")["spec"]["http"][0]["fault"] == {
        "delay": {"fixedDelay": "2s", "percentage": {"value": 100}},
        "abort": {"httpStatus": 503, "percentage": {"value": 10}}}
    ok(resilience(lab_state, bookinfo, name="ratings", fault={"abort": {}}, state="absent"))
    assert vs(kube, bookinfo, "ratings")["spec"]["http"][0]["fault"] == {
        "delay": {"fixedDelay": "2s", "percentage": {"value": 100}}}
    ok(resilience(lab_state, bookinfo, name="ratings", fault={"delay": {}}, state="absent"))
    assert vs(kube, bookinfo, "ratings")["spec"] == before["spec"]


def test_circuit_breaking_task_on_one_subset_then_removed_group_by_group(lab_state, kube, bookinfo, audit):
    before = dr(kube, bookinfo, "reviews")
    window = audit()
    result = ok(resilience(lab_state, bookinfo, name="reviews", subset="v2", circuit_breaker=CIRCUIT_BREAKING))
    assert result["changed"] is True and len(window.writes()) == 1
    published = task("circuit-breaking-destination-rule")["spec"]["trafficPolicy"]
    published["outlierDetection"]["consecutive5xxErrors"] = published["outlierDetection"].pop("consecutiveErrors")
    expected = copy.deepcopy(before["spec"])
    expected["subsets"][1]["trafficPolicy"] = published
    now = dr(kube, bookinfo, "reviews")
    assert now["spec"] == expected and result["traffic_policy"] == published
    assert ok(resilience(lab_state, bookinfo, name="reviews", subset="v2",
                         circuit_breaker=CIRCUIT_BREAKING))["changed"] is False
    ok(resilience(lab_state, bookinfo, name="reviews", subset="v2", state="absent",
                  circuit_breaker={"outlier_detection": {}}))
    expected["subsets"][1]["trafficPolicy"] = {"connectionPool": published["connectionPool"]}
    assert dr(kube, bookinfo, "reviews")["spec"] == expected
    ok(resilience(lab_state, bookinfo, name="reviews", subset="v2", state="absent",
                  circuit_breaker={"connection_pool": {"http": {"max_requests_per_connection": 1}}}))
    expected["subsets"][1]["trafficPolicy"]["connectionPool"]["http"] = {"http1MaxPendingRequests": 1}
    assert dr(kube, bookinfo, "reviews")["spec"] == expected
    ok(resilience(lab_state, bookinfo, name="reviews", subset="v2", state="absent", circuit_breaker={}))
    assert dr(kube, bookinfo, "reviews")["spec"] == before["spec"]


def test_circuit_breaker_on_the_whole_rule_keeps_its_load_balancer(lab_state, kube, bookinfo):
    kube.json_patch(f"{DR.format(ns=bookinfo)}/ratings",
                    [{"op": "add", "path": "/spec/trafficPolicy", "value": {"loadBalancer": {"simple": "RANDOM"}}}])
    before = dr(kube, bookinfo, "ratings")
    ok(resilience(lab_state, bookinfo, name="ratings", circuit_breaker={"outlier_detection": {
        "consecutive_5xx_errors": 5}}))
    expected = copy.deepcopy(before["spec"])
    expected["trafficPolicy"]["outlierDetection"] = {"consecutive5xxErrors": 5}
    assert dr(kube, bookinfo, "ratings")["spec"] == expected
    ok(resilience(lab_state, bookinfo, name="ratings", circuit_breaker={}, state="absent"))
    assert dr(kube, bookinfo, "ratings")["spec"] == before["spec"]


def test_local_rate_limit_is_istios_envoy_filter_then_only_its_bucket_changes_then_deleted(lab_state, kube,
                                                                                           namespace, audit):
    rate = {"max_tokens": 4, "tokens_per_fill": 4, "fill_interval": "60s"}
    window = audit()
    result = ok(resilience(lab_state, namespace, name="productpage", rate_limit=rate))
    assert result["changed"] is True and len(window.writes()) == 1
    stored = kube.get(f"{EF.format(ns=namespace)}/productpage-local-ratelimit")
    # Istio's local rate limit task: the same EnvoyFilter spec (kept in the service's namespace).
    assert stored["spec"] == task("rate-limit-local-envoyfilter")["spec"]
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "canary.istio"}
    assert ok(resilience(lab_state, namespace, name="productpage", rate_limit=rate))["changed"] is False
    changed = ok(resilience(lab_state, namespace, name="productpage", rate_limit={**rate, "max_tokens": 10}))
    assert changed["token_bucket"] == {"max_tokens": 10, "tokens_per_fill": 4, "fill_interval": "60s"}
    expected = copy.deepcopy(stored["spec"])
    expected["configPatches"][0]["patch"]["value"]["typed_config"]["value"]["token_bucket"]["max_tokens"] = 10
    assert kube.get(f"{EF.format(ns=namespace)}/productpage-local-ratelimit")["spec"] == expected
    removed = ok(resilience(lab_state, namespace, name="productpage", rate_limit={}, state="absent"))
    assert removed["changed"] is True and removed["token_bucket"] is None
    assert [i["metadata"]["name"] for i in kube.get(EF.format(ns=namespace))["items"]] == []


def test_check_mode_writes_nothing_and_diff_shows_the_change(lab_state, kube, bookinfo, namespace):
    before_vs, before_dr = vs(kube, bookinfo, "reviews"), dr(kube, bookinfo, "reviews")
    result = ok(resilience(lab_state, bookinfo, check=True, diff=True, name="reviews", timeout="0.5s",
                           circuit_breaker=CIRCUIT_BREAKING, rate_limit={"max_tokens": 4, "fill_interval": "60s"}))
    assert result["changed"] is True
    assert [(o["kind"], o["changed"]) for o in result["objects"]] == [
        ("VirtualService", True), ("DestinationRule", True), ("EnvoyFilter", True)]
    assert result["diff"]["after"][f"VirtualService {bookinfo}/reviews"]["http"][0]["timeout"] == "0.5s"
    assert result["route_policy"] == {"timeout": "0.5s"}
    assert vs(kube, bookinfo, "reviews") == before_vs and dr(kube, bookinfo, "reviews") == before_dr
    assert kube.get(EF.format(ns=bookinfo))["items"] == []


def test_httproute_rule_gets_request_and_backend_timeouts_only(lab_state, kube, namespace):
    route = corpus.istio_objects("samples/bookinfo/gateway-api/route-reviews-v1.yaml")[0]
    kube.create(ROUTES.format(ns=namespace), route)
    before = kube.get(f"{ROUTES.format(ns=namespace)}/reviews")
    ok(resilience(lab_state, namespace, kind="HTTPRoute", name="reviews", timeout="10s",
                  retries={"per_try_timeout": "2s"}))
    expected = copy.deepcopy(before["spec"])
    expected["rules"][0]["timeouts"] = {"request": "10s", "backendRequest": "2s"}
    assert kube.get(f"{ROUTES.format(ns=namespace)}/reviews")["spec"] == expected
    ok(resilience(lab_state, namespace, kind="HTTPRoute", name="reviews", timeout="10s", retries={},
                  state="absent"))
    assert kube.get(f"{ROUTES.format(ns=namespace)}/reviews")["spec"] == before["spec"]
    refused = resilience(lab_state, namespace, kind="HTTPRoute", name="reviews",
                         fault={"abort": {"http_status": 500, "percentage": 100}})
    assert refused.get("failed") is True and "fault cannot be used with kind HTTPRoute" in refused["msg"]


@pytest.mark.parametrize("options,fragment", [
    ({"retries": {"attempts": -1}}, "retries.attempts -1 is not an integer from 0"),
    ({"timeout": "abc"}, "timeout 'abc' is not a duration"),
    ({"fault": {"abort": {"http_status": 503, "percentage": 150}}}, "fault.abort.percentage 150 is not a percentage"),
    ({"retries": {"attempts": 2, "retry_on": "5xx,sometimes"}}, "token 'sometimes' is not a retry policy"),
    ({"subset": "v9", "circuit_breaker": CIRCUIT_BREAKING}, "subset 'v9' is not defined in the DestinationRule"),
    ({"name": "details", "timeout": "1s"}, "VirtualService {ns}/details not found"),
    ({"destination_rule": "details", "circuit_breaker": CIRCUIT_BREAKING}, "DestinationRule {ns}/details not found"),
    ({"route_name": "nightly", "timeout": "1s"}, "nightly"),
    ({"rate_limit": {"max_tokens": 4, "fill_interval": "10ms"}}, "fill_interval '10ms' is shorter than 50ms"),
    ({"circuit_breaker": {"outlier_detection": {"max_ejection_percent": 101}}}, "max_ejection_percent 101"),
    ({"state": "absent", "retries": {"attempts": 1}, "circuit_breaker": {"connection_pool": {"tcp": {"size": 1}}}},
     "'circuit_breaker.connection_pool.tcp.size' is not one that state=absent can remove"),
    ({}, "no policy named"),
])
def test_bad_input_is_refused_naming_value_and_rule_with_nothing_written(lab_state, kube, bookinfo, audit, options,
                                                                         fragment):
    before = (vs(kube, bookinfo, "reviews"), dr(kube, bookinfo, "reviews"))
    window = audit()
    # Every refusal also carries a valid timeout on the route, which must not be written either.
    result = resilience(lab_state, bookinfo, **{"name": "reviews", "timeout": "3s",
                                                "rate_limit": {"max_tokens": 4, "fill_interval": "60s"},
                                                **options} if options else {"name": "reviews"})
    assert result.get("failed") is True, result
    assert fragment.format(ns=bookinfo) in result["msg"], result["msg"]
    assert window.writes() == []
    assert (vs(kube, bookinfo, "reviews"), dr(kube, bookinfo, "reviews")) == before
    assert kube.get(EF.format(ns=bookinfo))["items"] == []
