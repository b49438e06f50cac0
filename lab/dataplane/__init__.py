"""The lab's data plane: runs Bookinfo workloads for Deployments, and routes like Envoy would.

It also stands in for two controllers of kube-controller-manager: the deployment controller
(Deployment status, lab/dataplane/runner.py) and the endpoints controller (core/v1 Endpoints of every
Service with a selector, lab/dataplane/endpoints.py).

``start(state_dir)`` spawns ``python -m lab.dataplane`` detached (its own session and process
group, which its workloads share) and waits until it is ready; ``stop(state_dir)`` ends that
process group, so no workload outlives it.  The process writes ``DIR/dataplane.json``::

    {"pid": ..., "gateway_url": "http://127.0.0.1:P", "mesh_url": ..., "metrics_url": ".../metrics",
     "admin_url": ..., "log": ...}
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab import procfs, prometheus

REPO_ROOT = Path(__file__).resolve().parents[2]
INFO_FILE = "dataplane.json"
PID_FILE = "dataplane.pid"
LOG_FILE = "dataplane.log"
_children: dict[int, subprocess.Popen[bytes]] = {}


def _state_dir(state_dir: str | os.PathLike[str]) -> Path:
    path = Path(state_dir).resolve()
    return path.parent if path.is_file() else path


def _is_ours(pid: int) -> bool:
    """Whether ``pid`` is a live data plane process (not a zombie, not a recycled pid)."""
    return procfs.runs(pid, "lab.dataplane")


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def info(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The running data plane's ``dataplane.json``, or None when none runs for this lab."""
    directory = _state_dir(state_dir)
    try:
        data = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if _is_ours(int(data.get("pid", 0))) else None


def start(state_dir: str | os.PathLike[str], gateway_port: int = 0, mesh_port: int = 0, admin_port: int = 0,
          timeout: float = 30.0) -> dict[str, Any]:
    """Starts the data plane for the lab in ``state_dir`` (idempotent) and returns its info."""
    directory = _state_dir(state_dir)
    running = info(directory)
    if running:
        prometheus.start_beside_dataplane(directory, running.get("metrics_url"))
        return running
    state_file = directory / "lab.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"no lab state at {state_file}: start the lab first (python -m lab up)")
    (directory / INFO_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-m", "lab.dataplane", "--state", str(state_file),
               "--gateway-port", str(gateway_port), "--mesh-port", str(mesh_port), "--admin-port", str(admin_port)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    with open(directory / LOG_FILE, "ab") as log:
        process = subprocess.Popen(command, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _children[process.pid] = process
    (directory / PID_FILE).write_text(f"{process.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the data plane exited with code {process.returncode}; "
                               f"last lines of {directory / LOG_FILE}:\n{_tail(directory / LOG_FILE)}")
        current = info(directory)
        if current and current.get("pid") == process.pid and current.get("ready"):
            # Prometheus starts in parallel and is not waited for (lab.prometheus.wait_ready does).
            prometheus.start_beside_dataplane(directory, current.get("metrics_url"))
            return current
        time.sleep(0.1)
    stop(directory)
    raise TimeoutError(f"the data plane was not ready within {timeout:.0f}s; "
                       f"last lines of {directory / LOG_FILE}:\n{_tail(directory / LOG_FILE)}")


def stop(state_dir: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Stops the data plane and every workload it started.  True if something was running."""
    directory = _state_dir(state_dir)
    prometheus.stop(directory)
    pids = set()
    with contextlib.suppress(OSError, ValueError):
        pids.add(int(json.loads((directory / INFO_FILE).read_text()).get("pid", 0)))
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((directory / PID_FILE).read_text().strip()))
    stopped = False
    for pid in pids - {0}:
        if not _is_ours(pid):
            _reap(pid)
            _kill_group(pid, signal.SIGKILL)  # workloads left behind by a data plane that died
            continue
        stopped = True
        # The data plane leads its own process group; its workloads are in it too.
        _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _is_ours(pid) and not procfs.group_alive(pid):
                break
            time.sleep(0.05)
        _kill_group(pid, signal.SIGKILL)
        _reap(pid)
    for name in (INFO_FILE, PID_FILE):
        (directory / name).unlink(missing_ok=True)
    return stopped


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
