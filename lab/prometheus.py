"""A real Prometheus for the lab: Debian's ``prometheus`` package, on loopback, scraping the mesh.

The data plane starts it beside itself (``lab.dataplane.start``) and stops it with itself.  It
scrapes the router's Istio-named metrics (``/metrics`` on the data plane's admin port) every
second, so queries written for a real Istio mesh run unchanged against it.  ``start`` does not
wait for Prometheus to be ready (the lab comes up as fast as before); ``wait_ready`` does, for
whoever needs to query it.  The process writes nothing outside ``DIR/prometheus/``; its state is
in ``DIR/prometheus.json``::

    {"pid": ..., "url": "http://127.0.0.1:P", "port": P, "config": ..., "data": ..., "log": ...,
     "target": "127.0.0.1:Q"}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from lab import alertmanager, procfs

REPO_ROOT = Path(__file__).resolve().parents[1]
INFO_FILE = "prometheus.json"
SCRAPE_INTERVAL = "1s"
RETENTION = "6h"
URL_ENV = "CANARY_ISTIO_PROMETHEUS_URL"
# canary.istio's alerting rules, loaded when Alertmanager runs beside Prometheus.
RULES_FILE = REPO_ROOT / "extensions" / "eda" / "prometheus" / "canary-istio-rules.yml"


class PrometheusUnavailable(RuntimeError):
    """Prometheus is not installed and could not be provisioned."""


def _directory(state_dir: str | os.PathLike[str]) -> Path:
    path = Path(state_dir).resolve()
    return path.parent if path.is_file() else path


def find_binary(provision: bool = True) -> str:
    """Path of ``prometheus`` (``LAB_PROMETHEUS``, then PATH); installs Debian's package when missing."""
    found = os.environ.get("LAB_PROMETHEUS") or shutil.which("prometheus")
    if not found and provision:
        # lab/provision.sh installs Debian's prometheus package before anything else.
        subprocess.run(["bash", str(REPO_ROOT / "lab" / "provision.sh")], check=False, stdin=subprocess.DEVNULL)
        found = shutil.which("prometheus")
    if not found:
        raise PrometheusUnavailable("prometheus is not installed: run lab/provision.sh, or "
                                    "apt-get install --no-install-recommends prometheus")
    return found


def config(target: str, alertmanager: str | None = None, rule_files: tuple[str, ...] = ()) -> str:
    """The scrape configuration: the mesh router's metrics every second (and alerting, when given)."""
    alerting = [
        "alerting:",
        "  alertmanagers:",
        "    - static_configs:",
        f'        - targets: ["{urllib.parse.urlsplit(alertmanager).netloc}"]',
    ] if alertmanager else []
    rules = ["rule_files:", *(f'  - "{path}"' for path in rule_files)] if rule_files else []
    return "\n".join([*alerting, *rules,
        "global:",
        f"  scrape_interval: {SCRAPE_INTERVAL}",
        f"  scrape_timeout: {SCRAPE_INTERVAL}",
        f"  evaluation_interval: {SCRAPE_INTERVAL}",
        "scrape_configs:",
        "  - job_name: lab-mesh",
        "    metrics_path: /metrics",
        "    static_configs:",
        f'      - targets: ["{target}"]',
        "",
    ])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(record: dict[str, Any]) -> bool:
    return procfs.runs(record.get("pid"), str(record.get("config", "-")))


def info(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The running Prometheus of this lab, or None."""
    try:
        record = json.loads((_directory(state_dir) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if _alive(record) else None


def start(state_dir: str | os.PathLike[str], metrics_url: str, port: int = 0, provision: bool = True,
          alertmanager: str | None = None, rule_files: tuple[str, ...] = ()) -> dict[str, Any]:
    """Starts Prometheus scraping ``metrics_url`` (idempotent); returns at once, without waiting.

    With ``alertmanager`` (its URL) Prometheus sends the alerts of ``rule_files`` there."""
    directory = _directory(state_dir)
    target = urllib.parse.urlsplit(metrics_url).netloc
    running = info(directory)
    if running and running.get("target") == target and running.get("alertmanager") == alertmanager:
        return running
    if running:
        stop(directory, with_alertmanager=False)
    binary = find_binary(provision)
    home = directory / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    config_file = home / "prometheus.yml"
    config_file.write_text(config(target, alertmanager, tuple(map(str, rule_files))), encoding="utf-8")
    port = port or _free_port()
    log = home / "prometheus.log"
    command = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={home / 'data'}",
               f"--storage.tsdb.retention.time={RETENTION}", f"--web.listen-address=127.0.0.1:{port}",
               "--log.level=warn"]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=str(home))
    record = {"pid": process.pid, "url": f"http://127.0.0.1:{port}", "port": port, "config": str(config_file),
              "data": str(home / "data"), "log": str(log), "target": target, "binary": binary,
              "alertmanager": alertmanager}
    temporary = directory / f"{INFO_FILE}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, directory / INFO_FILE)
    return record


def wait_ready(state_dir: str | os.PathLike[str], timeout: float = 30.0, scraped: bool = True) -> dict[str, Any]:
    """Waits until Prometheus answers ``/-/ready`` (and, with ``scraped``, has scraped the mesh once)."""
    directory = _directory(state_dir)
    deadline = time.monotonic() + timeout
    last = "not started"
    while time.monotonic() < deadline:
        record = info(directory)
        if record is None:
            last = "not running"
        else:
            try:
                with urllib.request.urlopen(f"{record['url']}/-/ready", timeout=2) as response:
                    ready = response.status == 200
                if ready and not scraped:
                    return record
                if ready:
                    query = urllib.parse.urlencode({"query": 'up{job="lab-mesh"}'})
                    with urllib.request.urlopen(f"{record['url']}/api/v1/query?{query}", timeout=2) as response:
                        result = json.loads(response.read())["data"]["result"]
                    if result and result[0]["value"][1] == "1":
                        return record
                    last = "ready, mesh not scraped yet"
            except (OSError, ValueError, KeyError) as exc:
                last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus of the lab in {directory} was not ready within {timeout:.0f}s ({last}); "
                       f"see {directory / 'prometheus' / 'prometheus.log'}")


def stop(state_dir: str | os.PathLike[str], timeout: float = 10.0, with_alertmanager: bool = True) -> bool:
    """Stops this lab's Prometheus (and the Alertmanager beside it); True if Prometheus was running."""
    directory = _directory(state_dir)
    if with_alertmanager:
        alertmanager.stop(directory)
    record = info(directory)
    (directory / INFO_FILE).unlink(missing_ok=True)
    if record is None:
        return False
    pid = int(record["pid"])
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(record):
                return True
            time.sleep(0.05)
    return True


def start_beside_dataplane(state_dir: str | os.PathLike[str], metrics_url: str | None) -> dict[str, Any] | None:
    """What the data plane calls: Prometheus when it can be had, a warning when not (the mesh works without)."""
    if not metrics_url or os.environ.get("LAB_PROMETHEUS_DISABLED") == "1":
        return None
    # Alertmanager beside it (lab.alertmanager), with canary.istio's alerting rules loaded.
    manager = None
    if os.environ.get("LAB_ALERTMANAGER_DISABLED") != "1":
        try:
            manager = alertmanager.start(state_dir)["url"]
        except (alertmanager.AlertmanagerUnavailable, OSError) as exc:
            print(f"[lab] Alertmanager not started: {exc}", file=sys.stderr)
    try:
        return start(state_dir, metrics_url, alertmanager=manager, rule_files=(RULES_FILE,) if manager else ())
    except (PrometheusUnavailable, OSError) as exc:
        print(f"[lab] Prometheus not started: {exc}", file=sys.stderr)
        return None
