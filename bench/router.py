"""Item 5 of the benchmark: the lab router's added latency per hop, and the rate it sustains.

A Bookinfo ``ratings`` workload runs under the lab data plane. The same request is sent straight
to the workload's port ("direct") and through the router's mesh port as a sidecar would send it
("one hop"), with and without a VirtualService and DestinationRule for the service. The added
latency per hop is the router's median minus the direct median, taken round by round (rounds
alternate the variants, so drift hits both), then the median over rounds.

The load generator is plain Python: threads, one kept-alive connection each, requests paced at a
fixed rate (open loop: a request's send time is fixed in advance, not by the previous answer),
bounded by a count and a time limit; loopback only. A closed-loop run (each connection sends its
next request when the answer came) gives the rate the router sustains.
"""

from __future__ import annotations

import http.client
import itertools
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from bench.changes import median
from bench.env import REPO_ROOT, say
from lab.kube import KubeClient, KubeError

ISTIO = "/apis/networking.istio.io/v1"
PATH = "/ratings/0"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Target:
    def __init__(self, url: str, headers: dict[str, str] | None = None):
        parts = urllib.parse.urlsplit(url)
        if parts.hostname != "127.0.0.1":
            raise ValueError(f"benchmark traffic stays on loopback, not {url}")
        self.port = parts.port or 80
        self.headers = headers or {}

    def connection(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


def _send(conn: http.client.HTTPConnection, target: Target) -> int:
    conn.request("GET", PATH, headers=target.headers)
    response = conn.getresponse()
    response.read()
    if response.will_close:
        conn.close()
    return response.status


def _send_or_reconnect(conn: http.client.HTTPConnection, target: Target
                       ) -> tuple[int, http.client.HTTPConnection]:
    """One request; on a broken connection, status 0 and a fresh connection for the next one."""
    try:
        return _send(conn, target), conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return 0, target.connection()


def paced(target: Target, rate: float, seconds: float, threads: int = 8) -> dict[str, Any]:
    """``rate`` requests a second for ``seconds``; latency of each from its send."""
    total = int(rate * seconds)
    latencies: list[float] = []
    counters = {"errors": 0, "late": 0}
    lock = threading.Lock()
    sequence = itertools.count()
    start = time.perf_counter() + 0.05
    deadline = start + seconds * 2 + 5

    def worker() -> None:
        conn = target.connection()
        while True:
            index = next(sequence)
            if index >= total or time.perf_counter() > deadline:
                break
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            status, conn = _send_or_reconnect(conn, target)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    counters["errors"] += 1
                if began - due > 0.005:
                    counters["late"] += 1
        conn.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=seconds * 2 + 10)
    took = time.perf_counter() - start
    return {"requests": len(latencies), "rate": len(latencies) / took if took > 0 else 0.0,
            "p50_ms": median(latencies) * 1000, "p90_ms": percentile(latencies, 0.9) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000, "errors": counters["errors"], "late": counters["late"]}


def closed_loop(target: Target, connections: int, seconds: float) -> dict[str, Any]:
    """Each connection sends its next request when the answer came; requests a second overall."""
    counts = [0] * connections
    errors = [0] * connections
    latencies: list[list[float]] = [[] for _ in range(connections)]
    stop = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        conn = target.connection()
        while time.perf_counter() < stop:
            began = time.perf_counter()
            status, conn = _send_or_reconnect(conn, target)
            latencies[slot].append(time.perf_counter() - began)
            counts[slot] += 1
            if status != 200:
                errors[slot] += 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=seconds + 15)
    took = time.perf_counter() - started
    every = [value for slot in latencies for value in slot]
    return {"connections": connections, "requests": sum(counts), "rate": sum(counts) / took,
            "errors": sum(errors), "p50_ms": median(every) * 1000, "p99_ms": percentile(every, 0.99) * 1000}


def _ratings_objects(namespace: str) -> list[dict[str, Any]]:
    manifest = REPO_ROOT / "bookinfo" / "platform" / "kube" / "bookinfo-reviews-v1.yaml"
    objects = []
    for doc in yaml.safe_load_all(manifest.read_text()):
        if doc and "ratings" in doc["metadata"]["name"]:
            doc["metadata"]["namespace"] = namespace
            objects.append(doc)
    return objects


def _create(client: KubeClient, obj: dict[str, Any]) -> dict[str, Any]:
    kind, namespace = obj["kind"], obj["metadata"]["namespace"]
    prefix = {"Service": "/api/v1", "ServiceAccount": "/api/v1", "Deployment": "/apis/apps/v1",
              "VirtualService": ISTIO, "DestinationRule": ISTIO}[kind]
    plural = {"Service": "services", "ServiceAccount": "serviceaccounts", "Deployment": "deployments",
              "VirtualService": "virtualservices", "DestinationRule": "destinationrules"}[kind]
    try:
        return client.create(f"{prefix}/namespaces/{namespace}/{plural}", obj)
    except KubeError as exc:
        if exc.status != 409:
            raise
        return client.get(f"{prefix}/namespaces/{namespace}/{plural}/{obj['metadata']['name']}")


def _admin(info: dict[str, Any], what: str) -> Any:
    target = Target(info["admin_url"])
    conn = target.connection()
    try:
        conn.request("GET", f"/debug/{what}")
        response = conn.getresponse()
        import json
        return json.loads(response.read())
    finally:
        conn.close()


def _wait(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def router_bench(lab_dir: Path, lab_state: dict[str, Any], namespace: str, rate: float = 200.0,
                 seconds: float = 5.0, rounds: int = 3) -> dict[str, Any]:
    try:
        from lab import dataplane
    except ImportError:
        return {"skipped": "lab.dataplane is not importable"}
    if not hasattr(dataplane, "start"):
        return {"skipped": "lab.dataplane has no start() yet"}
    say("router: starting the data plane")
    info = dataplane.start(lab_dir)
    try:
        return _measure(info, lab_state, namespace, rate, seconds, rounds)
    finally:
        dataplane.stop(lab_dir)


def _measure(info: dict[str, Any], lab_state: dict[str, Any], namespace: str, rate: float, seconds: float,
             rounds: int) -> dict[str, Any]:
    client = KubeClient.from_state(lab_state, user="admin")
    for obj in _ratings_objects(namespace):
        _create(client, obj)

    def endpoint() -> dict[str, Any] | None:
        for entry in _admin(info, "config")["endpoints"]:
            if entry["namespace"] == namespace and entry["workload"] == "ratings-v1" and entry.get("port"):
                return entry
        return None

    ratings = _wait(endpoint, 60, "the ratings workload's endpoint")
    mesh_headers = {"Host": "ratings", "x-source-workload": "bench-client", "x-source-namespace": namespace}
    # The same service once more under another name, with a VirtualService and DestinationRule.
    routed_name = "ratings-routed"
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": routed_name, "namespace": namespace},
               "spec": {"ports": [{"port": 9080, "name": "http"}], "selector": {"app": "ratings"}}}
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": routed_name, "namespace": namespace},
            "spec": {"host": routed_name, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                     {"name": "v2", "labels": {"version": "v2"}}]}}
    virtual = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": routed_name, "namespace": namespace},
               "spec": {"hosts": [routed_name], "http": [
                   {"name": "testers", "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": routed_name, "subset": "v2"}}]},
                   {"name": "primary", "route": [
                       {"destination": {"host": routed_name, "subset": "v1"}, "weight": 100},
                       {"destination": {"host": routed_name, "subset": "v2"}, "weight": 0}]}]}}
    stored = [_create(client, obj) for obj in (service, rule, virtual)]

    def seen() -> bool:
        versions = _admin(info, "config")["resourceVersions"]
        return all(versions.get(obj["kind"], {}).get(f"{namespace}/{obj['metadata']['name']}")
                   == obj["metadata"]["resourceVersion"] for obj in stored[1:])

    _wait(seen, 20, "the router to load the VirtualService and DestinationRule")
    variants = {
        "direct": Target(f"http://127.0.0.1:{ratings['port']}", {"Host": "ratings"}),
        "one hop": Target(info["mesh_url"], mesh_headers),
        "one hop, VirtualService + DestinationRule": Target(info["mesh_url"], dict(mesh_headers, Host=routed_name)),
    }
    for name, target in variants.items():  # warm up: connections, code paths
        conn = target.connection()
        for _ in range(50):
            if _send(conn, target) != 200:
                raise RuntimeError(f"router bench: {name} does not answer 200 on {PATH}")
        conn.close()
    say(f"router: {rounds} rounds of {seconds:g}s at {rate:g} requests/s per variant")
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, target in variants.items():
            per_round[name].append(paced(target, rate, seconds))
    added: dict[str, Any] = {}
    for name in list(variants)[1:]:
        deltas = [hop["p50_ms"] - direct["p50_ms"] for hop, direct in zip(per_round[name], per_round["direct"],
                                                                             strict=True)]
        deltas_p90 = [hop["p90_ms"] - direct["p90_ms"] for hop, direct in zip(per_round[name],
                                                                               per_round["direct"], strict=True)]
        added[name] = {"p50_ms": median(deltas), "p90_ms": median(deltas_p90), "per_round_p50_ms": deltas}
    summary = {name: {key: median([r[key] for r in runs]) for key in ("rate", "p50_ms", "p90_ms", "p99_ms")}
               | {"errors": sum(r["errors"] for r in runs), "late": sum(r["late"] for r in runs),
                  "requests": sum(r["requests"] for r in runs)}
               for name, runs in per_round.items()}
    say("router: closed-loop throughput")
    throughput = {}
    for connections in (1, 8):
        throughput[str(connections)] = {name: closed_loop(target, connections, seconds)
                                        for name, target in list(variants.items())[:2]}
    return {"rate": rate, "seconds": seconds, "rounds": rounds, "paced": summary, "added": added,
            "throughput": throughput, "backend": {"workload": "ratings-v1", "path": PATH}}
