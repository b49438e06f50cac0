"""The benchmark's own virtualenv (ansible + kubernetes for kubernetes.core) and machine facts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canary-istio-lab"
BENCH_VENV = Path(os.environ.get("BENCH_VENV", CACHE_DIR / "bench-venv"))
WORK_DIR = REPO_ROOT / "build" / "bench"
# PyPI's ``ansible`` package bundles kubernetes.core (6.x in ansible 11 and 12) and ansible.posix,
# whose ``json`` callback gives per-task start/end times. ``kubernetes`` is what kubernetes.core
# imports on the managed node. Kept in step with the ansible-core the collection is tested on.
REQUIREMENTS = ("ansible>=11,<13", "kubernetes")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_python() -> Path:
    return BENCH_VENV / "bin" / "python"


def ensure_bench_venv() -> Path:
    """Creates the benchmark virtualenv when missing; returns its python."""
    python = bench_python()
    marker = BENCH_VENV / ".bench-installed"
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    say(f"creating the benchmark virtualenv {BENCH_VENV} (ansible with kubernetes.core; first time only)")
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                   check=True)
    marker.write_text(wanted)
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def collection_version(python: Path, namespace: str, name: str) -> str:
    manifest = _site_packages(python) / "ansible_collections" / namespace / name / "MANIFEST.json"
    try:
        return json.loads(manifest.read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        return "not installed"


def package_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try:\n"
            "        out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError:\n"
            "        out[n] = 'not installed'\n"
            "print(json.dumps(out))")
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine(lab_state: dict[str, Any], python: Path | None = None) -> dict[str, Any]:
    python = python or bench_python()
    bench_packages = package_versions(python, ("ansible", "ansible-core", "kubernetes", "PyYAML"))
    out = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, check=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory": _memory_total(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "python": out.stdout.strip(),
        "ansible": bench_packages["ansible"],
        "ansible_core": bench_packages["ansible-core"],
        "kubernetes_python": bench_packages["kubernetes"],
        "pyyaml": bench_packages["PyYAML"],
        "kubernetes_core": collection_version(python, "kubernetes", "core"),
        "ansible_posix": collection_version(python, "ansible", "posix"),
        "canary_istio": _galaxy_version(),
        "apiserver": lab_state.get("versions", {}).get("apiserver_reported", "unknown"),
        "etcd": lab_state.get("versions", {}).get("etcd", "unknown"),
    }


def _galaxy_version() -> str:
    for line in (REPO_ROOT / "galaxy.yml").read_text().splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "unknown"


def interpreter_wrapper() -> Path:
    """A python for Ansible's modules that appends the module process's peak RSS and wall time
    to ``$BENCH_RSS_FILE`` (GNU time when present, else a small Python wrapper)."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    wrapper = WORK_DIR / "module-python"
    python = bench_python()
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if gnu_time:
        body = (f'exec {gnu_time} -a -o "${{BENCH_RSS_FILE:-/dev/null}}" -f "rss_kb=%M elapsed=%e" '
                f'{python} "$@"\n')
    else:
        body = f'exec {python} {REPO_ROOT / "bench" / "rss_wrapper.py"} {python} "$@"\n'
    wrapper.write_text("#!/bin/sh\n" + body)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper
