"""Items 1 and 2 of the benchmark: one weight change, and many services in one step.

Every variant runs once untimed first (the "cold" run: kubernetes.core fills its discovery cache
then, which is what a first run on a fresh controller pays), then ``runs`` timed rounds. In a round
every variant runs once, in an order rotated from round to round, and each changes the weights to
a value it did not have before, so every timed task really writes.

Our modules run two ways, both measured: by default, on a local connection, inside the
controller's task worker through their action plugins (no module process), and with
``CANARY_ISTIO_IN_PROCESS=0`` in ``ansible-playbook``'s environment as a module process, the way
every module runs on a remote host or with become, task ``environment`` or async. Each run records
how many module processes it started, so a path that did not run as intended shows.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from bench.env import say
from bench.objects import Objects, http_route, virtual_service
from bench.runner import PlaybookRunner, RunResult

TaskFactory = Callable[[int], list[dict[str, Any]]]
# What turns the in-process path off (plugins/plugin_utils/_in_process.py).
MODULE_PROCESS = {"CANARY_ISTIO_IN_PROCESS": "0"}


def canary_weight(step: int) -> int:
    """10, 20, ... 90, 10, ...: never the same twice in a row."""
    return (step % 9 + 1) * 10


def json_patch_ops(weight: int) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100 - weight},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": weight}]


def summarize_run(result: RunResult) -> dict[str, Any]:
    return {"task_s": result.task_time, "wall_s": result.wall, "peak_rss_mb": result.peak_rss_mb,
            "worker_rss_mb": result.worker_peak_rss_mb, "workers": len(result.workers),
            "module_processes": len(result.modules), "module_s": result.module_seconds,
            "requests": result.request_summary(), "changed": [t["changed"] for t in result.tasks],
            "module_api_requests": result.tasks[-1].get("api_requests") if result.tasks else None,
            "failures": result.failures}


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def measure(runner: PlaybookRunner, variants: dict[str, TaskFactory], runs: int, label: str,
            steps: dict[str, int], envs: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """Runs each variant once cold, then ``runs`` rounds; returns per-variant runs and medians."""
    out: dict[str, Any] = {name: {"cold": None, "runs": []} for name in variants}
    names = list(variants)
    runner.clear_discovery_cache()  # the cold run is cold: kubernetes.core discovers the API again
    for round_index in range(-1, runs):
        order = names[round_index % len(names):] + names[:round_index % len(names)] if round_index >= 0 else names
        for name in order:
            step = steps[name] = steps.get(name, 0) + 1
            result = runner.run(variants[name](step), extra_env=(envs or {}).get(name))
            summary = summarize_run(result)
            if result.failures:
                say(f"{label} {name}: FAILED: {'; '.join(result.failures)[:1500]}")
            if round_index < 0:
                out[name]["cold"] = summary
            else:
                out[name]["runs"].append(summary)
        if round_index >= 0:
            say(f"{label}: round {round_index + 1}/{runs} " + ", ".join(
                f"{n} {out[n]['runs'][-1]['task_s']:.2f}s" for n in names))
    for name in names:
        measured = out[name]["runs"]
        out[name]["median"] = {
            "task_s": median([r["task_s"] for r in measured]),
            "wall_s": median([r["wall_s"] for r in measured]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in measured]),
            "worker_rss_mb": median([r["worker_rss_mb"] for r in measured]),
            "module_processes": median([r["module_processes"] for r in measured]),
            "module_s": median([r["module_s"] for r in measured]),
            "requests": median([r["requests"]["total"] for r in measured]),
            "discovery": median([r["requests"]["discovery"] for r in measured]),
        }
    return out


def check_paths(result: dict[str, Any], in_process: list[str], module_process: list[str]) -> list[str]:
    """Runs whose path was not the intended one: module processes where none should run, or none
    where one (or one per loop item) should."""
    problems = []
    for name in in_process:
        runs = [r for r in [result[name]["cold"], *result[name]["runs"]] if r]
        bad = [r["module_processes"] for r in runs if r["module_processes"]]
        if bad:
            problems.append(f"{name}: {len(bad)} of {len(runs)} runs started module processes ({bad[0]})")
    for name in module_process:
        runs = [r for r in [result[name]["cold"], *result[name]["runs"]] if r]
        bad = [r for r in runs if not r["module_processes"]]
        if bad:
            problems.append(f"{name}: {len(bad)} of {len(runs)} runs started no module process")
    for problem in problems:
        say(f"path check: {problem}")
    return problems


def ratios(result: dict[str, Any], numerator: str, denominator: str, key: str) -> dict[str, Any]:
    """``numerator/denominator`` of ``key`` taken run by run (same round), then the median."""
    pairs = [a[key] / b[key] for a, b in zip(result[numerator]["runs"], result[denominator]["runs"], strict=True)
             if b[key]]
    return {"per_run": pairs, "median": median(pairs)}


ONE_CHANGE_OBJECTS = ("one-ts", "one-tm", "one-jp", "one-k8s", "one-ts-p", "one-jp-p")
# The same step on Gateway API HTTPRoutes (issue 24): ours and kubernetes.core.k8s applying the route.
ONE_CHANGE_ROUTES = ("one-hr", "one-hr-k8s")


def one_change(runner: PlaybookRunner, objects: Objects, namespace: str, runs: int) -> dict[str, Any]:
    for name in ONE_CHANGE_OBJECTS:
        objects.service_pair(name, namespace)
    for name in ONE_CHANGE_ROUTES:
        objects.route_services(name, namespace)

    def ours(vs: str) -> TaskFactory:
        return lambda step: [{"name": "traffic_split", "canary.istio.traffic_split": {
            "name": vs, "namespace": namespace, "base": "v1", "canary": "v2", "canary_weight": canary_weight(step)}}]

    def ours_route(route: str) -> TaskFactory:
        return lambda step: [{"name": "traffic_split HTTPRoute", "canary.istio.traffic_split": {
            "kind": "HTTPRoute", "name": route, "namespace": namespace, "base": f"{route}-v1",
            "canary": f"{route}-v2", "canary_weight": canary_weight(step)}}]

    def json_patch(vs: str) -> TaskFactory:
        return lambda step: [{"name": "k8s_json_patch", "kubernetes.core.k8s_json_patch": {
            "api_version": "networking.istio.io/v1", "kind": "VirtualService", "name": vs,
            "namespace": namespace, "patch": json_patch_ops(canary_weight(step))}}]

    variants: dict[str, TaskFactory] = {
        "debug": lambda step: [{"name": "debug only", "ansible.builtin.debug": {"msg": f"step {step}"}}],
        "traffic_split": ours("one-ts"),  # the default: in the controller's worker
        "traffic_split module process": ours("one-tm"),  # CANARY_ISTIO_IN_PROCESS=0
        "k8s_json_patch": json_patch("one-jp"),
        "k8s": lambda step: [{"name": "k8s apply", "kubernetes.core.k8s": {
            "state": "present", "definition": virtual_service("one-k8s", namespace, canary_weight(step))}}],
        # The same two tasks as module processes with Ansible's pipelining on (no temp dir, no file
        # transfer per task): shows how much of a task is Ansible's own machinery. Ours runs as a
        # module process here, since pipelining means nothing to the in-process path.
        "traffic_split pipelining": ours("one-ts-p"),
        "k8s_json_patch pipelining": json_patch("one-jp-p"),
        "traffic_split HTTPRoute": ours_route("one-hr"),  # in the controller's worker, as "traffic_split"
        "k8s HTTPRoute": lambda step: [{"name": "k8s apply HTTPRoute", "kubernetes.core.k8s": {
            "state": "present", "definition": http_route("one-hr-k8s", namespace, canary_weight(step))}}],
    }
    pipelining = {"ANSIBLE_PIPELINING": "1"}
    result = measure(runner, variants, runs, "one change", {},
                     envs={"traffic_split module process": MODULE_PROCESS,
                           "traffic_split pipelining": {**pipelining, **MODULE_PROCESS},
                           "k8s_json_patch pipelining": pipelining})
    module = "traffic_split module process"
    result["ratios"] = {
        "task_traffic_split_over_k8s_json_patch": ratios(result, "traffic_split", "k8s_json_patch", "task_s"),
        "task_traffic_split_over_k8s": ratios(result, "traffic_split", "k8s", "task_s"),
        "wall_traffic_split_over_k8s_json_patch": ratios(result, "traffic_split", "k8s_json_patch", "wall_s"),
        "wall_traffic_split_over_k8s": ratios(result, "traffic_split", "k8s", "wall_s"),
        "task_module_process_over_k8s_json_patch": ratios(result, module, "k8s_json_patch", "task_s"),
        "wall_module_process_over_k8s_json_patch": ratios(result, module, "k8s_json_patch", "wall_s"),
        "task_in_process_over_module_process": ratios(result, "traffic_split", module, "task_s"),
        "rss_traffic_split_over_k8s_json_patch": ratios(result, module, "k8s_json_patch", "peak_rss_mb"),
        "task_pipelining": ratios(result, "traffic_split pipelining", "k8s_json_patch pipelining", "task_s"),
        "task_httproute_over_k8s_httproute": ratios(result, "traffic_split HTTPRoute", "k8s HTTPRoute", "task_s"),
        "task_httproute_over_traffic_split": ratios(result, "traffic_split HTTPRoute", "traffic_split", "task_s"),
    }
    result["path_problems"] = check_paths(result, ["debug", "traffic_split", "traffic_split HTTPRoute"],
                                          [module, "traffic_split pipelining", "k8s_json_patch", "k8s",
                                           "k8s_json_patch pipelining", "k8s HTTPRoute"])
    # The weights really moved: what the API server holds now is what the last round asked for.
    result["final_weights"] = {name: objects.weights(name, namespace) for name in ONE_CHANGE_OBJECTS}
    result["final_weights"].update({name: objects.route_weights(name, namespace) for name in ONE_CHANGE_ROUTES})
    return result


def many_services(runner: PlaybookRunner, objects: Objects, namespace: str, runs: int,
                  sizes: tuple[int, ...] = (1, 10, 100), runs_largest: int = 3) -> dict[str, Any]:
    largest = max(sizes)
    say(f"creating {largest} VirtualServices and DestinationRules for each variant")
    for index in range(largest):
        for prefix in ("ts", "tm", "kc"):
            objects.service_pair(f"{prefix}-{index:03d}", namespace)
    steps: dict[str, int] = {}
    out: dict[str, Any] = {}
    for size in sizes:
        ts_names = [f"ts-{i:03d}" for i in range(size)]
        tm_names = [f"tm-{i:03d}" for i in range(size)]
        kc_names = [f"kc-{i:03d}" for i in range(size)]

        def ours(step: int, names: list[str] = ts_names) -> list[dict[str, Any]]:
            weight = canary_weight(step)
            return [{"name": "traffic_split lockstep", "canary.istio.traffic_split": {
                "namespace": namespace, "services": [{"name": n} for n in names],
                "weights": {"v1": 100 - weight, "v2": weight}}}]

        def ours_module(step: int, names: list[str] = tm_names) -> list[dict[str, Any]]:
            return ours(step, names)

        def loop(step: int, names: list[str] = kc_names) -> list[dict[str, Any]]:
            return [{"name": "k8s_json_patch loop", "kubernetes.core.k8s_json_patch": {
                "api_version": "networking.istio.io/v1", "kind": "VirtualService", "name": "{{ item }}",
                "namespace": namespace, "patch": json_patch_ops(canary_weight(step))}, "loop": names}]

        # Every variant keeps one step counter across sizes, so every run changes weights.
        size_runs = runs if size < largest else min(runs, runs_largest)
        module = "traffic_split module process"
        result = measure(runner, {"traffic_split": ours, module: ours_module, "k8s_json_patch_loop": loop},
                         size_runs, f"{size} services", steps, envs={module: MODULE_PROCESS})
        result["ratios"] = {
            "task_loop_over_traffic_split": ratios(result, "k8s_json_patch_loop", "traffic_split", "task_s"),
            "wall_loop_over_traffic_split": ratios(result, "k8s_json_patch_loop", "traffic_split", "wall_s"),
            "task_loop_over_module_process": ratios(result, "k8s_json_patch_loop", module, "task_s"),
            "wall_loop_over_module_process": ratios(result, "k8s_json_patch_loop", module, "wall_s"),
        }
        result["path_problems"] = check_paths(result, ["traffic_split"], [module, "k8s_json_patch_loop"])
        for name in ("traffic_split", module, "k8s_json_patch_loop"):
            med = result[name]["median"]
            med["requests_per_service"] = med["requests"] / size
        out[str(size)] = result
    return out
