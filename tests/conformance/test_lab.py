"""The lab's API server judges upstream objects as istiod does: every published example is stored
(with nothing that routes lost), every case Istio's tests refuse is refused, naming Istio's rule."""

from __future__ import annotations

import pytest

from lab.kube import KubeClient
from tests.conformance import corpus, oracle
from tests.conformance.conftest import object_path

pytestmark = pytest.mark.lab

REFUSED = (400, 403, 422)  # a validating webhook's denial, or the API server's own schema check

# Cases the API server refuses before any webhook sees them, with the wording of its structural-schema
# check: kube-apiserver 1.20 reads an empty subset name under Istio's published CRD as null and
# answers "spec.subsets.name ... must be of type string" (seen on the lab; the object is refused
# either way, so nothing is stored, which is what istiod's rule guarantees).
SCHEMA_REFUSALS = {"dr-missing-subset-name": "spec.subsets.name in body must be of type string"}


@pytest.mark.parametrize("item", corpus.samples(), ids=lambda s: s.label)
def test_lab_stores_every_published_example(item: corpus.Sample, kube: KubeClient, place_upstream) -> None:
    placed = place_upstream(item.id, item.objects)
    assert placed.refusals() == {}, "the lab refused objects Istio publishes as examples"
    for published in item.virtual_services:
        stored = kube.get(object_path("VirtualService", placed.namespace, published["metadata"]["name"]))
        published["metadata"]["namespace"] = placed.namespace
        # What is routed where must survive the API server's pruning and defaulting.
        assert oracle.http_route_shares(stored) == oracle.http_route_shares(published)
        assert [oracle.route_action(r) for r in stored["spec"].get("http") or []] == [
            oracle.route_action(r) for r in published["spec"].get("http") or []]


@pytest.mark.parametrize("case", corpus.validation_cases(), ids=lambda c: c.id)
def test_lab_judges_each_upstream_validation_case(case: corpus.ValidationCase, place_upstream) -> None:
    placed = place_upstream(f"case:{case.id}", [case.object])
    refusal = placed.refused.get((case.object["kind"], case.object["metadata"]["name"]))
    if case.valid:
        assert refusal is None, f"Istio accepts this ({case.source}); the lab refused it: {refusal}"
        return
    assert refusal is not None, f"Istio refuses this ({case.source}: {case.message}); the lab stored it"
    assert refusal.status in REFUSED, refusal
    if case.id in SCHEMA_REFUSALS:
        assert refusal.status == 422 and SCHEMA_REFUSALS[case.id] in str(refusal), refusal
        return
    assert case.message in str(refusal), f"the refusal should name Istio's rule {case.message!r}: {refusal}"
