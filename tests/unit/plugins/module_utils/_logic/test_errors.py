# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared input error, and the property that junk never escapes as anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.header_routes import (
    plan_header_route,
    remove_header_route,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import same_host
from ansible_collections.canary.istio.plugins.module_utils._logic.invariant import check_invariant
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import (
    build_annotation_ops,
    build_http_list_patch,
    build_route_patch,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    find_http_route,
    referenced_subsets,
    virtual_service_spec,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.state import (
    HISTORY_ANNOTATION,
    HISTORY_LIMIT,
    STATE_ANNOTATION,
    append_history,
    encode_canary_state,
    read_canary_state,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.subsets import merge_subsets, validate_subset_name
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    canary_weights,
    plan_route_weights,
    route_weights,
    split_weights,
    validate_ratio,
    validate_weights,
)
from tests.unit.plugins.module_utils._logic.support import JASON, dest

pytestmark = pytest.mark.unit


def test_canary_input_error_is_a_value_error():
    assert issubclass(CanaryInputError, ValueError)
    assert issubclass(CanaryConflictError, CanaryInputError)


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
    lambda a, b, c: validate_ratio(a),
    canary_weights,
    lambda a, b, c: split_weights(a),
    lambda a, b, c: validate_weights(a),
    lambda a, b, c: validate_subset_name(a),
    lambda a, b, c: same_host(a, b),
    find_http_route,
    lambda a, b, c: find_http_route(a, "reviews"),
    lambda a, b, c: route_weights(a),
    plan_route_weights,
    lambda a, b, c: plan_route_weights(a, "reviews", {"v1": 100}, remove_unnamed=True),
    build_route_patch,
    lambda a, b, c: build_route_patch(a, 0, {"route": [dest("v1")]}),
    lambda a, b, c: build_annotation_ops(a, b),
    lambda a, b, c: build_annotation_ops(a, {"canary.istio/state": "x", "k": None}),
    encode_canary_state,
    lambda a, b, c: append_history(a, b, c, "me", NOW),
    lambda a, b, c: plan_header_route(a, b, "reviews", c, "v2"),
    lambda a, b, c: plan_header_route(a, "t", "reviews", JASON, "v2"),
    lambda a, b, c: remove_header_route(a, b),
    build_http_list_patch,
    lambda a, b, c: referenced_subsets(a, b),
    lambda a, b, c: referenced_subsets(a, "reviews"),
    lambda a, b, c: check_invariant(a, b),
    lambda a, b, c: check_invariant(a, {"reviews": ["v1"]}),
    merge_subsets,
    lambda a, b, c: virtual_service_spec(a),
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
    state = read_canary_state(value)
    assert set(state) == {"base", "canary", "weight", "route", "history"}
    assert isinstance(state["history"], list)
    wrapped = {
        "metadata": {"annotations": {STATE_ANNOTATION: value, HISTORY_ANNOTATION: value}}
    }
    assert isinstance(read_canary_state(wrapped)["history"], list)
    history = json.loads(append_history(value, {}, {"v1": 100}, "me", NOW))
    assert history[-1]["to"] == {"v1": 100}
    assert len(history) <= HISTORY_LIMIT


@settings(max_examples=200)
@given(st.lists(junk, max_size=4).map(json.dumps))
def test_history_garbage_in_annotation_is_dropped(text):
    vs = {"metadata": {"annotations": {HISTORY_ANNOTATION: text}}}
    history = json.loads(append_history(vs, {}, {"v1": 100}, "me", NOW))
    assert all(isinstance(entry, dict) for entry in history)
    assert history[-1] == {"time": "2024-01-01T00:00:00Z", "from": {}, "to": {"v1": 100}, "actor": "me"}
