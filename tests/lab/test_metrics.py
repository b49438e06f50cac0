"""The router's Istio-style metrics agree with the traffic sent, and the router is quick."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.lab.conftest import DataPlaneLab

pytestmark = pytest.mark.lab

SAMPLE = re.compile(r'^(istio_[a-z_]+)\{(.*)\} ([0-9.e+]+)$')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
            found.append((labels, float(match.group(3))))
    return found


def total(text: str, name: str, **wanted: str) -> float:
    return sum(value for labels, value in samples(text, name)
               if all(labels.get(k) == v for k, v in wanted.items()))


def test_requests_total_counts_what_was_sent(dp_lab: DataPlaneLab, bookinfo_namespace: str) -> None:
    ns = bookinfo_namespace
    before = dp_lab.metrics()
    pages = 40
    for _ in range(pages):
        assert dp_lab.gateway("/productpage").status == 200
    after = dp_lab.metrics()

    def delta(**labels: str) -> float:
        return total(after, "istio_requests_total", **labels) - total(before, "istio_requests_total", **labels)

    common = {"destination_service_namespace": ns, "response_code": "200"}
    # Ingress to productpage, reported by both sides.
    for reporter in ("source", "destination"):
        assert delta(reporter=reporter, source_workload="istio-ingressgateway",
                     destination_service_name="productpage", destination_workload="productpage-v1",
                     destination_version="v1", **common) == pages
    # productpage calls details and reviews once per page.
    assert delta(reporter="destination", source_workload="productpage-v1", destination_service_name="details",
                 **common) == pages
    by_version = Counter()
    for version in ("v1", "v2", "v3"):
        by_version[version] = delta(reporter="destination", source_workload="productpage-v1",
                                    destination_service_name="reviews", destination_version=version, **common)
    assert sum(by_version.values()) == pages
    # Only reviews v2 and v3 call ratings.
    ratings = delta(reporter="destination", destination_service_name="ratings", **common)
    assert ratings == by_version["v2"] + by_version["v3"]
    # The histogram counts the same requests.
    histogram = (total(after, "istio_request_duration_milliseconds_count", reporter="destination",
                       destination_service_name="productpage", destination_service_namespace=ns)
                 - total(before, "istio_request_duration_milliseconds_count", reporter="destination",
                         destination_service_name="productpage", destination_service_namespace=ns))
    assert histogram == pages


def test_error_responses_are_counted_with_their_code(dp_lab: DataPlaneLab, bookinfo_namespace: str) -> None:
    ns = bookinfo_namespace
    rule = {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": {"name": "details"},
            "spec": {"host": "details", "subsets": [{"name": "v9", "labels": {"version": "v9"}}]}}
    vs = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "details"},
          "spec": {"hosts": ["details"], "http": [{"route": [{"destination": {"host": "details", "subset": "v9"}}]}]}}
    dp_lab.wait_seen(dp_lab.apply(rule, ns))
    dp_lab.wait_seen(dp_lab.apply(vs, ns))
    try:
        before = dp_lab.metrics()
        for _ in range(7):
            reply = dp_lab.mesh("details:9080", "/details/0", namespace=ns, source="productpage-v1")
            assert reply.status == 503 and reply.text == "no healthy upstream"
        after = dp_lab.metrics()
        labels = {"reporter": "source", "source_workload": "productpage-v1", "destination_service_name": "details",
                  "destination_service_namespace": ns, "response_code": "503", "response_flags": "UH"}
        assert total(after, "istio_requests_total", **labels) - total(before, "istio_requests_total", **labels) == 7
    finally:
        dp_lab.delete("VirtualService", ns, "details")
        dp_lab.delete("DestinationRule", ns, "details")
        dp_lab.wait_seen(kind="VirtualService", namespace=ns, name="details")


def test_histogram_is_well_formed(dp_lab: DataPlaneLab, bookinfo_namespace: str) -> None:
    dp_lab.gateway("/productpage")
    text = dp_lab.metrics()
    assert "# TYPE istio_requests_total counter" in text
    assert "# TYPE istio_request_duration_milliseconds histogram" in text
    buckets = samples(text, "istio_request_duration_milliseconds_bucket")
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for labels, value in buckets:
        le = labels.pop("le")
        series.setdefault(tuple(sorted(labels.items())), []).append((float(le), value))
    assert series
    counts = {tuple(sorted(labels.items())): value
              for labels, value in samples(text, "istio_request_duration_milliseconds_count")}
    for key, points in series.items():
        values = [v for _, v in sorted(points)]
        assert values == sorted(values), "buckets are cumulative"
        assert values[-1] == counts[key], "+Inf bucket equals the count"
