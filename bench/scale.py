"""Item 6 of the benchmark: thousands of VirtualServices in one lockstep ``traffic_split`` task.

For each size (100, 1,000, 5,000 by default) a namespace of its own holds that many VirtualServices,
each with its own DestinationRule (v1, v2), created many at a time with the lab's client (set-up
counts in no measurement). One ``ansible-playbook`` run per round moves all of them to new weights in
one task, the default way (in the controller's task worker), with the module's default concurrency.

Before each run, the same number of bare two-op JSON Patches (no guard, no history, no reads) are sent
with the lab's own client at the same concurrency: the "floor", what the lab's API server and
webhook can do at that moment on a machine others may share; the task's time over it is reported.

Per run: the task's time (start to end, from the results callback the tests use), the API requests
it made (audit log, user lab:admin), the module's own figures (``memory``: peak RSS of the worker
and how much the task raised it; ``lockstep``: seconds reading and validating, seconds writing).
After the last round every VirtualService is read back to check it holds the last weights asked for.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from bench.env import say
from bench.objects import destination_rule, virtual_service
from lab.audit import AuditWindow
from lab.kube import KubeClient, create_all
from tests.helpers.ansible import run_playbook, task_results

ISTIO = "/apis/networking.istio.io/v1/namespaces/{ns}"
AUDIT_USER = "lab:admin"
# traffic_split's default concurrency, which the runs use; the floor uses it too.
CONCURRENCY = 8


def _median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _populate(state: dict[str, Any], namespace: str, size: int) -> None:
    kube = KubeClient.from_state(state)
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    base = ISTIO.format(ns=namespace)
    items = []
    for index in range(size):
        name = f"s-{index:05d}"
        items += [(f"{base}/virtualservices", virtual_service(name, namespace)),
                  (f"{base}/destinationrules", destination_rule(name, namespace))]
    create_all(state["server"], state["tokens"]["admin"], state["ca_file"], items)


def _one_run(state: dict[str, Any], namespace: str, size: int, weight: int) -> dict[str, Any]:
    task = {"name": "lockstep", "canary.istio.traffic_split": {
        "namespace": namespace, "services": [{"name": f"s-{i:05d}"} for i in range(size)],
        "weights": {"v1": 100 - weight, "v2": weight}}}
    window = AuditWindow(state)
    proc = run_playbook([{"name": "bench", "hosts": "localhost", "gather_facts": False, "tasks": [task]}], state,
                        timeout=1800)
    requests = window.requests(user=AUDIT_USER)
    result = task_results(proc)[-1]
    if result.get("failed"):
        raise RuntimeError(f"{size} services: {str(result.get('msg'))[:1500]}")
    progress = [line for line in proc.stdout.splitlines() if line.startswith("traffic_split: ")]
    return {"task_s": result["end"] - result["start"], "requests": len(requests),
            "module_requests": result.get("api_requests"), "memory": result.get("memory") or {},
            "lockstep": result.get("lockstep") or {}, "progress_lines": len(progress)}


def _floor(state: dict[str, Any], namespace: str, size: int, weight: int, concurrency: int) -> float:
    """Seconds for the same number of bare two-op JSON Patches (no guard, no history, no reads), sent
    with the lab's own client at the same concurrency: what the lab can do at that moment."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    base = f"{ISTIO.format(ns=namespace)}/virtualservices"
    ops = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100 - weight},
           {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": weight}]

    def patch(index: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = KubeClient.from_state(state, timeout=120)
        client.json_patch(f"{base}/s-{index:05d}", ops)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(patch, range(size)))
    return time.perf_counter() - started


def _holds(state: dict[str, Any], namespace: str, size: int, weight: int) -> bool:
    items = KubeClient.from_state(state, timeout=120).get(f"{ISTIO.format(ns=namespace)}/virtualservices")["items"]
    wanted = {"v1": 100 - weight, "v2": weight}
    held = [{d["destination"]["subset"]: d.get("weight", 0) for d in vs["spec"]["http"][0]["route"]}
            for vs in items]
    return len(held) == size and all(weights == wanted for weights in held)


def lockstep_scale(state: dict[str, Any], runs: int, sizes: tuple[int, ...] = (100, 1000, 5000),
                   runs_largest: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    largest = max(sizes)
    for size in sizes:
        namespace = f"bench-scale-{size}"
        say(f"lockstep: creating {size} VirtualServices and DestinationRules in {namespace}")
        _populate(state, namespace, size)
        measured = []
        weight = 0
        for round_index in range(runs if size < largest else min(runs, runs_largest)):
            weight = (round_index % 9 + 1) * 10
            # The floor first (to other weights), so that every run of ours really writes.
            floor = _floor(state, namespace, size, weight + 5, CONCURRENCY)
            run = _one_run(state, namespace, size, weight)
            run["floor_s"] = floor
            measured.append(run)
            say(f"lockstep {size} services: round {round_index + 1}: {run['task_s']:.2f} s "
                f"(bare patches {floor:.2f} s), {run['requests']} requests, "
                f"peak RSS {run['memory'].get('peak_rss_mib')} MiB")
        med = {
            "task_s": _median([r["task_s"] for r in measured]),
            "floor_s": _median([r["floor_s"] for r in measured]),
            "over_floor": _median([r["task_s"] / r["floor_s"] for r in measured]),
            "requests": _median([r["requests"] for r in measured]),
            "read_s": _median([r["lockstep"].get("read_seconds") for r in measured]),
            "write_s": _median([r["lockstep"].get("write_seconds") for r in measured]),
            "peak_rss_mib": _median([r["memory"].get("peak_rss_mib") for r in measured]),
            "peak_rss_growth_mib": _median([r["memory"].get("peak_rss_growth_mib") for r in measured]),
        }
        med["per_service_ms"] = med["task_s"] / size * 1000
        med["requests_per_service"] = med["requests"] / size
        out["sizes"][str(size)] = {"runs": measured, "median": med,
                                   "concurrency": measured[-1]["lockstep"].get("concurrency"),
                                   "holds_last_weights": _holds(state, namespace, size, weight)}
    return out
