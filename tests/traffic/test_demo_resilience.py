"""`DEMO_RESILIENCE=1 make demo`'s resilience part, on its own, on the lab's Bookinfo (issue 25 section 4).

The part runs canary.istio.resilience through ansible-playbook as the demo does. Expected outcomes are
those Istio's tasks document: Fault Injection (abort for user jason) - jason's pages lose their reviews,
nobody else's do; Circuit Breaking (``maxConnections: 1``, ``http1MaxPendingRequests: 1``) - concurrent
callers see a share of 503s with response flag UO in Istio's metrics. Afterwards the API server holds
the VirtualService and DestinationRule exactly as before: the part removes what it set.
"""

from __future__ import annotations

import pytest

from lab import demo
from tests.traffic.conftest import TrafficLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/reviews"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules/reviews"


def test_fault_for_testers_only_and_the_circuit_breaker(traffic_lab: TrafficLab, bookinfo_ns: str):
    kube = traffic_lab.kube
    before = (kube.get(VS.format(ns=bookinfo_ns))["spec"], kube.get(DR.format(ns=bookinfo_ns))["spec"])
    out = demo.resilience_part(traffic_lab.gateway, traffic_lab.state["kubeconfig"], traffic_lab.metrics_url,
                               bookinfo_ns, pages=5, load_pages=60, concurrency=12)
    fault = out["fault"]
    assert (fault["tester_failed"], fault["others_failed"], fault["tester_failed_after_removal"]) == (5, 0, 0), out
    breaker = out["circuit_breaker"]
    assert breaker["overflows_503_uo"] > 0, out
    # A page loses its reviews only when both of productpage's calls overflow.
    assert breaker["pages_failed"] <= breaker["overflows_503_uo"], out
    assert (kube.get(VS.format(ns=bookinfo_ns))["spec"], kube.get(DR.format(ns=bookinfo_ns))["spec"]) == before
