"""Runs one playbook the way a user would, and measures it.

Per run: the playbook's wall time (around ``ansible-playbook``), each task's time from the
``ansible.posix.json`` callback (its ``duration.start``/``duration.end``), the peak RSS and wall
time of every module process (the interpreter wrapper of ``bench.env``; none when our modules run
inside the controller's worker), the peak RSS of every task worker ``ansible-playbook`` forked
(``bench/worker_probe/sitecustomize.py``), and the API requests the run made, read from the
apiserver's audit log between two markers.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.env import BENCH_VENV, REPO_ROOT, WORK_DIR
from lab.audit import AuditWindow
from tests.helpers.collection import COLLECTIONS_ROOT, ensure_collection_path

DISCOVERY = re.compile(r"^/(api|apis|version|openapi)(/[^/?]+){0,2}/?(\?.*)?$")
AUDIT_USER = "lab:admin"
WORKER_PROBE = Path(__file__).resolve().parent / "worker_probe"
# Environment a user's shell may carry that would change what is measured.
DROPPED_ENV = ("ANSIBLE_", "K8S_AUTH_", "KUBECONFIG", "PYTHON", "VIRTUAL_ENV", "CANARY_ISTIO_")


def is_discovery(event: dict[str, Any]) -> bool:
    """GETs of /api, /apis, /apis/<group>, /apis/<group>/<version>, /version, /openapi..."""
    uri = event.get("requestURI", "")
    if event.get("verb") != "get" or not DISCOVERY.match(uri):
        return False
    # /api/v1/namespaces is a resource, /apis/<g>/<v> is discovery: tell them apart by depth.
    parts = uri.split("?", maxsplit=1)[0].strip("/").split("/")
    return parts[0] != "api" or len(parts) <= 2


def discovery_group(uri: str) -> str:
    """The API group a discovery request is about ("" for the core group, "*" for /apis itself)."""
    parts = uri.split("?", maxsplit=1)[0].strip("/").split("/")
    if parts[0] == "api":
        return ""
    if parts[0] == "apis" and len(parts) > 1:
        return parts[1]
    return "*"


@dataclass
class RunResult:
    wall: float
    tasks: list[dict[str, Any]]
    modules: list[dict[str, float]]
    requests: list[dict[str, Any]]
    rc: int
    stderr: str = ""
    failures: list[str] = field(default_factory=list)
    workers: list[dict[str, float]] = field(default_factory=list)

    @property
    def task_time(self) -> float:
        """The benchmarked task: the last task of the playbook."""
        return self.tasks[-1]["seconds"] if self.tasks else float("nan")

    @property
    def peak_rss_mb(self) -> float:
        """The largest peak RSS of the module processes (nan when no module process ran)."""
        return max((m["rss_kb"] for m in self.modules), default=float("nan")) / 1024

    @property
    def module_seconds(self) -> float:
        return sum(m["elapsed"] for m in self.modules)

    @property
    def worker_peak_rss_mb(self) -> float:
        """The largest peak RSS of the controller's task workers (nan when none was recorded)."""
        return max((w["rss_kb"] for w in self.workers), default=float("nan")) / 1024

    def request_summary(self) -> dict[str, int]:
        summary = {"total": len(self.requests), "discovery": 0, "get": 0, "list": 0, "write": 0,
                   "discovery_max_per_group": 0}
        groups: dict[str, int] = {}
        for event in self.requests:
            verb = event.get("verb")
            if is_discovery(event):
                summary["discovery"] += 1
                group = discovery_group(event.get("requestURI", ""))
                groups[group] = groups.get(group, 0) + 1
                summary["discovery_max_per_group"] = max(groups.values())
            elif verb in ("get", "list", "watch"):
                summary["get" if verb == "get" else "list"] += 1
            else:
                summary["write"] += 1
        return summary


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.rstrip("Z"))


class PlaybookRunner:
    def __init__(self, lab_state: dict[str, Any], interpreter: Path):
        ensure_collection_path()
        self.state = lab_state
        self.interpreter = interpreter
        self.tmp = WORK_DIR / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def env(self, rss_file: Path, worker_file: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
        env.update({
            "PATH": f"{BENCH_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
            "ANSIBLE_PYTHON_INTERPRETER": str(self.interpreter),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "K8S_AUTH_KUBECONFIG": self.state["kubeconfig"],
            # kubernetes.core keeps its discovery cache in the temp dir: ours, so "cold" is controlled.
            "TMPDIR": str(self.tmp),
            "BENCH_RSS_FILE": str(rss_file),
            # For ansible-playbook only: its sitecustomize takes itself off PYTHONPATH at once.
            "PYTHONPATH": str(WORKER_PROBE),
            "BENCH_WORKER_RSS_FILE": str(worker_file),
        })
        return env

    def clear_discovery_cache(self) -> None:
        for cache in self.tmp.glob("k8srcp-*.json"):
            cache.unlink()

    def run(self, tasks: list[dict[str, Any]], timeout: float = 900, extra_env: dict[str, str] | None = None
            ) -> RunResult:
        play = [{"name": "bench", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=self.tmp, delete=False) as handle:
            yaml.safe_dump(play, handle, sort_keys=False)
            playbook = Path(handle.name)
        rss_file = playbook.with_suffix(".rss")
        worker_file = playbook.with_suffix(".workers")
        command = [str(BENCH_VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
        window = AuditWindow(self.state)
        started = time.perf_counter()
        env = {**self.env(rss_file, worker_file), **(extra_env or {})}
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(self.tmp), stdin=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - started
        requests = window.requests(user=AUDIT_USER)
        modules = []
        if rss_file.exists():
            for line in rss_file.read_text().splitlines():
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                if "rss_kb" in fields:
                    modules.append({"rss_kb": float(fields["rss_kb"]), "elapsed": float(fields.get("elapsed", 0))})
            rss_file.unlink()
        workers = read_workers(worker_file)
        playbook.unlink()
        result = RunResult(wall, [], modules, requests, proc.returncode, proc.stderr[-2000:], workers=workers)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            result.failures.append(f"no JSON output (rc {proc.returncode}): "
                                   f"{proc.stdout[-1500:]} {proc.stderr[-1500:]}")
            return result
        for play_data in data.get("plays", []):
            for task in play_data.get("tasks", []):
                duration = task["task"].get("duration", {})
                seconds = float("nan")
                if duration.get("start") and duration.get("end"):
                    seconds = (_parse_time(duration["end"]) - _parse_time(duration["start"])).total_seconds()
                host = task.get("hosts", {}).get("localhost", {})
                result.tasks.append({"name": task["task"]["name"], "seconds": seconds,
                                     "changed": bool(host.get("changed")), "failed": bool(host.get("failed")),
                                     "api_requests": host.get("api_requests")})
                if host.get("failed"):
                    result.failures.append(f"{task['task']['name']}: {str(host.get('msg'))[:800]}")
        if proc.returncode != 0 and not result.failures:
            result.failures.append(f"ansible-playbook exited {proc.returncode}: {proc.stderr[-1500:]}")
        return result


def read_workers(path: Path, wait: float = 3.0) -> list[dict[str, float]]:
    """Peak RSS of each worker that started. ansible-playbook terminates a worker still alive when
    it ends, and the worker writes its peak from its SIGTERM handler, possibly after ansible-playbook
    has exited: wait (a few ms, up to ``wait`` s) until every started worker has written."""
    deadline = time.monotonic() + wait
    while True:
        started, peaks = set(), {}
        if path.exists():
            for line in path.read_text().splitlines():
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                if line.startswith("started"):
                    started.add(fields.get("pid"))
                elif "worker_rss_kb" in fields:
                    peaks[fields.get("pid")] = float(fields["worker_rss_kb"])
        if started <= set(peaks) or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    path.unlink(missing_ok=True)
    return [{"pid": float(pid or 0), "rss_kb": rss} for pid, rss in peaks.items()]


def repo_relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
