# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Guarded JSON Patches, checked with an independent applier."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.header_routes import remove_header_route
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.invariant import check_invariant
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import (
    build_annotation_ops,
    build_http_list_patch,
    build_route_patch,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    plan_route_weights,
    route_weights,
    split_weights,
)
from tests.unit.plugins.module_utils._logic.strategies import new_weights, virtual_services
from tests.unit.plugins.module_utils._logic.support import PatchTestFailed, apply_patch, bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_build_route_patch_guards_and_replaces_only_the_route_list():
    vs = bookinfo_vs()
    planned = plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 50, "v2": 50})
    ops = build_route_patch(vs, 1, planned)
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "1234"}
    assert ops[1] == {"op": "test", "path": "/spec/http/1/route", "value": vs["spec"]["http"][1]["route"]}
    assert ops[2] == {"op": "test", "path": "/spec/http/1/name", "value": "reviews-default"}
    assert ops[3] == {"op": "replace", "path": "/spec/http/1/route", "value": planned["route"]}
    assert len(ops) == 4
    after = apply_patch(vs, ops)
    assert route_weights(after["spec"]["http"][1]) == {"v1": 50, "v2": 50}
    assert after["spec"]["http"][1]["retries"] == vs["spec"]["http"][1]["retries"]


def test_build_route_patch_is_empty_when_nothing_changes():
    vs = bookinfo_vs()
    planned = plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 90, "v2": 10})
    assert build_route_patch(vs, 1, planned) == []


def test_build_route_patch_fails_on_concurrent_edit():
    vs = bookinfo_vs()
    planned = plan_route_weights(vs["spec"]["http"][1], "reviews", {"v1": 50, "v2": 50})
    ops = build_route_patch(vs, 1, planned)
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
    planned = plan_route_weights(vs["spec"]["http"][0], "reviews", {"v1": 100})
    ops = build_route_patch(vs, 0, planned)
    assert ops == [
        {"op": "test", "path": "/spec/http/0", "value": {"name": "x"}},
        {"op": "add", "path": "/spec/http/0/route", "value": [dest("v1", 100)]},
    ]
    assert apply_patch(vs, ops)["spec"]["http"][0] == planned


def test_build_route_patch_refuses_bad_index_and_bad_weights():
    vs = bookinfo_vs()
    for index in (2, -1, True, "1", None):
        with pytest.raises(CanaryInputError, match="route index"):
            build_route_patch(vs, index, vs["spec"]["http"][1])
    bad = {"route": [dest("v1", 60), dest("v2", 60)]}
    with pytest.raises(CanaryInputError, match="weights sum to 120, not 100"):
        build_route_patch(vs, 1, bad)
    with pytest.raises(CanaryInputError, match="weight '50' is not an integer"):
        build_route_patch(vs, 1, {"route": [dest("v1", "50"), dest("v2", 50)]})


def test_build_annotation_ops():
    vs = bookinfo_vs()
    vs["metadata"]["annotations"]["canary.istio/state"] = "old"
    vs["metadata"]["annotations"]["a/b~c"] = "x"
    ops = build_annotation_ops(
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
    ops = build_annotation_ops(vs, {"canary.istio/state": "{}", "other": None})
    assert ops == [{"op": "add", "path": "/metadata/annotations", "value": {"canary.istio/state": "{}"}}]
    assert apply_patch(vs, ops)["metadata"]["annotations"] == {"canary.istio/state": "{}"}
    assert build_annotation_ops(vs, {"other": None}) == []
    with pytest.raises(CanaryInputError, match="annotation 'n' value 3 is not a string"):
        build_annotation_ops(vs, {"n": 3})


def test_build_http_list_patch():
    vs = bookinfo_vs()
    old = vs["spec"]["http"]
    new = remove_header_route(vs, "jason")
    ops = build_http_list_patch(vs, old, new)
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1234"},
        {"op": "test", "path": "/spec/http", "value": old},
        {"op": "replace", "path": "/spec/http", "value": new},
    ]
    assert apply_patch(vs, ops)["spec"]["http"] == new
    assert build_http_list_patch(vs, old, copy.deepcopy(old)) == []
    with pytest.raises(CanaryInputError, match="sum to 50"):
        build_http_list_patch(vs, old, [{"route": [dest("v1", 50), dest("v2", 0)]}])
    empty = {"metadata": {}, "spec": {"hosts": ["reviews"]}}
    assert build_http_list_patch(empty, None, new) == [
        {"op": "add", "path": "/spec/http", "value": new}
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(virtual_services(), new_weights(), st.booleans())
def test_planned_patch_changes_only_the_route_list(vs, weights, reuse_existing):
    snapshot = copy.deepcopy(vs)
    index = find_http_route(vs, "reviews")
    old_route = vs["spec"]["http"][index]
    hosts = hosts_of(vs)
    old_keys = list(route_weights(old_route, hosts))
    if reuse_existing:
        # Name every existing subset so remove_unnamed is not needed.
        weights = dict(zip(old_keys, split_weights([1] * len(old_keys)), strict=True))
    planned = plan_route_weights(old_route, "reviews", weights, remove_unnamed=True, hosts=hosts)
    ops = build_route_patch(vs, index, planned)
    assert vs == snapshot, "inputs are never mutated"

    after = apply_patch(vs, ops)
    new_route = after["spec"]["http"][index]
    assert new_route["route"] == planned["route"]
    assert route_weights(new_route, hosts) == weights
    assert sum(item["weight"] for item in new_route["route"]) == 100
    assert all(isinstance(item["weight"], int) and not isinstance(item["weight"], bool) for item in new_route["route"])

    # Only /spec/http/<index>/route may differ.
    restored = copy.deepcopy(after)
    restored["spec"]["http"][index]["route"] = copy.deepcopy(old_route["route"])
    assert restored == vs

    # Kept destinations keep their other fields; existing ones keep their place.
    old_by_key = {route_weights({"route": [item]}, hosts).popitem()[0]: item for item in old_route["route"]}
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
    again = plan_route_weights(new_route, "reviews", weights, hosts=hosts)
    assert build_route_patch(after, index, again) == []
    assert check_invariant(after["spec"], {}) == []


def test_restoring_a_route_needs_only_istio_valid_weights():
    # A route stored as 900/100 is valid for Istio (relative weights, virtual_service.proto); putting
    # it back after a failed lockstep move must not be refused by our own rule for new weights.
    vs = bookinfo_vs()
    original = {"name": "reviews-default", "route": [dest("v1", 900), dest("v2", 100)]}
    with pytest.raises(CanaryInputError, match="900 is not an integer between 0 and 100"):
        build_route_patch(vs, 1, original)
    ops = build_route_patch(vs, 1, original, restoring=True)
    assert apply_patch(vs, ops)["spec"]["http"][1]["route"] == original["route"]
