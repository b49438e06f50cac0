"""Runs our modules and playbooks the way Ansible does, against the lab.

``run_module`` executes a module file directly with its arguments (what Ansible does on the
target after transferring it), which is fast enough to run many cases. ``run_playbook`` runs
``ansible-playbook`` for what only a real run shows: FQCN resolution, module_defaults groups,
no_log, check and diff flags, the callback output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.collection import COLLECTION_DIR, COLLECTIONS_ROOT, REPO_ROOT, ensure_collection_path

VENV_BIN = Path(sys.executable).parent
# The example release (Bookinfo reviews v1 -> v2) that the stage playbooks no longer assume.
BOOKINFO_VARS = REPO_ROOT / "playbooks" / "vars" / "bookinfo.yml"


def module_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    env["PYTHONPATH"] = str(COLLECTIONS_ROOT)
    env.update(extra or {})
    return env


def run_module(module: str, args: dict[str, Any], check: bool = False, diff: bool = False,
               env: dict[str, str] | None = None, timeout: float = 120) -> dict[str, Any]:
    ensure_collection_path()
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(payload, handle)
    try:
        proc = subprocess.run([sys.executable, str(COLLECTION_DIR / "plugins" / "modules" / f"{module}.py"),
                               handle.name], capture_output=True, text=True, timeout=timeout,
                              env=module_env(env), check=False)
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"module {module} printed no JSON result:\nstdout: {proc.stdout}\n"
                             f"stderr: {proc.stderr}") from None
    result["_stderr"] = proc.stderr
    return result


def lab_auth(state: dict[str, Any], user: str = "admin") -> dict[str, Any]:
    """Connection options for a lab user: the lab kubeconfig and the context of that user."""
    return {"kubeconfig": state["kubeconfig"], "context": "lab" if user == "admin" else f"lab-{user}"}


def ansible_env(state: dict[str, Any] | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = module_env()
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_ROLES_PATH": str(REPO_ROOT / "roles"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    if state:
        env["K8S_AUTH_KUBECONFIG"] = state["kubeconfig"]
    env.update(extra or {})
    return env


def run_playbook(playbook: str | Path | list[dict[str, Any]], state: dict[str, Any] | None = None,
                 extra_vars: dict[str, Any] | None = None, args: list[str] | None = None,
                 env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None,
                 stdin: Any = subprocess.DEVNULL, vars_file: Path | None = None,
                 **_: Any) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on localhost. stdout is what a person sees; ``.results`` holds every task result.

    ``vars_file`` is passed as ``-e @file`` before ``extra_vars``, which win over it."""
    ensure_collection_path()
    tmp = None
    if isinstance(playbook, list):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
        yaml.safe_dump(playbook, tmp, sort_keys=False)
        tmp.close()
        playbook = tmp.name
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    if vars_file:
        command += ["-e", f"@{vars_file}"]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    command += args or []
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as results_file:
        results_path = results_file.name
    run_env = ansible_env(state, {**results_callback_env(results_path), **(env or {})})
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=run_env,
                              cwd=cwd or REPO_ROOT, check=False, stdin=stdin)
        proc.results = read_results(results_path)  # type: ignore[attr-defined]
    finally:
        os.unlink(results_path)
        if tmp is not None:
            os.unlink(tmp.name)
    return proc


def results_callback_env(path: str) -> dict[str, str]:
    """Environment that makes ansible-playbook write task results to ``path`` (JSON lines)."""
    return {"ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "results_file", "CANARY_TEST_RESULTS": path}


def read_results(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def task_results(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Per-task results for localhost, in order: the module result plus ``task`` and ``status``."""
    records = getattr(proc, "results", None)
    if records is None or (not records and proc.returncode != 0):
        raise AssertionError(f"no task results:\nstdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}")
    results = []
    for record in records:
        if record["host"] == "localhost":
            result = {"task": record["task"], "status": record["status"], "start": record["start"],
                      "end": record["end"], **record["result"]}
            result.setdefault("failed", record["status"] in ("failed", "ignored"))
            results.append(result)
    return results


def play_recap_changed(proc: subprocess.CompletedProcess[str]) -> int:
    """``changed=N`` of localhost in the PLAY RECAP of the default output."""
    import re
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", proc.stdout)
    if not match:
        raise AssertionError(f"no PLAY RECAP in output:\n{proc.stdout[-3000:]}")
    return int(match.group(1))
