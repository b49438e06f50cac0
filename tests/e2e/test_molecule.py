"""`molecule test` of extensions/molecule/default against the session's lab, offline."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers.ansible import VENV_BIN, ansible_env
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_molecule_default_scenario(lab_state):
    env = ansible_env(lab_state)  # K8S_AUTH_KUBECONFIG of the lab, the collection path, the venv on PATH
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    env["MOLECULE_NO_LOG"] = "false"
    proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "--scenario-name", "default"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-5000:]
    for step in ("cleanup", "syntax", "converge", "idempotence", "verify"):
        assert re.search(rf"default\s+\S+\s+{step}: Executed: Successful", output), (step, output[-3000:])
