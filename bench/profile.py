"""Item 4 of the benchmark: where a module's time goes.

The module is measured as Ansible runs it: the AnsiballZ file Ansible wrote for a real task
(kept with ``ANSIBLE_KEEP_REMOTE_FILES``) is run again and again with the same interpreter.
Phases:

- interpreter start: ``python -c pass``;
- imports: ``python -X importtime`` on the AnsiballZ file. AnsiballZ imports ``ansible.module_utils``
  and the collection's ``module_utils`` from a zip file, where Python keeps no ``.pyc``: every run
  compiles those sources again, so their compile time is measured separately too;
- connection and requests: a small driver (``bench/phase_driver.py``) times the collection's own
  connection code step by step, in a fresh process each time;
- Ansible around the module: the task time minus the module process's wall time (items 1-2).

This is the module-process path (``CANARY_ISTIO_IN_PROCESS=0``, and every remote host, become,
task ``environment`` or async); by default, on a local connection, our modules run inside the
controller's task worker and none of the process phases apply (items 1-2 measure that path).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from bench.changes import median
from bench.env import BENCH_VENV, REPO_ROOT, WORK_DIR, bench_python, say
from bench.runner import DROPPED_ENV
from tests.helpers.collection import COLLECTIONS_ROOT

COLLECTION_SOURCES = REPO_ROOT / "plugins"


def parse_importtime(stderr: str) -> dict[str, Any]:
    """Top-level imports (cumulative ms), the whole import time of one ``-X importtime`` run, and the
    self time of the collections' own modules (``ansible_collections.*``)."""
    top: dict[str, int] = {}
    own_self = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        self_us, cumulative, name_field = parts[0].split(":")[1], parts[1], parts[2]
        name = name_field.strip()
        level = (len(name_field) - len(name_field.lstrip(" ")) - 1) // 2
        if name.startswith("ansible_collections."):
            own_self += int(self_us)
        if level == 0:
            top[name] = top.get(name, 0) + int(cumulative)
    return {"total_ms": sum(top.values()) / 1000, "collection_self_ms": own_self / 1000,
            "top": sorted(((n, us / 1000) for n, us in top.items()), key=lambda item: -item[1])[:12]}


def _timed(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def keep_ansiballz(lab_state: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Runs each task once with ANSIBLE_KEEP_REMOTE_FILES and returns the AnsiballZ file it left."""
    keep = WORK_DIR / "keep"
    found: dict[str, Path] = {}
    for name, task in tasks.items():
        remote = keep / name
        if remote.exists():
            for old in sorted(remote.rglob("*"), reverse=True):
                old.unlink() if old.is_file() else old.rmdir()
        remote.mkdir(parents=True, exist_ok=True)
        playbook = keep / f"{name}.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
        env = _module_env(lab_state)
        # Our modules run in the controller's worker by default and leave no AnsiballZ file: the
        # module-process path is the one profiled here.
        env.update({"CANARY_ISTIO_IN_PROCESS": "0",
                    "ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote),
                    "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
                    "ANSIBLE_PYTHON_INTERPRETER": str(bench_python()),
                    "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"})
        subprocess.run([str(BENCH_VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                        str(playbook)], env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL)
        files = sorted(remote.rglob("AnsiballZ_*.py"))
        if files:
            found[name] = files[0]
        else:
            say(f"profile: no AnsiballZ file kept for {name}")
    return found


def _module_env(lab_state: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env["K8S_AUTH_KUBECONFIG"] = lab_state["kubeconfig"]
    env["TMPDIR"] = str(WORK_DIR / "tmp")
    return env


def compile_cost(paths: list[Path], runs: int = 5) -> dict[str, Any]:
    """What compiling each source costs (AnsiballZ pays it on every run: no .pyc in a zip)."""
    out = {}
    for path in paths:
        source = path.read_text()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            compile(source, str(path), "exec", dont_inherit=True)
            times.append(time.perf_counter() - started)
        out[str(path.relative_to(REPO_ROOT))] = {"lines": source.count("\n"), "ms": median(times) * 1000}
    return out


def module_imports(module: str) -> list[Path]:
    """The collection's module_utils a module imports, directly or through other module_utils."""
    seen: list[Path] = []
    queue = [COLLECTION_SOURCES / "modules" / f"{module}.py"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.append(path)
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line.startswith("from ansible_collections.canary.istio.plugins.module_utils."):
                # module_utils._logic.weights -> module_utils/_logic/weights.py
                dotted = line.split()[1].split(".plugins.module_utils.", 1)[1]
                queue.append(COLLECTION_SOURCES / "module_utils" / (dotted.replace(".", "/") + ".py"))
    return seen


def rule_reads(lab_state: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The two ways a split can learn which DestinationRules of a busy namespace have its host: the
    full LIST and the watch cache's host table (``phase_driver.py rules``), in milliseconds."""
    say("profile: finding a host's DestinationRules in a namespace with many")
    driver = REPO_ROOT / "bench" / "phase_driver.py"
    env = dict(_module_env(lab_state), PYTHONPATH=str(COLLECTIONS_ROOT))
    proc = subprocess.run([str(bench_python()), str(driver), "rules", lab_state["kubeconfig"], namespace],
                          env=env, capture_output=True, text=True, check=False)
    try:
        timings = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        say(f"profile: rule reads failed: {proc.stderr[-800:]}")
        return {}
    return {"rules": timings["rules"], "list_ms": timings["list"] * 1000, "table_ms": timings["table"] * 1000}


def where_time_goes(lab_state: dict[str, Any], namespace: str, runs: int) -> dict[str, Any]:
    python = str(bench_python())
    env = _module_env(lab_state)
    result: dict[str, Any] = {}
    say("profile: interpreter start")
    result["interpreter_start_s"] = median(_timed([python, "-c", "pass"], env, max(runs, 7)))
    result["import_yaml_ssl_urllib3_s"] = median(_timed([python, "-c", "import urllib3, yaml, ssl"], env, runs))

    tasks = {
        "traffic_split": {"canary.istio.traffic_split": {
            "name": "one-ts", "namespace": namespace, "weights": {"v1": 50, "v2": 50}}},
        "k8s_json_patch": {"kubernetes.core.k8s_json_patch": {
            "api_version": "networking.istio.io/v1", "kind": "VirtualService", "name": "one-jp",
            "namespace": namespace,
            "patch": [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 50},
                      {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 50}]}},
    }
    say("profile: AnsiballZ runs and -X importtime")
    kept = keep_ansiballz(lab_state, tasks)
    result["modules"] = {}
    for name, path in kept.items():
        # The second and later runs change nothing (same weights): the read path, no write.
        walls = _timed([python, str(path)], env, max(runs, 7))
        imports = []
        for _ in range(3):
            proc = subprocess.run([python, "-X", "importtime", str(path)], env=env, capture_output=True,
                                  text=True, check=False, stdin=subprocess.DEVNULL)
            imports.append(parse_importtime(proc.stderr))
        best = sorted(imports, key=lambda item: item["total_ms"])[1]  # the median of three
        result["modules"][name] = {"process_s": median(walls), "imports": best}

    say("profile: connection phases")
    driver = REPO_ROOT / "bench" / "phase_driver.py"
    phases: dict[str, list[float]] = {}
    driver_env = dict(env, PYTHONPATH=str(COLLECTIONS_ROOT))
    for mode in ("ours", "kubernetes"):
        for _ in range(runs):
            proc = subprocess.run([python, str(driver), mode, lab_state["kubeconfig"], namespace],
                                  env=driver_env, capture_output=True, text=True, check=False)
            try:
                timings = json.loads(proc.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                say(f"profile: phase driver ({mode}) failed: {proc.stderr[-800:]}")
                break
            for key, value in timings.items():
                phases.setdefault(f"{mode}.{key}", []).append(value)
    result["phases_ms"] = {key: median(values) * 1000 for key, values in phases.items()}
    result["compile"] = compile_cost(module_imports("traffic_split"))
    result["compile_total_ms"] = sum(item["ms"] for item in result["compile"].values())
    return result
