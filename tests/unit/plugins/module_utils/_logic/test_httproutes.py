"""HTTPRoute splits (issue 24, section 2): the pure logic against what Istio and Gateway API publish.

Expected values come from upstream: Istio's Gateway API Bookinfo samples
(``samples/bookinfo/gateway-api/route-reviews-*.yaml``, vendored under tests/conformance/upstream) and
``bookinfo-versions.yaml``; shares are computed here from Gateway API's text for ``weight``
("weight / sum of all weights in this BackendRefs list", default 1), not by the code under test.
"""

from __future__ import annotations

import copy
import re
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import (
    build_rule_patch,
    build_rules_patch,
    find_rule,
    header_matches,
    header_rule_port,
    per_version_service,
    plan_header_rule,
    plan_rule_backends,
    remove_header_rule,
    rule_shares,
)
from tests.conformance import corpus
from tests.unit.plugins.module_utils._logic.support import apply_patch

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


# ---------------------------------------------------------------------------------------------- header rules

def crd_defaults():
    """The defaults Gateway API's vendored HTTPRoute CRD (v1) gives a rule's matches and a header match."""
    import yaml

    from tests.helpers.collection import REPO_ROOT

    crd = yaml.safe_load((REPO_ROOT / "lab/crds/gateway-api/gateway.networking.k8s.io_httproutes.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    rule = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]["items"]["properties"]
    header = rule["matches"]["items"]["properties"]["headers"]["items"]["properties"]
    return rule["matches"]["default"], header["type"]["default"]


def as_server_stores(rule: dict) -> dict:
    """A rule with the CRD's defaults filled in, as the API server stores it (backendRef kind defaults to
    Service; group's default "" is dropped by the lab's load-time adaptation, kept by real clusters)."""
    matches_default, header_default = crd_defaults()
    rule = copy.deepcopy(rule)
    rule.setdefault("matches", copy.deepcopy(matches_default))
    for match in rule["matches"]:
        match.setdefault("path", copy.deepcopy(matches_default[0]["path"]))
        for header in match.get("headers", []):
            header.setdefault("type", header_default)
    for ref in rule.get("backendRefs", []):
        ref.setdefault("kind", "Service")
        ref.setdefault("group", "")
        ref.setdefault("weight", 1)
    return rule


def with_testers(route: dict, headers=None, service="reviews-v2") -> list:
    rules, _notes = plan_header_rule(route, "canary-testers", header_matches(headers or {"end-user": "alice"}),
                                     service, header_rule_port(route))
    return rules


def test_a_header_rule_goes_before_the_catch_all_with_the_base_port():
    route = stored("route-reviews-v1")
    rules = with_testers(route)
    assert [r.get("name") for r in rules] == ["canary-testers", None]
    assert rules[0] == {"name": "canary-testers",
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                     "headers": [{"type": "Exact", "name": "end-user", "value": "alice"}]}],
                        "backendRefs": [{"name": "reviews-v2", "port": 9080}]}
    assert rules[1] == route["spec"]["rules"][0]


def test_a_header_rule_as_the_server_stored_it_plans_no_change():
    route = stored("route-reviews-v1")
    rules = with_testers(route)
    route["spec"]["rules"] = [as_server_stores(rule) for rule in rules]
    assert build_rules_patch(route, with_testers(route)) == []
    # Another header value is a change, and only that rule's matches move.
    changed = with_testers(route, {"end-user": "bob"})
    assert changed[1] == route["spec"]["rules"][1]
    assert changed[0]["matches"][0]["headers"][0]["value"] == "bob"


def test_regex_and_exact_forms_map_to_gateway_api_types():
    assert header_matches({"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}, "x-team": {"exact": "qa"}}) == [
        {"path": {"type": "PathPrefix", "value": "/"},
         "headers": [{"type": "RegularExpression", "name": "cookie", "value": "^(.*?;)?(user=jason)(;.*)?$"},
                     {"type": "Exact", "name": "x-team", "value": "qa"}]}]


@pytest.mark.parametrize("headers,message", [
    ({"end user": "alice"}, "header name 'end user' is not an HTTP header name"),
    ({"end-user": {"prefix": "al"}}, "Gateway API has no prefix match for headers"),
    ({"end-user": ""}, "header 'end-user' value '' must be a string of 1 to 4096"),
    ({"End-User": "a", "end-user": "b"}, "name one header twice"),
    ({}, "must name 1 to 16 headers"),
])
def test_bad_headers_are_refused_naming_them(headers, message):
    with pytest.raises(CanaryInputError, match=re.escape(message)):
        header_matches(headers)


def test_a_bad_rule_name_is_refused_with_gateway_apis_rule():
    with pytest.raises(CanaryInputError, match=r"rule name 'Canary_Testers' is not valid .* SectionName"):
        plan_header_rule(stored("route-reviews-v1"), "Canary_Testers", header_matches({"a": "b"}), "reviews-v2", 9080)


def test_a_longer_path_rule_is_named_in_a_note():
    route = stored("route-reviews-v1")
    route["spec"]["rules"].insert(0, {"name": "api", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                                      "backendRefs": [{"name": "reviews-v1", "port": 9080}]})
    _rules, notes = plan_header_rule(route, "canary-testers", header_matches({"end-user": "alice"}), "reviews-v2",
                                     9080)
    assert len(notes) == 1 and "rules[0] ('api')" in notes[0] and "more specific path" in notes[0]


def test_removing_a_header_rule_leaves_the_others():
    route = stored("route-reviews-v1")
    original = copy.deepcopy(route["spec"]["rules"])
    route["spec"]["rules"] = with_testers(route)
    assert remove_header_rule(route, "canary-testers") == original
    assert remove_header_rule(route, "nightly") == route["spec"]["rules"]
