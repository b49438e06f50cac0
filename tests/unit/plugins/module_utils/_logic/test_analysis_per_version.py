"""canary_analysis' per_version_services: on a Gateway API HTTPRoute each version is a Service of its own.

Istio's standard metrics label a request with the Service it was sent to (``destination_service_name``);
behind an HTTPRoute whose backendRefs are ``reviews-v1`` and ``reviews-v2`` (Istio's
samples/bookinfo/gateway-api/route-reviews-90-10.yaml) that is the per-version Service, not ``reviews``.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    AnalysisTarget,
    errors_query,
    requests_query,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_each_version_is_read_for_its_own_service(version):
    target = AnalysisTarget(service="reviews", namespace="bookinfo", base="v1", canary="v2", window="30s",
                            per_version_services=True)
    for promql in (requests_query(target, version), errors_query(target, version)):
        names = re.findall(r'destination_service_name="([^"]+)"', promql)
        # Both parts (the destination's report and the callers' failures) name the version's Service.
        assert names == [f"reviews-{version}"] * 2


def test_without_it_the_service_is_the_one_service():
    target = AnalysisTarget(service="reviews", namespace="bookinfo", base="v1", canary="v2", window="30s")
    assert set(re.findall(r'destination_service_name="([^"]+)"', requests_query(target, "v2"))) == {"reviews"}
