# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DestinationRule subset names and merging subsets."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.subsets import merge_subsets, validate_subset_name

pytestmark = pytest.mark.unit


def test_validate_subset_name_limits():
    assert validate_subset_name("a" * 63) == "a" * 63
    assert validate_subset_name("v1") == "v1"
    assert validate_subset_name("x") == "x"
    for bad in ("", "a" * 64, "v1.", "_v1", "v/1", None, 1):
        with pytest.raises(CanaryInputError):
            validate_subset_name(bad)


def test_merge_subsets_keeps_order_and_others():
    existing = [
        {"name": "v1", "labels": {"version": "v1"}},
        {"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
        {"name": "v3", "labels": {"version": "v3"}},
    ]
    before = copy.deepcopy(existing)
    merged = merge_subsets(
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
    assert merge_subsets(None, [{"name": "v1", "labels": {"version": "v1"}}], []) == [
        {"name": "v1", "labels": {"version": "v1"}}
    ]
    assert merge_subsets(existing, [], []) == existing


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
        merge_subsets([], upsert, remove)
    assert fragment in str(caught.value)


def test_merge_subsets_refuses_touching_duplicated_subset():
    existing = [{"name": "v1", "labels": {"a": "b"}}, {"name": "v1", "labels": {"a": "c"}}]
    with pytest.raises(CanaryConflictError, match="more than once"):
        merge_subsets(existing, [{"name": "v1", "labels": {"a": "d"}}], [])
    assert merge_subsets(existing, [{"name": "v2", "labels": {"a": "d"}}], [])[:2] == existing


@pytest.mark.parametrize("name", ["v2.1", "v2_1", "-v2", "v2-", "a" * 64, ""])
def test_subset_names_must_be_dns_labels_as_istio_requires(name):
    # istio/istio pkg/config/validation/validation.go validateSubsetName: labels.IsDNS1123Label, whose
    # pattern in pkg/config/labels/instance.go is [a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])? (at most 63).
    with pytest.raises(CanaryInputError) as caught:
        validate_subset_name(name)
    assert repr(name) in str(caught.value) and "DNS-1123 label" in str(caught.value)
    with pytest.raises(CanaryInputError, match="DNS-1123 label"):
        merge_subsets([], [{"name": name, "labels": {"version": "x"}}])


@pytest.mark.parametrize("name", ["v2", "v2-1", "2", "a" * 63, "V2", "Canary-B"])
def test_dns_label_subset_names_are_accepted(name):
    assert validate_subset_name(name) == name
