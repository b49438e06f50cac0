"""The objects the benchmark moves traffic on: VirtualServices with a v1/v2 route and their rules,
and HTTPRoutes with their per-version Services.

Created with the lab's own client (not the collection's), so setting up costs the benchmarked
code nothing and counts in no audit window.
"""

from __future__ import annotations

import uuid
from typing import Any

from lab.kube import KubeClient, KubeError

ISTIO = "/apis/networking.istio.io/v1"
GATEWAY_API = "/apis/gateway.networking.k8s.io/v1"


def virtual_service(name: str, namespace: str, canary_weight: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "hosts": [name],
            "http": [{"name": "primary", "route": [
                {"destination": {"host": name, "subset": "v1"}, "weight": 100 - canary_weight},
                {"destination": {"host": name, "subset": "v2"}, "weight": canary_weight},
            ]}],
        },
    }


def destination_rule(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"host": name, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                           {"name": "v2", "labels": {"version": "v2"}}]},
    }


def http_route(name: str, namespace: str, canary_weight: int = 0) -> dict[str, Any]:
    """As Istio's Gateway API Bookinfo route-reviews-90-10: parent the ``name`` Service, backends the
    per-version Services ``name-v1`` and ``name-v2``."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": name, "port": 9080}],
            "rules": [{"backendRefs": [
                {"name": f"{name}-v1", "port": 9080, "weight": 100 - canary_weight},
                {"name": f"{name}-v2", "port": 9080, "weight": canary_weight},
            ]}],
        },
    }


class Objects:
    def __init__(self, client: KubeClient):
        self.client = client

    def namespace(self, prefix: str = "bench") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": name}})
        return name

    def service_pair(self, name: str, namespace: str) -> None:
        """A VirtualService (all to v1) and its DestinationRule (v1, v2), created or reset."""
        for plural, body in (("virtualservices", virtual_service(name, namespace)),
                             ("destinationrules", destination_rule(name, namespace))):
            self._create_or_replace(f"{ISTIO}/namespaces/{namespace}/{plural}", body)

    def route_services(self, name: str, namespace: str) -> None:
        """An HTTPRoute (all to ``name-v1``), its parent Service ``name`` and the per-version Services
        ``name-v1``, ``name-v2``, created or reset. The bench's lab runs no workloads: the version
        Services have no selector and the bench writes their Endpoints (one ready address each) as
        the endpoints controller would for a running pod, so traffic_split's ready-endpoints check
        passes as on a live mesh."""
        for service in (name, f"{name}-v1", f"{name}-v2"):
            body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "labels": {"app": name}},
                    "spec": {"ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]}}
            self._create_or_replace(f"/api/v1/namespaces/{namespace}/services", body)
            if service != name:
                self._create_or_replace(f"/api/v1/namespaces/{namespace}/endpoints", {
                    "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": service},
                    "subsets": [{"addresses": [{"ip": f"10.1.0.{1 if service.endswith('-v1') else 2}"}],
                                 "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]}]})
        self._create_or_replace(f"{GATEWAY_API}/namespaces/{namespace}/httproutes", http_route(name, namespace))

    def _create_or_replace(self, base: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            self.client.create(base, body)
        except KubeError as exc:
            if exc.status != 409:
                raise
            current = self.client.get(f"{base}/{name}")
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if body["kind"] == "Service":
                body["spec"]["clusterIP"] = current["spec"].get("clusterIP")
            self.client.replace(f"{base}/{name}", body)

    def route_weights(self, name: str, namespace: str) -> dict[str, int]:
        route = self.client.get(f"{GATEWAY_API}/namespaces/{namespace}/httproutes/{name}")
        return {b["name"]: b.get("weight", 1) for b in route["spec"]["rules"][0]["backendRefs"]}

    def weights(self, name: str, namespace: str) -> dict[str, int]:
        vs = self.client.get(f"{ISTIO}/namespaces/{namespace}/virtualservices/{name}")
        return {d["destination"]["subset"]: d.get("weight", 0) for d in vs["spec"]["http"][0]["route"]}
