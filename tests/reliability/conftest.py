"""A lab of its own (with the data plane) that these tests may crash and restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import dataplane
from lab.controlplane import Lab
from lab.kube import KubeClient, KubeError
from tests.helpers.ansible import BOOKINFO_VARS, VENV_BIN, ansible_env, read_results, results_callback_env
from tests.helpers.collection import REPO_ROOT, ensure_collection_path

PLAYBOOKS = REPO_ROOT / "playbooks"


class FaultLab:
    def __init__(self, lab: Lab, state: dict[str, Any]):
        self.lab = lab
        self.state = state
        self.kube = KubeClient.from_state(state, timeout=5)

    def start_playbook(self, playbook: str, extra: dict[str, Any], verbosity: str = "") -> subprocess.Popen[str]:
        """ansible-playbook in the background, no terminal, output to a pipe; results file in ``.results_path``."""
        extra_vars = json.dumps({"canary_kubeconfig": self.state["kubeconfig"], **extra})
        command = ["-i", "localhost,", "-c", "local", str(PLAYBOOKS / playbook), "-e", f"@{BOOKINFO_VARS}",
                   "-e", extra_vars]
        return self._start([*command, verbosity] if verbosity else command)

    def run_on(self, playbook: Path, inventory: Path) -> tuple[int, str, list[dict[str, Any]]]:
        """``playbook`` on the hosts of ``inventory``, every variable from the inventory."""
        return self.finish(self._start(["-i", str(inventory), str(playbook)]))

    def _start(self, arguments: list[str]) -> subprocess.Popen[str]:
        ensure_collection_path()
        results = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
        results.close()
        env = ansible_env(self.state, results_callback_env(results.name))
        command = [str(VENV_BIN / "ansible-playbook"), *arguments]
        proc = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        proc.results_path = results.name  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, list[dict[str, Any]]]:
        out, _stderr = proc.communicate(timeout=timeout)
        results = read_results(proc.results_path)  # type: ignore[attr-defined]
        os.unlink(proc.results_path)  # type: ignore[attr-defined]
        return proc.returncode, out, results

    def run(self, playbook: str, extra: dict[str, Any], verbosity: str = "") -> tuple[int, str, list[dict[str, Any]]]:
        return self.finish(self.start_playbook(playbook, extra, verbosity))

    def deploy_base(self) -> str:
        """Bookinfo's base (deploy_base.yml) in a fresh namespace; its name."""
        namespace = f"rel-{uuid.uuid4().hex[:8]}"
        rc, out, _results = self.run("deploy_base.yml", {"canary_namespace": namespace})
        assert rc == 0, out[-3000:]
        return namespace

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.kube.get(path)
        except (KubeError, OSError):
            return None

    def wait_for(self, probe, timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def fault_lab(tmp_path_factory) -> Iterator[FaultLab]:
    lab = Lab(tmp_path_factory.mktemp("faults") / "lab")
    state = lab.up()
    try:
        dataplane.start(Path(state["dir"]))
        yield FaultLab(lab, state)
    finally:
        lab.down(quiet=True)


@pytest.fixture
def base_namespace(fault_lab: FaultLab) -> str:
    return fault_lab.deploy_base()


def python() -> str:
    return sys.executable
