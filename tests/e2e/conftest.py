"""Shared fixtures of the end-to-end tests: one lab with its data plane, runners for the playbooks.

The data plane runs the Bookinfo Deployments as local processes and writes their status, so
``manifest wait: true`` behaves as on a cluster. One lab serves the whole session (set
``E2E_LAB_DIR`` to reuse a running one); each test works in a namespace of its own.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.controlplane import Lab, load_state, process_alive
from lab.kube import KubeClient, KubeError
from tests.helpers.ansible import BOOKINFO_VARS, ansible_env
from tests.helpers.collection import REPO_ROOT, ensure_collection_path

PLAYBOOKS = REPO_ROOT / "playbooks"
E2E_LAB_DIR = REPO_ROOT / "build" / "e2e-lab"


@pytest.fixture(scope="session")
def lab_state() -> Any:
    """Overrides the shared fixture: the e2e tests need the data plane as well as the API server."""
    from lab import dataplane

    reuse = os.environ.get("E2E_LAB_DIR")
    if reuse:
        state = load_state(reuse)
        if all(process_alive(state["processes"][k]) for k in ("etcd", "apiserver")):
            dataplane.start(Path(reuse))
            yield state
            return
    lab = Lab(E2E_LAB_DIR)
    state = lab.up()
    try:
        dataplane.start(E2E_LAB_DIR)
        yield state
    finally:
        dataplane.stop(E2E_LAB_DIR)
        lab.down(quiet=True)


@pytest.fixture(scope="session")
def kube(lab_state: dict[str, Any]) -> KubeClient:
    """Overrides the shared fixture too: a session fixture built here binds to the e2e lab, and the
    shared one stays bound to the shared lab (pytest caches session fixtures per definition)."""
    return KubeClient.from_state(lab_state, user="admin")


@pytest.fixture
def bookinfo_namespace(kube: KubeClient) -> str:
    """A fresh namespace name; base_release creates it (the lab never deletes namespaces)."""
    return f"e2e-{uuid.uuid4().hex[:8]}"


@dataclass
class RunnerResult:
    rc: int
    status: str
    changed: int
    failed: int
    stdout: str
    seconds: float


def run_with_runner(playbook: str, state: dict[str, Any], extravars: dict[str, Any] | None = None,
                    timeout: int = 300) -> RunnerResult:
    """Runs a playbook the way AWX does: ansible-runner, a pseudo-terminal nobody types into, extra vars."""
    import ansible_runner

    ensure_collection_path()
    env = {k: v for k, v in ansible_env().items() if k.startswith(("ANSIBLE_", "PATH", "PYTHONPATH"))}
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    with tempfile.TemporaryDirectory(prefix="runner-") as private:
        Path(private, "inventory").mkdir()
        Path(private, "inventory", "hosts").write_text("localhost ansible_connection=local\n")
        started = time.monotonic()
        result = ansible_runner.run(
            private_data_dir=private,
            playbook=str(PLAYBOOKS / playbook) if playbook.endswith(".yml") else playbook,
            extravars={**yaml.safe_load(BOOKINFO_VARS.read_text()), "canary_kubeconfig": state["kubeconfig"],
                       **(extravars or {})},
            envvars=env, quiet=True, timeout=timeout,
        )
        seconds = time.monotonic() - started
        stdout = result.stdout.read()
        stats = result.stats or {}
    return RunnerResult(rc=result.rc, status=result.status, changed=sum((stats.get("changed") or {}).values()),
                        failed=sum((stats.get("failures") or {}).values()), stdout=stdout, seconds=seconds)


@pytest.fixture
def runner(lab_state: dict[str, Any]):
    def run(playbook: str, extravars: dict[str, Any] | None = None, **kwargs: Any) -> RunnerResult:
        return run_with_runner(playbook, lab_state, extravars, **kwargs)
    return run


class Cluster:
    """What the API server holds for one namespace, read as the tests' own admin client."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.kube.get(path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def virtual_service(self, name: str = "reviews") -> dict[str, Any] | None:
        return self._get(f"/apis/networking.istio.io/v1/namespaces/{self.namespace}/virtualservices/{name}")

    def route_weights(self, name: str = "reviews") -> dict[str, int]:
        route = self.virtual_service(name)["spec"]["http"][0]["route"]
        return {d["destination"]["subset"]: d.get("weight", 100 if len(route) == 1 else 0) for d in route}

    def subsets(self, name: str = "reviews") -> list[str]:
        rule = self._get(f"/apis/networking.istio.io/v1/namespaces/{self.namespace}/destinationrules/{name}")
        return [s["name"] for s in rule["spec"].get("subsets", [])]

    def deployments(self) -> list[str]:
        items = self.kube.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments")["items"]
        return sorted(item["metadata"]["name"] for item in items if not item["metadata"].get("deletionTimestamp"))

    def recorded_state(self, name: str = "reviews") -> dict[str, Any]:
        annotations = self.virtual_service(name)["metadata"].get("annotations") or {}
        return json.loads(annotations.get("canary.istio/state", "{}"))
