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
    # Istio counts each request between two sidecars once on each side: the caller's proxy
    # (reporter="source") learns the destination's labels from its answer, so both sides agree.
    for version in ("v1", "v2", "v3"):
        assert delta(reporter="source", source_workload="productpage-v1", destination_service_name="reviews",
                     destination_workload=f"reviews-{version}", destination_version=version,
                     destination_canonical_service="reviews", destination_canonical_revision=version,
                     **common) == by_version[version]
    for service in ("details", "ratings"):
        assert (delta(reporter="source", destination_service_name=service, **common)
                == delta(reporter="destination", destination_service_name=service, **common) > 0)
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


def test_a_canary_that_refuses_connections_is_reported_by_the_caller_only(dp_lab: DataPlaneLab) -> None:
    """Envoy answers 503 with UF,URX (connection failure, both retries used); only the caller's proxy counts it.

    The labels are those of Istio's stats filter on the client side when no answer came back (istio/proxy
    istio_stats ``populatePeerInfo``): the service from the cluster, the workload, namespace and canonical
    service/revision from the endpoint's metadata (``workload;namespace;canonical-name;canonical-revision;
    cluster``), and no app or version (the endpoint metadata has neither): "unknown".
    """
    ns = dp_lab.create_namespace("crashing")
    caller = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "productpage-v1"},
              "spec": {"selector": {"matchLabels": {"app": "productpage", "version": "v1"}},
                       "template": {"metadata": {"labels": {"app": "productpage", "version": "v1"}},
                                    "spec": {"containers": [{
                                        "name": "productpage",
                                        "image": "docker.io/istio/examples-bookinfo-productpage-v1:1.16.2"}]}}}}
    dp_lab.apply(caller, ns)
    dp_lab.apply_file("platform/kube/bookinfo-reviews-v2-crashing.yaml", ns)
    # The pod is Ready: its process runs and answered its first health check.
    dp_lab.wait_available(ns, ["productpage-v1", "reviews-v2"])
    pid = dp_lab.workload(ns, "reviews-v2")["current"]["pid"]
    before = dp_lab.metrics()
    sent = 12
    for _ in range(sent):
        reply = dp_lab.mesh("reviews:9080", "/reviews/0", namespace=ns, source="productpage-v1")
        assert reply.status == 503, reply.text
        assert reply.text.startswith("upstream connect error or disconnect/reset before headers. "
                                     "reset reason: connection failure"), reply.text
    after = dp_lab.metrics()

    def delta(name: str = "istio_requests_total", **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    istio_source_labels = {
        "reporter": "source", "source_workload": "productpage-v1", "source_workload_namespace": ns,
        "source_app": "productpage", "source_version": "v1", "source_canonical_service": "productpage",
        "source_canonical_revision": "v1",
        "destination_service": f"reviews.{ns}.svc.cluster.local", "destination_service_name": "reviews",
        "destination_service_namespace": ns, "destination_workload": "reviews-v2",
        "destination_workload_namespace": ns, "destination_canonical_service": "reviews",
        "destination_canonical_revision": "v2", "destination_app": "unknown", "destination_version": "unknown",
        "request_protocol": "http", "response_code": "503", "response_flags": "UF,URX"}
    assert delta(**istio_source_labels) == sent
    assert delta("istio_request_duration_milliseconds_count", **istio_source_labels) == sent
    # Nothing else was counted for reviews: the canary's own proxy never saw these requests.
    assert delta(destination_service_namespace=ns) == sent
    assert delta(reporter="destination", destination_workload="reviews-v2") == 0
    # The process still runs and the Deployment stays Available: nothing restarts it.
    workload = dp_lab.workload(ns, "reviews-v2")
    assert workload["current"]["pid"] == pid and workload["restarts"] == 0
    dp_lab.wait_condition(ns, "reviews-v2", "Available", "True", timeout=1)
