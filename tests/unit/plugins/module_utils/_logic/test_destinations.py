"""A destination is its resolved host plus its subset (issue 28): properties over random routes.

The judge is ``tests/conformance/oracle.py`` (Istio's route.go reading, written from Istio's code and
importing nothing of ours): entries for one (host, subset) add up, a lone entry takes everything,
weights are relative, short names resolve in the VirtualService's namespace.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import validate_destination_key
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import plan_route_weights, route_weights
from tests.conformance import oracle

pytestmark = pytest.mark.unit

NAMESPACE = "bookinfo"
# Two spellings of one service, another namespace's service of the same name, and another service.
HOST_SPELLINGS = ["reviews", "reviews.bookinfo.svc.cluster.local", "reviews.staging.svc.cluster.local", "ratings"]
SUBSETS = ["v1", "v2", "v3", "V4", None]


@st.composite
def routes(draw):
    entries = []
    for _entry in range(draw(st.integers(1, 6))):
        destination = {"host": draw(st.sampled_from(HOST_SPELLINGS))}
        subset = draw(st.sampled_from(SUBSETS))
        if subset:
            destination["subset"] = subset
        entry = {"destination": destination}
        weight = draw(st.one_of(st.none(), st.integers(0, 100)))
        if weight is not None:
            entry["weight"] = weight
        entries.append(entry)
    # Istio refuses several destinations whose weights total 0 (validateHTTPRouteDestinations).
    assume(len(entries) == 1 or sum(entry.get("weight") or 0 for entry in entries) > 0)
    return {"name": "primary", "route": entries}


def expected_key(route, fqdn, subset):
    """The documented key: subset on a one-host route, else 'host:subset'; the host itself without subset;
    hosts spelled as the route first spells them."""
    spelling = {}
    for entry in route["route"]:
        spelling.setdefault(oracle.resolve_shortname(entry["destination"]["host"], NAMESPACE),
                            entry["destination"]["host"])
    if subset is None:
        return spelling[fqdn]
    return subset if len(spelling) == 1 and subset != spelling[fqdn] else f"{spelling[fqdn]}:{subset}"


def host_totals(shares):
    totals = {}
    for (host, _subset), share in shares.items():
        totals[host] = totals.get(host, Fraction(0)) + share
    return totals


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(routes())
def test_readings_equal_istios(route):
    ours = route_weights(route, Hosts(NAMESPACE))
    istio = oracle.destination_shares(route["route"], NAMESPACE)
    expected = {expected_key(route, host, subset): share * 100 for (host, subset), share in istio.items()}
    # Weight-0 destinations are listed with 0 (the oracle leaves them out, as Envoy does).
    assert {key: value for key, value in ours.items() if value} == pytest.approx(
        {key: float(value) for key, value in expected.items()}, abs=0.0051)  # two decimals
    assert all(value == 0 for key, value in ours.items() if key not in expected)
    assert ours, "a valid route is never read as no route"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(routes(), st.data())
def test_a_split_never_changes_what_another_host_receives(route, data):
    hosts = Hosts(NAMESPACE)
    routed = list(dict.fromkeys(oracle.resolve_shortname(e["destination"]["host"], NAMESPACE) for e in route["route"]))
    moved = data.draw(st.sampled_from(routed))
    spelled = next(e["destination"]["host"] for e in route["route"]
                   if oracle.resolve_shortname(e["destination"]["host"], NAMESPACE) == moved)
    names = data.draw(st.lists(st.sampled_from(["v1", "v2", "v3", "V4"]), min_size=1, max_size=3, unique=True))
    cuts = sorted(data.draw(st.lists(st.integers(0, 100), min_size=len(names) - 1, max_size=len(names) - 1)))
    values = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    weights = dict(zip(names, values, strict=True))
    try:
        planned = plan_route_weights(route, spelled, weights, remove_unnamed=True, hosts=hosts)
    except CanaryInputError as error:
        # The only refusals: the moved host gets nothing today, or it repeats a destination with other fields.
        assert "sends nothing to" in str(error) or "twice" in str(error), error
        return
    before = oracle.destination_shares(route["route"], NAMESPACE)
    after = oracle.destination_shares(planned["route"], NAMESPACE)
    totals_before, totals_after = host_totals(before), host_totals(after)
    for host, total in totals_before.items():
        if host != moved:
            assert totals_after.get(host, Fraction(0)) == total, (host, route, planned)
    # Entries of other hosts are kept exactly, in order.
    kept = [e for e in route["route"] if oracle.resolve_shortname(e["destination"]["host"], NAMESPACE) != moved]
    assert [e for e in planned["route"]
            if oracle.resolve_shortname(e["destination"]["host"], NAMESPACE) != moved] == kept
    # Within the moved host, each named subset gets its weight's part of the host's share (to one unit of
    # the host's integer weight when other hosts receive traffic; exactly when none do).
    if len(routed) == 1 or set(totals_before) == {moved}:
        assert {subset: share * 100 for (_host, subset), share in after.items()} == {
            name: weight for name, weight in weights.items() if weight}
    moved_total = totals_after.get(moved, Fraction(0))
    for name, weight in weights.items():
        share = after.get((moved, name), Fraction(0))
        if moved_total:
            assert abs(share / moved_total - Fraction(weight, 100)) <= Fraction(1, 2), (name, route, planned)


@pytest.mark.parametrize("key", ["v2", "V2", "reviews", "reviews.staging.svc.cluster.local",
                                 "reviews.staging.svc.cluster.local:v2", "reviews:V2"])
def test_weights_keys_name_a_subset_a_host_or_both(key):
    assert validate_destination_key(key) == key


@pytest.mark.parametrize("key", ["v2.1:", ":v2", "reviews:v2.1", "v2_1", "-v2", "", "a" * 64, 3])
def test_bad_weights_keys_are_refused_naming_the_rule(key):
    with pytest.raises(CanaryInputError) as caught:
        validate_destination_key(key, "destination in weights")
    assert "subset name" in str(caught.value) or "host name" in str(caught.value)
