"""The data plane applies Istio's resilience fields to real traffic, as Envoy does.

Behaviour expected from Istio's API reference (HTTPRetry, OutlierDetection) and Envoy's
documentation (x-envoy-retry-on, per-try timeouts, outlier ejection and max_ejection_percent,
response flags). Two ratings workloads serve one Service: ratings-v1 answers normally, ratings-v2
misbehaves through Bookinfo's own fault switches (SERVICE_VERSION=v-delayed / v-faulty).
The Istio tasks themselves are reproduced in tests/traffic/test_istio_resilience_tasks.py.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.lab.conftest import BOOKINFO, DataPlaneLab

pytestmark = pytest.mark.slow
REQUESTS = 16


def two_ratings(dp_lab: DataPlaneLab, misbehaviour: dict[str, str]) -> str:
    """A namespace with the ratings Service, ratings-v1 and a ratings-v2 set to ``misbehaviour``."""
    namespace = dp_lab.create_namespace("resil")
    docs = [doc for doc in yaml.safe_load_all((BOOKINFO / "platform/kube/bookinfo-reviews-v1.yaml").read_text())
            if doc and doc["metadata"]["name"] in ("ratings", "ratings-v1")]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    second = copy.deepcopy(deployment)
    second["metadata"]["name"] = "ratings-v2"
    for labels in (second["metadata"].setdefault("labels", {}), second["spec"]["selector"]["matchLabels"],
                   second["spec"]["template"]["metadata"]["labels"]):
        labels["version"] = "v2"
    container = second["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].replace("ratings-v1", "ratings-v2")
    container["env"] = [{"name": name, "value": value} for name, value in misbehaviour.items()]
    for doc in [*docs, second]:
        dp_lab.apply(doc, namespace)
    dp_lab.wait_available(namespace, ["ratings-v1", "ratings-v2"])
    return namespace


def ratings_route(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "ratings"},
            "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}], **fields}]}}


def requests_total(dp_lab: DataPlaneLab, **wanted: str) -> float:
    total = 0.0
    for line in dp_lab.metrics().splitlines():
        if line.startswith("istio_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if all(labels.get(name) == value for name, value in wanted.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def slow_v2(dp_lab: DataPlaneLab) -> str:
    return two_ratings(dp_lab, {"SERVICE_VERSION": "v-delayed", "FAULT_PERCENT": "100", "DELAY_MS": "1500"})


@pytest.fixture(scope="module")
def failing_v2(dp_lab: DataPlaneLab) -> str:
    return two_ratings(dp_lab, {"SERVICE_VERSION": "v-faulty", "FAULT_PERCENT": "100", "FAULT_STATUS": "503"})


def test_a_per_try_timeout_is_retried_on_another_endpoint_by_5xx(dp_lab: DataPlaneLab, slow_v2: str):
    """retryOn 5xx retries a per-try timeout, and a retry avoids the host just tried
    (retryIgnorePreviousHosts defaults to true): every request is answered by ratings-v1."""
    dp_lab.wait_seen(dp_lab.apply(ratings_route(retries={"attempts": 2, "perTryTimeout": "0.2s",
                                                          "retryOn": "5xx"}), slow_v2))
    replies = [dp_lab.mesh("ratings:9080", "/ratings/0", namespace=slow_v2) for _call in range(REQUESTS)]
    assert [reply.status for reply in replies] == [200] * REQUESTS


def test_a_per_try_timeout_is_not_retried_by_connect_failure(dp_lab: DataPlaneLab, slow_v2: str):
    """retryOn connect-failure does not cover a timeout: the requests that reach ratings-v2 end at the
    per-try timeout with 504 (Envoy's "upstream request timeout", flag UT); the others answer 200."""
    dp_lab.wait_seen(dp_lab.apply(ratings_route(retries={"attempts": 2, "perTryTimeout": "0.2s",
                                                          "retryOn": "connect-failure"}), slow_v2))
    replies = [dp_lab.mesh("ratings:9080", "/ratings/0", namespace=slow_v2) for _call in range(REQUESTS)]
    statuses = [reply.status for reply in replies]
    assert set(statuses) == {200, 504}, statuses  # both endpoints chosen: a miss has odds 2 in 65536
    assert all("upstream request timeout" in reply.text for reply in replies if reply.status == 504)


def test_an_injected_delay_carries_flag_di(dp_lab: DataPlaneLab, slow_v2: str):
    dp_lab.wait_seen(dp_lab.apply(ratings_route(
        fault={"delay": {"fixedDelay": "10ms", "percentage": {"value": 100}}},
        retries={"attempts": 2, "perTryTimeout": "0.2s", "retryOn": "5xx"}), slow_v2))
    delayed = dict(reporter="source", source_workload="ratings-v1", destination_service_name="ratings",
                   destination_service_namespace=slow_v2, response_code="200", response_flags="DI")
    before = requests_total(dp_lab, **delayed)
    reply = dp_lab.mesh("ratings:9080", "/ratings/0", namespace=slow_v2, source="ratings-v1")
    assert reply.status == 200 and reply.elapsed >= 0.01
    assert requests_total(dp_lab, **delayed) - before == 1


def test_outlier_detection_ejects_the_failing_version(dp_lab: DataPlaneLab, failing_v2: str):
    """consecutive5xxErrors 2, maxEjectionPercent 50: ratings-v2 answers two 503s in a row, is ejected
    for baseEjectionTime, and every later request goes to ratings-v1. Retries are off so that each
    answer is seen."""
    rule = {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "ratings"},
            "spec": {"host": "ratings", "trafficPolicy": {"outlierDetection": {
                "consecutive5xxErrors": 2, "interval": "1s", "baseEjectionTime": "3m", "maxEjectionPercent": 50}}}}
    dp_lab.wait_seen(dp_lab.apply(rule, failing_v2))
    dp_lab.wait_seen(dp_lab.apply(ratings_route(retries={"attempts": 0}), failing_v2))
    answered_by_v2 = dict(reporter="destination", destination_workload="ratings-v2",
                          destination_workload_namespace=failing_v2)
    before = requests_total(dp_lab, **answered_by_v2)
    statuses = [dp_lab.mesh("ratings:9080", "/ratings/0", namespace=failing_v2, source="client-a").status
                for _call in range(30)]
    assert statuses.count(503) == 2 and statuses.count(200) == 28, statuses
    assert requests_total(dp_lab, **answered_by_v2) - before == 2


def test_max_ejection_percent_keeps_one_of_two_endpoints_in(dp_lab: DataPlaneLab, failing_v2: str):
    """With Envoy's default maxEjectionPercent (10 %), ejecting one of two endpoints (50 %) is not
    allowed: ratings-v2 keeps receiving its share and failing."""
    rule = {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "ratings"},
            "spec": {"host": "ratings", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 2,
                                                                               "baseEjectionTime": "3m"}}}}
    dp_lab.wait_seen(dp_lab.apply(rule, failing_v2))
    dp_lab.wait_seen(dp_lab.apply(ratings_route(retries={"attempts": 0}), failing_v2))
    statuses = [dp_lab.mesh("ratings:9080", "/ratings/0", namespace=failing_v2, source="client-b").status
                for _call in range(30)]
    assert statuses.count(503) > 2, statuses  # two or fewer of 30 to ratings-v2 has odds below 1 in a million
