"""``python -m lab eda``: canary.istio's two rulebooks run by ``ansible-rulebook`` against the lab.

- ``canary.istio.release_on_push`` listens on a loopback port for registry pushes (Docker Registry,
  Harbor or the generic shape) and releases Bookinfo's services in the lab's namespace;
- ``canary.istio.protect_on_alerts`` listens where the lab's Alertmanager posts (``lab.alertmanager``).

Both use bearer tokens (the push token is chosen here, the alert token is Alertmanager's). Their
variables files, logs and state are in ``DIR/eda/`` and ``DIR/eda.json``::

    {"push_url": "http://127.0.0.1:P/push", "push_token": ..., "alert_url": ..., "namespace": ...,
     "processes": {"release_on_push": {"pid", "log"}, "protect_on_alerts": {"pid", "log"}}}

``ansible-rulebook`` comes with ``make setup`` (requirements-dev.txt) and needs Java 17 (Debian's
``openjdk-17-jre-headless``). It runs with the lab's kubeconfig and the collection from
``build/collections``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab import alertmanager, procfs, prometheus

REPO_ROOT = Path(__file__).resolve().parents[1]
INFO_FILE = "eda.json"
BOOKINFO_SERVICES = ("reviews", "ratings", "details", "productpage")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def release_vars(namespace: str, port: int, token: str) -> dict[str, Any]:
    """Variables of release_on_push for Bookinfo in ``namespace``: the repository bookinfo/<service>."""
    kube = REPO_ROOT / "bookinfo" / "platform" / "kube"
    return {
        "canary_eda_host": "127.0.0.1", "canary_eda_push_port": port, "canary_eda_token": token,
        "canary_eda_repositories": {
            f"bookinfo/{service}": {"service": service, "namespace": namespace,
                                    "manifests": [str(kube / f"bookinfo-{service}-{{tag}}.yaml")],
                                    "ratio": 10, "decision": "hold"}
            for service in BOOKINFO_SERVICES},
    }


def protect_vars(namespace: str, port: int, token: str, alertmanager_url: str, debounce: int) -> dict[str, Any]:
    """Variables of protect_on_alerts: Istio's circuit-breaking task's limits as every service's profile."""
    profile = {"circuit_breaker": {
        "connection_pool": {"tcp": {"max_connections": 1},
                            "http": {"http1_max_pending_requests": 1, "max_requests_per_connection": 1}},
        "outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s", "base_ejection_time": "3m",
                              "max_ejection_percent": 100}}}
    return {
        "canary_eda_host": "127.0.0.1", "canary_eda_alert_port": port, "canary_eda_token": token,
        "canary_eda_services": {}, "canary_eda_debounce_seconds": debounce,
        "canary_eda_alertmanager_url": alertmanager_url,
        "canary_eda_protection_profiles": {f"{namespace}/{service}": profile for service in BOOKINFO_SERVICES},
    }


def environment(kubeconfig: str) -> dict[str, str]:
    """What ansible-rulebook and the playbooks it runs need: the venv's tools, the collection, the lab."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("K8S_AUTH_", "KUBECONFIG"))}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO_ROOT / "build" / "collections")
    env["K8S_AUTH_KUBECONFIG"] = kubeconfig
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    return env


def rulebook_command(rulebook: str, vars_file: Path, inventory: Path) -> list[str]:
    binary = shutil.which("ansible-rulebook", path=str(Path(sys.executable).parent)) or "ansible-rulebook"
    name = rulebook if rulebook.endswith((".yml", ".yaml")) else f"canary.istio.{rulebook}"
    return [binary, "--rulebook", name, "--inventory", str(inventory),
            "--vars", str(vars_file)]


def start_rulebook(name: str, home: Path, variables: dict[str, Any], kubeconfig: str) -> dict[str, Any]:
    """Starts one rulebook (the collection's by name, or a file) in the background; returns {pid, log, vars}."""
    home.mkdir(parents=True, exist_ok=True)
    rulebook, name = name, Path(name).stem
    vars_file = home / f"{name}.vars.yml"
    vars_file.write_text(yaml.safe_dump(variables, sort_keys=False), encoding="utf-8")
    vars_file.chmod(0o600)
    inventory = home / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n", encoding="utf-8")
    log = home / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(rulebook_command(rulebook, vars_file, inventory), stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(home),
                                   env=environment(kubeconfig))
    return {"pid": process.pid, "log": str(log), "vars": str(vars_file)}


def info(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads((Path(state_dir) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def start(state_dir: str | os.PathLike[str], namespace: str = "default", push_port: int = 0,
          debounce: int = 60) -> dict[str, Any]:
    """Starts both rulebooks against the lab in ``state_dir`` (its data plane, so Alertmanager, must run)."""
    directory = Path(state_dir).resolve()
    stop(directory)
    manager = alertmanager.info(directory)
    if manager is None or prometheus.info(directory) is None:
        raise RuntimeError(f"no Alertmanager beside the lab's Prometheus in {directory}: "
                           "start the lab with python -m lab up --dataplane")
    kubeconfig = json.loads((directory / "lab.json").read_text(encoding="utf-8"))["kubeconfig"]
    home = directory / "eda"
    push_port = push_port or _free_port()
    push_token = secrets.token_hex(16)
    record = {
        "push_url": f"http://127.0.0.1:{push_port}/push", "push_token": push_token,
        "alert_url": manager["webhook_url"], "namespace": namespace,
        "processes": {
            "release_on_push": start_rulebook("release_on_push", home, release_vars(namespace, push_port, push_token),
                                              kubeconfig),
            "protect_on_alerts": start_rulebook(
                "protect_on_alerts", home,
                protect_vars(namespace, manager["webhook_port"], manager["token"], manager["url"], debounce),
                kubeconfig),
        },
    }
    (directory / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (directory / INFO_FILE).chmod(0o600)
    return record


def wait_listening(url: str, timeout: float = 60.0) -> None:
    """Waits until a rulebook's webhook accepts connections (ansible-rulebook starts its JVM first)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no rulebook listening at {url} within {timeout:.0f}s")


def stop(state_dir: str | os.PathLike[str]) -> bool:
    """Stops the rulebooks this lab started (each by its recorded pid)."""
    directory = Path(state_dir).resolve()
    record = info(directory)
    (directory / INFO_FILE).unlink(missing_ok=True)
    if not record:
        return False
    for process in record.get("processes", {}).values():
        if procfs.runs(process.get("pid"), str(process.get("vars"))):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(process["pid"]), signal.SIGTERM)
    return True


def main(state_dir: str, namespace: str, push_port: int, debounce: int) -> int:
    record = start(state_dir, namespace, push_port, debounce)
    wait_listening(record["push_url"])
    wait_listening(record["alert_url"])
    print(f"release on push: {record['push_url']}  (Authorization: Bearer {record['push_token']})")
    print(f"  curl -H 'Authorization: Bearer {record['push_token']}' -d "
          f"'{{\"repository\": \"bookinfo/reviews\", \"tag\": \"v2\"}}' {record['push_url']}")
    print(f"protection on alerts: {record['alert_url']} (Alertmanager posts there)")
    for name, process in record["processes"].items():
        print(f"  {name}: pid {process['pid']}, log {process['log']}")
    return 0
