"""Live traffic through the lab's data plane on Istio's Gateway API traffic-shifting sample.

Istio's traffic-shifting task (Gateway API form) applies samples/bookinfo/gateway-api/route-reviews-90-10.yaml
and says about 10% of requests then reach reviews v2. Here real requests go through the lab's mesh port to
``reviews`` from a workload of the namespace, with Istio's reviews Services (bookinfo.yaml,
bookinfo-versions.yaml) and the sample route unchanged, and the version that answered is counted.

The check accepts a v2 share within ``TOLERANCE`` of 10%; ``test_the_check_fails_a_correct_router_rarely``
sums the binomial exactly: a router that is right fails one of this file's two checks with probability at
most 1e-4
(tests/helpers/split_checks.py). A router that ignored the weights (50%) or the route (0% or 100%) fails it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conformance import corpus
from tests.helpers.split_checks import MAX_FALSE_FAILURE, false_failure_rate
from tests.lab.conftest import DataPlaneLab
from tests.lab.test_endpoints import ROUTES, create_services, delete_services, deployment_of, split

pytestmark = pytest.mark.lab

REQUESTS = 400
TOLERANCE = 0.065
V2_SHARE = 0.10  # route-reviews-90-10.yaml: weights 90 and 10


def interval(count: int, total: int) -> tuple[float, float]:
    return count / total - TOLERANCE, count / total + TOLERANCE


SAMPLED_CHECKS = 2  # the two tests below that count a random split


def test_the_check_fails_a_correct_router_rarely() -> None:
    rate = false_failure_rate(REQUESTS, {"v1": 1 - V2_SHARE, "v2": V2_SHARE}, interval, {"v2": V2_SHARE})
    assert SAMPLED_CHECKS * rate <= MAX_FALSE_FAILURE, rate


@pytest.fixture
def reviews(dp_lab: DataPlaneLab):
    namespace = dp_lab.create_namespace("traffic")
    create_services(dp_lab, namespace)
    for manifest in ("platform/kube/bookinfo-reviews-v1.yaml", "platform/kube/bookinfo-reviews-v2.yaml"):
        dp_lab.apply(deployment_of(manifest), namespace)
    dp_lab.wait_available(namespace, ["reviews-v1", "reviews-v2"])
    yield namespace
    for name in ("reviews-v1", "reviews-v2"):
        dp_lab.delete("Deployment", namespace, name)
    delete_services(dp_lab, namespace)


def count_versions(dp_lab: DataPlaneLab, namespace: str) -> Counter[str]:
    versions: Counter[str] = Counter()
    for product in range(REQUESTS):
        reply = dp_lab.mesh("reviews:9080", f"/reviews/{product % 5}", namespace=namespace, source="productpage-v1")
        assert reply.status == 200, reply.text
        versions[reply.json()["version"]] += 1
    assert set(versions) <= {"v1", "v2"}, versions
    return versions


def test_istios_90_10_httproute_sends_about_10_percent_to_v2(dp_lab: DataPlaneLab, reviews: str) -> None:
    route: dict[str, Any] = corpus.istio_objects("samples/bookinfo/gateway-api/route-reviews-90-10.yaml")[0]
    stored = dp_lab.kube.create(ROUTES.format(ns=reviews), route)
    dp_lab.wait_seen(stored)
    versions = count_versions(dp_lab, reviews)
    low, high = interval(versions["v2"], REQUESTS)
    assert low <= V2_SHARE <= high, versions


def test_a_traffic_split_step_on_the_lab_moves_live_traffic(dp_lab: DataPlaneLab, reviews: str) -> None:
    """Istio's route-reviews-v1 first (all to v1), then canary.istio.traffic_split to 10% on the HTTPRoute,
    with make-before-break reading the Endpoints the lab writes: live traffic follows."""
    route: dict[str, Any] = corpus.istio_objects("samples/bookinfo/gateway-api/route-reviews-v1.yaml")[0]
    dp_lab.wait_seen(dp_lab.kube.create(ROUTES.format(ns=reviews), route))
    assert count_versions(dp_lab, reviews) == {"v1": REQUESTS}
    result = split(dp_lab, reviews, 10)
    assert result["changed"] is True and not result.get("failed"), result
    dp_lab.wait_seen(dp_lab.kube.get(f"{ROUTES.format(ns=reviews)}/reviews"))
    versions = count_versions(dp_lab, reviews)
    low, high = interval(versions["v2"], REQUESTS)
    assert low <= V2_SHARE <= high, versions
