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

from ansible_collections.canary.istio.plugins.module_utils._probe import confidence_option, wilson_interval
from tests.helpers.ansible import run_module
from tests.helpers.split_checks import MAX_FALSE_FAILURE, false_failure_rate, no_answer_rate
from tests.traffic.conftest import BOOKINFO, LABELS, Load, TrafficLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Checks of a random split are set so that a correct router fails them at most once in 10,000 runs
# (tests/helpers/split_checks.py; the last tests of this file compute it).
CONFIDENCE = 99.99  # percent, as the option takes it and the result states it
LEVEL = confidence_option(CONFIDENCE)[0]  # the fraction the probe's intervals are computed at
SPLIT_REQUESTS, SPLIT_WEIGHT = 1000, 30
# Under load, each canary step lasts STEP_SECONDS, and its first answer from the canary must come
# within it. The least canary share is 10%; the router follows a write within PROPAGATION_BOUND
# seconds (test_lab's own bound) and the load runs at no less than MIN_RATE requests/s (asserted).
STEP_SECONDS, PROPAGATION_BOUND, MIN_RATE = 3.0, 1.0, 50
# The rollback test holds the canary at 50% this long before rolling back, and checks it served.
ROLLBACK_HOLD = 2.0


def add_version(lab: TrafficLab, namespace: str, version: str) -> None:
    lab.module("manifest", namespace, wait=True, wait_timeout=60,
               src=[str(BOOKINFO / f"platform/kube/bookinfo-reviews-{version}.yaml")])
    lab.module("destination_rule", namespace, name="reviews",
               subsets=[{"name": version, "labels": {"version": version}}])


def probe(lab: TrafficLab, requests: int = SPLIT_REQUESTS, **extra):
    return run_module("traffic_probe", {"url": f"{lab.gateway}/productpage", "requests": requests,
                                        "concurrency": 16, "labels": LABELS, "confidence": CONFIDENCE, **extra})


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
    lab.module("traffic_split", ns, name="reviews", base="v1", canary="v2", canary_weight=SPLIT_WEIGHT)
    # Config reaches the router within a second of the watch event.
    time.sleep(1.0)
    result = probe(lab, SPLIT_REQUESTS, expect={"v2": SPLIT_WEIGHT}, max_errors=0)
    assert not result.get("failed"), result.get("msg")
    assert result["confidence"] == CONFIDENCE
    low, high = result["intervals"]["v2"]
    assert low <= SPLIT_WEIGHT <= high
    assert result["counts"]["v1"] + result["counts"]["v2"] == SPLIT_REQUESTS and result["counts"]["v3"] == 0
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
            time.sleep(STEP_SECONDS)
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
    assert load.rate_achieved >= MIN_RATE
    assert load.failures == []
    assert last_v1 is None, "no answer from v1 after the promotion's clean-up"
    assert all(load.first_after(m, v) is not None and load.first_after(m, v) < STEP_SECONDS
               for _label, m, v in moments), report


def test_rollback_under_load_has_zero_failed_requests(traffic_lab, bookinfo_ns, capsys):
    lab, ns = traffic_lab, bookinfo_ns
    with Load(f"{lab.gateway}/productpage", rate=80) as load:
        time.sleep(1.0)
        add_version(lab, ns, "v3")
        lab.module("traffic_split", ns, name="reviews", base="v1", canary="v3", canary_weight=10)
        lab.module("traffic_split", ns, name="reviews", base="v1", canary="v3", canary_weight=50)
        time.sleep(ROLLBACK_HOLD)
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
    assert load.rate_achieved >= MIN_RATE
    assert load.failures == []
    assert load.last_of("v3", settled) is None
    assert sum(1 for _time, v, _status in load.records if v == "v3") > 0, "the canary did serve before the rollback"


# ---------------------------------------------------------------- how often these checks fail by chance


def test_split_probe_fails_a_correct_router_at_most_once_in_10000_runs():
    share = SPLIT_WEIGHT / 100
    rate = false_failure_rate(SPLIT_REQUESTS, {"v2": share, "v1": 1 - share},
                              lambda k, n: wilson_interval(k, n, LEVEL), {"v2": SPLIT_WEIGHT})
    assert rate <= MAX_FALSE_FAILURE, rate


def test_first_canary_answer_within_a_step_fails_a_correct_router_at_most_once_in_10000_runs():
    # Worst case: the slowest load allowed, the router taking its whole bound, the smallest step (10%).
    requests_in_time = MIN_RATE * (STEP_SECONDS - PROPAGATION_BOUND)
    assert no_answer_rate(requests_in_time, 0.10) <= MAX_FALSE_FAILURE


def test_canary_served_before_rollback_fails_a_correct_router_at_most_once_in_10000_runs():
    assert no_answer_rate(MIN_RATE * (ROLLBACK_HOLD - PROPAGATION_BOUND), 0.50) <= MAX_FALSE_FAILURE
