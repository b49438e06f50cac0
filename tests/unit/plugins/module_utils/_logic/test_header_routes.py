# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Header routes (testers) and where they sit."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.header_routes import (
    plan_header_route,
    remove_header_route,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route, referenced_subsets
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import route_weights
from tests.unit.plugins.module_utils._logic.strategies import subset_names, virtual_services
from tests.unit.plugins.module_utils._logic.support import JASON, bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_plan_header_route_inserts_above_default():
    spec = {"http": [{"name": "default", "route": [dest("v1")]}]}
    http = plan_header_route(spec, "testers", "reviews", JASON, "v2", port=9080)
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
    assert plan_header_route({"http": http}, "testers", "reviews", JASON, "v2", port=9080) == http


def test_plan_header_route_moves_a_route_below_the_default_and_keeps_its_fields():
    below = {"name": "testers", "match": [{"uri": {"prefix": "/x"}}], "timeout": "3s", "route": [dest("v1")]}
    other = {"name": "ratings", "match": [{"uri": {"prefix": "/ratings"}}], "route": [dest("v1", host="ratings")]}
    spec = {"http": [other, {"name": "default", "route": [dest("v1")]}, below]}
    http = plan_header_route(spec, "testers", "reviews", JASON, "v3")
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
    http = plan_header_route(spec, "jason", "reviews", JASON, "v2")
    assert [route.get("name") for route in http] == ["jason", "reviews-default"]
    assert route_weights(http[0]) == {"v2": 100}
    assert http[1] == spec["http"][1]


def test_plan_header_route_without_default_route():
    spec = {
        "http": [{"name": "m", "match": [{"uri": {"exact": "/"}}], "route": [dest("v1", host="ratings")]}]
    }
    http = plan_header_route(spec, "t", "reviews", JASON, "v2")
    assert [route["name"] for route in http] == ["m", "t"]
    spec = {"http": [{"name": "m", "match": [{"uri": {"exact": "/"}}], "route": [dest("v1")]}]}
    assert [route["name"] for route in plan_header_route(spec, "t", "reviews", JASON, "v2")] == [
        "t",
        "m",
    ]


def test_plan_header_route_refuses():
    spec = bookinfo_vs()["spec"]
    with pytest.raises(CanaryConflictError, match="'reviews-default' has no match, so it is a default route"):
        plan_header_route(spec, "reviews-default", "reviews", JASON, "v2")
    for match in ([], [{}], None, {"headers": {}}, "x"):
        with pytest.raises(CanaryInputError, match="is not a non-empty list of non-empty mappings"):
            plan_header_route(spec, "t", "reviews", match, "v2")
    with pytest.raises(CanaryInputError, match="port 0"):
        plan_header_route(spec, "t", "reviews", JASON, "v2", port=0)
    with pytest.raises(CanaryInputError, match="destination subset 'v 2'"):
        plan_header_route(spec, "t", "reviews", JASON, "v 2")


def test_remove_header_route():
    spec = bookinfo_vs()["spec"]
    assert remove_header_route(spec, "jason") == [spec["http"][1]]
    assert remove_header_route(spec, "absent") == spec["http"]
    with pytest.raises(CanaryConflictError, match="refusing to remove it"):
        remove_header_route(spec, "reviews-default")


# The VirtualService strategy is large; on a busy machine generation alone can exceed the default budget.
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(virtual_services(), st.text(alphabet="abc", min_size=1, max_size=3), subset_names)
def test_header_route_sits_above_default_and_leaves_others(vs, name, subset):
    assume(all(route.get("name") != name for route in vs["spec"]["http"]))
    # An earlier route matching exactly the testers' requests would take them first (Istio's
    # "first match wins"); that case is refused and tested on its own.
    assume(all(JASON[0] not in (route.get("match") or []) for route in vs["spec"]["http"]))
    http = plan_header_route(vs, name, "reviews", JASON, subset)
    hosts = Hosts("bookinfo")
    default_index = find_http_route({"http": http}, "reviews", hosts=hosts)
    header_index = find_http_route({"http": http}, "reviews", name, hosts=hosts)
    assert header_index == default_index - 1
    assert [route for route in http if route.get("name") != name] == vs["spec"]["http"]
    assert plan_header_route({"http": http}, name, "reviews", JASON, subset) == http
    assert remove_header_route({"http": http}, name) == vs["spec"]["http"]
    assert subset in referenced_subsets({"http": http}, "reviews", hosts)
