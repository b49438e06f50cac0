"""HTTPRoutes reach the router from the API server: the data plane's informers over Gateway API.

The route is Istio's ``samples/bookinfo/gateway-api/route-reviews-90-10.yaml`` (90% to reviews-v1,
10% to reviews-v2); the API server stores it, the informers list and watch it, and the snapshot
built from them splits as the sample says, and follows a change of weights.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from lab.dataplane.routing import Endpoint, Request, ServiceEntry, Snapshot
from lab.dataplane.watch import GATEWAY_API_WATCHED, Informer, gateway_api_inputs
from lab.kube import KubeClient

pytestmark = pytest.mark.lab


def _route(namespace: str, weights: tuple[int, int]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reviews", "namespace": namespace},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
                     "rules": [{"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": weights[0]},
                                                {"name": "reviews-v2", "port": 9080, "weight": weights[1]}]}]}}


def _share_v2(snapshot: Snapshot, namespace: str) -> float:
    rng = random.Random(3)
    hits = 0
    for _ in range(2000):
        request = Request(method="GET", path="/reviews/0", authority="reviews:9080", headers={},
                          source_namespace=namespace)
        decision = snapshot.route_mesh(request, rng)
        hits += decision.target is not None and decision.target.endpoint.workload == "reviews-v2"
    return hits / 2000


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the informers did not see the change"
        time.sleep(0.05)


def test_informers_feed_httproutes_to_the_router(lab_state: dict[str, Any], kube: KubeClient, namespace: str) -> None:
    routes = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"
    kube.create(routes, _route(namespace, (90, 10)))
    informers = {kind: Informer(kind, path, lambda: KubeClient.from_state(lab_state), lambda kind: None)
                 for kind, path in GATEWAY_API_WATCHED.items()}
    for informer in informers.values():
        informer.start()
    try:
        _wait_for(lambda: all(i.synced.is_set() for i in informers.values()))
        services = [ServiceEntry(namespace, "reviews", {"app": "reviews"}),
                    ServiceEntry(namespace, "reviews-v1", {"app": "reviews", "version": "v1"}),
                    ServiceEntry(namespace, "reviews-v2", {"app": "reviews", "version": "v2"})]
        endpoints = [Endpoint(namespace, f"reviews-{v}", {"app": "reviews", "version": v}, 9080) for v in ("v1", "v2")]

        def snapshot() -> Snapshot:
            return Snapshot(services=services, endpoints=endpoints, **gateway_api_inputs(informers))

        assert _share_v2(snapshot(), namespace) == pytest.approx(0.10, abs=0.025)
        stored = kube.get(f"{routes}/reviews")
        stored["spec"]["rules"][0]["backendRefs"][0]["weight"] = 50
        stored["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
        kube.request("PUT", f"{routes}/reviews", stored)
        _wait_for(lambda: any(r["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]
                              for r in informers["HTTPRoute"].items() if r["metadata"]["namespace"] == namespace))
        assert _share_v2(snapshot(), namespace) == pytest.approx(0.50, abs=0.04)
    finally:
        for informer in informers.values():
            informer.stop()
