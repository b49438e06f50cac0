"""What the API server holds after the resilience logic's patches: only the named fields changed.

The patches of plugins/module_utils/_logic/resilience.py are sent as they are (one JSON Patch each)
to the lab's kube-apiserver, which has Istio's and Gateway API's published CRDs (type checks and
pruning) and the lab's istiod-like validating webhook. The objects are Istio's own samples and API
examples and Gateway API's conformance routes. After each set, the stored object must be the stored
object before with exactly the named fields set, nothing pruned; after each remove, the object as
it was. The module itself (plugins/modules/resilience.py) is tested elsewhere.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.canary.istio.plugins.module_utils._logic import resilience as logic
from lab.kube import KubeError
from tests.lab.conftest import DataPlaneLab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "conformance" / "upstream" / "istio" / "samples" / "bookinfo" / "networking"
GATEWAY_API = ROOT / "tests" / "conformance" / "gateway_api" / "upstream" / "conformance" / "tests"
ISTIO = "/apis/networking.istio.io"

# Every option the logic knows, so that a field Istio's CRD schema would prune shows up.
EVERY_ROUTE_OPTION = dict(
    timeout="10s",
    retries={"attempts": 3, "per_try_timeout": "2s", "retry_on": "gateway-error,connect-failure,503",
             "retry_remote_localities": True, "retry_ignore_previous_hosts": False, "backoff": "50ms"},
    fault={"delay": {"fixed_delay": "5s", "percentage": 0.1}, "abort": {"http_status": 400, "percentage": 0.1}})
EVERY_CIRCUIT_BREAKER_OPTION = {
    "connection_pool": {
        "tcp": {"max_connections": 100, "connect_timeout": "30ms", "max_connection_duration": "1h",
                "idle_timeout": "0s"},
        "http": {"http1_max_pending_requests": 1, "http2_max_requests": 1000, "max_requests_per_connection": 10,
                 "max_retries": 3, "idle_timeout": "1h", "max_concurrent_streams": 100,
                 "h2_upgrade_policy": "DO_NOT_UPGRADE", "use_client_protocol": True}},
    "outlier_detection": {"consecutive_5xx_errors": 7, "consecutive_gateway_errors": 3,
                          "consecutive_local_origin_failures": 2, "split_external_local_origin_errors": True,
                          "interval": "5m", "base_ejection_time": "15m", "max_ejection_percent": 50,
                          "min_health_percent": 0}}


def sample(path: Path, name: str | None = None) -> dict[str, Any]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return next(doc for doc in docs if name is None or doc["metadata"]["name"] == name)


def stored_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]


def create(dp_lab: DataPlaneLab, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    return dp_lab.kube.create(path, obj)


@pytest.fixture(scope="module")
def namespace(dp_lab: DataPlaneLab) -> str:
    return dp_lab.create_namespace("resil-api")


def test_route_policies_set_and_removed_on_the_stored_virtual_service(dp_lab: DataPlaneLab, namespace: str):
    path = f"{ISTIO}/v1/namespaces/{namespace}/virtualservices"
    before = create(dp_lab, path, sample(SAMPLES / "virtual-service-ratings-test-abort.yaml"))
    url = f"{path}/ratings"
    fields = logic.route_fields(**EVERY_ROUTE_OPTION)
    after = dp_lab.kube.json_patch(url, logic.build_route_policy_patch(before, 1, fields))
    expected = copy.deepcopy(stored_spec(before))
    expected["http"][1].update({
        "timeout": "10s",
        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure,503",
                    "retryRemoteLocalities": True, "retryIgnorePreviousHosts": False, "backoff": "50ms"},
        "fault": {"delay": {"fixedDelay": "5s", "percentage": {"value": 0.1}},
                  "abort": {"httpStatus": 400, "percentage": {"value": 0.1}}}})
    assert stored_spec(after) == expected  # the jason route and the destinations as they were; nothing pruned
    again = logic.build_route_policy_patch(after, 1, logic.route_fields(**EVERY_ROUTE_OPTION))
    assert again == []
    removed = dp_lab.kube.json_patch(url, logic.build_route_policy_removal(
        after, 1, logic.removal_paths(["timeout", "retries", "fault"])["route"]))
    assert stored_spec(removed) == stored_spec(before)


def test_a_stale_read_is_refused_by_the_api_server(dp_lab: DataPlaneLab, namespace: str):
    path = f"{ISTIO}/v1/namespaces/{namespace}/virtualservices"
    vs = sample(SAMPLES / "virtual-service-ratings-test-delay.yaml")
    vs["metadata"]["name"] = "ratings-stale"
    before = create(dp_lab, path, vs)
    ops = logic.build_route_policy_patch(before, 1, logic.route_fields(timeout="3s"))
    meanwhile = logic.build_route_policy_patch(before, 1, logic.route_fields(timeout="4s"))
    dp_lab.kube.json_patch(f"{path}/ratings-stale", meanwhile)
    with pytest.raises(KubeError) as refused:
        dp_lab.kube.json_patch(f"{path}/ratings-stale", ops)
    assert refused.value.status in (409, 422)
    assert dp_lab.kube.get(f"{path}/ratings-stale")["spec"]["http"][1]["timeout"] == "4s"


def test_circuit_breakers_set_and_removed_on_the_stored_destination_rule(dp_lab: DataPlaneLab, namespace: str):
    path = f"{ISTIO}/v1/namespaces/{namespace}/destinationrules"
    before = create(dp_lab, path, sample(SAMPLES / "destination-rule-all.yaml", "reviews"))
    url = f"{path}/reviews"
    fields = logic.traffic_policy_fields(EVERY_CIRCUIT_BREAKER_OPTION)
    on_rule = dp_lab.kube.json_patch(url, logic.build_traffic_policy_patch(before, None, fields))
    on_subset = dp_lab.kube.json_patch(url, logic.build_traffic_policy_patch(
        on_rule, "v2", logic.traffic_policy_fields({"outlier_detection": {"consecutive_5xx_errors": 1}})))
    expected = copy.deepcopy(stored_spec(before))
    expected["trafficPolicy"] = fields
    expected["subsets"][1]["trafficPolicy"] = {"outlierDetection": {"consecutive5xxErrors": 1}}
    assert stored_spec(on_subset) == expected  # subsets v1 and v3 as they were; nothing pruned
    every = logic.removal_paths(["circuit_breaker"])["traffic_policy"]
    on_rule_removed = dp_lab.kube.json_patch(url, logic.build_traffic_policy_removal(on_subset, None, every))
    removed = dp_lab.kube.json_patch(url, logic.build_traffic_policy_removal(on_rule_removed, "v2", every))
    assert stored_spec(removed) == stored_spec(before)


def test_the_rate_limit_envoy_filter_is_stored_as_built(dp_lab: DataPlaneLab, namespace: str):
    path = f"{ISTIO}/v1alpha3/namespaces/{namespace}/envoyfilters"
    bucket = logic.token_bucket({"max_tokens": 4, "tokens_per_fill": 4, "fill_interval": "60s"})
    name = "productpage-local-ratelimit"
    built = logic.local_rate_limit_envoy_filter(name, namespace, {"app": "productpage"}, bucket)
    stored = create(dp_lab, path, built)
    assert stored["spec"] == built["spec"]
    faster = logic.token_bucket({"max_tokens": 10, "fill_interval": "1s"})
    patched = dp_lab.kube.json_patch(f"{path}/{name}", logic.build_token_bucket_patch(stored, faster))
    expected = copy.deepcopy(built["spec"])
    expected["configPatches"][0]["patch"]["value"]["typed_config"]["value"]["token_bucket"] = {
        "max_tokens": 10, "tokens_per_fill": 1, "fill_interval": "1s"}
    assert patched["spec"] == expected


def test_http_route_timeouts_set_and_removed_on_the_stored_route(dp_lab: DataPlaneLab, namespace: str):
    route = sample(GATEWAY_API / "httproute-timeout-request.yaml")
    route["metadata"]["namespace"] = namespace
    for rule in route["spec"]["rules"]:
        del rule["timeouts"]
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"
    before = create(dp_lab, path, route)
    url = f"{path}/{route['metadata']['name']}"
    fields = logic.http_route_fields(timeout="10s", retries={"per_try_timeout": "500ms"})
    after = dp_lab.kube.json_patch(url, logic.build_http_route_rule_patch(before, 0, fields))
    expected = copy.deepcopy(stored_spec(before))
    expected["rules"][0]["timeouts"] = {"request": "10s", "backendRequest": "500ms"}
    assert stored_spec(after) == expected
    removed = dp_lab.kube.json_patch(url, logic.build_http_route_rule_removal(after, 0, ["timeout", "retries"]))
    assert stored_spec(removed) == stored_spec(before)
