"""Two canary runs on one service at once: one wins, the other stops with a clear message."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.helpers.ansible import VENV_BIN, ansible_env, read_results, results_callback_env
from tests.helpers.collection import REPO_ROOT, ensure_collection_path
from tests.reliability.conftest import PLAYBOOKS, FaultLab
from tests.reliability.test_faults import CANARY, VS, weights

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_runs_at_once_one_wins_the_other_stops_clearly(fault_lab: FaultLab, base_namespace: str):
    ns = base_namespace
    first = fault_lab.start_playbook("canary.yml", {"canary_namespace": ns, **CANARY,
                                                    "canary_release_lock_holder": "alice"})
    fault_lab.wait_for(lambda: weights(fault_lab.get(VS.format(ns=ns))).get("v2") == 10, 120, "the 10% step")
    second = {"canary_namespace": ns, "canary_release_ratio": 90, "canary_release_lock_holder": "bob"}
    rc, out, _results = fault_lab.run("set_ratio.yml", second)
    assert rc != 0
    assert "another canary run holds the lock" in out and "'alice'" in out, out[-3000:]
    rc, out, _results = fault_lab.finish(first)
    assert rc == 0, out[-4000:]
    # Nothing of the first run was lost to the second: it promoted as asked.
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v2": 100}
    leases = fault_lab.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")["items"]
    assert leases == []


def test_two_inventory_hosts_on_one_cluster_do_not_share_the_lock(fault_lab: FaultLab, base_namespace: str,
                                                                  tmp_path):
    # Each inventory host is one connection to a cluster. Two hosts that reach the same cluster and
    # service are two runs: the lock (a Lease naming the host) lets one in and stops the other.
    ns = base_namespace
    (tmp_path / "inventory").write_text("[clusters]\ncluster-a\ncluster-b\n")
    (tmp_path / "canary.yml").write_text(yaml.safe_dump([{
        "name": "Canary release on every cluster of the inventory",
        "hosts": "clusters", "connection": "local", "gather_facts": False,
        "module_defaults": {"group/canary.istio.istio": {"kubeconfig": "{{ canary_kubeconfig }}"}},
        "vars_files": [str(PLAYBOOKS / "vars" / "bookinfo.yml")],
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"name": "Release the canary",
                   "ansible.builtin.include_role": {"name": "canary.istio.canary_release"}}],
    }], sort_keys=False))
    results_path = tmp_path / "results.jsonl"
    extra = {"canary_kubeconfig": fault_lab.state["kubeconfig"], "canary_release_namespace": ns,
             "canary_bookinfo_dir": str(REPO_ROOT / "bookinfo"),
             "canary_release_ratio": 30, "canary_release_decision": "hold"}
    ensure_collection_path()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory"), str(tmp_path / "canary.yml"),
         "-e", json.dumps(extra)],
        env=ansible_env(fault_lab.state, results_callback_env(str(results_path))), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    results = read_results(str(results_path))
    assert proc.returncode != 0, out[-4000:]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(failed) == 1, out[-4000:]
    loser = failed[0]["host"]
    winner = ({"cluster-a", "cluster-b"} - {loser}).pop()
    assert failed[0]["action"].endswith("release_lock"), failed[0]
    message = failed[0]["result"]["msg"]
    assert "another canary run holds the lock" in message and f"@{winner}'" in message, message
    # The winner released the canary as asked, alone; the loser changed nothing.
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v1": 70, "v2": 30}
    history = json.loads(fault_lab.get(VS.format(ns=ns))["metadata"]["annotations"]["canary.istio/history"])
    assert len(history) == 1, history
    assert not [r for r in results if r["host"] == loser and r["status"] == "ok" and r["result"].get("changed")]
    leases = fault_lab.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")["items"]
    assert leases == []
