# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Service host names."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import same_host

pytestmark = pytest.mark.unit


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
    assert same_host(first, second) is same
    left, right = second, first
    assert same_host(left, right) is same
