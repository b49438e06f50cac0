# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Unit and property tests of the pure canary logic (plugins/module_utils/_canary.py)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils import _canary as canary
from ansible_collections.canary.istio.plugins.module_utils._canary import (
    CanaryConflictError,
    CanaryInputError,
)

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------------------
# a tiny RFC 6902 JSON Patch applier, independent of the code under test


class PatchTestFailed(Exception):
    pass


def _pointer_tokens(path):
    assert path.startswith("/"), path
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _resolve(document, tokens):
    for token in tokens:
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


def apply_patch(document, ops):
    """Apply JSON Patch ``ops`` to a deep copy of ``document`` and return it."""
    document = copy.deepcopy(document)
    for op in ops:
        tokens = _pointer_tokens(op["path"])
        parent = _resolve(document, tokens[:-1])
        last = tokens[-1]
        kind = op["op"]
        if kind == "test":
            try:
                current = _resolve(document, tokens)
            except (KeyError, IndexError) as error:
                raise PatchTestFailed(op["path"]) from error
            if current != op["value"]:
                raise PatchTestFailed(op["path"])
        elif kind == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in parent:
                    raise KeyError(op["path"])
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise AssertionError(f"unexpected op {kind}")
    return document


# --------------------------------------------------------------------------------------
# fixtures: Bookinfo-like resources


def dest(subset, weight=None, host="reviews", **extra):
    item = {"destination": {"host": host, "subset": subset}}
    item["destination"].update(extra.pop("destination_extra", {}))
    if weight is not None:
        item["weight"] = weight
    item.update(extra)
    return item


def bookinfo_vs():
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "reviews",
            "namespace": "bookinfo",
            "resourceVersion": "1234",
            "labels": {"app": "reviews"},
            "annotations": {"owner": "team-a"},
        },
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [dest("v3")],
                },
                {
                    "name": "reviews-default",
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "fault": {"delay": {"percentage": {"value": 0.1}, "fixedDelay": "5s"}},
                    "route": [
                        dest("v1", 90, destination_extra={"port": {"number": 9080}}, headers={"request": {}}),
                        dest("v2", 10, destination_extra={"port": {"number": 9080}}),
                    ],
                },
            ],
        },
    }


# --------------------------------------------------------------------------------------
# validate_ratio / canary_weights


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (30, 30), (100, 100), ("30", 30), (" 30 ", 30), ("+7", 7), (50.0, 50), ("50.0", 50), ("0", 0)],
)
def test_validate_ratio_accepts_whole_percentages(value, expected):
    assert canary.validate_ratio(value) == expected
    result = canary.validate_ratio(value)
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
        canary.validate_ratio(value)
    message = str(caught.value)
    assert "is not an integer between 0 and 100" in message
    assert message.startswith("ratio ")
    shown = repr(value)
    assert shown[:40] in message


def test_validate_ratio_message_exact_for_text():
    with pytest.raises(CanaryInputError, match=r"^ratio 'abc' is not an integer between 0 and 100; give"):
        canary.validate_ratio("abc")


def test_canary_input_error_is_a_value_error():
    assert issubclass(CanaryInputError, ValueError)
    assert issubclass(CanaryConflictError, CanaryInputError)


def test_canary_weights_default_and_named():
    assert canary.canary_weights(30) == {"base": 70, "canary": 30}
    assert canary.canary_weights("0", "v1", "v2") == {"v1": 100, "v2": 0}
    assert list(canary.canary_weights(100, base="v1", canary="v2").items()) == [("v1", 0), ("v2", 100)]


def test_canary_weights_refuses_same_subset_and_bad_names():
    with pytest.raises(CanaryInputError, match="both 'v1'"):
        canary.canary_weights(10, "v1", "v1")
    with pytest.raises(CanaryInputError, match="'-bad'"):
        canary.canary_weights(10, "-bad", "v2")
    with pytest.raises(CanaryInputError, match="ratio 101"):
        canary.canary_weights(101, "v1", "v2")


# --------------------------------------------------------------------------------------
# split_weights


def test_split_weights_examples():
    assert canary.split_weights({"v1": 1, "v2": 1, "v3": 1}) == {"v1": 34, "v2": 33, "v3": 33}
    assert canary.split_weights([1, 1, 1]) == [34, 33, 33]
    assert canary.split_weights([2, 1]) == [67, 33]
    assert canary.split_weights({"a": 0, "b": 5}) == {"a": 0, "b": 100}
    assert canary.split_weights(["0.5", "1.5"]) == [25, 75]
    assert canary.split_weights([1] * 7) == [15, 15, 14, 14, 14, 14, 14]


def test_split_weights_ties_go_to_earlier_entries_in_input_order():
    assert canary.split_weights({"z": 1, "a": 1, "m": 1}) == {"z": 34, "a": 33, "m": 33}
    assert list(canary.split_weights({"z": 1, "a": 1}).keys()) == ["z", "a"]


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
        canary.split_weights(shares)
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
    weights = canary.split_weights(shares)
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
    first = canary.split_weights(shares)
    assert first == canary.split_weights(list(shares))
    assert sum(first) == 100
    assert all(weight >= 0 for weight in first)


# --------------------------------------------------------------------------------------
# validate_weights / subset names


def test_validate_weights_normalises_int_like_strings():
    assert canary.validate_weights({"v1": "90", "v2": 10}) == {"v1": 90, "v2": 10}
    assert canary.validate_weights({"v1": 100}) == {"v1": 100}
    assert canary.validate_weights({"Canary_1.2": 0, "v1": 100}) == {"Canary_1.2": 0, "v1": 100}


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
        canary.validate_weights(weights)
    assert fragment in str(caught.value)


def test_validate_subset_name_limits():
    assert canary.validate_subset_name("a" * 63) == "a" * 63
    assert canary.validate_subset_name("v1") == "v1"
    assert canary.validate_subset_name("x") == "x"
    for bad in ("", "a" * 64, "v1.", "_v1", "v/1", None, 1):
        with pytest.raises(CanaryInputError):
            canary.validate_subset_name(bad)


# --------------------------------------------------------------------------------------
# hosts and route lookup


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("reviews", "reviews", True),
        ("reviews", "reviews.default.svc.cluster.local", True),
        ("reviews.default", "reviews.default.svc.cluster.local", True),
        ("Reviews", "reviews.default.svc.cluster.local.", True),
        ("reviews.prod", "reviews.default.svc.cluster.local", False),
        ("ratings", "reviews.default.svc.cluster.local", False),
        ("reviews.default.svc.cluster.local", "reviews.prod.svc.cluster.local", False),
        ("reviews", "", False),
        (None, "reviews", False),
        ("reviews", ["reviews"], False),
    ],
)
def test_same_host(first, second, same):
    assert canary.same_host(first, second) is same
    left, right = second, first
    assert canary.same_host(left, right) is same


def test_find_http_route_default_and_by_name():
    vs = bookinfo_vs()
    assert canary.find_http_route(vs, "reviews") == 1
    assert canary.find_http_route(vs["spec"], "reviews.bookinfo.svc.cluster.local") == 1
    assert canary.find_http_route(vs, "reviews", "jason") == 0
    assert canary.find_http_route(vs, route_name="reviews-default") == 1


def test_find_http_route_empty_match_counts_as_default():
    spec = {"http": [{"match": [], "route": [dest("v1")]}]}
    assert canary.find_http_route(spec, "reviews") == 0


def test_find_http_route_missing_name_lists_routes():
    with pytest.raises(CanaryInputError) as caught:
        canary.find_http_route(bookinfo_vs(), "reviews", "nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "#0 'jason'" in message
    assert "#1 'reviews-default'" in message


def test_find_http_route_no_default_and_ambiguous():
    with pytest.raises(CanaryInputError, match="no default http route for host 'ratings'"):
        canary.find_http_route(bookinfo_vs(), "ratings")
    spec = {"http": [{"route": [dest("v1")]}, {"name": "b", "route": [dest("v2")]}]}
    with pytest.raises(CanaryConflictError, match=r"2 default http routes .*#0 \(unnamed\), #1 'b'"):
        canary.find_http_route(spec, "reviews")
    dup = {"http": [{"name": "a", "route": [dest("v1")]}, {"name": "a", "match": [{}], "route": []}]}
    with pytest.raises(CanaryConflictError, match="carried by 2 http routes"):
        canary.find_http_route(dup, "reviews", "a")


def test_find_http_route_mixed_hosts_is_not_the_default():
    spec = {"http": [{"route": [dest("v1", 50), dest("v1", 50, host="ratings")]}]}
    with pytest.raises(CanaryInputError, match="no default http route"):
        canary.find_http_route(spec, "reviews")


def test_find_http_route_refuses_malformed():
    with pytest.raises(CanaryInputError, match=r"spec\.http 'x' is not a list"):
        canary.find_http_route({"http": "x"}, "reviews")
    with pytest.raises(CanaryInputError, match=r"spec.http\[0\] 3 is not a mapping"):
        canary.find_http_route({"http": [3]}, "reviews")
    with pytest.raises(CanaryInputError, match="host None"):
        canary.find_http_route({"http": []}, None)


# --------------------------------------------------------------------------------------
# route_weights / plan_route_weights


def test_route_weights():
    vs = bookinfo_vs()
    assert canary.route_weights(vs["spec"]["http"][1]) == {"v1": 90, "v2": 10}
    assert canary.route_weights(vs["spec"]["http"][0]) == {"v3": 100}
    assert canary.route_weights({"route": [{"destination": {"host": "reviews"}}]}) == {"reviews": 100}
    assert canary.route_weights({"route": [dest("v1", 100), dest("v2")]}) == {"v1": 100, "v2": 0}
    assert canary.route_weights({"route": []}) == {}


def test_route_weights_refuses_duplicates_and_junk():
    with pytest.raises(CanaryConflictError, match="'v1' appears more than once"):
        canary.route_weights({"route": [dest("v1", 50), dest("v1", 50)]})
    with pytest.raises(CanaryInputError, match="weight of destination 'v1' 'x'"):
        canary.route_weights({"route": [dest("v1", "x")]})
    with pytest.raises(CanaryInputError, match="has no 'destination' mapping"):
        canary.route_weights({"route": [{"weight": 100}]})


def test_plan_route_weights_keeps_everything_but_weights():
    vs = bookinfo_vs()
    before = copy.deepcopy(vs)
    route = vs["spec"]["http"][1]
    planned = canary.plan_route_weights(route, "reviews", {"v1": 30, "v2": 70})
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
    planned = canary.plan_route_weights(route, "reviews", {"v1": 80, "v2": 20})
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
    planned = canary.plan_route_weights({"name": "r"}, "reviews", {"v1": 100})
    assert planned == {
        "name": "r",
        "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}],
    }


def test_plan_route_weights_keeps_weight_zero_and_explicit_100():
    route = {"route": [dest("v1", 50), dest("v2", 50)]}
    planned = canary.plan_route_weights(route, "reviews", {"v1": 0, "v2": 100})
    assert planned["route"] == [dest("v1", 0), dest("v2", 100)]
    single = canary.plan_route_weights({"route": [dest("v1")]}, "reviews", {"v1": 100})
    assert single["route"] == [dest("v1", 100)]


def test_plan_route_weights_unnamed_destinations():
    route = {"route": [dest("v1", 80), dest("v3", 10), dest("v2", 10)]}
    with pytest.raises(CanaryInputError) as caught:
        canary.plan_route_weights(route, "reviews", {"v1": 50, "v2": 50})
    assert "['v3']" in str(caught.value)
    assert "remove_unnamed" in str(caught.value)
    planned = canary.plan_route_weights(route, "reviews", {"v2": 50, "v1": 50}, remove_unnamed=True)
    assert planned["route"] == [dest("v1", 50), dest("v2", 50)]


def test_plan_route_weights_refuses_bad_weights_and_duplicates():
    with pytest.raises(CanaryInputError, match="sum to 90"):
        canary.plan_route_weights({"route": [dest("v1")]}, "reviews", {"v1": 90})
    with pytest.raises(CanaryConflictError, match="more than once"):
        canary.plan_route_weights({"route": [dest("v1", 50), dest("v1", 50)]}, "reviews", {"v1": 100})


# --------------------------------------------------------------------------------------
# patches


def test_build_route_patch_guards_and_replaces_only_the_route_list():
    vs = bookinfo_vs()
    planned = canary.plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 50, "v2": 50})
    ops = canary.build_route_patch(vs, 1, planned)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "1234"}
    assert ops[1] == {"op": "test", "path": "/spec/http/1/route", "value": vs["spec"]["http"][1]["route"]}
    assert ops[2] == {"op": "test", "path": "/spec/http/1/name", "value": "reviews-default"}
    assert ops[3] == {"op": "replace", "path": "/spec/http/1/route", "value": planned["route"]}
    assert len(ops) == 4
    after = apply_patch(vs, ops)
    assert canary.route_weights(after["spec"]["http"][1]) == {"v1": 50, "v2": 50}
    assert after["spec"]["http"][1]["retries"] == vs["spec"]["http"][1]["retries"]


def test_build_route_patch_is_empty_when_nothing_changes():
    vs = bookinfo_vs()
    planned = canary.plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 90, "v2": 10})
    assert canary.build_route_patch(vs, 1, planned) == []


def test_build_route_patch_fails_on_concurrent_edit():
    vs = bookinfo_vs()
    planned = canary.plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 50, "v2": 50})
    ops = canary.build_route_patch(vs, 1, planned)
    edited = copy.deepcopy(vs)
    edited["spec"]["http"][1]["route"][0]["weight"] = 80
    edited["spec"]["http"][1]["route"][1]["weight"] = 20
    with pytest.raises(PatchTestFailed, match="/spec/http/1/route"):
        apply_patch(edited, [op for op in ops if op["path"] != "/metadata/resourceVersion"])
    edited["metadata"]["resourceVersion"] = "1235"
    with pytest.raises(PatchTestFailed, match="resourceVersion"):
        apply_patch(edited, ops)


def test_build_route_patch_without_resource_version_or_route_key():
    vs = {"metadata": {"name": "r"}, "spec": {"http": [{"name": "x"}]}}
    planned = canary.plan_route_weights(vs["spec"]["http"][0], "reviews", {"v1": 100})
    ops = canary.build_route_patch(vs, 0, planned)
    assert ops == [
        {"op": "test", "path": "/spec/http/0", "value": {"name": "x"}},
        {"op": "add", "path": "/spec/http/0/route", "value": [dest("v1", 100)]},
    ]
    assert apply_patch(vs, ops)["spec"]["http"][0] == planned


def test_build_route_patch_refuses_bad_index_and_bad_weights():
    vs = bookinfo_vs()
    for index in (2, -1, True, "1", None):
        with pytest.raises(CanaryInputError, match="route index"):
            canary.build_route_patch(vs, index, vs["spec"]["http"][1])
    bad = {"route": [dest("v1", 60), dest("v2", 60)]}
    with pytest.raises(CanaryInputError, match="weights sum to 120, not 100"):
        canary.build_route_patch(vs, 1, bad)
    with pytest.raises(CanaryInputError, match="weight '50' is not an integer"):
        canary.build_route_patch(vs, 1, {"route": [dest("v1", "50"), dest("v2", 50)]})


def test_build_annotation_ops():
    vs = bookinfo_vs()
    vs["metadata"]["annotations"]["canary.istio/state"] = "old"
    vs["metadata"]["annotations"]["a/b~c"] = "x"
    ops = canary.build_annotation_ops(
        vs,
        {
            "canary.istio/state": "new",
            "canary.istio/history": "[]",
            "owner": "team-a",
            "a/b~c": None,
            "gone": None,
        },
    )
    assert ops == [
        {"op": "replace", "path": "/metadata/annotations/canary.istio~1state", "value": "new"},
        {"op": "add", "path": "/metadata/annotations/canary.istio~1history", "value": "[]"},
        {"op": "remove", "path": "/metadata/annotations/a~1b~0c"},
    ]
    after = apply_patch(vs, ops)
    assert after["metadata"]["annotations"] == {
        "owner": "team-a",
        "canary.istio/state": "new",
        "canary.istio/history": "[]",
    }


def test_build_annotation_ops_creates_the_block():
    vs = {"metadata": {"name": "r"}, "spec": {}}
    ops = canary.build_annotation_ops(vs, {"canary.istio/state": "{}", "other": None})
    assert ops == [{"op": "add", "path": "/metadata/annotations", "value": {"canary.istio/state": "{}"}}]
    assert apply_patch(vs, ops)["metadata"]["annotations"] == {"canary.istio/state": "{}"}
    assert canary.build_annotation_ops(vs, {"other": None}) == []
    with pytest.raises(CanaryInputError, match="annotation 'n' value 3 is not a string"):
        canary.build_annotation_ops(vs, {"n": 3})


# --------------------------------------------------------------------------------------
# state and history annotations


def test_state_round_trip():
    text = canary.encode_canary_state("v1", "v2", "20", "reviews-default")
    vs = {"metadata": {"annotations": {canary.STATE_ANNOTATION: text}}}
    state = canary.read_canary_state(vs)
    assert state == {"base": "v1", "canary": "v2", "weight": 20, "route": "reviews-default", "history": []}


@pytest.mark.parametrize(
    "annotations",
    [
        None,
        "junk",
        {},
        {"canary.istio/state": "{not json", "canary.istio/history": "[1, "},
        {"canary.istio/state": "[]", "canary.istio/history": "{}"},
        {"canary.istio/state": '{"base": 3, "weight": true}', "canary.istio/history": '["x", 1]'},
        {"canary.istio/state": 7, "canary.istio/history": None},
        {"canary.istio/state": "[" * 100000},
    ],
)
def test_read_canary_state_tolerates_garbage(annotations):
    vs = {"metadata": {"annotations": annotations}}
    assert canary.read_canary_state(vs) == {
        "base": None,
        "canary": None,
        "weight": None,
        "route": None,
        "history": [],
    }


def test_append_history_appends_and_bounds():
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    vs = {"metadata": {"annotations": {}}}
    for step in range(25):
        text = canary.append_history(vs, {"v1": 100 - step}, {"v1": 99 - step, "v2": step + 1}, "ops", now)
        vs["metadata"]["annotations"][canary.HISTORY_ANNOTATION] = text
    history = json.loads(vs["metadata"]["annotations"][canary.HISTORY_ANNOTATION])
    assert len(history) == canary.HISTORY_LIMIT
    assert history[0]["from"] == {"v1": 95}, "the five oldest steps are dropped"
    assert history[-1] == {
        "time": "2024-05-06T07:08:09Z",
        "from": {"v1": 76},
        "to": {"v1": 75, "v2": 25},
        "actor": "ops",
    }
    assert canary.read_canary_state(vs)["history"] == history


def test_append_history_converts_to_utc_and_tolerates_garbage():
    tokyo = timezone(timedelta(hours=9))
    vs = {"metadata": {"annotations": {canary.HISTORY_ANNOTATION: "garbage"}}}
    text = canary.append_history(vs, {}, {"v1": 100}, "me", datetime(2024, 1, 1, 9, 0, tzinfo=tokyo), limit=3)
    assert json.loads(text) == [
        {"time": "2024-01-01T00:00:00Z", "from": {}, "to": {"v1": 100}, "actor": "me"}
    ]
    naive = canary.append_history(None, {}, {"v1": 100}, "me", datetime(2024, 1, 1))
    assert json.loads(naive)[0]["time"] == "2024-01-01T00:00:00Z"


def test_append_history_refuses_bad_arguments():
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(CanaryInputError, match="time '2024' is not a datetime"):
        canary.append_history({}, {}, {"v1": 100}, "me", "2024")
    with pytest.raises(CanaryInputError, match="history limit 0"):
        canary.append_history({}, {}, {"v1": 100}, "me", now, limit=0)
    with pytest.raises(CanaryInputError, match="actor None"):
        canary.append_history({}, {}, {"v1": 100}, None, now)
    with pytest.raises(CanaryInputError, match="weight of subset 'v1' 'x'"):
        canary.append_history({}, {}, {"v1": "x"}, "me", now)


# --------------------------------------------------------------------------------------
# header routes

JASON = [{"headers": {"end-user": {"exact": "jason"}}}]


def test_plan_header_route_inserts_above_default():
    spec = {"http": [{"name": "default", "route": [dest("v1")]}]}
    http = canary.plan_header_route(spec, "testers", "reviews", JASON, "v2", port=9080)
    assert http == [
        {
            "name": "testers",
            "match": JASON,
            "route": [
                {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}}, "weight": 100}
            ],
        },
        {"name": "default", "route": [dest("v1")]},
    ]
    assert spec == {"http": [{"name": "default", "route": [dest("v1")]}]}
    assert canary.plan_header_route({"http": http}, "testers", "reviews", JASON, "v2", port=9080) == http


def test_plan_header_route_moves_a_route_below_the_default_and_keeps_its_fields():
    below = {"name": "testers", "match": [{"uri": {"prefix": "/x"}}], "timeout": "3s", "route": [dest("v1")]}
    other = {"name": "ratings", "route": [dest("v1", host="ratings")]}
    spec = {"http": [other, {"name": "default", "route": [dest("v1")]}, below]}
    http = canary.plan_header_route(spec, "testers", "reviews", JASON, "v3")
    assert [route["name"] for route in http] == ["ratings", "testers", "default"]
    assert http[1] == {
        "name": "testers",
        "match": JASON,
        "timeout": "3s",
        "route": [{"destination": {"host": "reviews", "subset": "v3"}, "weight": 100}],
    }
    assert http[0] == other


def test_plan_header_route_updates_in_place_when_above():
    spec = bookinfo_vs()["spec"]
    http = canary.plan_header_route(spec, "jason", "reviews", JASON, "v2")
    assert [route.get("name") for route in http] == ["jason", "reviews-default"]
    assert canary.route_weights(http[0]) == {"v2": 100}
    assert http[1] == spec["http"][1]


def test_plan_header_route_without_default_route():
    spec = {
        "http": [{"name": "m", "match": [{"uri": {"exact": "/"}}], "route": [dest("v1", host="ratings")]}]
    }
    http = canary.plan_header_route(spec, "t", "reviews", JASON, "v2")
    assert [route["name"] for route in http] == ["m", "t"]
    spec = {"http": [{"name": "m", "match": [{"uri": {"exact": "/"}}], "route": [dest("v1")]}]}
    assert [route["name"] for route in canary.plan_header_route(spec, "t", "reviews", JASON, "v2")] == [
        "t",
        "m",
    ]


def test_plan_header_route_refuses():
    spec = bookinfo_vs()["spec"]
    with pytest.raises(CanaryConflictError, match="'reviews-default' has no match, so it is a default route"):
        canary.plan_header_route(spec, "reviews-default", "reviews", JASON, "v2")
    for match in ([], [{}], None, {"headers": {}}, "x"):
        with pytest.raises(CanaryInputError, match="is not a non-empty list of non-empty mappings"):
            canary.plan_header_route(spec, "t", "reviews", match, "v2")
    with pytest.raises(CanaryInputError, match="port 0"):
        canary.plan_header_route(spec, "t", "reviews", JASON, "v2", port=0)
    with pytest.raises(CanaryInputError, match="destination subset 'v 2'"):
        canary.plan_header_route(spec, "t", "reviews", JASON, "v 2")


def test_remove_header_route():
    spec = bookinfo_vs()["spec"]
    assert canary.remove_header_route(spec, "jason") == [spec["http"][1]]
    assert canary.remove_header_route(spec, "absent") == spec["http"]
    with pytest.raises(CanaryConflictError, match="refusing to remove it"):
        canary.remove_header_route(spec, "reviews-default")


def test_build_http_list_patch():
    vs = bookinfo_vs()
    old = vs["spec"]["http"]
    new = canary.remove_header_route(vs, "jason")
    ops = canary.build_http_list_patch(vs, old, new)
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1234"},
        {"op": "test", "path": "/spec/http", "value": old},
        {"op": "replace", "path": "/spec/http", "value": new},
    ]
    assert apply_patch(vs, ops)["spec"]["http"] == new
    assert canary.build_http_list_patch(vs, old, copy.deepcopy(old)) == []
    with pytest.raises(CanaryInputError, match="sum to 50"):
        canary.build_http_list_patch(vs, old, [{"route": [dest("v1", 50), dest("v2", 0)]}])
    empty = {"metadata": {}, "spec": {"hosts": ["reviews"]}}
    assert canary.build_http_list_patch(empty, None, new) == [
        {"op": "add", "path": "/spec/http", "value": new}
    ]


# --------------------------------------------------------------------------------------
# referenced subsets, invariant, DestinationRule subsets


def test_referenced_subsets_covers_http_tcp_tls_and_mirrors():
    spec = bookinfo_vs()["spec"]
    spec["http"][1]["mirror"] = {"host": "reviews", "subset": "v4"}
    spec["http"][1]["mirrors"] = [{"destination": {"host": "reviews.bookinfo", "subset": "v5"}}]
    spec["tcp"] = [{"route": [dest("v6")]}]
    spec["tls"] = [{"match": [{"sniHosts": ["x"]}], "route": [dest("v7"), dest("v9", host="ratings")]}]
    assert canary.referenced_subsets(spec, "reviews") == {"v1", "v2", "v3", "v4", "v5", "v6", "v7"}
    assert canary.referenced_subsets({"spec": spec}, "ratings") == {"v9"}
    assert canary.referenced_subsets({"http": "junk"}, "reviews") == set()


def test_check_invariant_reports_missing_subsets_and_bad_weights():
    spec = bookinfo_vs()["spec"]
    assert canary.check_invariant(spec, {"reviews": ["v1", "v2", "v3"]}) == []
    problems = canary.check_invariant(spec, {"reviews.bookinfo.svc.cluster.local": {"v1", "v2"}})
    assert problems == [
        "http route #0 'jason' sends to subset 'v3' of host 'reviews', which the DestinationRule "
        "does not define (defined: v1, v2)"
    ]
    spec["http"][1]["route"][1]["weight"] = 20
    spec["tcp"] = [{"route": [dest("v1", 100.0)]}]
    problems = canary.check_invariant(spec, {"ratings": []})
    assert problems == [
        "http route #1 'reviews-default' weights sum to 110, not 100",
        "tcp route #0 (unnamed).route[0] weight 100.0 is not an integer between 0 and 100",
    ]
    assert canary.check_invariant({"http": [{"route": [dest("v1", 0)]}]}, {}) == [
        "http route #0 (unnamed) weights sum to 0, not 100"
    ]


def test_check_invariant_refuses_bad_subset_map():
    with pytest.raises(CanaryInputError, match="subsets of host 'reviews' 'v1' are not a list of names"):
        canary.check_invariant({}, {"reviews": "v1"})
    with pytest.raises(CanaryInputError, match="subsets by host"):
        canary.check_invariant({}, ["reviews"])


def test_merge_subsets_keeps_order_and_others():
    existing = [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        {"name": "v3", "labels": {"version": "v3"}},
    ]
    before = copy.deepcopy(existing)
    merged = canary.merge_subsets(
        existing,
        upsert=[{"name": "v4", "labels": {"version": "v4"}}, {"name": "v2", "labels": {"version": "v2b"}}],
        remove=["v1", "absent"],
    )
    assert merged == [
        {"name": "v2", "labels": {"version": "v2b"}},
        {"name": "v3", "labels": {"version": "v3"}},
        {"name": "v4", "labels": {"version": "v4"}},
    ]
    assert existing == before
    assert canary.merge_subsets(None, [{"name": "v1", "labels": {"version": "v1"}}], []) == [
        {"name": "v1", "labels": {"version": "v1"}}
    ]
    assert canary.merge_subsets(existing, [], []) == existing


@pytest.mark.parametrize(
    ("upsert", "remove", "fragment"),
    [
        ([{"labels": {"version": "v1"}}], [], "name of subset #0 None is not a valid subset name"),
        ([{"name": "v1"}], [], "labels None of subset 'v1'"),
        ([{"name": "v1", "labels": {}}], [], "labels {} of subset 'v1'"),
        ([{"name": "v1", "labels": {"version": 2}}], [], "label 'version': 2 of subset 'v1'"),
        ([{"name": "v1", "labels": {"a": "b"}}] * 2, [], "given twice"),
        ([{"name": "v1", "labels": {"a": "b"}}], ["v1"], "both upserted and removed"),
        ([], [3], "subset name to remove 3"),
        ("v1", [], "subsets to upsert 'v1' are not a list"),
    ],
)
def test_merge_subsets_refuses(upsert, remove, fragment):
    with pytest.raises(CanaryInputError) as caught:
        canary.merge_subsets([], upsert, remove)
    assert fragment in str(caught.value)


def test_merge_subsets_refuses_touching_duplicated_subset():
    existing = [{"name": "v1", "labels": {"a": "b"}}, {"name": "v1", "labels": {"a": "c"}}]
    with pytest.raises(CanaryConflictError, match="more than once"):
        canary.merge_subsets(existing, [{"name": "v1", "labels": {"a": "d"}}], [])
    assert canary.merge_subsets(existing, [{"name": "v2", "labels": {"a": "d"}}], [])[:2] == existing


# --------------------------------------------------------------------------------------
# property: planning + patching changes only /spec/http/<i>/route

subset_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
route_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=10)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
unknown_fields = st.dictionaries(st.text(alphabet="xyzXYZ_", min_size=1, max_size=6), json_values, max_size=3)
matches = st.lists(
    st.one_of(
        st.builds(lambda value: {"headers": {"end-user": {"exact": value}}}, st.text(min_size=1, max_size=5)),
        st.builds(lambda value: {"uri": {"prefix": "/" + value}}, st.text(max_size=5)),
    ),
    min_size=1,
    max_size=3,
)
retries = st.builds(lambda attempts: {"attempts": attempts, "perTryTimeout": "2s"}, st.integers(0, 5))
faults = st.builds(
    lambda percent: {"abort": {"percentage": {"value": percent}, "httpStatus": 503}},
    st.floats(0, 100, allow_nan=False),
)


@st.composite
def weighted_destinations(draw, host="reviews", min_size=1):
    subsets = draw(st.lists(subset_names, min_size=min_size, max_size=4, unique=True))
    shares = draw(st.lists(st.integers(0, 9), min_size=len(subsets), max_size=len(subsets)))
    if not any(shares):
        shares[0] = 1
    weights = canary.split_weights(shares)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    items = []
    for subset, weight in zip(subsets, weights, strict=True):
        item = {"destination": {"host": host, "subset": subset}}
        if port is not None:
            item["destination"]["port"] = {"number": port}
        if draw(st.booleans()):
            item["headers"] = {"request": {"set": {"x-canary": subset}}}
        if len(subsets) > 1 or draw(st.booleans()):
            item["weight"] = weight
        items.append(item)
    return items


@st.composite
def http_route(draw, with_match, host="reviews"):
    route = dict(draw(unknown_fields))
    if draw(st.booleans()):
        route["name"] = draw(route_names)
    if with_match:
        route["match"] = draw(matches)
    elif draw(st.booleans()):
        route["match"] = []
    if draw(st.booleans()):
        route["retries"] = draw(retries)
    if draw(st.booleans()):
        route["fault"] = draw(faults)
    if draw(st.booleans()):
        route["timeout"] = "10s"
    route["route"] = draw(weighted_destinations(host=host))
    return route


@st.composite
def virtual_services(draw):
    host = draw(st.sampled_from(["reviews", "reviews.bookinfo.svc.cluster.local"]))
    before = draw(st.lists(http_route(True, host=draw(st.sampled_from(["reviews", "ratings"]))), max_size=3))
    after = draw(st.lists(http_route(True), max_size=3))
    others = draw(st.lists(http_route(False, host="ratings"), max_size=2))
    default = draw(http_route(False, host=host))
    http = before + others + [default] + after
    metadata = {"name": "reviews", "labels": {"app": "reviews"}, "annotations": {"k": "v"}}
    if draw(st.booleans()):
        metadata["resourceVersion"] = str(draw(st.integers(1, 10**9)))
    spec = {"hosts": ["reviews"], "http": http}
    if draw(st.booleans()):
        spec["tcp"] = [{"route": draw(weighted_destinations())}]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": spec,
    }


@st.composite
def new_weights(draw):
    subsets = draw(st.lists(subset_names, min_size=1, max_size=4, unique=True))
    shares = draw(st.lists(st.integers(0, 9), min_size=len(subsets), max_size=len(subsets)))
    if not any(shares):
        shares[-1] = 1
    return dict(zip(subsets, canary.split_weights(shares), strict=True))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(virtual_services(), new_weights(), st.booleans())
def test_planned_patch_changes_only_the_route_list(vs, weights, reuse_existing):
    snapshot = copy.deepcopy(vs)
    index = canary.find_http_route(vs, "reviews")
    old_route = vs["spec"]["http"][index]
    old_keys = list(canary.route_weights(old_route))
    if reuse_existing:
        # Name every existing subset so remove_unnamed is not needed.
        weights = dict(zip(old_keys, canary.split_weights([1] * len(old_keys)), strict=True))
    planned = canary.plan_route_weights(old_route, "reviews", weights, remove_unnamed=True)
    ops = canary.build_route_patch(vs, index, planned)
    assert vs == snapshot, "inputs are never mutated"

    after = apply_patch(vs, ops)
    new_route = after["spec"]["http"][index]
    assert new_route["route"] == planned["route"]
    assert canary.route_weights(new_route) == weights
    assert sum(item["weight"] for item in new_route["route"]) == 100
    assert all(isinstance(item["weight"], int) and not isinstance(item["weight"], bool) for item in new_route["route"])

    # Only /spec/http/<index>/route may differ.
    restored = copy.deepcopy(after)
    restored["spec"]["http"][index]["route"] = copy.deepcopy(old_route["route"])
    assert restored == vs

    # Kept destinations keep their other fields; existing ones keep their place.
    old_by_key = {canary.route_weights({"route": [item]}).popitem()[0]: item for item in old_route["route"]}
    kept = [item for item in new_route["route"] if item["destination"]["subset"] in old_by_key]
    for item in kept:
        old_item = dict(old_by_key[item["destination"]["subset"]])
        old_item["weight"] = item["weight"]
        assert item == old_item
    assert [item["destination"]["subset"] for item in kept] == [k for k in old_keys if k in weights]

    # The guard pins the route and the resourceVersion: a second writer is detected.
    if ops:
        assert ops[-1]["op"] == "replace"
        assert ops[-1]["path"] == f"/spec/http/{index}/route"
        assert all(op["op"] == "test" for op in ops[:-1])
        concurrent = copy.deepcopy(vs)
        concurrent["spec"]["http"][index]["route"].append(
            {"destination": {"host": "reviews", "subset": "intruder"}, "weight": 0}
        )
        with pytest.raises(PatchTestFailed):
            apply_patch(concurrent, ops)

    # Idempotence: planning the same weights again changes nothing.
    again = canary.plan_route_weights(new_route, "reviews", weights)
    assert canary.build_route_patch(after, index, again) == []
    assert canary.check_invariant(after["spec"], {}) == []


@settings(max_examples=200)
@given(virtual_services(), new_weights())
def test_plan_without_remove_unnamed_refuses_exactly_when_a_subset_is_left_out(vs, weights):
    index = canary.find_http_route(vs, "reviews")
    route = vs["spec"]["http"][index]
    left_out = [key for key in canary.route_weights(route) if key not in weights]
    if left_out:
        with pytest.raises(CanaryInputError) as caught:
            canary.plan_route_weights(route, "reviews", weights)
        assert repr(left_out) in str(caught.value)
    else:
        planned = canary.plan_route_weights(route, "reviews", weights)
        assert canary.route_weights(planned) == weights


@settings(max_examples=200)
@given(virtual_services(), st.text(alphabet="abc", min_size=1, max_size=3), subset_names)
def test_header_route_sits_above_default_and_leaves_others(vs, name, subset):
    assume(all(route.get("name") != name for route in vs["spec"]["http"]))
    http = canary.plan_header_route(vs, name, "reviews", JASON, subset)
    default_index = canary.find_http_route({"http": http}, "reviews")
    header_index = canary.find_http_route({"http": http}, "reviews", name)
    assert header_index == default_index - 1
    assert [route for route in http if route.get("name") != name] == vs["spec"]["http"]
    assert canary.plan_header_route({"http": http}, name, "reviews", JASON, subset) == http
    assert canary.remove_header_route({"http": http}, name) == vs["spec"]["http"]
    assert subset in canary.referenced_subsets({"http": http}, "reviews")


# --------------------------------------------------------------------------------------
# property: junk never escapes as anything but CanaryInputError

vocabulary = st.sampled_from(
    [
        "http",
        "tcp",
        "tls",
        "route",
        "destination",
        "host",
        "subset",
        "weight",
        "match",
        "name",
        "spec",
        "metadata",
        "annotations",
        "resourceVersion",
        "labels",
        "mirror",
        "mirrors",
        "port",
        "number",
        "canary.istio/state",
        "canary.istio/history",
        "base",
        "canary",
        "v1",
        "reviews",
    ]
)
junk_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    vocabulary,
    st.sampled_from(["30", " 50 ", "[]", "{}", '[{"time": 1}]', '{"weight": 30}', "reviews.default"]),
)
junk = st.recursive(
    junk_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(vocabulary, st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=25,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)
CALLS = [
    lambda a, b, c: canary.validate_ratio(a),
    canary.canary_weights,
    lambda a, b, c: canary.split_weights(a),
    lambda a, b, c: canary.validate_weights(a),
    lambda a, b, c: canary.validate_subset_name(a),
    lambda a, b, c: canary.same_host(a, b),
    canary.find_http_route,
    lambda a, b, c: canary.find_http_route(a, "reviews"),
    lambda a, b, c: canary.route_weights(a),
    canary.plan_route_weights,
    lambda a, b, c: canary.plan_route_weights(a, "reviews", {"v1": 100}, remove_unnamed=True),
    canary.build_route_patch,
    lambda a, b, c: canary.build_route_patch(a, 0, {"route": [dest("v1")]}),
    lambda a, b, c: canary.build_annotation_ops(a, b),
    lambda a, b, c: canary.build_annotation_ops(a, {"canary.istio/state": "x", "k": None}),
    canary.encode_canary_state,
    lambda a, b, c: canary.append_history(a, b, c, "me", NOW),
    lambda a, b, c: canary.plan_header_route(a, b, "reviews", c, "v2"),
    lambda a, b, c: canary.plan_header_route(a, "t", "reviews", JASON, "v2"),
    lambda a, b, c: canary.remove_header_route(a, b),
    canary.build_http_list_patch,
    lambda a, b, c: canary.referenced_subsets(a, b),
    lambda a, b, c: canary.referenced_subsets(a, "reviews"),
    lambda a, b, c: canary.check_invariant(a, b),
    lambda a, b, c: canary.check_invariant(a, {"reviews": ["v1"]}),
    canary.merge_subsets,
    lambda a, b, c: canary.virtual_service_spec(a),
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(CALLS))), junk, junk, junk)
def test_junk_only_raises_canary_input_error(call, first, second, third):
    try:
        CALLS[call](first, second, third)
    except CanaryInputError:
        pass


@settings(max_examples=300)
@given(junk)
def test_tolerant_readers_never_raise(value):
    state = canary.read_canary_state(value)
    assert set(state) == {"base", "canary", "weight", "route", "history"}
    assert isinstance(state["history"], list)
    wrapped = {
        "metadata": {"annotations": {canary.STATE_ANNOTATION: value, canary.HISTORY_ANNOTATION: value}}
    }
    assert isinstance(canary.read_canary_state(wrapped)["history"], list)
    history = json.loads(canary.append_history(value, {}, {"v1": 100}, "me", NOW))
    assert history[-1]["to"] == {"v1": 100}
    assert len(history) <= canary.HISTORY_LIMIT


@settings(max_examples=200)
@given(st.lists(junk, max_size=4).map(json.dumps))
def test_history_garbage_in_annotation_is_dropped(text):
    vs = {"metadata": {"annotations": {canary.HISTORY_ANNOTATION: text}}}
    history = json.loads(canary.append_history(vs, {}, {"v1": 100}, "me", NOW))
    assert all(isinstance(entry, dict) for entry in history)
    assert history[-1] == {"time": "2024-01-01T00:00:00Z", "from": {}, "to": {"v1": 100}, "actor": "me"}
