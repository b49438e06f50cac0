"""What users see: the split measured with real requests through the lab's gateway.

Bookinfo runs as real processes behind the lab's mesh router, which follows the VirtualServices
and DestinationRules our modules write. These tests make the tutorial's "refresh the page and look
at the stars" measurable.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.parse

import pytest

from tests.helpers.ansible import run_module
from tests.traffic.conftest import BOOKINFO, LABELS, Load, TrafficLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def add_version(lab: TrafficLab, namespace: str, version: str) -> None:
    lab.module("manifest", namespace, wait=True, wait_timeout=60,
               src=[str(BOOKINFO / f"platform/kube/bookinfo-reviews-{version}.yaml")])
    lab.module("destination_rule", namespace, name="reviews",
               subsets=[{"name": version, "labels": {"version": version}}])


def probe(lab: TrafficLab, requests: int = 1000, **extra):
    return run_module("traffic_probe", {"url": f"{lab.gateway}/productpage", "requests": requests,
                                        "concurrency": 16, "labels": LABELS, **extra})


def istio_requests(metrics: str, reporter: str = "destination", service: str = "reviews") -> dict[str, float]:
    """istio_requests_total by destination_version for one service (summed over other labels)."""
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("reporter") == reporter and labels.get("destination_service_name") == service:
            version = labels.get("destination_version", "")
            counts[version] = counts.get(version, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_split_at_30_measured_and_counted_by_metrics(traffic_lab, bookinfo_ns):
    lab, ns = traffic_lab, bookinfo_ns
    add_version(lab, ns, "v2")
    before = istio_requests(lab.metrics())
    lab.module("traffic_split", ns, name="reviews", base="v1", canary="v2", canary_weight=30)
    # Config reaches the router within a second of the watch event.
    time.sleep(1.0)
    result = probe(lab, 1000, expect={"v2": 30}, max_errors=0)
    assert not result.get("failed"), result.get("msg")
    low, high = result["intervals"]["v2"]
    assert low <= 30 <= high
    assert result["counts"]["v1"] + result["counts"]["v2"] == 1000 and result["counts"]["v3"] == 0
    after = istio_requests(lab.metrics())
    delta = {version: after.get(version, 0) - before.get(version, 0) for version in after}
    # The router's own counters agree with what the probe saw, request for request.
    assert delta.get("v1", 0) == result["counts"]["v1"]
    assert delta.get("v2", 0) == result["counts"]["v2"]


def test_signed_in_tester_route_and_a_subset_with_no_workload(traffic_lab, bookinfo_ns):
    lab, ns = traffic_lab, bookinfo_ns
    add_version(lab, ns, "v3")
    lab.module("header_route", ns, name="reviews", route="testers", headers={"end-user": "jason"}, subset="v3")
    time.sleep(1.0)
    jason = probe(lab, 100, cookies={"user": "jason"}, expect={"v3": 100}, max_errors=0)
    assert not jason.get("failed") and jason["counts"]["v3"] == 100, jason.get("msg")
    others = probe(lab, 100, expect={"v1": 100}, max_errors=0)
    assert not others.get("failed") and others["counts"]["v1"] == 100
    # A subset that exists in the DestinationRule but has no running workload: 503 from the mesh.
    lab.module("destination_rule", ns, name="reviews", subsets=[{"name": "v9", "labels": {"version": "v9"}}])
    lab.module("traffic_split", ns, name="reviews", weights={"v1": 0, "v9": 100})
    time.sleep(1.0)
    direct = run_module("traffic_probe", {"url": f"{lab.gateway}/productpage", "requests": 20,
                                          "labels": LABELS, "headers": {}})
    # productpage degrades like the original: the page says reviews are unavailable.
    assert direct["counts"]["v1"] == 0 and direct["counts"]["unmatched"] == 20
    mesh = urllib.parse.urlsplit(lab.gateway)
    conn = http.client.HTTPConnection(mesh.hostname, mesh.port, timeout=10)
    conn.request("GET", "/productpage")
    assert "Sorry, product reviews are currently unavailable" in conn.getresponse().read().decode()
    codes = [line for line in lab.metrics().splitlines()
             if line.startswith("istio_requests_total{") and 'destination_service_name="reviews"' in line
             and 'response_code="503"' in line]
    assert codes, "the 503s for the empty subset are counted"


def _transition_report(load: Load, moments: list[tuple[str, float, str]]) -> list[str]:
    lines = []
    for label, moment, version in moments:
        seen = load.first_after(moment, version)
        lines.append(f"{label}: first answer from {version} {seen * 1000:.0f} ms after the write"
                     if seen is not None else f"{label}: no answer from {version}")
    return lines


def test_whole_release_under_load_has_zero_failed_requests(traffic_lab, bookinfo_ns, capsys):
    lab, ns = traffic_lab, bookinfo_ns
    moments: list[tuple[str, float, str]] = []
    with Load(f"{lab.gateway}/productpage", rate=80) as load:
        time.sleep(1.0)
        add_version(lab, ns, "v2")
        for weight in (10, 50, 100):
            lab.module("traffic_split", ns, name="reviews", base="v1", canary="v2", canary_weight=weight)
            moments.append((f"canary {weight}%", time.monotonic(), "v2"))
            time.sleep(2.0)
        # Clean-up after promotion: route, then subset, then the old Deployment (make before break).
        lab.module("traffic_split", ns, name="reviews", weights={"v2": 100}, remove_unnamed=True)
        promoted = time.monotonic()
        time.sleep(1.0)
        lab.module("destination_rule", ns, name="reviews", remove_subsets=["v1"])
        lab.module("manifest", ns, state="absent", definition={"apiVersion": "apps/v1", "kind": "Deployment",
                                                               "metadata": {"name": "reviews-v1"}})
        time.sleep(2.0)
    last_v1 = load.last_of("v1", promoted)
    report = _transition_report(load, moments)
    with capsys.disabled():
        print(f"\n[zero-downtime release] {len(load.records)} requests at {load.rate_achieved:.0f}/s, "
              f"{len(load.failures)} failed; " + "; ".join(report))
    assert load.rate_achieved >= 50
    assert load.failures == []
    assert last_v1 is None, "no answer from v1 after the promotion's clean-up"
    assert all(load.first_after(m, v) is not None and load.first_after(m, v) < 2.0 for _label, m, v in moments)


def test_rollback_under_load_has_zero_failed_requests(traffic_lab, bookinfo_ns, capsys):
    lab, ns = traffic_lab, bookinfo_ns
    with Load(f"{lab.gateway}/productpage", rate=80) as load:
        time.sleep(1.0)
        add_version(lab, ns, "v3")
        lab.module("traffic_split", ns, name="reviews", base="v1", canary="v3", canary_weight=10)
        lab.module("traffic_split", ns, name="reviews", base="v1", canary="v3", canary_weight=50)
        time.sleep(2.0)
        rolled = time.monotonic()
        lab.module("traffic_split", ns, name="reviews", weights={"v1": 100}, remove_unnamed=True)
        time.sleep(1.5)
        settled = time.monotonic()
        lab.module("destination_rule", ns, name="reviews", remove_subsets=["v3"])
        lab.module("manifest", ns, state="absent", definition={"apiVersion": "apps/v1", "kind": "Deployment",
                                                               "metadata": {"name": "reviews-v3"}})
        time.sleep(2.0)
    last_v3 = load.last_of("v3", rolled)
    with capsys.disabled():
        print(f"\n[zero-downtime rollback] {len(load.records)} requests at {load.rate_achieved:.0f}/s, "
              f"{len(load.failures)} failed; last v3 answer "
              f"{'none' if last_v3 is None else f'{last_v3 * 1000:.0f} ms'} after the rollback write")
    assert load.rate_achieved >= 50
    assert load.failures == []
    assert load.last_of("v3", settled) is None
    assert sum(1 for _time, v, _status in load.records if v == "v3") > 0, "the canary did serve before the rollback"
