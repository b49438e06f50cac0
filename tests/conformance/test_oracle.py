"""The oracle against what Istio publishes: its samples' stated splits, its docs' comments, its tests' verdicts."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from tests.conformance import corpus, oracle
from tests.conformance.oracle import Request

pytestmark = pytest.mark.unit

NS = corpus.SAMPLE_NAMESPACE
JASON = Request(headers={"end-user": "jason"})
ANYONE = Request()


def fqdn(name: str, namespace: str = NS) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def only_vs(name: str, vs_name: str | None = None) -> dict:
    found = [vs for vs in corpus.sample_objects(corpus.sample(name), "VirtualService")
             if vs_name is None or vs["metadata"]["name"] == vs_name]
    assert len(found) == 1, (name, vs_name, found)
    return found[0]


# ---------------------------------------------------------------- every vendored object


@pytest.mark.parametrize("item", corpus.samples(), ids=lambda s: s.label)
def test_istio_accepts_every_published_example(item: corpus.Sample) -> None:
    for obj in item.objects:
        assert oracle.validation_errors(obj) == [], (item.id, obj["metadata"]["name"])


@pytest.mark.parametrize("case", corpus.validation_cases(), ids=lambda c: c.id)
def test_verdict_of_each_upstream_validation_case(case: corpus.ValidationCase) -> None:
    errors = oracle.validation_errors(case.object)
    assert (not errors) is case.valid, (case.source, errors)
    if case.message:
        assert any(case.message in error for error in errors), (case.message, errors)


@pytest.mark.parametrize("item", [s for s in corpus.samples() if s.virtual_services], ids=lambda s: s.label)
def test_every_http_route_splits_all_of_its_traffic(item: corpus.Sample) -> None:
    for vs in corpus.sample_objects(item, "VirtualService"):
        for index, shares in enumerate(oracle.http_route_shares(vs)):
            route = vs["spec"]["http"][index]
            if oracle.route_action(route) == "route":
                assert sum(shares.values()) == 1 and all(share > 0 for share in shares.values())
            else:
                assert shares == {}


# ---------------------------------------------------------------- what the Bookinfo samples say they do


@pytest.mark.parametrize(("sample", "expected"), [
    ("virtual-service-reviews-90-10", {"v1": Fraction(9, 10), "v2": Fraction(1, 10)}),
    ("virtual-service-reviews-80-20", {"v1": Fraction(4, 5), "v2": Fraction(1, 5)}),
    ("virtual-service-reviews-50-v3", {"v1": Fraction(1, 2), "v3": Fraction(1, 2)}),
    ("virtual-service-reviews-v2-v3", {"v2": Fraction(1, 2), "v3": Fraction(1, 2)}),
    ("virtual-service-reviews-v3", {"v3": Fraction(1)}),
])
def test_reviews_splits_named_in_the_sample_file_names(sample: str, expected: dict[str, Fraction]) -> None:
    shares = oracle.http_route_shares(only_vs(sample))
    assert shares == [{(fqdn("reviews"), subset): share for subset, share in expected.items()}]


def test_all_v1_sends_every_service_to_v1() -> None:
    for vs in corpus.sample_objects(corpus.sample("virtual-service-all-v1"), "VirtualService"):
        service = vs["metadata"]["name"]
        assert oracle.route_request(vs, Request(authority=service)).shares == {(fqdn(service), "v1"): 1}


@pytest.mark.parametrize(("sample", "jason", "others"), [
    ("virtual-service-reviews-test-v2", "v2", "v1"),
    ("virtual-service-reviews-jason-v2-v3", "v2", "v3"),
])
def test_jason_samples_route_jason_apart(sample: str, jason: str, others: str) -> None:
    vs = only_vs(sample)
    assert oracle.route_request(vs, JASON) == oracle.Answer(0, "route", {(fqdn("reviews"), jason): 1})
    assert oracle.route_request(vs, ANYONE) == oracle.Answer(1, "route", {(fqdn("reviews"), others): 1})


@pytest.mark.parametrize("sample", ["virtual-service-ratings-test-abort", "virtual-service-ratings-test-delay"])
def test_fault_samples_single_out_jason_by_route_not_by_destination(sample: str) -> None:
    vs = only_vs(sample)
    assert oracle.route_request(vs, JASON).route_index == 0
    assert oracle.route_request(vs, ANYONE).route_index == 1
    assert oracle.route_request(vs, JASON).shares == oracle.route_request(vs, ANYONE).shares == {
        (fqdn("ratings"), "v1"): 1}


# ---------------------------------------------------------------- what the API reference says


def _interpreted_as_comments() -> list[tuple[str, str, str, str]]:
    """(sample label, host as written, namespace, what the comment says it means) from the examples."""
    found = []
    for item in corpus.samples():
        namespace = next((o.get("metadata", {}).get("namespace") for o in item.objects), None) or NS
        for line in item.path.read_text(encoding="utf-8").splitlines():
            match = re.search(r"(?:host:|-)\s*(\S+)\s*#\s*interpreted as (\S+)", line)
            if match:
                found.append((item.label, match.group(1), namespace, match.group(2)))
            match = re.search(r"-\s*(\S+)\s*#\s*ignores rule namespace", line)
            if match:
                found.append((item.label, match.group(1), namespace, match.group(1)))
    return found


@pytest.mark.parametrize(("label", "written", "namespace", "meant"), _interpreted_as_comments(),
                         ids=lambda value: value if isinstance(value, str) and "." not in value else None)
def test_short_names_as_the_reference_comments_read_them(label: str, written: str, namespace: str,
                                                         meant: str) -> None:
    assert oracle.resolve_shortname(written, namespace) == meant


def test_the_reference_comments_were_found() -> None:
    # virtual_service.proto: L0255 (VirtualService) and L0284 (DestinationRule) spell out
    # reviews -> reviews.foo.svc.cluster.local; L0311 keeps an FQDN although it lives in istio-system.
    assert {(label, meant) for label, _first, _second, meant in _interpreted_as_comments()} >= {
        ("virtual_service:L0255", "reviews.foo.svc.cluster.local"),
        ("virtual_service:L0284", "reviews.foo.svc.cluster.local"),
        ("virtual_service:L0311", "productpage.prod.svc.cluster.local")}


@pytest.mark.parametrize("label", ["virtual_service:L0584", "virtual_service:L0881"])
def test_reference_25_75_split(label: str) -> None:
    vs = next(corpus.sample_objects(next(s for s in corpus.samples() if s.label == label), "VirtualService"))
    host = "reviews.prod.svc.cluster.local"
    assert oracle.http_route_shares(vs) == [{(host, "v2"): Fraction(1, 4), (host, "v1"): Fraction(3, 4)}]


def test_hosts_with_a_dot_are_taken_literally() -> None:
    vs = next(corpus.sample_objects(next(s for s in corpus.samples() if s.label == "virtual_service:L0923")))
    assert oracle.http_route_shares(vs) == [{("dev.reviews.com", None): Fraction(1, 4),
                                             ("reviews.com", None): Fraction(3, 4)}]
    assert oracle.resolve_shortname("reviews.prod", "foo") == "reviews.prod"


@pytest.mark.parametrize(("label", "action"), [
    ("virtual_service:L1060", "redirect"), ("virtual_service:L1081", "redirect"),
    ("virtual_service:L1152", "directResponse"), ("virtual_service:L1174", "directResponse"),
    ("virtual_service:L1197", "directResponse"), ("virtual_service:L0512", "delegate"),
])
def test_routes_that_answer_themselves_send_nowhere(label: str, action: str) -> None:
    vs = next(corpus.sample_objects(next(s for s in corpus.samples() if s.label == label), "VirtualService"))
    assert {oracle.route_action(route) for route in vs["spec"]["http"]} == {action}
    assert all(shares == {} for shares in oracle.http_route_shares(vs))


def test_delegates_without_hosts_are_accepted() -> None:
    delegates = [vs for s in corpus.samples() for vs in s.virtual_services if not vs["spec"].get("hosts")]
    assert [vs["metadata"]["name"] for vs in delegates] == ["productpage", "reviews"]
    assert all(oracle.accepts(vs) for vs in delegates)


# ---------------------------------------------------------------- first match (analyzer test data)


def test_unreachable_rules_as_istios_analyzer_test_expects() -> None:
    # istio/istio pkg/config/analysis/analyzers/analyzers_test.go, case "dupmatches": the
    # VirtualServiceUnreachableRule messages name exactly these objects.
    item = corpus.sample("virtualservice_dupmatches")
    unreachable = {vs["metadata"]["name"] for vs in item.virtual_services if oracle.unreachable_rules(vs)}
    assert unreachable == {"duplicate-match", "sample-foo-cluster01", "duplicate-tcp-match",
                           "duplicate-empty-tcp", "tls-routing"}


def test_a_header_route_below_a_catch_all_never_takes_effect() -> None:
    case = next(c for c in corpus.validation_cases() if c.id == "http-header-route-below-catch-all")
    vs = corpus.with_namespace(case.object, NS)
    assert oracle.unreachable_rules(vs) == [("http", 1, "route without matches defined before")]
    assert oracle.route_request(vs, JASON) == oracle.Answer(0, "route", {(fqdn("reviews"), "v1"): 1})


# ---------------------------------------------------------------- weights read as route.go reads them


def test_a_lone_destination_takes_everything_whatever_its_weight() -> None:
    for weight in (None, 0, 10, 100, 250):
        entry = {"destination": {"host": "reviews", "subset": "v1"}}
        if weight is not None:
            entry["weight"] = weight
        assert oracle.destination_shares([entry], NS) == {(fqdn("reviews"), "v1"): 1}


def test_weights_are_relative_and_zero_weights_drop_out() -> None:
    route = [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 3},
             {"destination": {"host": "reviews", "subset": "v2"}, "weight": 1},
             {"destination": {"host": "reviews", "subset": "v3"}}]
    assert oracle.destination_shares(route, NS) == {(fqdn("reviews"), "v1"): Fraction(3, 4),
                                                    (fqdn("reviews"), "v2"): Fraction(1, 4)}


@pytest.mark.parametrize("weights", [(5, -1), (0, 0), (0, None)])
def test_what_istiod_refuses_has_no_shares(weights: tuple) -> None:
    route = [{"destination": {"host": "reviews", "subset": f"v{i}"}, **({"weight": w} if w is not None else {})}
             for i, w in enumerate(weights, start=1)]
    with pytest.raises(ValueError, match=r"< 0|total destination weight = 0"):
        oracle.destination_shares(route, NS)


# ---------------------------------------------------------------- DestinationRule lookup (push_context.go)


def _rule(namespace: str, host: str, subset: str) -> dict:
    return {"kind": "DestinationRule", "metadata": {"name": f"{namespace}-{subset}", "namespace": namespace},
            "spec": {"host": host, "subsets": [{"name": subset, "labels": {"version": subset}}]}}


def test_destination_rule_lookup_order() -> None:
    service = fqdn("reviews", "books")
    client_rule = _rule("shop", "reviews.books.svc.cluster.local", "client")
    service_rule = _rule("books", "reviews", "service")
    root_rule = _rule("istio-system", "*.books.svc.cluster.local", "root")
    rules = [root_rule, service_rule, client_rule]
    assert oracle.destination_rule_for(service, "shop", "books", rules) is client_rule
    assert oracle.destination_rule_for(service, "other", "books", rules) is service_rule
    assert oracle.destination_rule_for(service, "other", "books", [root_rule, client_rule]) is root_rule
    # A short host in a DestinationRule is read in the rule's own namespace, not the client's.
    assert oracle.destination_rule_for(service, "shop", "books", [_rule("shop", "reviews", "x")]) is None
