"""A canary stage with a resilience profile on the canary's subset (issue 25, section 3).

``canary_release_resilience`` puts Istio's Circuit Breaking task's policy on subset v2 before any
traffic moves; promotion keeps it or removes it (``canary_release_resilience_after_promote``), and a
rollback removes the subset with it. Each test checks what the API server holds: the stored
DestinationRule against the base release's rule with only the canary subset's ``trafficPolicy``
added (or not), the expected policy being the one Istio's task publishes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster
from tests.e2e.test_release_flow import run_twice

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TASKS = Path(__file__).resolve().parents[1] / "traffic" / "istio_tasks"
# Istio's Circuit Breaking task, in canary.istio.resilience's options.
PROFILE = {"circuit_breaker": {
    "connection_pool": {"tcp": {"max_connections": 1},
                        "http": {"http1_max_pending_requests": 1, "max_requests_per_connection": 1}},
    "outlier_detection": {"consecutive_5xx_errors": 1, "interval": "1s", "base_ejection_time": "3m",
                          "max_ejection_percent": 100}}}


def published_policy() -> dict[str, Any]:
    """The trafficPolicy of Istio's task (its consecutiveErrors is Istio's deprecated name of consecutive5xxErrors)."""
    task = yaml.safe_load((TASKS / "circuit-breaking-destination-rule.yaml").read_text(encoding="utf-8"))
    policy = task["spec"]["trafficPolicy"]
    policy["outlierDetection"]["consecutive5xxErrors"] = policy["outlierDetection"].pop("consecutiveErrors")
    return policy


def rule(cluster: Cluster) -> dict[str, Any]:
    return cluster._get(f"/apis/networking.istio.io/v1/namespaces/{cluster.namespace}/destinationrules/reviews")


@pytest.fixture
def held(runner, kube, bookinfo_namespace):
    """Bookinfo at v1, then the canary held at 30% with the profile: the subset v2 holds Istio's policy."""
    ns = {"canary_namespace": bookinfo_namespace}
    assert runner("deploy_base.yml", ns).rc == 0
    cluster = Cluster(kube, bookinfo_namespace)
    base_spec = copy.deepcopy(rule(cluster)["spec"])
    run_twice(runner, "canary.yml", {**ns, "canary_release_ratio": 30, "canary_release_decision": "hold",
                                     "canary_release_resilience": PROFILE})
    spec = rule(cluster)["spec"]
    expected = copy.deepcopy(base_spec)
    expected["subsets"].append({"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": published_policy()})
    assert spec == expected
    assert cluster.route_weights() == {"v1": 70, "v2": 30}
    return cluster, base_spec


@pytest.mark.parametrize("after", ["keep", "remove"])
def test_promotion_keeps_or_removes_the_profile_as_told(runner, held, after):
    cluster, base_spec = held
    result = run_twice(runner, "promote.yml", {"canary_namespace": cluster.namespace,
                                               "canary_release_resilience": PROFILE,
                                               "canary_release_resilience_after_promote": after})
    v2 = {"name": "v2", "labels": {"version": "v2"}}
    if after == "keep":
        v2["trafficPolicy"] = published_policy()
        assert "subset v2 keeps its resilience profile" in result.stdout
    else:
        assert "the resilience profile of subset v2 is removed" in result.stdout
    # The base subset is gone (canary_release_after_promote: remove); everything else is the base's rule.
    assert rule(cluster)["spec"] == {**base_spec, "subsets": [v2]}
    assert cluster.route_weights() == {"v2": 100}


def test_rollback_takes_the_profile_away_with_the_canary_subset(runner, held):
    cluster, base_spec = held
    run_twice(runner, "rollback.yml", {"canary_namespace": cluster.namespace, "canary_release_resilience": PROFILE})
    assert rule(cluster)["spec"] == base_spec
    assert cluster.route_weights() == {"v1": 100}
