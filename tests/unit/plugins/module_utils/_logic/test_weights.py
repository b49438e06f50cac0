# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ratios, weights we write (integers summing to 100), and weights read from a route."""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    canary_weights,
    plan_route_weights,
    route_weights,
    split_weights,
    validate_ratio,
    validate_weights,
)
from tests.unit.plugins.module_utils._logic.strategies import new_weights, virtual_services
from tests.unit.plugins.module_utils._logic.support import bookinfo_vs, dest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (30, 30), (100, 100), ("30", 30), (" 30 ", 30), ("+7", 7), (50.0, 50), ("50.0", 50), ("0", 0)],
)
def test_validate_ratio_accepts_whole_percentages(value, expected):
    assert validate_ratio(value) == expected
    result = validate_ratio(value)
    assert isinstance(result, int) and not isinstance(result, bool)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        50.5,
        "50.5",
        "abc",
        "",
        "   ",
        None,
        -1,
        101,
        150,
        "-1",
        "101",
        float("nan"),
        float("inf"),
        [30],
        {"ratio": 30},
        "3 0",
        "1e2",
        "9" * 5000,
    ],
)
def test_validate_ratio_refuses_with_value_and_rule(value):
    with pytest.raises(CanaryInputError) as caught:
        validate_ratio(value)
    message = str(caught.value)
    assert "is not an integer between 0 and 100" in message
    assert message.startswith("ratio ")
    shown = repr(value)
    assert shown[:40] in message


def test_validate_ratio_message_exact_for_text():
    with pytest.raises(CanaryInputError, match=r"^ratio 'abc' is not an integer between 0 and 100; give"):
        validate_ratio("abc")


def test_canary_weights_default_and_named():
    assert canary_weights(30) == {"base": 70, "canary": 30}
    assert canary_weights("0", "v1", "v2") == {"v1": 100, "v2": 0}
    assert list(canary_weights(100, base="v1", canary="v2").items()) == [("v1", 0), ("v2", 100)]


def test_canary_weights_refuses_same_subset_and_bad_names():
    with pytest.raises(CanaryInputError, match="both 'v1'"):
        canary_weights(10, "v1", "v1")
    with pytest.raises(CanaryInputError, match="'-bad'"):
        canary_weights(10, "-bad", "v2")
    with pytest.raises(CanaryInputError, match="ratio 101"):
        canary_weights(101, "v1", "v2")


def test_split_weights_examples():
    assert split_weights({"v1": 1, "v2": 1, "v3": 1}) == {"v1": 34, "v2": 33, "v3": 33}
    assert split_weights([1, 1, 1]) == [34, 33, 33]
    assert split_weights([2, 1]) == [67, 33]
    assert split_weights({"a": 0, "b": 5}) == {"a": 0, "b": 100}
    assert split_weights(["0.5", "1.5"]) == [25, 75]
    assert split_weights([1] * 7) == [15, 15, 14, 14, 14, 14, 14]


def test_split_weights_ties_go_to_earlier_entries_in_input_order():
    assert split_weights({"z": 1, "a": 1, "m": 1}) == {"z": 34, "a": 33, "m": 33}
    assert list(split_weights({"z": 1, "a": 1}).keys()) == ["z", "a"]


@pytest.mark.parametrize(
    ("shares", "fragment"),
    [
        ({}, "are empty"),
        ([], "are empty"),
        ({"v1": 0, "v2": 0}, "are all zero"),
        ({"v1": -1}, "share of 'v1' -1"),
        ([1, float("nan")], "share #1 nan"),
        ([float("inf")], "share #0 inf"),
        ([True], "share #0 True"),
        (["abc"], "share #0 'abc'"),
        ({"": 1}, "share name ''"),
        ("v1=1", "neither a mapping nor a list"),
        (None, "neither a mapping nor a list"),
    ],
)
def test_split_weights_refuses(shares, fragment):
    with pytest.raises(CanaryInputError) as caught:
        split_weights(shares)
    assert fragment in str(caught.value)


finite_shares = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)


@given(
    st.dictionaries(
        st.text(alphabet="abcxyz019-_.", min_size=1, max_size=8), finite_shares, min_size=1, max_size=12
    )
)
def test_split_weights_sums_to_100_and_stays_within_one_of_exact(shares):
    assume(any(value > 0 for value in shares.values()))
    weights = split_weights(shares)
    assert list(weights) == list(shares)
    assert sum(weights.values()) == 100
    total = sum(Fraction(value) for value in shares.values())
    for name, value in shares.items():
        exact = Fraction(value) * 100 / total
        assert abs(weights[name] - exact) < 1
        assert isinstance(weights[name], int) and not isinstance(weights[name], bool)


@given(st.lists(finite_shares, min_size=1, max_size=20))
def test_split_weights_list_is_deterministic_and_sums_to_100(shares):
    assume(any(value > 0 for value in shares))
    first = split_weights(shares)
    assert first == split_weights(list(shares))
    assert sum(first) == 100
    assert all(weight >= 0 for weight in first)


def test_validate_weights_normalises_int_like_strings():
    assert validate_weights({"v1": "90", "v2": 10}) == {"v1": 90, "v2": 10}
    assert validate_weights({"v1": 100}) == {"v1": 100}
    assert validate_weights({"canary-1-2": 0, "v1": 100}) == {"canary-1-2": 0, "v1": 100}


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({}, "name no subset"),
        ({"v1": 50, "v2": 40}, "sum to 90, not 100"),
        ({"v1": 50, "v2": 60}, "sum to 110, not 100"),
        ({"v1": True, "v2": 99}, "weight of subset 'v1' True is not an integer between 0 and 100"),
        ({"v1": 50.5, "v2": 49.5}, "weight of subset 'v1' 50.5"),
        ({"v1": "ninety", "v2": 10}, "weight of subset 'v1' 'ninety'"),
        ({"v1": 101, "v2": -1}, "weight of subset 'v1' 101"),
        ({"": 100}, "subset name in weights '' is not a valid subset name"),
        ({"-v1": 100}, "'-v1' is not a valid subset name"),
        ({"v1-": 100}, "'v1-' is not a valid subset name"),
        ({"a" * 64: 100}, "is not a valid subset name"),
        ({"v 1": 100}, "'v 1'"),
        ({1: 100}, "subset name in weights 1"),
        ([("v1", 100)], "is not a mapping"),
        ("v1", "weights 'v1' is not a mapping"),
    ],
)
def test_validate_weights_refuses(weights, fragment):
    with pytest.raises(CanaryInputError) as caught:
        validate_weights(weights)
    assert fragment in str(caught.value)


def test_route_weights():
    vs = bookinfo_vs()
    assert route_weights(vs["spec"]["http"][1]) == {"v1": 90, "v2": 10}
    assert route_weights(vs["spec"]["http"][0]) == {"v3": 100}
    assert route_weights({"route": [{"destination": {"host": "reviews"}}]}) == {"reviews": 100}
    assert route_weights({"route": [dest("v1", 100), dest("v2")]}) == {"v1": 100, "v2": 0}
    assert route_weights({"route": []}) == {}


def test_route_weights_adds_up_duplicates_and_refuses_junk():
    # route.go: each entry is a weighted cluster; two for the same host and subset both go to v1.
    assert route_weights({"route": [dest("v1", 50), dest("v1", 50)]}) == {"v1": 100}
    with pytest.raises(CanaryInputError, match="weight of destination 'v1' 'x'"):
        route_weights({"route": [dest("v1", "x")]})
    with pytest.raises(CanaryInputError, match="has no 'destination' mapping"):
        route_weights({"route": [{"weight": 100}]})


def test_plan_route_weights_keeps_everything_but_weights():
    vs = bookinfo_vs()
    before = copy.deepcopy(vs)
    route = vs["spec"]["http"][1]
    planned = plan_route_weights(route, "reviews", {"v1": 30, "v2": 70})
    assert vs == before, "input must not be mutated"
    assert planned["retries"] == route["retries"]
    assert planned["fault"] == route["fault"]
    assert planned["route"] == [
        dest("v1", 30, destination_extra={"port": {"number": 9080}}, headers={"request": {}}),
        dest("v2", 70, destination_extra={"port": {"number": 9080}}),
    ]


def test_plan_route_weights_appends_new_subset_with_host_and_port():
    route = {
        "route": [
            {
                "destination": {
                    "host": "reviews.bookinfo.svc.cluster.local",
                    "subset": "v1",
                    "port": {"number": 9080},
                }
            }
        ]
    }
    planned = plan_route_weights(route, "reviews", {"v1": 80, "v2": 20}, hosts=Hosts("bookinfo"))
    assert planned["route"] == [
        {
            "destination": {
                "host": "reviews.bookinfo.svc.cluster.local",
                "subset": "v1",
                "port": {"number": 9080},
            },
            "weight": 80,
        },
        {
            "destination": {
                "host": "reviews.bookinfo.svc.cluster.local",
                "subset": "v2",
                "port": {"number": 9080},
            },
            "weight": 20,
        },
    ]


def test_plan_route_weights_uses_host_argument_for_an_empty_route():
    planned = plan_route_weights({"name": "r"}, "reviews", {"v1": 100})
    assert planned == {
        "name": "r",
        "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}],
    }


def test_plan_route_weights_keeps_weight_zero_and_explicit_100():
    route = {"route": [dest("v1", 50), dest("v2", 50)]}
    planned = plan_route_weights(route, "reviews", {"v1": 0, "v2": 100})
    assert planned["route"] == [dest("v1", 0), dest("v2", 100)]
    single = plan_route_weights({"route": [dest("v1")]}, "reviews", {"v1": 100})
    assert single["route"] == [dest("v1", 100)]


def test_plan_route_weights_unnamed_destinations():
    route = {"route": [dest("v1", 80), dest("v3", 10), dest("v2", 10)]}
    with pytest.raises(CanaryInputError) as caught:
        plan_route_weights(route, "reviews", {"v1": 50, "v2": 50})
    assert "['v3']" in str(caught.value)
    assert "remove_unnamed" in str(caught.value)
    planned = plan_route_weights(route, "reviews", {"v2": 50, "v1": 50}, remove_unnamed=True)
    assert planned["route"] == [dest("v1", 50), dest("v2", 50)]


def test_plan_route_weights_refuses_bad_weights_and_duplicates():
    with pytest.raises(CanaryInputError, match="sum to 90"):
        plan_route_weights({"route": [dest("v1")]}, "reviews", {"v1": 90})
    # Entries repeating a destination with the same fields are one destination: merged into the first.
    assert plan_route_weights({"route": [dest("v1", 50), dest("v1", 50)]}, "reviews", {"v1": 90, "v2": 10})[
        "route"] == [dest("v1", 90), dest("v2", 10)]
    # With different fields one weight cannot be written for both.
    with pytest.raises(CanaryConflictError, match="twice"):
        plan_route_weights({"route": [dest("v1", 50), dest("v1", 50, headers={"request": {}})]}, "reviews",
                           {"v1": 100})


# The VirtualService strategy is large; on a busy machine generation alone can exceed the default budget.
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(virtual_services(), new_weights())
def test_plan_without_remove_unnamed_refuses_exactly_when_a_subset_is_left_out(vs, weights):
    index = find_http_route(vs, "reviews")
    route = vs["spec"]["http"][index]
    hosts = hosts_of(vs)
    left_out = [key for key in route_weights(route, hosts) if key not in weights]
    if left_out:
        with pytest.raises(CanaryInputError) as caught:
            plan_route_weights(route, "reviews", weights, hosts=hosts)
        assert repr(left_out) in str(caught.value)
    else:
        planned = plan_route_weights(route, "reviews", weights, hosts=hosts)
        assert route_weights(planned, hosts) == weights


# --------------------------------------------------------------------------------------
# reading weights as Istio routes them
#
# istio/api networking/v1alpha3/virtual_service.proto, HTTPRouteDestination.weight: "Weight
# specifies the relative proportion of traffic to be forwarded to the destination. A destination
# will receive weight/(sum of all weights) requests. If there is only one destination in a rule,
# it will receive all traffic. Otherwise, if weight is 0, the destination will not receive any
# traffic." istio/istio pilot/pkg/networking/core/route/route.go: one destination -> a single
# cluster (its weight is not used); several -> weighted clusters, weight-0 ones skipped.


@pytest.mark.parametrize(
    ("route", "shares"),
    [
        ({"route": [dest("v1", 900), dest("v2", 100)]}, {"v1": 90, "v2": 10}),
        ({"route": [dest("v1", 0)]}, {"v1": 100}),
        ({"route": [dest("v1", 7)]}, {"v1": 100}),
        ({"route": [dest("v1", 1), dest("v2", 1), dest("v3", 1)]}, {"v1": 33.33, "v2": 33.33, "v3": 33.33}),
        ({"route": [dest("v1", 3), dest("v2")]}, {"v1": 100, "v2": 0}),
        ({"route": [dest("v1", 70), dest("v2", 30)]}, {"v1": 70, "v2": 30}),
    ],
)
def test_route_weights_reads_shares_as_istio_routes_them(route, shares):
    assert route_weights(route) == shares


def test_route_weights_refuses_what_istio_rejects():
    # pkg/config/validation/validation.go: validateWeight (weight < 0) and
    # validateHTTPRouteDestinations ("total destination weight = 0" with several destinations).
    with pytest.raises(CanaryInputError, match="-1"):
        route_weights({"route": [dest("v1", -1), dest("v2", 1)]})
    with pytest.raises(CanaryInputError, match="sum to 0"):
        route_weights({"route": [dest("v1", 0), dest("v2", 0)]})


# --------------------------------------------------------------------------------------
# routes that must not carry weights
#
# istio/istio pkg/config/validation/virtualservice.go validateHTTPRouteConflict: a root route
# with delegate "must not specify route"; "HTTP route cannot contain both route and redirect";
# "... both route and direct_response".


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("delegate", {"name": "reviews-delegate", "namespace": "team"}, "delegates to another VirtualService"),
        ("redirect", {"uri": "/v2"}, "redirects"),
        ("directResponse", {"status": 503}, "answers directly"),
    ],
)
def test_plan_route_weights_refuses_routes_without_destinations(field, value, fragment):
    route = {"name": "legacy", field: value}
    with pytest.raises(CanaryInputError) as caught:
        plan_route_weights(route, "reviews", {"v1": 90, "v2": 10})
    assert fragment in str(caught.value) and "'legacy'" in str(caught.value)
    assert "validateHTTPRouteConflict" in str(caught.value)
    assert route == {"name": "legacy", field: value}


def test_a_destination_without_subset_is_named_as_a_host_not_a_missing_subset():
    route = {"route": [{"destination": {"host": "reviews"}}]}
    with pytest.raises(CanaryInputError) as caught:
        plan_route_weights(route, "reviews", {"v1": 90, "v2": 10})
    message = str(caught.value)
    assert "host 'reviews' with no subset" in message and "not a missing subset" in message
    assert "remove_unnamed" in message
