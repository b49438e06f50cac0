"""Resilience part of the benchmark: one resilience change, ours against kubernetes.core.

The change is Istio's Circuit Breaking task on one subset of a DestinationRule (connection pool and
outlier detection in ``subsets[v2].trafficPolicy``), and a route timeout, each step with values the
object did not hold before so every timed task really writes. Variants:

- ``resilience`` - canary.istio.resilience, the default path (in the controller's task worker);
- ``resilience module process`` - the same with ``CANARY_ISTIO_IN_PROCESS=0``;
- ``k8s`` - kubernetes.core.k8s ``state: present`` with both whole objects carrying the same change, in one
  task (what a user writes by hand today: the objects as the repository holds them, the policies added).

Requests per change come from the API server's audit log of each run (``bench.runner``), discovery
counted apart; the result also keeps what the module itself reports (``api_requests``).
"""

from __future__ import annotations

from typing import Any

from bench.changes import MODULE_PROCESS, TaskFactory, check_paths, measure, ratios
from bench.objects import Objects, destination_rule, virtual_service
from bench.runner import PlaybookRunner

OBJECTS = ("res-ours", "res-mod", "res-k8s")


def max_connections(step: int) -> int:
    """1, 2, ... 9, 1, ...: never the same twice in a row."""
    return step % 9 + 1


def circuit_breaker(step: int) -> dict[str, Any]:
    """The options of Istio's Circuit Breaking task, with ``max_connections`` of the step."""
    return {"connection_pool": {"tcp": {"max_connections": max_connections(step)},
                                "http": {"http1_max_pending_requests": 1, "max_requests_per_connection": 1}},
            "outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s", "base_ejection_time": "3m",
                                  "max_ejection_percent": 100}}


def traffic_policy(step: int) -> dict[str, Any]:
    """The same in Istio's field names."""
    return {"connectionPool": {"tcp": {"maxConnections": max_connections(step)},
                               "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1}},
            "outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m",
                                 "maxEjectionPercent": 100}}


def timeout(step: int) -> str:
    return f"{max_connections(step)}s"


def resilience_change(runner: PlaybookRunner, objects: Objects, namespace: str, runs: int) -> dict[str, Any]:
    for name in OBJECTS:
        objects.service_pair(name, namespace)

    def ours(name: str) -> TaskFactory:
        return lambda step: [{"name": "resilience", "canary.istio.resilience": {
            "name": name, "namespace": namespace, "subset": "v2", "timeout": timeout(step),
            "circuit_breaker": circuit_breaker(step)}}]

    def k8s(step: int) -> list[dict[str, Any]]:
        rule = destination_rule("res-k8s", namespace)
        rule["spec"]["subsets"][1]["trafficPolicy"] = traffic_policy(step)
        service = virtual_service("res-k8s", namespace)
        service["spec"]["http"][0]["timeout"] = timeout(step)
        return [{"name": "k8s apply", "kubernetes.core.k8s": {"state": "present", "definition": [service, rule]}}]

    variants: dict[str, TaskFactory] = {
        "resilience": ours("res-ours"),
        "resilience module process": ours("res-mod"),
        "k8s": k8s,
    }
    result = measure(runner, variants, runs, "resilience change", {},
                     envs={"resilience module process": MODULE_PROCESS})
    result["ratios"] = {
        "task_resilience_over_k8s": ratios(result, "resilience", "k8s", "task_s"),
        "wall_resilience_over_k8s": ratios(result, "resilience", "k8s", "wall_s"),
        "task_module_process_over_k8s": ratios(result, "resilience module process", "k8s", "task_s"),
    }
    result["path_problems"] = check_paths(result, ["resilience"], ["resilience module process", "k8s"])
    # The change is really stored: each object's subset v2 holds the last round's policy.
    result["final_policies"] = {
        name: objects.client.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}/destinationrules/{name}")
        ["spec"]["subsets"][1].get("trafficPolicy") for name in OBJECTS}
    return result


def console(result: dict[str, Any]) -> str:
    """A short table: median task seconds, wall seconds and API requests (discovery apart) per change."""
    lines = ["resilience change (Circuit Breaking task on subset v2 + route timeout), medians:",
             f"  {'variant':28} {'task s':>7} {'wall s':>7} {'requests':>9} {'discovery':>9}"]
    for name, data in result.items():
        if not isinstance(data, dict) or "median" not in data:
            continue
        median = data["median"]
        lines.append(f"  {name:28} {median['task_s']:7.2f} {median['wall_s']:7.2f} {median['requests']:9.0f} "
                     f"{median['discovery']:9.0f}")
    task_ratio = result.get("ratios", {}).get("task_resilience_over_k8s", {}).get("median")
    if task_ratio is not None:
        lines.append(f"  task time resilience / k8s apply: {task_ratio:.2f}")
    return "\n".join(lines)
