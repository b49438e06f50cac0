"""The objects the benchmark moves traffic on: VirtualServices with a v1/v2 route and their rules.

Created with the lab's own client (not the collection's), so setting up costs the benchmarked
code nothing and counts in no audit window.
"""

from __future__ import annotations

import uuid
from typing import Any

from lab.kube import KubeClient, KubeError

ISTIO = "/apis/networking.istio.io/v1"


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
            base = f"{ISTIO}/namespaces/{namespace}/{plural}"
            try:
                self.client.create(base, body)
            except KubeError as exc:
                if exc.status != 409:
                    raise
                current = self.client.get(f"{base}/{name}")
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.client.replace(f"{base}/{name}", body)

    def weights(self, name: str, namespace: str) -> dict[str, int]:
        vs = self.client.get(f"{ISTIO}/namespaces/{namespace}/virtualservices/{name}")
        return {d["destination"]["subset"]: d.get("weight", 0) for d in vs["spec"]["http"][0]["route"]}
