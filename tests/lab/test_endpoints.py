"""The lab's endpoints controller (lab/dataplane/endpoints.py) against the real lab, and what it makes
possible: canary.istio's make-before-break on an HTTPRoute finds the ready endpoints it asks for.

Expected values come from Kubernetes and Istio, not from the controller: the subsets are those the
endpoints controller writes (kubernetes/kubernetes pkg/controller/endpoint/endpoints_controller.go:
one EndpointPort per Service port, carrying its name and protocol; ready pods in ``addresses``, others
in ``notReadyAddresses``; the Endpoints of a deleted Service deleted), the Services are Istio's
per-version Services (samples/bookinfo/platform/kube/bookinfo-versions.yaml) and the route Istio's
samples/bookinfo/gateway-api/route-reviews-v1.yaml and route-reviews-90-10.yaml.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from lab.audit import AuditWindow
from lab.kube import KubeError
from tests.conformance import corpus
from tests.helpers.ansible import lab_auth, run_module
from tests.lab.conftest import BOOKINFO, DataPlaneLab
from tests.lab.test_endpoints_unit import in_pod_network

pytestmark = pytest.mark.lab

SERVICES = "/api/v1/namespaces/{ns}/services"
ENDPOINTS = "/api/v1/namespaces/{ns}/endpoints"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
KUBE = "samples/bookinfo/platform/kube"
REVIEWS_V2_CRASHING = "platform/kube/bookinfo-reviews-v2-crashing.yaml"
UNSTARTABLE_IMAGE = "docker.io/istio/examples-bookinfo-reviews-v9:1.16.2"


def reviews_services() -> list[dict[str, Any]]:
    """Istio's reviews Service and its per-version Services, as upstream publishes them."""
    objects = corpus.istio_objects(f"{KUBE}/bookinfo.yaml") + corpus.istio_objects(f"{KUBE}/bookinfo-versions.yaml")
    return [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].startswith("reviews")]


def upstream_service_port(name: str) -> dict[str, Any]:
    """The Service's one port; Kubernetes' Service docs: "By default and for convenience, the targetPort
    is set to the same value as the port field" (Istio's Services leave it out)."""
    service = next(s for s in reviews_services() if s["metadata"]["name"] == name)
    (port,) = service["spec"]["ports"]
    return {**port, "targetPort": port.get("targetPort", port["port"])}


def deployment_of(relative: str, name: str = "") -> dict[str, Any]:
    """The reviews Deployment of one of our Bookinfo manifests (Istio's Services stay as upstream has them)."""
    documents = yaml.safe_load_all((BOOKINFO / relative).read_text())
    (deployment,) = [d for d in documents if d and d["kind"] == "Deployment"
                     and d["metadata"]["name"].startswith("reviews-")]
    return deployment


def unstartable_reviews_v2() -> dict[str, Any]:
    """bookinfo-reviews-v2.yaml with an image no registry has (reviews has v1 to v3): on a cluster the pod
    exists, with an IP, in ImagePullBackOff; the lab cannot run it either."""
    deployment = deployment_of("platform/kube/bookinfo-reviews-v2.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = UNSTARTABLE_IMAGE
    return deployment


def create_services(lab: DataPlaneLab, namespace: str) -> None:
    for service in reviews_services():
        lab.kube.create(SERVICES.format(ns=namespace), service)


def delete_services(lab: DataPlaneLab, namespace: str) -> None:
    # The lab's Service IP range is small and the lab deletes no namespace.
    for service in reviews_services():
        try:
            lab.kube.delete(f"{SERVICES.format(ns=namespace)}/{service['metadata']['name']}")
        except KubeError as exc:
            if exc.status != 404:
                raise


def read_endpoints(lab: DataPlaneLab, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return lab.kube.get(f"{ENDPOINTS.format(ns=namespace)}/{name}")
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def wait_endpoints(lab: DataPlaneLab, namespace: str, name: str, predicate: Any, timeout: float = 30.0,
                   what: str = "") -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        current = read_endpoints(lab, namespace, name)
        if predicate(current):
            return current
        assert time.monotonic() < deadline, f"Endpoints {namespace}/{name} never {what}: {current}"
        time.sleep(0.1)


def addresses(endpoints: dict[str, Any] | None, field: str = "addresses") -> list[dict[str, Any]]:
    return [a for subset in (endpoints or {}).get("subsets") or [] for a in subset.get(field) or []]


@pytest.fixture
def namespace(dp_lab: DataPlaneLab):
    name = dp_lab.create_namespace("endpoints")
    create_services(dp_lab, name)
    yield name
    for deployment in ("reviews-v1", "reviews-v2"):
        dp_lab.delete("Deployment", name, deployment)
    delete_services(dp_lab, name)


# ---------------------------------------------------------------- on the lab


def test_ready_v2_is_listed_under_its_version_service(dp_lab: DataPlaneLab, namespace: str) -> None:
    dp_lab.apply(deployment_of("platform/kube/bookinfo-reviews-v2.yaml"), namespace)
    dp_lab.wait_available(namespace, ["reviews-v2"])
    workload = dp_lab.workload(namespace, "reviews-v2")
    assert workload and workload["current"]
    endpoints = wait_endpoints(dp_lab, namespace, "reviews-v2", addresses, what="listed a ready address")
    assert endpoints is not None
    port = upstream_service_port("reviews-v2")
    (subset,) = endpoints["subsets"]
    # The Service port's name and protocol, on its targetPort (FindPort), for the pod that runs v2.
    assert subset["ports"] == [{"name": port["name"], "port": port["targetPort"], "protocol": "TCP"}]
    (address,) = subset["addresses"]
    assert address["targetRef"] == {"kind": "Pod", "namespace": namespace, "name": workload["current"]["pod_name"]}
    assert in_pod_network(address["ip"])  # the API server refuses loopback addresses in Endpoints
    assert "notReadyAddresses" not in subset
    # The reviews Service selects every version; reviews-v1 (no v1 running here) lists nothing.
    wait_endpoints(dp_lab, namespace, "reviews", lambda e: len(addresses(e)) == 1, what="listed v2")
    assert read_endpoints(dp_lab, namespace, "reviews-v1").get("subsets") in (None, [])
    # Nothing changes, so nothing is written: the controller's "endpoints are equal, skipping update".
    window = AuditWindow(dp_lab.state)
    time.sleep(1.5)  # six passes of the controller (lab/dataplane/endpoints.py: every 0.25 s)
    # (Only this namespace: workloads of other tests on a shared lab may be changing meanwhile.)
    mine = f"/namespaces/{namespace}/endpoints"
    writes = [e for e in window.writes(user="lab:dataplane") if mine in e.get("requestURI", "")]
    assert writes == [], [(e["verb"], e["requestURI"]) for e in writes]


def test_a_canary_the_lab_cannot_start_is_listed_not_ready(dp_lab: DataPlaneLab, namespace: str) -> None:
    """An image that never runs (as an image that cannot be pulled): the pod exists and is not Ready."""
    dp_lab.apply(unstartable_reviews_v2(), namespace)
    dp_lab.wait_condition(namespace, "reviews-v2", "Available", "False")
    endpoints = wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: addresses(e, "notReadyAddresses"),
                               what="listed a not-ready address")
    assert addresses(endpoints) == []
    assert endpoints["subsets"][0]["ports"][0]["port"] == upstream_service_port("reviews-v2")["targetPort"]


def test_crashing_canary_stays_listed_ready_as_without_a_readiness_probe(dp_lab: DataPlaneLab,
                                                                         namespace: str) -> None:
    """DEMO_CANARY=crashing's v2 refuses connections while its process runs. Bookinfo's manifests have no
    readiness probe, so on Kubernetes the pod stays Ready and stays in ``addresses``: the Endpoints cannot
    reveal this canary (metric analysis has to)."""
    dp_lab.apply(deployment_of(REVIEWS_V2_CRASHING), namespace)
    dp_lab.wait_available(namespace, ["reviews-v2"])
    pod = dp_lab.workload(namespace, "reviews-v2")["current"]["pod_name"]
    endpoints = wait_endpoints(dp_lab, namespace, "reviews-v2", addresses, what="listed v2")
    assert [a["targetRef"]["name"] for a in addresses(endpoints)] == [pod]
    reply = dp_lab.mesh("reviews-v2:9080", "/reviews/0", namespace=namespace)
    assert reply.status == 503  # the router cannot connect, yet the address is a ready one
    assert addresses(read_endpoints(dp_lab, namespace, "reviews-v2"), "notReadyAddresses") == []


def crashing_reviews_v2_with_readiness_probe() -> dict[str, Any]:
    """DEMO_CANARY=crashing's v2 with a readiness probe on Bookinfo's port (Kubernetes' Probe fields; short
    period and one failure, so the test does not wait for the defaults' 30 s)."""
    deployment = deployment_of(REVIEWS_V2_CRASHING)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/health", "port": 9080}, "periodSeconds": 1, "failureThreshold": 1}
    return deployment


def probed_not_ready(lab: DataPlaneLab, namespace: str, endpoints: dict[str, Any] | None) -> bool:
    """Whether reviews-v2's running process (not one still starting) is the not-ready address."""
    workload = lab.workload(namespace, "reviews-v2") or {}
    current = workload.get("current")
    listed = [a.get("targetRef", {}).get("name") for a in addresses(endpoints, "notReadyAddresses")]
    return bool(current) and not current["ready"] and listed == [current["pod_name"]]


def test_crashing_canary_with_a_readiness_probe_is_listed_not_ready(dp_lab: DataPlaneLab, namespace: str) -> None:
    """With a readiness probe the kubelet takes the refusing pod out of Ready, and the endpoints controller
    moves it to notReadyAddresses; the Deployment is no longer available."""
    dp_lab.apply(crashing_reviews_v2_with_readiness_probe(), namespace)
    endpoints = wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: probed_not_ready(dp_lab, namespace, e),
                               what="listed the running, crashing v2 not ready")
    assert addresses(endpoints) == []
    dp_lab.wait_condition(namespace, "reviews-v2", "Available", "False")


def test_deleted_deployment_and_service_leave_the_endpoints(dp_lab: DataPlaneLab, namespace: str) -> None:
    dp_lab.apply(deployment_of("platform/kube/bookinfo-reviews-v2.yaml"), namespace)
    dp_lab.wait_available(namespace, ["reviews-v2"])
    wait_endpoints(dp_lab, namespace, "reviews-v2", addresses, what="listed v2")
    dp_lab.delete("Deployment", namespace, "reviews-v2")
    wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: e is not None and not e.get("subsets"),
                   what="emptied after the Deployment was deleted")
    dp_lab.kube.delete(f"{SERVICES.format(ns=namespace)}/reviews-v2")
    wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: e is None, what="deleted with its Service")


# ---------------------------------------------------------------- canary.istio on the lab


def split(dp_lab: DataPlaneLab, namespace: str, weight: int) -> dict[str, Any]:
    args = {**lab_auth(dp_lab.state), "kind": "HTTPRoute", "name": "reviews", "namespace": namespace,
            "base": "reviews-v1", "canary": "reviews-v2", "canary_weight": weight}
    return run_module("traffic_split", args)


def istio_route(sample: str) -> dict[str, Any]:
    return corpus.istio_objects(f"samples/bookinfo/gateway-api/{sample}.yaml")[0]


@pytest.mark.parametrize("canary", ["platform/kube/bookinfo-reviews-v2.yaml", "unstartable", "crashing"])
def test_httproute_split_on_the_lab_needs_no_override(dp_lab: DataPlaneLab, namespace: str, canary: str) -> None:
    """With the lab writing Endpoints, make-before-break passes for a running v2 (Istio's 90/10 rule is
    written) and refuses while v2 is not ready (an image that cannot start; the crashing canary once its
    readiness probe fails), writing nothing."""
    dp_lab.apply(deployment_of("platform/kube/bookinfo-reviews-v1.yaml"), namespace)
    dp_lab.kube.create(ROUTES.format(ns=namespace), istio_route("route-reviews-v1"))
    ready = canary not in ("unstartable", "crashing")
    if ready:
        dp_lab.apply(deployment_of(canary), namespace)
        dp_lab.wait_available(namespace, ["reviews-v1", "reviews-v2"])
        wait_endpoints(dp_lab, namespace, "reviews-v2", addresses, what="listed v2")
    elif canary == "unstartable":
        dp_lab.apply(unstartable_reviews_v2(), namespace)
        wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: addresses(e, "notReadyAddresses"),
                       what="listed v2 not ready")
    else:
        dp_lab.apply(crashing_reviews_v2_with_readiness_probe(), namespace)
        wait_endpoints(dp_lab, namespace, "reviews-v2", lambda e: probed_not_ready(dp_lab, namespace, e),
                       what="listed the crashing v2 not ready")
    before = dp_lab.kube.get(f"{ROUTES.format(ns=namespace)}/reviews")
    result = split(dp_lab, namespace, 10)
    after = dp_lab.kube.get(f"{ROUTES.format(ns=namespace)}/reviews")
    if ready:
        assert result.get("failed") is not True and result["changed"] is True, result
        published = istio_route("route-reviews-90-10")["spec"]["rules"][0]["backendRefs"]
        written = after["spec"]["rules"][0]["backendRefs"]
        assert [{k: ref.get(k) for k in ("name", "port", "weight")} for ref in written] == published
        assert all(ref.get("kind", "Service") == "Service" and not ref.get("group") for ref in written)
    else:
        assert result.get("failed") is True, result
        assert "reviews-v2" in result["msg"] and "ready" in result["msg"], result["msg"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
