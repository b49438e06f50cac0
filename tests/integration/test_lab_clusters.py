"""Several lab clusters: independent control planes, one inventory host each, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import load_state, process_alive
from lab.kube import KubeClient
from tests.helpers.ansible import ansible_env
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.lab

VENV_BIN = Path(sys.executable).parent


def _lab(directory: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LAB_DIR"}
    return subprocess.run([sys.executable, "-m", "lab", "--dir", str(directory), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT, env=env, check=False)


def _processes_naming(directory: Path) -> list[int]:
    """Pids of live processes whose command line names the directory (a crude but independent check)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if str(directory) in command and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _names_seen_through(kubeconfig: str) -> set[str]:
    """VirtualService names in namespace default, read through a kubeconfig by the kubernetes package
    (not by our code: how a kubeconfig resolves is upstream's answer)."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
    listed = api.list_namespaced_custom_object("networking.istio.io", "v1", "default", "virtualservices")
    return {item["metadata"]["name"] for item in listed["items"]}


def test_three_clusters_an_inventory_with_waves_and_a_clean_down(tmp_path):
    root = tmp_path / "multi"
    states: list[dict[str, Any]] = []
    started = _lab(root, "up", "--clusters", "3")
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        states += [load_state(root / f"cluster-{index}") for index in (1, 2, 3)]
        assert len({state["server"] for state in states}) == 3
        assert len({state["processes"]["etcd"]["pid"] for state in states}) == 3
        status = _lab(root, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert [c["up"] for c in json.loads(status.stdout)["clusters"]] == [True, True, True]

        # A marker per cluster, written with the lab's own client from each cluster's state.
        for index, state in enumerate(states, 1):
            KubeClient.from_state(state).create("/apis/networking.istio.io/v1/namespaces/default/virtualservices", {
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": f"marker-{index}"},
                "spec": {"hosts": [f"marker-{index}"], "http": [{"route": [{"destination": {"host": "m"}}]}]}})

        written = _lab(root, "inventory", "--waves", "1,2,2")
        assert written.returncode == 0, written.stderr
        inventory_file = Path(written.stdout.strip())
        listed = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(inventory_file), "--list"],
                                capture_output=True, text=True, timeout=60, env=ansible_env(), check=False)
        assert listed.returncode == 0, listed.stderr
        inventory: dict[str, Any] = json.loads(listed.stdout)
        hostvars = inventory["_meta"]["hostvars"]
        assert sorted(hostvars) == ["cluster-1", "cluster-2", "cluster-3"]
        assert [hostvars[f"cluster-{i}"]["wave"] for i in (1, 2, 3)] == [1, 2, 2]
        assert inventory["wave_1"]["hosts"] == ["cluster-1"]
        assert sorted(inventory["wave_2"]["hosts"]) == ["cluster-2", "cluster-3"]
        assert all(hostvars[h]["ansible_connection"] == "local" for h in hostvars)
        # Each host's kubeconfig reaches its own API server, and only that one.
        for index in (1, 2, 3):
            kubeconfig = hostvars[f"cluster-{index}"]["canary_kubeconfig"]
            assert _names_seen_through(kubeconfig) == {f"marker-{index}"}

        # The playbooks' way: one run over the inventory, each host with its own canary_kubeconfig.
        adhoc = subprocess.run(
            [str(VENV_BIN / "ansible"), "canary_clusters", "-i", str(inventory_file), "-o",
             "-m", "canary.istio.virtual_service_info", "-a", "kubeconfig={{ canary_kubeconfig }} namespace=default"],
            capture_output=True, text=True, timeout=120, env=ansible_env(), check=False)
        assert adhoc.returncode == 0, adhoc.stdout[-3000:] + adhoc.stderr[-3000:]
        for index in (1, 2, 3):
            line = next(line for line in adhoc.stdout.splitlines() if line.startswith(f"cluster-{index} "))
            assert f'"marker-{index}"' in line and all(f'"marker-{other}"' not in line
                                                       for other in (1, 2, 3) if other != index), line
    finally:
        stopped = _lab(root, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert not (root / "clusters.json").exists()
    for state in states:
        assert not any(process_alive(record) for record in state["processes"].values())
    assert _processes_naming(root) == []
