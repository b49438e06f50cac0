"""Header rules on an HTTPRoute (header_route's HTTPRoute form, issue 24 section 2), through the I/O layer
called directly against the lab's real API server.

Where requests go is judged by the lab's router (lab/dataplane/routing.py, held to Gateway API's
conformance suite, and never importing the collection) over what the API server stores: requests with
the testers' header reach the canary Service, others keep their rules. What must stay is read back.
"""

# ruff: noqa: F811 - test functions take the fixtures imported from test_httproute_split by name
from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._httproute import RouteTarget, plan_header
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import header_matches
from ansible_collections.canary.istio.plugins.module_utils._traffic import write
from tests.helpers.ansible import lab_auth

# The fixtures among these (reviews, services) are found by pytest by their names in this module.
from tests.integration.test_httproute_split import (  # noqa: F401  # pylint: disable=unused-import
    reviews,
    served_by,
    services,
    stored,
)

pytestmark = pytest.mark.lab

ALICE = {"end-user": "alice"}


def header_rule(state: dict[str, Any], ns: str, service: str | None = "reviews-v2", present: bool = True,
                headers: dict[str, Any] | None = None, check: bool = False, **target: Any) -> RouteTarget:
    ctx = Context(dict(lab_auth(state)), check_mode=check, diff_mode=False)
    route = RouteTarget("reviews", ns, **target)
    matches = header_matches(headers or ALICE) if present else None

    def replan() -> None:
        plan_header(ctx, route, "canary-testers", matches, service, present)

    try:
        replan()
        write(ctx, route, replan, 5)
    finally:
        ctx.close()
    return route


def test_testers_reach_the_canary_and_everyone_else_keeps_their_rule(lab_state, kube, reviews):
    original = stored(kube, reviews)
    added = header_rule(lab_state, reviews)
    assert added.patch and added.written is not None
    now = stored(kube, reviews)
    assert [rule.get("name") for rule in now["spec"]["rules"]] == ["testers", "canary-testers", "primary"]
    assert served_by(now, reviews, ALICE) == "reviews-v2"
    assert served_by(now, reviews, {"end-user": "jason"}) == "reviews-v3"
    assert served_by(now, reviews, {}) == "reviews-v1"
    # The other rules, parentRefs, labels and annotations are exactly as they were.
    kept = copy.deepcopy(now)
    del kept["spec"]["rules"][1]
    for key in ("resourceVersion", "generation", "managedFields"):
        kept["metadata"].pop(key, None)
        original["metadata"].pop(key, None)
    assert kept == original


def test_a_repeat_writes_nothing_though_the_server_filled_in_defaults(lab_state, kube, reviews, audit):
    header_rule(lab_state, reviews)
    before = stored(kube, reviews)
    window = audit()
    again = header_rule(lab_state, reviews)
    assert again.patch == [] and window.writes() == []
    assert stored(kube, reviews)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_removing_the_rule_restores_the_route(lab_state, kube, reviews):
    original = stored(kube, reviews)
    header_rule(lab_state, reviews)
    removed = header_rule(lab_state, reviews, service=None, present=False)
    assert removed.after == {"routes": ["testers", "primary"]}
    now = stored(kube, reviews)
    assert now["spec"] == original["spec"]
    assert served_by(now, reviews, ALICE) == "reviews-v1"
    assert header_rule(lab_state, reviews, service=None, present=False).patch == []


def test_a_regex_cookie_match_routes_as_gateway_api_reads_it(lab_state, kube, reviews):
    header_rule(lab_state, reviews, headers={"cookie": {"regex": "^(.*?;)?(user=alice)(;.*)?$"}})
    now = stored(kube, reviews)
    assert served_by(now, reviews, {"cookie": "user=alice; theme=dark"}) == "reviews-v2"
    assert served_by(now, reviews, {"cookie": "user=bob"}) == "reviews-v1"


def test_check_mode_stores_nothing(lab_state, kube, reviews, audit):
    before = stored(kube, reviews)
    window = audit()
    planned = header_rule(lab_state, reviews, check=True)
    assert planned.after["routes"][1] == "canary-testers"
    assert [e for e in window.writes() if "dryRun=All" not in e["requestURI"]] == []
    assert stored(kube, reviews) == before


@pytest.mark.parametrize("service,fragment", [
    ("reviews-v4", "no Service 'reviews-v4' exists"),
    ("reviews-v3", "no ready endpoints"),
])
def test_a_backend_service_missing_or_not_ready_is_refused_without_a_write(
        lab_state, kube, reviews, audit, service, fragment):
    before = stored(kube, reviews)
    window = audit()
    with pytest.raises(ModuleFailure) as refused:
        header_rule(lab_state, reviews, service=service)
    assert fragment in refused.value.msg and "canary-testers" in refused.value.msg
    assert window.writes() == [] and stored(kube, reviews) == before
