"""Protection on alerts, end to end: real Prometheus evaluates the shipped rules, real Alertmanager posts
to a real ansible-rulebook running canary.istio.protect_on_alerts, which acts on the lab's cluster.

Telemetry is simulated (seeded draws), served in Prometheus' text format under Istio's metric and label
names, and scraped by Prometheus every second: a faulty canary (10 % errors against a base at 1 %) in a
namespace where a real release of reviews v2 is in flight, a healthy one (1 % against 1 %), a slow one
(10 % of requests slower than 250 ms against 0.5 %), and an overloaded ratings (callers' 503s with
response flag UO, switched on and off by the test).

Expected answers come from the exact computation: the z the rule records is recomputed from the counts
Prometheus itself reports, and the analysis' exact conditional test (evidence.ratio_bounds, the same
test canary_analysis runs) must fail the canary the alert names. The shipped rules run with their
windows shortened ([1m] to [10s]) and "for" to 2s, so the test takes seconds, not minutes; the
expressions are otherwise the shipped ones. Alertmanager repeats each notification every 2s.
"""

from __future__ import annotations

import datetime
import http.server
import json
import math
import random
import secrets
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.canary.istio.plugins.module_utils._logic.evidence import ratio_bounds
from bench.decision_e2e import Exporter
from lab import alertmanager, prometheus
from lab.eda import wait_listening
from lab.kube import KubeClient
from tests.eda.conftest import Rulebook, deploy_base, free_port, history, weights
from tests.helpers.ansible import BOOKINFO_VARS, run_playbook
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RULES = REPO_ROOT / "extensions" / "eda" / "prometheus" / "canary-istio-rules.yml"
PROMETHEUS_RULE = REPO_ROOT / "extensions" / "eda" / "prometheus" / "prometheusrule.yml"
# One-sided 1 % of the standard normal: the level the rules compare z with.
Z_CRITICAL = 2.326
ALPHA = 0.01
# Seconds a resolved overload alert must stay resolved: long enough for the test's flap to fire again.
DEBOUNCE = 6
LABEL_KEYS = ("reporter", "destination_service_namespace", "destination_service_name", "destination_version",
              "response_code", "response_flags")


@dataclass
class Telemetry:
    """Istio's request counter and duration histogram, grown by seeded draws four times a second.

    Each version gets 40 requests a second, 80 per service: below the 100 of ServiceRequestRateHigh,
    so only ServiceOverloaded speaks for overload here."""

    versions: dict[tuple[str, str, str], tuple[float, float]]  # (namespace, service, version) -> (error, slow)
    overloaded: tuple[str, str]  # (namespace, service) whose callers see UO 503s while ``overload`` is set
    overload: threading.Event = field(default_factory=threading.Event)
    requests: dict[tuple[str, ...], int] = field(default_factory=dict)
    histogram: dict[tuple[str, ...], list[int]] = field(default_factory=dict)  # [le=250, count]
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)

    def tick(self, draw: random.Random, per_tick: int = 10) -> None:
        with self.lock:
            for (namespace, service, version), (error, slow) in self.versions.items():
                errors = sum(draw.random() < error for _request in range(per_tick))
                slows = sum(draw.random() < slow for _request in range(per_tick))
                for code, count in (("200", per_tick - errors), ("503", errors)):
                    key = ("destination", namespace, service, version, code, "-")
                    self.requests[key] = self.requests.get(key, 0) + count
                hist = self.histogram.setdefault(("destination", namespace, service, version), [0, 0])
                hist[0] += per_tick - slows
                hist[1] += per_tick
            if self.overload.is_set():
                key = ("source", *self.overloaded, "unknown", "503", "UO")
                self.requests[key] = self.requests.get(key, 0) + 5

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE istio_requests_total counter"]
            for key, count in sorted(self.requests.items()):
                lines.append(f"istio_requests_total{{{_labels(key)}}} {count}")
            lines.append("# TYPE istio_request_duration_milliseconds histogram")
            for key, (fast, count) in sorted(self.histogram.items()):
                labels = _labels(key)
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="250"}} {fast}')
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} {count}')
                lines.append(f"istio_request_duration_milliseconds_count{{{labels}}} {count}")
                lines.append(f"istio_request_duration_milliseconds_sum{{{labels}}} {count * 20}")
        return "\n".join(lines) + "\n"


def _labels(key: tuple[str, ...]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in zip(LABEL_KEYS, key, strict=False))


class Served(Exporter):
    """The benchmark's exporter (its HTTP server and handler) serving this test's telemetry."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self.telemetry = telemetry

    def render(self) -> str:
        return self.telemetry.render()


def serve(telemetry: Telemetry) -> tuple[http.server.ThreadingHTTPServer, str]:
    exporter = Served(telemetry)
    exporter.thread.start()

    def grow() -> None:
        draw = random.Random(20261206)
        while not telemetry.stopped.wait(0.25):
            telemetry.tick(draw)

    threading.Thread(target=grow, daemon=True).start()
    return exporter.server, exporter.url


def shortened_rules(directory: Path) -> Path:
    """The shipped rules with short windows: [1m] -> [10s], for 30s -> 2s (nothing else changes)."""
    text = RULES.read_text(encoding="utf-8")
    assert text.count("[1m]") >= 6 and text.count("for: 30s") == 4
    path = directory / "rules.yml"
    path.write_text(text.replace("[1m]", "[10s]").replace("for: 30s", "for: 2s"), encoding="utf-8")
    return path


@dataclass
class AlertLab:
    namespace: str
    telemetry: Telemetry
    prometheus_url: str
    alertmanager_url: str
    rulebook: Rulebook

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at else {})}
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}",
                                    timeout=10) as response:
            return json.loads(response.read())["data"]["result"]

    def wait_query(self, promql: str, timeout: float = 120.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.query(promql)
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"{promql} stayed empty for {timeout:.0f}s")

    def notifications(self) -> float:
        """Webhook notifications Alertmanager has sent (its own counter)."""
        with urllib.request.urlopen(f"{self.alertmanager_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('alertmanager_notifications_total{integration="webhook"'))


@pytest.fixture(scope="module")
def alerts(eda_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertLab]:
    namespace = deploy_base(eda_lab)
    released = run_playbook(REPO_ROOT / "playbooks" / "canary.yml", eda_lab,
                            {"canary_namespace": namespace, "canary_release_ratio": 10,
                             "canary_release_decision": "hold"}, vars_file=BOOKINFO_VARS)
    assert released.returncode == 0, released.stdout[-3000:]
    telemetry = Telemetry(versions={
        (namespace, "reviews", "v1"): (0.01, 0.005), (namespace, "reviews", "v2"): (0.10, 0.005),
        ("sim-healthy", "reviews", "v1"): (0.01, 0.005), ("sim-healthy", "reviews", "v2"): (0.01, 0.005),
        ("sim-slow", "reviews", "v1"): (0.0, 0.005), ("sim-slow", "reviews", "v2"): (0.0, 0.10),
    }, overloaded=(namespace, "ratings"))
    server, metrics_url = serve(telemetry)
    home = tmp_path_factory.mktemp("alerts")
    port, token = free_port(), secrets.token_hex(12)
    manager = alertmanager.start(home, webhook_url=f"http://127.0.0.1:{port}/alerts", token=token,
                                 repeat_interval="2s")
    profile = {"circuit_breaker": {"connection_pool": {"tcp": {"max_connections": 1},
                                                       "http": {"http1_max_pending_requests": 1}},
                                   "outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s",
                                                         "base_ejection_time": "3m"}}}
    variables = {"canary_eda_host": "127.0.0.1", "canary_eda_alert_port": port, "canary_eda_token": token,
                 "canary_eda_services": {}, "canary_eda_debounce_seconds": DEBOUNCE,
                 "canary_eda_alertmanager_url": manager["url"],
                 "canary_eda_protection_profiles": {f"{namespace}/ratings": profile}}
    rulebook = Rulebook("protect_on_alerts", variables, eda_lab, home / "rulebook")
    try:
        wait_listening(manager["webhook_url"])
        record = prometheus.start(home, metrics_url, alertmanager=manager["url"], rule_files=(shortened_rules(home),))
        alertmanager.wait_ready(home)
        prometheus.wait_ready(home, scraped=False)
        yield AlertLab(namespace, telemetry, record["url"], manager["url"], rulebook)
    finally:
        telemetry.stopped.set()
        rulebook.stop()
        prometheus.stop(home)
        server.shutdown()


def test_the_prometheusrule_holds_the_rules_file_and_promtool_accepts_it(tmp_path: Path):
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    manifest = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert manifest["kind"] == "PrometheusRule" and manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"]["groups"] == groups
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = {rule["alert"]: rule["labels"]["canary_istio_action"] for group in groups for rule in group["rules"]
              if "alert" in rule}
    assert alerts == {"CanaryErrorRateAboveBase": "rollback", "CanaryLatencyAboveBase": "rollback",
                      "ServiceOverloaded": "protect", "ServiceRequestRateHigh": "protect"}


def _value(series: list[dict[str, Any]], **labels: str) -> float:
    for item in series:
        if all(item["metric"].get(key) == value for key, value in labels.items()):
            return float(item["value"][1])
    raise AssertionError(f"no series {labels} in {series}")


def test_a_faulty_canary_fires_and_a_healthy_one_does_not(alerts: AlertLab):
    firing = alerts.wait_query(f'ALERTS{{alertname="CanaryErrorRateAboveBase", alertstate="firing", '
                               f'destination_service_namespace="{alerts.namespace}"}}')
    assert [item["metric"]["destination_version"] for item in firing] == ["v2"]
    at = float(firing[0]["value"][0])
    where = f'destination_service_namespace="{alerts.namespace}"'
    requests = alerts.query(f"canary_istio:requests:increase1m{{{where}}}", at)
    errors = alerts.query(f"canary_istio:errors:increase1m{{{where}}}", at)
    n_canary, n_base = _value(requests, destination_version="v2"), _value(requests, destination_version="v1")
    x_canary, x_base = _value(errors, destination_version="v2"), _value(errors, destination_version="v1")
    share, together = n_canary / (n_canary + n_base), x_canary + x_base
    expected_z = (x_canary - together * share - 0.5) / math.sqrt(together * share * (1 - share))
    recorded = _value(alerts.query(f"canary_istio:error_excess_z:1m{{{where}}}", at), destination_version="v2")
    assert recorded == pytest.approx(expected_z, rel=1e-9)
    assert recorded > Z_CRITICAL
    # The analysis' exact test on the same (rounded) counts: the canary's error rate is shown above the base's.
    lower, _upper = ratio_bounds(round(x_canary), round(n_canary), round(x_base), round(n_base), ALPHA, ALPHA)
    assert lower > 1.0, (x_canary, n_canary, x_base, n_base, lower)
    healthy = alerts.query('ALERTS{alertname="CanaryErrorRateAboveBase", destination_service_namespace="sim-healthy"}')
    assert healthy == []
    slow = alerts.wait_query('ALERTS{alertname="CanaryLatencyAboveBase", alertstate="firing", '
                             'destination_service_namespace="sim-slow"}')
    assert [item["metric"]["destination_version"] for item in slow] == ["v2"]
    assert alerts.query('ALERTS{alertname="CanaryLatencyAboveBase", destination_service_namespace="sim-healthy"}') == []


def test_a_canary_alert_rolls_the_release_back_once(alerts: AlertLab, kube: KubeClient):
    line = alerts.rulebook.wait_for(rf"canary\.istio alert CanaryErrorRateAboveBase \({alerts.namespace}/reviews v2\):"
                                    r" rolled back")[0]
    assert "rolled back by alert CanaryErrorRateAboveBase" in line
    assert weights(kube, alerts.namespace) == {"v1": 100}
    entries = history(kube, alerts.namespace)
    moved = [entry for entry in entries if entry.get("to") == {"v1": 100}]
    # The role records the rollback with its reason (canary_release_reason) beside the traffic step.
    reasons = [entry for entry in entries if "reason" in entry]
    assert len(moved) == 1 and len(reasons) == 1, entries
    assert reasons[0]["reason"] == "rolled back by alert CanaryErrorRateAboveBase", entries
    for entry in (moved[0], reasons[0]):
        assert entry["actor"].startswith("eda:protect_on_alerts (alert CanaryErrorRateAboveBase "), entry
    # Figure: from the alert firing (Prometheus' activeAt plus the rule's 2s "for") to the rollback written.
    active = alerts.query(f'ALERTS_FOR_STATE{{alertname="CanaryErrorRateAboveBase", '
                          f'destination_service_namespace="{alerts.namespace}"}}')
    written = datetime.datetime.fromisoformat(reasons[0]["time"].replace("Z", "+00:00")).timestamp()
    print(f"figure: alert firing to rollback written in {written - float(active[0]['value'][1]) - 2:.0f}s")
    # The canary keeps failing in the telemetry: Alertmanager repeats the alert; nothing acts again.
    sent = alerts.notifications()
    deadline = time.monotonic() + 60
    while alerts.notifications() < sent + 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alerts.notifications() >= sent + 3
    assert len(alerts.rulebook.lines(r"canary\.istio alert CanaryErrorRateAboveBase .*rolled back")) == 1
    assert history(kube, alerts.namespace) == entries
    # The slow canary of a namespace without a release: the rulebook looked and did nothing.
    assert alerts.rulebook.wait_for(r"canary\.istio alert CanaryLatencyAboveBase \(sim-slow/reviews v2\): nothing done")


# One run of canary.istio.protect prints its play's header; a run that cannot start (today: no module
# canary.istio.resilience to parse) is instead logged once by ansible-rulebook as a failed playbook.
PROTECT_RUN = (r"PLAY \[Protection on alerts - apply or remove a service's protection profile\]"
               r"|ansible_rulebook\.action\.run_playbook - ERROR")
# A run's last word: what it did to the protection, or that it could not run.
PROTECT_END = r"\): protection (applied|removed|kept)|ansible_rulebook\.action\.run_playbook - ERROR"


def policy(kube: KubeClient, namespace: str) -> dict[str, Any]:
    rule = kube.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}/destinationrules/ratings")
    return rule["spec"].get("trafficPolicy") or {}


# What the DestinationRule of the overloaded service held after each run of the protection.
OBSERVED: dict[str, Any] = {}


def test_overload_starts_the_protection_once_per_change_and_a_flap_is_debounced(
        alerts: AlertLab, kube: KubeClient):
    """Firing starts canary.istio.protect once however often Alertmanager repeats it; resolving once more.

    A flap: the alert resolves and fires again within the debounce time; the resolved run finds it
    firing again and keeps the protection. Each run is counted by PROTECT_RUN whether or not
    canary.istio.resilience is in the collection; what the runs did is checked by the test below."""
    assert not alerts.rulebook.lines(PROTECT_RUN)
    firing = (f'ALERTS{{alertname="ServiceOverloaded", alertstate="firing", '
              f'destination_service_namespace="{alerts.namespace}", destination_service_name="ratings"}}')
    alerts.telemetry.overload.set()
    alerts.wait_query(firing)
    alerts.rulebook.wait_for(PROTECT_END)
    OBSERVED["applied"] = policy(kube, alerts.namespace)
    sent = alerts.notifications()
    deadline = time.monotonic() + 60
    while alerts.notifications() < sent + 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alerts.notifications() >= sent + 3
    assert len(alerts.rulebook.lines(PROTECT_RUN)) == 1
    # The flap: resolved (the second run starts and waits), then firing again at once.
    alerts.telemetry.overload.clear()
    alerts.rulebook.wait_for(PROTECT_RUN, count=2)
    alerts.telemetry.overload.set()
    alerts.rulebook.wait_for(PROTECT_END, count=3)
    OBSERVED["flapped"] = policy(kube, alerts.namespace)
    # Resolved for good: the fourth run removes the protection after the debounce time.
    alerts.telemetry.overload.clear()
    alerts.rulebook.wait_for(PROTECT_END, count=4)
    OBSERVED["removed"] = policy(kube, alerts.namespace)
    assert len(alerts.rulebook.lines(PROTECT_RUN)) == 4
    assert alerts.query(firing) == []


def test_overload_protection_shows_in_the_cluster_and_goes_on_resolve(alerts: AlertLab):
    said = [line.split(": protection ", 1)[1].split(" - ", 1)[0].split(" (", 1)[0] for line in
            alerts.rulebook.lines(rf"canary\.istio alert ServiceOverloaded \({alerts.namespace}/ratings\): protection")]
    assert sorted(said) == ["applied", "applied", "kept", "removed"], said
    assert said[-1] == "removed"
    # Istio's field names, as the profile's snake_case options are written into the DestinationRule.
    for moment in ("applied", "flapped"):
        assert OBSERVED[moment]["connectionPool"]["http"]["http1MaxPendingRequests"] == 1, OBSERVED
        assert OBSERVED[moment]["connectionPool"]["tcp"]["maxConnections"] == 1, OBSERVED
        assert OBSERVED[moment]["outlierDetection"]["consecutive5xxErrors"] == 1, OBSERVED
    assert "connectionPool" not in OBSERVED["removed"] and "outlierDetection" not in OBSERVED["removed"], OBSERVED
