"""A real Alertmanager for the lab: Debian's ``prometheus-alertmanager`` on loopback, beside the lab's Prometheus.

``lab.prometheus`` starts it before Prometheus (whose ``alerting`` then points at it) and stops it
with Prometheus. It routes every alert of canary.istio's rules (label ``canary_istio_action``) to one
webhook: the rulebook ``canary.istio.protect_on_alerts`` that ``python -m lab eda`` starts. The
webhook's port and bearer token are chosen here, once, so the rulebook can be started later on the
address Alertmanager already posts to. The process writes nothing outside ``DIR/alertmanager/``; its
state is in ``DIR/alertmanager.json``::

    {"pid": ..., "url": "http://127.0.0.1:P", "port": P, "config": ..., "log": ...,
     "webhook_url": "http://127.0.0.1:W/alerts", "webhook_port": W, "token": ...}

Timings are short, for a lab: ``group_wait`` 1s, ``group_interval`` 1s, ``repeat_interval`` as asked
(a real installation keeps Alertmanager's defaults of 30s, 5m and 4h).
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
import time
import urllib.request
from pathlib import Path
from typing import Any

from lab import procfs

INFO_FILE = "alertmanager.json"
BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")


class AlertmanagerUnavailable(RuntimeError):
    """Alertmanager is not installed."""


def _directory(state_dir: str | os.PathLike[str]) -> Path:
    path = Path(state_dir).resolve()
    return path.parent if path.is_file() else path


def find_binary() -> str:
    """Path of Alertmanager (``LAB_ALERTMANAGER``, then Debian's name, then upstream's, on PATH)."""
    found = os.environ.get("LAB_ALERTMANAGER") or next(filter(None, map(shutil.which, BINARY_NAMES)), None)
    if not found:
        raise AlertmanagerUnavailable("Alertmanager is not installed: apt-get install --no-install-recommends "
                                      "prometheus-alertmanager (make setup does)")
    return found


def config(webhook_url: str, token: str, repeat_interval: str = "1m") -> str:
    """Every alert to the rulebook's webhook (its filter keeps canary.istio's), with a bearer token, resolved too."""
    return json.dumps({
        "route": {"receiver": "canary-istio-eda", "group_by": ["alertname", "destination_service_namespace",
                                                               "destination_service_name", "destination_version"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": repeat_interval},
        "receivers": [{"name": "canary-istio-eda", "webhook_configs": [{
            "url": webhook_url, "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": token}}}]}],
    }, indent=2) + "\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def info(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The running Alertmanager of this lab, or None."""
    try:
        record = json.loads((_directory(state_dir) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if procfs.runs(record.get("pid"), str(record.get("config", "-"))) else None


def start(state_dir: str | os.PathLike[str], webhook_url: str | None = None, token: str | None = None,
          repeat_interval: str = "1m") -> dict[str, Any]:
    """Starts Alertmanager (idempotent); returns at once. Without ``webhook_url`` a loopback port is chosen."""
    directory = _directory(state_dir)
    running = info(directory)
    if running and (webhook_url is None or running["webhook_url"] == webhook_url):
        return running
    if running:
        stop(directory)
    binary = find_binary()
    home = directory / "alertmanager"
    (home / "data").mkdir(parents=True, exist_ok=True)
    webhook_port = _free_port()
    webhook_url = webhook_url or f"http://127.0.0.1:{webhook_port}/alerts"
    token = token or secrets.token_hex(16)
    config_file = home / "alertmanager.yml"
    config_file.write_text(config(webhook_url, token, repeat_interval), encoding="utf-8")
    config_file.chmod(0o600)
    port = _free_port()
    log = home / "alertmanager.log"
    # An empty cluster.listen-address turns the gossip mesh off (it would claim port 9094 for every lab).
    command = [binary, f"--config.file={config_file}", f"--storage.path={home / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=str(home))
    record = {"pid": process.pid, "url": f"http://127.0.0.1:{port}", "port": port, "config": str(config_file),
              "log": str(log), "webhook_url": webhook_url,
              "webhook_port": int(webhook_url.rsplit(":", 1)[1].split("/", 1)[0]), "token": token}
    temporary = directory / f"{INFO_FILE}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    os.replace(temporary, directory / INFO_FILE)
    return record


def wait_ready(state_dir: str | os.PathLike[str], timeout: float = 30.0) -> dict[str, Any]:
    """Waits until this lab's Alertmanager answers ``/-/ready``."""
    directory = _directory(state_dir)
    deadline = time.monotonic() + timeout
    last = "not running"
    while time.monotonic() < deadline:
        record = info(directory)
        if record:
            try:
                with urllib.request.urlopen(f"{record['url']}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return record
            except OSError as exc:
                last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"Alertmanager of the lab in {directory} was not ready within {timeout:.0f}s ({last}); "
                       f"see {directory / 'alertmanager' / 'alertmanager.log'}")


def stop(state_dir: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Stops this lab's Alertmanager; True if it was running."""
    directory = _directory(state_dir)
    record = info(directory)
    (directory / INFO_FILE).unlink(missing_ok=True)
    if record is None:
        return False
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(int(record["pid"]), signal.SIGTERM)
    while procfs.runs(record["pid"], record["config"]):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(int(record["pid"]), os.WNOHANG)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(record["pid"]), signal.SIGKILL)
        time.sleep(0.05)
    return True
