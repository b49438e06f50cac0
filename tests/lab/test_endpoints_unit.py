"""The lab's endpoints controller rules (lab/dataplane/endpoints.py) without a lab.

Expected values from Kubernetes' endpoints controller (kubernetes/kubernetes
pkg/controller/endpoint/endpoints_controller.go, syncService and addEndpointSubset), FindPort
(pkg/api/v1/pod/util.go), RepackSubsets (pkg/api/v1/endpoints/util.go) and the EndpointSubset API
reference ("No address will appear in both Addresses and NotReadyAddresses in the same subset").
"""

from __future__ import annotations

import ipaddress

import pytest

from lab.dataplane.endpoints import LabPod, desired_endpoints

pytestmark = pytest.mark.unit

CONTAINERS = ({"name": "main", "ports": [{"name": "web", "containerPort": 9080}]},)


def in_pod_network(address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network("10.244.0.0/16")



def test_named_target_port_and_readiness_follow_the_controller() -> None:
    """FindPort: a named targetPort is the container port of that name and protocol; a pod without it is
    left out for that port. A pod that is not Ready goes to notReadyAddresses, unless the Service
    publishes not-ready addresses. A Service without a selector gets nothing from the controller."""
    containers = ({"name": "main", "ports": [{"name": "web", "containerPort": 9080}]},)
    service = {"metadata": {"name": "web", "namespace": "a", "labels": {"team": "x"}},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.5",
                        "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]}}
    ready = LabPod("a", "web-v1", {"app": "web", "version": "v1"}, True, containers=containers)
    starting = LabPod("a", "web-v2", {"app": "web", "version": "v2"}, False, name="web-v2-abc", containers=containers)
    unnamed = LabPod("a", "web-v3", {"app": "web"}, True, containers=({"name": "main", "ports": []},))
    other_namespace = LabPod("b", "web-v1", {"app": "web"}, True, containers=containers)
    body = desired_endpoints(service, [ready, starting, unnamed, other_namespace])
    assert body is not None and body["metadata"]["labels"] == {"team": "x"}
    assert body["subsets"] == [{
        "addresses": [{"ip": ready.ip}],
        "notReadyAddresses": [
            {"ip": starting.ip, "targetRef": {"kind": "Pod", "namespace": "a", "name": "web-v2-abc"}}],
        "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]}]
    assert ready.ip != starting.ip and in_pod_network(ready.ip)
    service["spec"]["publishNotReadyAddresses"] = True
    published = desired_endpoints(service, [starting])
    assert published is not None and "notReadyAddresses" not in published["subsets"][0]
    service["spec"].pop("selector")
    assert desired_endpoints(service, [ready]) is None


def test_a_pod_ready_and_not_ready_for_the_same_ports_counts_as_ready() -> None:
    """RepackSubsets: one subset per set of ports; an address both ready and not ready there is ready."""
    service = {"metadata": {"name": "web", "namespace": "a"},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.5",
                        "ports": [{"name": "http", "port": 80, "targetPort": 9080, "protocol": "TCP"}]}}
    same = dict(namespace="a", deployment="web-v1", labels={"app": "web"}, name="web-v1-x", containers=CONTAINERS)
    body = desired_endpoints(service, [LabPod(ready=False, **same), LabPod(ready=True, **same)])
    assert body is not None
    (subset,) = body["subsets"]
    assert "notReadyAddresses" not in subset and len(subset["addresses"]) == 1
    assert in_pod_network(subset["addresses"][0]["ip"])


def test_headless_without_ports_lists_addresses_and_other_portless_services_nothing() -> None:
    pod = LabPod("a", "web-v1", {"app": "web"}, True, name="web-v1-x", containers=CONTAINERS)
    meta = {"name": "web", "namespace": "a"}
    headless = {"metadata": meta, "spec": {"selector": {"app": "web"}, "clusterIP": "None"}}
    body = desired_endpoints(headless, [pod])
    assert body is not None and body["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    assert body["subsets"] == [{"addresses": [{"ip": pod.ip, "targetRef": {
        "kind": "Pod", "namespace": "a", "name": "web-v1-x"}}]}]
    with_ip = {"metadata": meta, "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.5"}}
    assert desired_endpoints(with_ip, [pod])["subsets"] == []


def test_external_name_and_empty_selector_get_nothing() -> None:
    pod = LabPod("a", "web-v1", {"app": "web"}, True, containers=CONTAINERS)
    external = {"metadata": {"name": "web", "namespace": "a"},
                "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}}}
    empty = {"metadata": {"name": "web", "namespace": "a"}, "spec": {"selector": {}, "ports": [{"port": 80}]}}
    assert desired_endpoints(external, [pod]) is None and desired_endpoints(empty, [pod]) is None
