"""Istio's own resilience tasks, reproduced on the lab's Bookinfo with the tasks' own YAML.

Each test names the task (istio.io, docs/tasks/...) and asserts the outcome that task's page
documents.  The YAML comes from Istio: the Bookinfo samples vendored under
tests/conformance/upstream/istio/samples/bookinfo/networking/, and the tasks' inline YAML vendored
under tests/traffic/istio_tasks/ (SOURCES.md there says from where).  Nothing here comes from the
collection's code: the YAML is applied as ``kubectl apply`` would (create, or replace what is
there), and the data plane is judged by what a user gets and by Istio's standard metrics.

Only Bookinfo runs in the lab (no httpbin, no fortio binary), so two tasks are adapted, and say so
where they are: Circuit Breaking aims the task's DestinationRule at Bookinfo's ratings instead of
httpbin, and Local Rate Limiting sends its five requests without the task's one-second sleeps
(the bucket holds 4 tokens refilled every 60 s: five requests within a minute is the ratio the
outcome depends on).  No delay is shrunk: the Fault Injection outcome depends on productpage's
3 s timeout and one retry (6 s) against the 7 s delay and reviews v2's 10 s timeout, all of them
Bookinfo's own numbers.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.kube import KubeClient, KubeError
from tests.helpers.collection import REPO_ROOT
from tests.traffic.conftest import BOOKINFO, TrafficLab, take_down

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLES = REPO_ROOT / "tests" / "conformance" / "upstream" / "istio" / "samples" / "bookinfo" / "networking"
TASKS = Path(__file__).resolve().parent / "istio_tasks"
# The texts Bookinfo shows (istio/istio samples/bookinfo/src/productpage/productpage.py and
# reviews' LibertyRestEndpoint.java), which the tasks' pages quote.
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules",
           "EnvoyFilter": "envoyfilters", "Gateway": "gateways"}
KIND_OF_INFORMER = {"VirtualService": "VirtualService", "DestinationRule": "DestinationRule",
                    "EnvoyFilter": "EnvoyFilter"}
PROPAGATION_TIMEOUT = 20.0


# --------------------------------------------------------------------------- kubectl apply, as a user would


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def object_path(doc: dict[str, Any], namespace: str) -> str:
    group_version = doc["apiVersion"]
    ns = doc["metadata"].get("namespace") or namespace
    return f"/apis/{group_version}/namespaces/{ns}/{PLURALS[doc['kind']]}"


def apply(kube: KubeClient, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``kubectl apply`` of one Istio object: create it, or replace the one of that name."""
    collection = object_path(doc, namespace)
    try:
        return kube.create(collection, doc)
    except KubeError as error:
        if error.status != 409:
            raise
    current = kube.get(f"{collection}/{doc['metadata']['name']}")
    body = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    return kube.replace(f"{collection}/{doc['metadata']['name']}", body)


def admin_json(lab: TrafficLab, what: str) -> Any:
    parsed = urllib.parse.urlsplit(lab.metrics_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request("GET", f"/debug/{what}")
    body = conn.getresponse().read()
    conn.close()
    return json.loads(body)


def wait_until_routed(lab: TrafficLab, stored: list[dict[str, Any]], gone: list[tuple[str, str]] = ()) -> None:
    """Until the data plane holds these objects at these resourceVersions (and no longer holds ``gone``)."""
    deadline = time.monotonic() + PROPAGATION_TIMEOUT
    while True:
        versions = admin_json(lab, "config")["resourceVersions"]
        held = all(versions.get(KIND_OF_INFORMER[obj["kind"]], {}).get(
            f"{obj['metadata']['namespace']}/{obj['metadata']['name']}") == obj["metadata"]["resourceVersion"]
            for obj in stored)
        absent = all(key not in versions.get(kind, {}) for kind, key in gone)
        if held and absent:
            return
        assert time.monotonic() < deadline, f"the data plane did not pick up {stored} within {PROPAGATION_TIMEOUT}s"
        time.sleep(0.05)


def apply_files(lab: TrafficLab, namespace: str, *paths: Path,
                change: Any = None) -> list[dict[str, Any]]:
    stored = []
    for path in paths:
        for doc in documents(path):
            stored.append(apply(lab.kube, change(doc) if change is not None else doc, namespace))
    wait_until_routed(lab, stored)
    return stored


# --------------------------------------------------------------------------- requests and metrics


def product_page(lab: TrafficLab, user: str | None = None) -> tuple[int, str, float]:
    """GET /productpage through the ingress gateway, signed in as ``user`` (Bookinfo's ``user`` cookie)."""
    parsed = urllib.parse.urlsplit(lab.gateway)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {"Cookie": f"user={user}"} if user else {}
    started = time.monotonic()
    conn.request("GET", "/productpage", headers=headers)
    response = conn.getresponse()
    body = response.read().decode(errors="replace")
    conn.close()
    return response.status, body, time.monotonic() - started


def mesh_url(lab: TrafficLab) -> str:
    info = json.loads((Path(lab.state["dir"]) / "dataplane.json").read_text(encoding="utf-8"))
    return info["mesh_url"]


def mesh_get(lab: TrafficLab, source: str, namespace: str, host: str, path: str) -> tuple[int, dict[str, str]]:
    """A request from workload ``source`` (as its sidecar would send it) to ``host``."""
    parsed = urllib.parse.urlsplit(mesh_url(lab))
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.request("GET", path, headers={"Host": host, "x-source-workload": source, "x-source-namespace": namespace})
    response = conn.getresponse()
    response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    return response.status, headers


def requests_total(lab: TrafficLab, **wanted: str) -> float:
    """istio_requests_total summed over the series whose labels have the ``wanted`` values."""
    total = 0.0
    for line in lab.metrics().splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(labels.get(name) == value for name, value in wanted.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- Bookinfo, as the tasks start it


@pytest.fixture(scope="module")
def bookinfo(traffic_lab: TrafficLab) -> Iterator[str]:
    """Bookinfo with reviews v1, v2 and v3 ("including the service versions"), Istio's
    destination-rule-all.yaml and virtual-service-all-v1.yaml, in a namespace of its own."""
    namespace = f"tasks-{uuid.uuid4().hex[:6]}"
    traffic_lab.kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    platform = [str(BOOKINFO / f"platform/kube/bookinfo-reviews-{version}.yaml") for version in ("v1", "v2", "v3")]
    traffic_lab.module("manifest", namespace, wait=True, wait_timeout=90,
                       src=[*platform, str(BOOKINFO / "networking/bookinfo-gateway.yaml")])
    try:
        yield namespace
    finally:
        take_down(traffic_lab.kube, namespace)


@pytest.fixture
def routed(traffic_lab: TrafficLab, bookinfo: str) -> Iterator[str]:
    """Each task starts from Istio's all-v1 routing and ends by deleting the routes it made."""
    apply_files(traffic_lab, bookinfo, SAMPLES / "destination-rule-all.yaml", SAMPLES / "virtual-service-all-v1.yaml")
    yield bookinfo
    for name in ("reviews", "ratings"):
        try:
            traffic_lab.kube.delete(f"/apis/networking.istio.io/v1/namespaces/{bookinfo}/virtualservices/{name}")
        except KubeError:
            pass


# --------------------------------------------------------------------------- the tasks


def test_request_timeouts_task(traffic_lab: TrafficLab, routed: str):
    """istio.io docs/tasks/traffic-management/request-timeouts: with a 2 s delay on ratings, the page
    works, 2 s late; adding a 0.5 s timeout on reviews makes it answer "Sorry, product reviews are
    currently unavailable for this book." after about 1 s, because productpage retries once."""
    lab, namespace = traffic_lab, routed
    apply_files(lab, namespace, TASKS / "request-timeouts-1-reviews-v2.yaml",
                TASKS / "request-timeouts-2-ratings-delay.yaml")
    status, body, elapsed = product_page(lab)
    # "working normally (with ratings stars displayed), but there is a 2 second delay"
    assert status == 200 and 'data-star-color="black"' in body and REVIEWS_UNAVAILABLE not in body
    assert elapsed >= 2.0

    apply_files(lab, namespace, TASKS / "request-timeouts-3-reviews-timeout.yaml")
    timed_out = dict(reporter="source", source_workload="productpage-v1", destination_service_name="reviews",
                     response_code="504", response_flags="UT")
    before = requests_total(lab, **timed_out)
    status, body, elapsed = product_page(lab)
    assert status == 200 and REVIEWS_UNAVAILABLE in body
    # Two calls to reviews, each cut at 0.5 s by the route timeout (504, Envoy's flag UT): the
    # second is productpage's own retry.  Hence "about 1 second": never less than two timeouts.
    assert requests_total(lab, **timed_out) - before == 2
    assert elapsed >= 1.0


def test_fault_injection_delay_task(traffic_lab: TrafficLab, routed: str):
    """istio.io docs/tasks/traffic-management/fault-injection, "Injecting an HTTP delay fault": with
    virtual-service-reviews-test-v2.yaml and virtual-service-ratings-test-delay.yaml, jason's page
    shows "Sorry, product reviews are currently unavailable for this book." - productpage's 3 s
    timeout plus one retry (6 s) gives up before the 7 s delay ends (the task's documented bug)."""
    lab, namespace = traffic_lab, routed
    apply_files(lab, namespace, SAMPLES / "virtual-service-reviews-test-v2.yaml",
                SAMPLES / "virtual-service-ratings-test-delay.yaml")
    status, body, _elapsed = product_page(lab)
    assert status == 200 and REVIEWS_UNAVAILABLE not in body and "data-star-color" not in body  # v1, no delay
    status, body, elapsed = product_page(lab, "jason")
    assert status == 200 and REVIEWS_UNAVAILABLE in body
    assert elapsed >= 6.0  # both of productpage's 3 s tries ran out


def test_fault_injection_abort_task(traffic_lab: TrafficLab, routed: str):
    """istio.io docs/tasks/traffic-management/fault-injection, "Injecting an HTTP abort fault": with
    virtual-service-ratings-test-abort.yaml, jason sees "Ratings service is currently unavailable";
    other users see the page as before."""
    lab, namespace = traffic_lab, routed
    apply_files(lab, namespace, SAMPLES / "virtual-service-reviews-test-v2.yaml",
                SAMPLES / "virtual-service-ratings-test-abort.yaml")
    aborted = dict(reporter="source", source_workload="reviews-v2", destination_service_name="ratings",
                   response_code="500", response_flags="FI")
    before = requests_total(lab, **aborted)
    status, body, _elapsed = product_page(lab, "jason")
    assert status == 200 and RATINGS_UNAVAILABLE in body and REVIEWS_UNAVAILABLE not in body
    assert requests_total(lab, **aborted) - before == 1  # the fault filter answered, with Envoy's flag FI
    status, body, _elapsed = product_page(lab)
    assert status == 200 and RATINGS_UNAVAILABLE not in body and REVIEWS_UNAVAILABLE not in body


def test_local_rate_limit_task(traffic_lab: TrafficLab, routed: str):
    """istio.io docs/tasks/policy-enforcement/rate-limit, "Local rate limit": the EnvoyFilter gives
    each productpage a bucket of 4 tokens per 60 s; five requests from ratings answer 200, 200,
    200, 200, 429.  (The task sleeps 1 s between requests; five within a minute is what counts.)"""
    lab, namespace = traffic_lab, routed
    try:
        lab.kube.create("/api/v1/namespaces", {"metadata": {"name": "istio-system"}})
    except KubeError as error:
        assert error.status == 409
    limited = dict(reporter="destination", destination_workload="productpage-v1",
                   destination_workload_namespace=namespace, response_code="429", response_flags="RL")
    before = requests_total(lab, **limited)
    stored = apply_files(lab, namespace, TASKS / "rate-limit-local-envoyfilter.yaml")
    try:
        answers = [mesh_get(lab, "ratings-v1", namespace, "productpage:9080", "/productpage") for _request in range(5)]
    finally:
        name = stored[0]["metadata"]["name"]
        lab.kube.delete(f"/apis/networking.istio.io/v1alpha3/namespaces/istio-system/envoyfilters/{name}")
        wait_until_routed(lab, [], gone=[("EnvoyFilter", f"istio-system/{name}")])
    assert [status for status, _headers in answers] == [200, 200, 200, 200, 429]
    assert answers[-1][1].get("x-local-rate-limit") == "true"  # the filter's response_headers_to_add
    assert requests_total(lab, **limited) - before == 1  # counted with Envoy's flag RL


def slow_ratings(namespace: str, delay_ms: int) -> list[dict[str, Any]]:
    """Bookinfo's ratings Service and Deployment, answering ``delay_ms`` late (Bookinfo's own fault
    switches, SERVICE_VERSION=v-delayed)."""
    docs = [doc for doc in documents(BOOKINFO / "platform/kube/bookinfo-reviews-v1.yaml")
            if doc["metadata"]["name"] in ("ratings", "ratings-v1", "bookinfo-ratings")]
    for doc in docs:
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["env"] = [{"name": "SERVICE_VERSION", "value": "v-delayed"},
                                {"name": "FAULT_PERCENT", "value": "100"},
                                {"name": "DELAY_MS", "value": str(delay_ms)}]
    return docs


def test_circuit_breaking_task(traffic_lab: TrafficLab, tmp_path: Path):
    """istio.io docs/tasks/traffic-management/circuit-breaking: with ``maxConnections: 1`` and
    ``http1MaxPendingRequests: 1``, fortio's three concurrent connections see a share of 503s, each
    an overflow of the client proxy's pending queue (Envoy's upstream_rq_pending_overflow; flag UO
    in Istio's metrics), and the other requests answer 200.

    Adapted: the lab runs no httpbin, so the task's DestinationRule names Bookinfo's ratings, which
    answers 100 ms late so that three Python clients overlap as surely as fortio's do on httpbin.
    The client is the task's fortio Deployment (samples/httpbin/sample-client/fortio-deploy.yaml):
    the lab cannot run its image, but knows its labels, so its requests are counted as fortio's."""
    lab = traffic_lab
    namespace = f"circuit-{uuid.uuid4().hex[:6]}"
    lab.kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    try:
        manifest = tmp_path / "ratings-slow.yaml"
        manifest.write_text(yaml.safe_dump_all(slow_ratings(namespace, 100)), encoding="utf-8")
        lab.module("manifest", namespace, wait=True, wait_timeout=60, src=[str(manifest)])
        lab.module("manifest", namespace, src=[str(TASKS / "fortio-deploy.yaml")])

        def to_ratings(doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "spec": {**doc["spec"], "host": "ratings"}}
        apply_files(lab, namespace, TASKS / "circuit-breaking-destination-rule.yaml", change=to_ratings)
        overflowed = dict(reporter="source", source_workload="fortio-deploy", destination_service_name="ratings",
                          response_code="503", response_flags="UO")
        before = requests_total(lab, **overflowed)
        statuses: list[int] = []
        lock = threading.Lock()

        def client() -> None:  # fortio load -c 3 -qps 0 -n 30: 10 calls per connection, as fast as it can
            for _call in range(10):
                status, _headers = mesh_get(lab, "fortio-deploy", namespace, "ratings:9080", "/ratings/0")
                with lock:
                    statuses.append(status)
        threads = [threading.Thread(target=client) for _connection in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(statuses) == 30 and set(statuses) <= {200, 503}, statuses
        assert 0 < statuses.count(503) < 30 and statuses.count(200) > 0, statuses
        assert requests_total(lab, **overflowed) - before == statuses.count(503)
    finally:
        take_down(lab.kube, namespace)
