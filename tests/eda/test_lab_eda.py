"""The lab's part: Alertmanager beside the lab's Prometheus, and ``python -m lab eda`` releasing on a push.

What ``python -m lab up --dataplane`` starts beside the data plane (lab.prometheus.start_beside_dataplane)
is started here on the session's lab: Alertmanager must be ready, Prometheus must have it as its active
Alertmanager and must have loaded canary.istio's rules. Then ``python -m lab eda`` runs the rulebooks;
a push of bookinfo/reviews:v2 to the URL it prints releases reviews v2, and the VirtualService's history
names the rulebook and the event; a faulty canary under real mesh traffic makes the lab's Prometheus fire,
Alertmanager notify and the rulebook roll it back.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import alertmanager, eda, prometheus
from lab.kube import KubeClient
from tests.eda.conftest import ANSI, deploy_base, history, post, weights
from tests.helpers.ansible import BOOKINFO_VARS, run_playbook
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KUBE = REPO_ROOT / "bookinfo" / "platform" / "kube"


@pytest.fixture(scope="module")
def monitored(eda_lab: dict[str, Any]) -> Iterator[Path]:
    directory = Path(eda_lab["dir"])
    metrics_url = json.loads((directory / "dataplane.json").read_text())["metrics_url"]
    prometheus.start_beside_dataplane(directory, metrics_url)
    try:
        yield directory
    finally:
        eda.stop(directory)
        prometheus.stop(directory)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def active_alertmanagers(prometheus_url: str) -> list[str]:
    return [item["url"] for item in get(f"{prometheus_url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]


def test_alertmanager_runs_beside_the_labs_prometheus_with_canary_istios_rules(monitored: Path):
    manager = alertmanager.wait_ready(monitored)
    record = prometheus.wait_ready(monitored, scraped=False)
    wanted, until = [f"{manager['url']}/api/v2/alerts"], time.monotonic() + 30
    # Prometheus discovers its Alertmanagers shortly after it starts.
    while (active := active_alertmanagers(record["url"])) != wanted:
        assert time.monotonic() < until, active
        time.sleep(0.5)
    groups = {group["name"]: [rule["name"] for rule in group["rules"]]
              for group in get(f"{record['url']}/api/v1/rules")["data"]["groups"]}
    assert groups["canary-istio-alerts"] == ["CanaryErrorRateAboveBase", "CanaryLatencyAboveBase",
                                             "ServiceOverloaded", "ServiceRequestRateHigh"]


def wait_for_line(log: Path, text: str, timeout: float = 240) -> None:
    until = time.monotonic() + timeout
    while text not in ANSI.sub("", log.read_text()):
        assert time.monotonic() < until, f"{text!r} not in {log}:\n{log.read_text()[-4000:]}"
        time.sleep(0.5)


def test_lab_eda_releases_reviews_v2_on_a_push_and_rolls_a_faulty_canary_back_on_its_alert(
        monitored: Path, eda_lab: dict[str, Any], kube: KubeClient):
    namespace = deploy_base(eda_lab)
    started = subprocess.run([sys.executable, "-m", "lab", "--dir", str(monitored), "eda", "--namespace", namespace,
                              "--debounce", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
                             check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    record = eda.info(monitored)
    assert record and record["push_url"] in started.stdout and record["alert_url"] in started.stdout
    # The rulebook's log is appended to across runs: an id of this run's own.
    event_id = f"lab-{namespace}"
    body = {"repository": "bookinfo/reviews", "tag": "v2", "id": event_id, "source": "make demo"}
    assert post(record["push_url"], body, record["push_token"]) == 200
    wait_for_line(Path(record["processes"]["release_on_push"]["log"]),
                  f"canary.istio push {event_id} (bookinfo/reviews:v2): started")
    assert weights(kube, namespace) == {"v1": 90, "v2": 10}
    [entry] = history(kube, namespace)
    assert entry["actor"] == f"eda:release_on_push (generic push {event_id} of bookinfo/reviews:v2 by make demo)"

    # Protection, end to end: a faulty v2 (half its answers fail) at half the traffic, real requests through
    # the lab's mesh; the lab's Prometheus (shipped rules, unchanged), Alertmanager and the rulebook act.
    faulty = deploy_base(eda_lab)
    released = run_playbook(REPO_ROOT / "playbooks" / "canary.yml", eda_lab,
                            {"canary_namespace": faulty, "canary_release_ratio": 50, "canary_release_decision": "hold",
                             "canary_release_manifests": [str(KUBE / "bookinfo-reviews-v2-faulty.yaml")]},
                            vars_file=BOOKINFO_VARS)
    assert released.returncode == 0, released.stdout[-3000:]
    mesh = urllib.parse.urlsplit(json.loads((monitored / "dataplane.json").read_text())["mesh_url"])
    stop = threading.Event()

    def callers() -> None:
        conn = http.client.HTTPConnection(mesh.hostname, mesh.port, timeout=10)
        while not stop.wait(0.1):
            try:
                headers = {"Host": f"reviews.{faulty}.svc.cluster.local", "x-source-workload": "productpage-v1",
                           "x-source-namespace": faulty}
                conn.request("GET", "/reviews/0", headers=headers)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(mesh.hostname, mesh.port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=callers, daemon=True) for _caller in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_for_line(Path(record["processes"]["protect_on_alerts"]["log"]),
                      f"canary.istio alert CanaryErrorRateAboveBase ({faulty}/reviews v2): rolled back", timeout=300)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert weights(kube, faulty) == {"v1": 100}
    assert [entry.get("reason") for entry in history(kube, faulty) if "reason" in entry] == [
        "rolled back by alert CanaryErrorRateAboveBase"]
    stopped = subprocess.run([sys.executable, "-m", "lab", "--dir", str(monitored), "eda", "--stop"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 0 and eda.info(monitored) is None
