"""The lab's part: Alertmanager beside the lab's Prometheus, and ``python -m lab eda`` releasing on a push.

What ``python -m lab up --dataplane`` starts beside the data plane (lab.prometheus.start_beside_dataplane)
is started here on the session's lab: Alertmanager must be ready, Prometheus must have it as its active
Alertmanager and must have loaded canary.istio's rules. Then ``python -m lab eda`` runs the rulebooks;
a push of bookinfo/reviews:v2 to the URL it prints releases reviews v2, and the VirtualService's history
names the rulebook and the event.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import alertmanager, eda, prometheus
from lab.kube import KubeClient
from tests.eda.conftest import ANSI, deploy_base, history, post, weights
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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


def test_lab_eda_releases_reviews_v2_on_a_push(monitored: Path, eda_lab: dict[str, Any], kube: KubeClient):
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
    log = Path(record["processes"]["release_on_push"]["log"])
    until = time.monotonic() + 240
    while f"canary.istio push {event_id} (bookinfo/reviews:v2): started" not in ANSI.sub("", log.read_text()):
        assert time.monotonic() < until, log.read_text()[-4000:]
        time.sleep(0.5)
    assert weights(kube, namespace) == {"v1": 90, "v2": 10}
    [entry] = history(kube, namespace)
    assert entry["actor"] == f"eda:release_on_push (generic push {event_id} of bookinfo/reviews:v2 by make demo)"
    stopped = subprocess.run([sys.executable, "-m", "lab", "--dir", str(monitored), "eda", "--stop"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 0 and eda.info(monitored) is None
