"""Recognising our own write after its answer was lost (``_traffic.holds_patch``), judged with the
independent JSON Patch applier of tests/unit/plugins/module_utils/_logic/support.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.patches import build_annotation_ops, build_route_patch
from ansible_collections.canary.istio.plugins.module_utils._logic.state import HISTORY_ANNOTATION, append_history
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import plan_route_weights
from ansible_collections.canary.istio.plugins.module_utils._traffic import holds_patch
from tests.unit.plugins.module_utils._logic.support import apply_patch, bookinfo_vs

pytestmark = pytest.mark.unit


def planned_patch(vs, weights, actor="a", second=0):
    route = vs["spec"]["http"][-1]
    new_route = plan_route_weights(route, "reviews", weights)
    now = datetime(2026, 11, 27, 8, 0, second, tzinfo=UTC)
    history = append_history(vs, {"v1": 100}, weights, actor, now)
    return build_route_patch(vs, len(vs["spec"]["http"]) - 1, new_route) + \
        build_annotation_ops(vs, {HISTORY_ANNOTATION: history})


def test_a_written_patch_is_recognised_and_an_unwritten_one_is_not():
    vs = bookinfo_vs()
    patch = planned_patch(vs, {"v1": 70, "v2": 30})
    written = apply_patch(copy.deepcopy(vs), patch)
    assert holds_patch(written, patch) is True
    assert holds_patch(vs, patch) is False
    assert holds_patch(None, patch) is False


def test_someone_elses_equal_weights_with_another_history_entry_are_not_ours():
    vs = bookinfo_vs()
    ours = planned_patch(vs, {"v1": 70, "v2": 30}, actor="us")
    theirs = apply_patch(copy.deepcopy(vs), planned_patch(vs, {"v1": 70, "v2": 30}, actor="them", second=5))
    assert holds_patch(theirs, ours) is False


def test_a_patch_of_only_guards_is_never_taken_as_written():
    vs = bookinfo_vs()
    guards = [op for op in planned_patch(vs, {"v1": 70, "v2": 30}) if op["op"] == "test"]
    assert holds_patch(vs, guards) is False


def test_removed_annotations_must_be_gone():
    vs = bookinfo_vs()
    vs["metadata"].setdefault("annotations", {})[HISTORY_ANNOTATION] = "[]"
    ops = build_annotation_ops(vs, {HISTORY_ANNOTATION: None})
    assert holds_patch(vs, ops) is False
    assert holds_patch(apply_patch(copy.deepcopy(vs), ops), ops) is True
