"""Release waves across three lab clusters, each with its own data plane and Prometheus.

``python -m lab up --clusters 3 --dataplane`` and the lab's inventory (waves [1, 2, 2]), then
``playbooks/waves.yml`` releases reviews v2 with one step to 50 %, an analysis after it from
that cluster's Prometheus, and ``decision: auto``, while users load every cluster's gateway:

- a healthy canary is promoted in every cluster, wave 1 before wave 2;
- with waves [1, 2, 3], a canary made faulty only in cluster-2 (v2 answers 20 % of requests with 503, the manifest the
  progressive tests use) is rolled back there by its analysis, cluster-3 is never touched, and
  cluster-1 stays promoted (``keep``) or is rolled back (``rollback``); the two policies run at the
  same time, each in a namespace of its own (two teams releasing the same service);
- after fixing cluster-2's manifest, a re-run resumes: cluster-1 is not run again, cluster-2 and
  cluster-3 are released and promoted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import clusters, dataplane, prometheus
from lab.controlplane import load_state
from lab.kube import KubeClient
from tests.helpers.ansible import ansible_env, ensure_collection_path
from tests.helpers.collection import REPO_ROOT
from tests.traffic.conftest import BOOKINFO, TrafficLab
from tests.traffic.test_progressive import Users, deploy_base, load

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
NAMES = ["cluster-1", "cluster-2", "cluster-3"]
VS_PATH = "/apis/networking.istio.io/v1/namespaces/{}/virtualservices/reviews"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{}/deployments"
# Verdicts on evidence: at 50 % of 20 pages/s the canary answers about 10 requests a second; with a 95 %
# floor and errors below 5 % counted negligible, a clean canary passes once 0.95^n <= beta of a look (80 %
# power over 4 planned looks: n >= 59, about 6 s of evidence accumulated since the move). The faulty canary
# (20 % errors) fails on its bounds at the first look.
ANALYSIS = {"window": "5s", "interval": 6, "power": 80, "looks_per_step": 4,
            "checks": [{"name": "request-success-rate", "min": 95, "negligible_percent": 5}]}
RELEASE = {
    "canary_release_service": "reviews", "canary_release_base_version": "v1", "canary_release_canary_version": "v2",
    "canary_release_destination_rule_manifests": [str(BOOKINFO / "networking/destination-rule-v1-v2.yaml")],
    "canary_release_steps": [50], "canary_release_decision": "auto", "canary_release_analysis": ANALYSIS,
    "canary_release_topology_window": "5s",
}
HEALTHY = str(BOOKINFO / "platform/kube/bookinfo-reviews-v2.yaml")
FAULTY = str(BOOKINFO / "platform/kube/bookinfo-reviews-v2-faulty.yaml")
PAGES_PER_SECOND = 20.0
# For "cluster-3 is never touched" cluster-3 must come after cluster-2: in the same wave the two run
# at the same time, so cluster-3 would be released (and, with rollback, rolled back) alongside.
ORDERED = (1, 2, 3)


@dataclass
class Waves:
    root: Path
    labs: dict[str, TrafficLab]
    # How long the last run's ansible-playbook took (the benchmark reads it).
    seconds: float = 0.0

    def kube(self, cluster: str) -> KubeClient:
        """A client of its own for each call: two releases run side by side, a connection is not shared."""
        return KubeClient.from_state(self.labs[cluster].state)

    def weights(self, cluster: str, namespace: str) -> dict[str, int]:
        route = self.kube(cluster).get(VS_PATH.format(namespace))["spec"]["http"][-1]["route"]
        return {d["destination"]["subset"]: d.get("weight", 100) for d in route}

    def virtual_service(self, cluster: str, namespace: str) -> dict[str, Any]:
        return self.kube(cluster).get(VS_PATH.format(namespace))

    def deployments(self, cluster: str, namespace: str) -> set[str]:
        listed = self.kube(cluster).get(DEPLOYMENTS.format(namespace))["items"]
        return {item["metadata"]["name"] for item in listed}

    def run(self, namespace: str, canaries: dict[str, str], tmp: Path,
            traffic: bool = True, wave_numbers: tuple[int, ...] = (1, 2, 2),
            **extra: Any) -> subprocess.CompletedProcess[str]:
        """waves.yml over the lab's inventory, each cluster's canary manifest as its host variable, while
        users load every cluster's gateway."""
        inventory = clusters.inventory(self.root, list(wave_numbers))
        for name, host in inventory["all"]["children"]["canary_clusters"]["hosts"].items():
            host["canary_release_manifests"] = [canaries[name]]
            host["canary_release_report_path"] = str(tmp / f"report-{name}-{namespace}.html")
        path = tmp / f"inventory-{namespace}-{time.monotonic_ns()}.yml"
        path.write_text(yaml.safe_dump(inventory))
        ensure_collection_path()
        stop, users = threading.Event(), {name: Users() for name in NAMES}
        loads = [threading.Thread(target=load, daemon=True, args=(
            self.labs[name].gateway, f"{namespace}.bookinfo.test", PAGES_PER_SECOND, users[name], stop, 3))
            for name in NAMES] if traffic else []
        for thread in loads:
            thread.start()
        started = time.monotonic()
        try:
            time.sleep(3.0 if traffic else 0.0)  # the base has traffic before the canary comes
            started = time.monotonic()
            return subprocess.run(
                [str(VENV_BIN / "ansible-playbook"), "-i", str(path), str(REPO_ROOT / "playbooks/waves.yml"),
                 "-e", json.dumps({**RELEASE, "canary_namespace": namespace, **extra})],
                capture_output=True, text=True, timeout=900, env=ansible_env(None), cwd=REPO_ROOT, check=False)
        finally:
            self.seconds = time.monotonic() - started
            stop.set()
            for thread in loads:
                thread.join(timeout=30)


def start(root: Path) -> Waves:
    """Three lab clusters with data planes and Prometheus under ``root`` (``python -m lab up --clusters 3``)."""
    env = {k: v for k, v in os.environ.items() if k != "LAB_DIR"}
    started = subprocess.run([sys.executable, "-m", "lab", "--dir", str(root), "up", "--clusters", "3", "--dataplane"],
                             capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env, check=False)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    labs = {}
    for name in NAMES:
        state = load_state(root / name)
        info = dataplane.info(root / name)
        prometheus.wait_ready(root / name)
        labs[name] = TrafficLab(state, info["gateway_url"], info["metrics_url"], KubeClient.from_state(state))
    return Waves(root, labs)


@pytest.fixture(scope="module")
def waves(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Waves]:
    root = tmp_path_factory.mktemp("waves") / "lab"
    try:
        yield start(root)
    finally:
        clusters.down(root)


def base_everywhere(waves: Waves, namespace: str) -> None:
    with ThreadPoolExecutor(len(NAMES)) as pool:
        for future in [pool.submit(deploy_base, waves.labs[name], namespace) for name in NAMES]:
            future.result()
    time.sleep(1.0)  # the routers take the new routes from their watch


def wave_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r'"msg": "(wave \d+[^"]*)"', proc.stdout)


def test_a_healthy_canary_is_promoted_in_every_cluster_wave_by_wave(waves: Waves, tmp_path: Path):
    base_everywhere(waves, "waves-healthy")
    proc = waves.run("waves-healthy", dict.fromkeys(NAMES, HEALTHY), tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert wave_lines(proc) == ["wave 1: run cluster-1", "wave 2: run cluster-2, cluster-3"], proc.stdout[-4000:]
    for name in NAMES:
        assert waves.weights(name, "waves-healthy") == {"v2": 100}, name
    assert "promoted in every cluster (cluster-1, cluster-2, cluster-3)" in proc.stdout
    # The table: one line per cluster, promoted, with the last analysis passing at 50 %.
    for name, wave in zip(NAMES, (1, 2, 2), strict=True):
        assert f"{name}  {wave}     reviews  promoted  v2=100   pass at 50%" in proc.stdout, proc.stdout[-4000:]
    # Wave 2 started only after wave 1 had promoted: cluster-1's promotion is older than any
    # step in cluster-2 or cluster-3 (the history annotation's timestamps).
    history = {name: json.loads(waves.virtual_service(name, "waves-healthy")["metadata"]["annotations"]
                                ["canary.istio/history"]) for name in NAMES}
    last_of_first = max(entry["time"] for entry in history["cluster-1"])
    first_of_second = min(entry["time"] for name in NAMES[1:] for entry in history[name])
    assert last_of_first < first_of_second, history

    # The status mode prints the same table and changes nothing.
    status = waves.run("waves-healthy", dict.fromkeys(NAMES, HEALTHY), tmp_path, traffic=False,
                       canary_waves_mode="status")
    assert status.returncode == 0, status.stdout[-4000:] + status.stderr[-2000:]
    assert "cluster-3  2     reviews  promoted  v2=100   pass at 50%" in status.stdout
    assert wave_lines(status) == [] and status.stdout.count("changed=0") == 3, status.stdout[-3000:]


def test_a_canary_faulty_in_cluster_2_is_rolled_back_there_stops_cluster_3_and_a_rerun_resumes(
        waves: Waves, tmp_path: Path):
    # keep and rollback side by side, in namespaces of their own: the waits of one (analysis
    # windows) are the other's working time. Each thread's failed assertion fails the test.
    with ThreadPoolExecutor(2) as pool:
        runs = {policy: pool.submit(faulty_then_fixed, waves, tmp_path, policy) for policy in ("keep", "rollback")}
        for future in runs.values():
            future.result()


def faulty_then_fixed(waves: Waves, tmp_path: Path, policy: str) -> None:
    namespace = f"waves-faulty-{policy}"
    base_everywhere(waves, namespace)
    untouched = waves.virtual_service("cluster-3", namespace)
    proc = waves.run(namespace, {**dict.fromkeys(NAMES, HEALTHY), "cluster-2": FAULTY}, tmp_path,
                     wave_numbers=ORDERED, canary_waves_on_failure=policy)
    out = proc.stdout
    assert proc.returncode != 0, out[-4000:]
    # cluster-2: its own analysis failed and the role rolled it back there.
    assert waves.weights("cluster-2", namespace) == {"v1": 100}
    assert "reviews-v2" not in waves.deployments("cluster-2", namespace)
    annotations = waves.virtual_service("cluster-2", namespace)["metadata"]["annotations"]
    history = json.loads(annotations["canary.istio/history"])
    # Looks before the first scrapes at 50 % have too little evidence (inconclusive); then the bounds fail it.
    verdicts = [entry["analysis"]["verdict"] for entry in history if "analysis" in entry]
    assert verdicts[-1] == "fail" and set(verdicts[:-1]) <= {"inconclusive"}, history
    # cluster-3 is never touched: the same routes and annotations (no canary.istio history), no canary
    # Deployment. (Not the resourceVersion: the lab's mesh writes the VirtualService's status.)
    after = waves.virtual_service("cluster-3", namespace)
    assert after["spec"] == untouched["spec"]
    assert after["metadata"].get("annotations") == untouched["metadata"].get("annotations")
    assert not any(key.startswith("canary.istio/") for key in after["metadata"].get("annotations") or {})
    assert "reviews-v2" not in waves.deployments("cluster-3", namespace)
    # cluster-1 was promoted in wave 1; kept or rolled back as asked.
    if policy == "keep":
        assert waves.weights("cluster-1", namespace) == {"v2": 100}
        assert "kept promoted: cluster-1" in out
    else:
        assert waves.weights("cluster-1", namespace) == {"v1": 100}
        assert "promoted clusters rolled back (canary_waves_on_failure: rollback): cluster-1" in out
    assert "later waves untouched: cluster-3" in out, out[-4000:]
    assert wave_lines(proc)[-1].startswith("wave 3 skipped: an earlier wave did not end promoted everywhere")
    assert "cluster-2  2     reviews  rolled_back  v1=100   fail at 50%" in out, out[-4000:]
    assert "cluster-3  3     reviews  fresh" in out, out[-4000:]

    # Fixed: cluster-2 gets the healthy canary. The re-run resumes where each cluster stands.
    first = waves.virtual_service("cluster-1", namespace)["metadata"]["annotations"]["canary.istio/history"]
    again = waves.run(namespace, dict.fromkeys(NAMES, HEALTHY), tmp_path, wave_numbers=ORDERED,
                      canary_waves_on_failure=policy)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-2000:]
    for name in NAMES:
        assert waves.weights(name, namespace) == {"v2": 100}, name
    if policy == "keep":
        assert wave_lines(again) == ["wave 1: already promoted: cluster-1", "wave 2: run cluster-2",
                                     "wave 3: run cluster-3"]
        assert waves.virtual_service("cluster-1", namespace)["metadata"]["annotations"]["canary.istio/history"] == first
    else:
        assert wave_lines(again) == ["wave 1: run cluster-1", "wave 2: run cluster-2", "wave 3: run cluster-3"]
