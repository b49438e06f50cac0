"""A thousand VirtualServices in one lockstep task: a forbidden write at the 700th puts back every
service already moved, as the API server shows afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from lab.kube import create_all
from tests.helpers.ansible import run_playbook, task_results

pytestmark = pytest.mark.lab

COUNT = 1000
FORBIDDEN = 700  # the 700th service, svc-0700
ISTIO = "/apis/networking.istio.io/v1/namespaces/{ns}"


def _name(number: int) -> str:
    return f"svc-{number:04d}"


def _virtual_service(name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": [name], "http": [{"name": "primary", "route": [
                {"destination": {"host": name, "subset": "v1"}, "weight": 100},
                {"destination": {"host": name, "subset": "v2"}, "weight": 0}]}]}}


def _weights(vs: dict[str, Any]) -> dict[str, int]:
    return {d["destination"]["subset"]: d.get("weight", 0) for d in vs["spec"]["http"][0]["route"]}


def test_a_forbidden_write_at_service_700_puts_back_the_699_already_moved(lab_state, kube, namespace):
    base = ISTIO.format(ns=namespace)
    # One DestinationRule for every service of the namespace (a wildcard host, as Istio allows), to
    # keep the set-up lean; the VirtualServices are created many at a time.
    kube.create(f"{base}/destinationrules", {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "all"},
        "spec": {"host": f"*.{namespace}.svc.cluster.local",
                 "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                             {"name": "v2", "labels": {"version": "v2"}}]}})
    names = [_name(number) for number in range(1, COUNT + 1)]
    create_all(lab_state["server"], lab_state["tokens"]["admin"], lab_state["ca_file"],
               [(f"{base}/virtualservices", _virtual_service(name)) for name in names])
    # RBAC only grants: patch is allowed on every VirtualService but the 700th, by name.
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube.create(f"{rbac}/roles", {"metadata": {"name": "all-but-one"}, "rules": [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules"],
         "verbs": ["get", "list"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["patch"],
         "resourceNames": [name for name in names if name != _name(FORBIDDEN)]}]})
    kube.create(f"{rbac}/rolebindings", {
        "metadata": {"name": "all-but-one"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "all-but-one"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lab:nobody"}]})

    proc = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "move a thousand", "canary.istio.traffic_split": {
            "kubeconfig": lab_state["kubeconfig"], "context": "lab-nobody", "namespace": namespace,
            "services": [{"name": name} for name in names], "weights": {"v1": 90, "v2": 10},
            "concurrency": 8}}]}], lab_state)
    result = task_results(proc)[-1]

    assert result["failed"] is True, result.get("msg")
    assert f"{namespace}/{_name(FORBIDDEN)}" in result["msg"]
    assert "Grant verb 'patch' on resource 'virtualservices'" in result["msg"]
    assert "put back the services already moved" in result["msg"]
    by_name = {service["name"]: service for service in result["services"]}
    assert by_name[_name(FORBIDDEN)]["error"] and not by_name[_name(FORBIDDEN)]["moved"]
    assert all(by_name[_name(number)]["rolled_back"] for number in range(1, FORBIDDEN))
    assert not any(service["moved"] for service in result["services"])
    # Progress lines while it read, wrote and put back.
    assert "traffic_split: reading 1000 VirtualServices, 8 at a time" in proc.stdout, proc.stdout[-3000:]
    assert "traffic_split: putting back" in proc.stdout

    # What the API server holds: every service has its old weights and no recorded step.
    stored = {vs["metadata"]["name"]: vs for vs in kube.get(f"{base}/virtualservices")["items"]}
    assert len(stored) == COUNT
    changed = [name for name, vs in stored.items()
               if _weights(vs) != {"v1": 100, "v2": 0}
               or "canary.istio/history" in (vs["metadata"].get("annotations") or {})]
    assert changed == []
