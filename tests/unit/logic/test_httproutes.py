"""HTTPRoute splits (issue 24, section 2): the pure logic against what Istio and Gateway API publish.

Expected values come from upstream: Istio's Gateway API Bookinfo samples
(``samples/bookinfo/gateway-api/route-reviews-*.yaml``, vendored under tests/conformance/upstream) and
``bookinfo-versions.yaml``; shares are computed here from Gateway API's text for ``weight``
("weight / sum of all weights in this BackendRefs list", default 1), not by the code under test.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import (
    build_rule_patch,
    find_rule,
    per_version_service,
    plan_rule_backends,
    rule_shares,
)
from tests.conformance import corpus
from tests.unit.logic.support import apply_patch

pytestmark = pytest.mark.unit

NAMESPACE = "bookinfo"
SAMPLES = "samples/bookinfo/gateway-api"


def stored(sample: str) -> dict:
    """An upstream HTTPRoute as the API server returns it: namespaced, with a resourceVersion."""
    route = corpus.istio_objects(f"{SAMPLES}/{sample}.yaml")[0]
    route["metadata"].update(namespace=NAMESPACE, resourceVersion="7")
    return route


def spec_shares(rule: dict, namespace: str = NAMESPACE) -> dict[tuple, Fraction]:
    """Gateway API's reading: each backend's weight (default 1) over the rule's sum; one backend adds up."""
    raw: dict[tuple, int] = {}
    for ref in rule.get("backendRefs") or []:
        key = (ref.get("group") or "", ref.get("kind") or "Service", ref.get("namespace") or namespace, ref["name"])
        raw[key] = raw.get(key, 0) + ref.get("weight", 1)
    total = sum(raw.values())
    return {key: Fraction(w, total) if total else Fraction(0) for key, w in raw.items()}


def service(name: str) -> tuple:
    return ("", "Service", NAMESPACE, name)


def split(route: dict, weights: dict, **options) -> dict:
    index = find_rule(route, options.pop("route_name", None))
    refs, _notes = plan_rule_backends(route, index, weights, **options)
    return apply_patch(route, build_rule_patch(route, index, refs))


@pytest.mark.parametrize("start,weights,published", [
    ("route-reviews-v1", {"reviews-v1": 90, "reviews-v2": 10}, "route-reviews-90-10"),
    ("route-reviews-v1", {"reviews-v1": 50, "reviews-v3": 50}, "route-reviews-50-v3"),
])
def test_split_writes_the_published_route(start, weights, published):
    after = split(stored(start), weights)
    assert after["spec"] == stored(published)["spec"]
    assert after["metadata"] == stored(start)["metadata"]


def test_promotion_routes_as_the_published_all_to_one_route():
    after = split(stored("route-reviews-50-v3"), {"reviews-v3": 100}, remove_unnamed=True)
    assert spec_shares(after["spec"]["rules"][0]) == spec_shares(stored("route-reviews-v3")["spec"]["rules"][0])


def test_a_split_already_in_place_writes_nothing():
    route = stored("route-reviews-90-10")
    refs, _notes = plan_rule_backends(route, 0, {"reviews-v1": 90, "reviews-v2": 10})
    assert build_rule_patch(route, 0, refs) == []


def test_reading_follows_gateway_api_weights():
    rule = stored("route-reviews-90-10")["spec"]["rules"][0]
    expected = {key[3]: float(share * 100) for key, share in spec_shares(rule).items()}
    assert rule_shares(rule, NAMESPACE) == expected == {"reviews-v1": 90, "reviews-v2": 10}
    lone = stored("route-reviews-v1")["spec"]["rules"][0]
    assert rule_shares(lone, NAMESPACE) == {"reviews-v1": 100}


def test_a_concurrent_edit_fails_the_patch():
    route = stored("route-reviews-v1")
    refs, _notes = plan_rule_backends(route, 0, {"reviews-v1": 90, "reviews-v2": 10})
    ops = build_rule_patch(route, 0, refs)
    edited = copy.deepcopy(route)
    edited["spec"]["rules"][0]["backendRefs"][0]["weight"] = 3
    with pytest.raises(Exception, match="backendRefs"):
        apply_patch(edited, ops)


# ---------------------------------------------------------------- only one rule's weights move

RULE_EXTRAS = st.fixed_dictionaries({}, optional={
    "matches": st.sampled_from([[{"path": {"type": "PathPrefix", "value": "/api"}}],
                                [{"headers": [{"name": "end-user", "value": "jason"}]}]]),
    "filters": st.just([{"type": "RequestHeaderModifier",
                         "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}]),
    "timeouts": st.just({"request": "10s"}),
})
OTHER_BACKENDS = st.lists(st.fixed_dictionaries(
    {"name": st.sampled_from(["mirror", "legacy"]), "port": st.just(9080), "weight": st.integers(0, 50)},
    optional={"namespace": st.just("staging")}), max_size=2)


@st.composite
def routes(draw):
    rules = []
    for index in range(draw(st.integers(1, 3))):
        rule = draw(RULE_EXTRAS)
        rule["name"] = f"rule-{index}"
        refs = [{"name": "reviews-v1", "port": 9080, "weight": draw(st.integers(1, 100))}]
        refs += [ref for ref in draw(OTHER_BACKENDS) if ref.get("namespace") == "staging"]
        rule["backendRefs"] = refs
        rules.append(rule)
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reviews", "namespace": NAMESPACE, "resourceVersion": "9", "labels": {"a": "b"}},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}], "rules": rules}}


@settings(max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(route=routes(), ratio=st.integers(0, 100), data=st.data())
def test_only_the_chosen_rules_backend_weights_change(route, ratio, data):
    index = data.draw(st.integers(0, len(route["spec"]["rules"]) - 1))
    name = route["spec"]["rules"][index]["name"]
    after = split(route, {"reviews-v1": 100 - ratio, "reviews-v2": ratio}, route_name=name)

    assert after["metadata"] == route["metadata"]
    assert after["spec"]["parentRefs"] == route["spec"]["parentRefs"]
    for other, (old, new) in enumerate(zip(route["spec"]["rules"], after["spec"]["rules"], strict=True)):
        if other != index:
            assert new == old
        else:
            assert {k: v for k, v in new.items() if k != "backendRefs"} == {
                k: v for k, v in old.items() if k != "backendRefs"}
    before = spec_shares(route["spec"]["rules"][index])
    now = spec_shares(after["spec"]["rules"][index])
    outside = [key for key in before if key[2] != NAMESPACE]
    # Backends elsewhere keep their share; the Services' share splits as asked.
    for key in outside:
        assert now[key] == before[key]
    services = 1 - sum(before[key] for key in outside)
    assert now.get(service("reviews-v2"), 0) == services * Fraction(ratio, 100)
    assert now.get(service("reviews-v1"), 0) == services * Fraction(100 - ratio, 100)


# ---------------------------------------------------------------- choosing the rule

def test_rule_chosen_by_name_or_as_the_catch_all():
    route = stored("route-reviews-v1")
    jason = {"name": "jason", "matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
             "backendRefs": [{"name": "reviews-v2", "port": 9080}]}
    route["spec"]["rules"].insert(0, jason)
    assert find_rule(route) == 1  # the rule without matches takes every other request
    assert find_rule(route, "jason") == 0
    # As stored by an API server that applies the CRD's default match.
    route["spec"]["rules"][1]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert find_rule(route) == 1


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r["spec"]["rules"].append({"matches": [{"path": {"type": "Exact", "value": "/x"}}]}) or None,
     None),
    (lambda r: r["spec"]["rules"].append({"backendRefs": []}), "2 rules match every request"),
])
def test_ambiguous_rules_are_refused(mutate, message):
    route = stored("route-reviews-v1")
    mutate(route)
    if message is None:
        assert find_rule(route) == 0
        return
    with pytest.raises(CanaryInputError, match=message):
        find_rule(route)


# ---------------------------------------------------------------- bad input, nothing planned

@pytest.mark.parametrize("weights,route_name,message", [
    ({"reviews-v1": 40, "reviews-v2": 70}, None, "sum to 110; they must sum to 100"),
    ({"reviews-v1": 150, "reviews-v2": -50}, None, "weight 150 for 'reviews-v1' is not an integer from 0 to 100"),
    ({"reviews-v1": "abc", "reviews-v2": 10}, None, "'abc' for 'reviews-v1' is not an integer"),
    ({"Reviews_V2": 100}, None, "'Reviews_V2' is not a valid Service name: a Kubernetes Service name is a DNS-1035"),
    ({"reviews-v2": 100}, None, "also sends to Service(s) ['reviews-v1']"),
    ({"reviews-v1": 90, "reviews-v2": 10}, "canary", "no rule named 'canary'"),
])
def test_bad_input_names_value_and_rule(weights, route_name, message):
    route = stored("route-reviews-v1")
    with pytest.raises(CanaryInputError) as raised:
        plan_rule_backends(route, find_rule(route, route_name), weights)
    assert message in str(raised.value)


def test_a_redirecting_rule_is_refused():
    route = stored("route-reviews-v1")
    route["spec"]["rules"][0] = {"filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}]}
    with pytest.raises(CanaryInputError, match="redirects"):
        plan_rule_backends(route, 0, {"reviews-v1": 90, "reviews-v2": 10})


def test_weights_of_other_backends_are_scaled_not_changed_in_share():
    route = stored("route-reviews-v1")
    route["spec"]["rules"][0]["backendRefs"] = [
        {"name": "reviews-v1", "port": 9080, "weight": 1},
        {"name": "reviews", "namespace": "staging", "port": 9080, "weight": 1},
    ]
    refs, notes = plan_rule_backends(route, 0, {"reviews-v1": 90, "reviews-v2": 10})
    shares = spec_shares({"backendRefs": refs})
    assert shares[("", "Service", "staging", "reviews")] == Fraction(1, 2)
    assert shares[service("reviews-v2")] == Fraction(1, 20)
    assert any("multiplied by 100" in note for note in notes)


# ---------------------------------------------------------------- per-version Services

def test_per_version_services_are_those_istio_publishes():
    services = {o["metadata"]["name"]: o for o in corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo.yaml")
                if o["kind"] == "Service"}
    published = [o for o in corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo-versions.yaml")
                 if o["kind"] == "Service"]
    assert len(published) >= 4
    for expected in published:
        app = expected["spec"]["selector"]["app"]
        derived = per_version_service(services[app], expected["spec"]["selector"]["version"])
        assert derived["metadata"]["name"] == expected["metadata"]["name"]
        assert derived["spec"] == expected["spec"]


@pytest.mark.parametrize("change,message", [
    ({"selector": None}, "has no selector"),
    ({"ports": []}, "has no ports"),
])
def test_per_version_service_refuses_what_selects_nothing(change, message):
    reviews = next(o for o in corpus.istio_objects("samples/bookinfo/platform/kube/bookinfo.yaml")
                   if o["kind"] == "Service" and o["metadata"]["name"] == "reviews")
    reviews["spec"].update(change)
    with pytest.raises(CanaryInputError, match=message):
        per_version_service(reviews, "v2")
    with pytest.raises(CanaryInputError, match="not a valid label value"):
        per_version_service(reviews, "v2 beta")
