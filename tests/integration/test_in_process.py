"""On local connections our modules run inside the controller process; the results are the same."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.ansible import run_playbook, task_results

pytestmark = pytest.mark.lab


def _split(weights: dict, **extra) -> dict:
    return {"canary.istio.traffic_split": {"name": "reviews", "weights": weights, **extra}}


def _play(namespace: str, kubeconfig: str) -> list[dict]:
    auth = {"kubeconfig": kubeconfig, "context": "lab", "namespace": namespace}
    route = [{"destination": {"host": "reviews", "subset": "v1"}}]
    return [{"hosts": "localhost", "gather_facts": False, "module_defaults": {"group/canary.istio.istio": auth},
             "tasks": [
                 {"name": "rule", "canary.istio.destination_rule": {"name": "reviews", "spec": {
                     "host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                    {"name": "v2", "labels": {"version": "v2"}}]}}},
                 {"name": "service", "canary.istio.virtual_service": {"name": "reviews", "spec": {
                     "hosts": ["reviews"], "http": [{"route": route}]}}},
                 {"name": "split", **_split({"v1": 70, "v2": 30}, actor="test")},
                 {"name": "split check", **_split({"v1": 10, "v2": 90}), "check_mode": True, "diff": True},
                 {"name": "bad", **_split({"v1": 70, "v2": 0, "v9": 30}), "ignore_errors": True},
                 {"name": "bad type", **_split({"v1": 100}, max_retries="many"), "ignore_errors": True},
                 {"name": "unknown", **_split({"v1": 100}, bogus=1), "ignore_errors": True}]}]


def _comparable(results: list[dict], namespace: str) -> list[tuple]:
    return [(r["task"], r["status"], r.get("changed"), r.get("after"), r.get("api_requests"),
             (r.get("msg") or "").replace(namespace, "NS")) for r in results]


def test_in_process_and_module_process_give_the_same_results(lab_state, kube):
    outcomes: dict[str, list[tuple]] = {}
    timings: dict[str, float] = {}
    for mode in ("1", "0"):
        namespace = f"inproc-{mode}-{uuid.uuid4().hex[:6]}"
        kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        proc = run_playbook(_play(namespace, lab_state["kubeconfig"]), env={"CANARY_ISTIO_IN_PROCESS": mode})
        assert proc.returncode == 0, proc.stdout[-3000:]
        results = task_results(proc)
        outcomes[mode] = _comparable(results, namespace)
        assert results[2]["after"] == {"v1": 70, "v2": 30}
        assert results[3]["changed"] is True and results[3]["after"] == {"v1": 10, "v2": 90}
        assert results[4]["status"] == "ignored" and "subset(s) v9" in results[4]["msg"]
        assert results[5]["status"] == "ignored" and "max_retries" in results[5]["msg"]
        assert results[6]["status"] == "ignored"
        assert results[6]["msg"].startswith("Unsupported parameters for (canary.istio.traffic_split) module: bogus")
        stored = kube.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/reviews")
        weights = {d["destination"]["subset"]: d["weight"] for d in stored["spec"]["http"][0]["route"]}
        assert weights == {"v1": 70, "v2": 30}
        timings[mode] = results[2]["end"] - results[2]["start"]
    assert outcomes["1"][:5] == outcomes["0"][:5] and outcomes["1"][6] == outcomes["0"][6]
    print(f"traffic_split task: in process {timings['1'] * 1000:.0f} ms, "
          f"module process {timings['0'] * 1000:.0f} ms")


def test_task_environment_still_applies(lab_state, kube):
    """A task with ``environment`` runs as a module process, so the variables reach the module."""
    namespace = f"inproc-env-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "info", "canary.istio.virtual_service_info": {"namespace": namespace},
         "environment": {"K8S_AUTH_KUBECONFIG": lab_state["kubeconfig"], "K8S_AUTH_CONTEXT": "lab-nobody"}}]}]
    proc = run_playbook(play, env={"K8S_AUTH_KUBECONFIG": "/nonexistent"})
    result = task_results(proc)[0]
    # The context from the task's environment was used: lab-nobody may not list.
    assert result["failed"] is True and 'User "lab:nobody" cannot list' in result["msg"], result


# What ansible-playbook does before it forks a task's worker (the linear and free strategies load the
# action plugin's class in the main process), then which module files a worker forked from it would
# still have to compile: Ansible's collection loader keeps no bytecode, so each one costs every task.
_LOAD_AS_THE_STRATEGY_DOES = r"""
import json, sys
from ansible.plugins.loader import action_loader, init_plugin_loader
init_plugin_loader([sys.argv[1]])
out = {}
for name in sys.argv[2:]:
    action_loader.get(f"canary.istio.{name}", class_only=True)
    out[name] = f"ansible_collections.canary.istio.plugins.modules.{name}" in sys.modules
print(json.dumps(out))
"""


def test_the_main_process_loads_each_module_with_its_action_plugin(collections_root):
    import json
    import subprocess
    import sys

    from tests.helpers.collection import COLLECTION_DIR

    # traffic_probe runs in its action plugin itself, on the controller: its code is the plugin's imports.
    names = sorted(path.stem for path in (COLLECTION_DIR / "plugins" / "action").glob("*.py")
                   if path.stem not in ("__init__", "traffic_probe")
                   and (COLLECTION_DIR / "plugins" / "modules" / path.name).exists())
    assert "traffic_split" in names and len(names) >= 10, names
    proc = subprocess.run([sys.executable, "-c", _LOAD_AS_THE_STRATEGY_DOES, str(collections_root), *names],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == dict.fromkeys(names, True), loaded
