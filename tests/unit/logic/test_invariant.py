# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The invariant check: routes to existing subsets, weights Istio accepts."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.invariant import check_invariant
from tests.unit.logic.support import bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_check_invariant_reports_missing_subsets_and_bad_weights():
    spec = bookinfo_vs()["spec"]
    assert check_invariant(spec, {"reviews": ["v1", "v2", "v3"]}) == []
    problems = check_invariant(spec, {"reviews.bookinfo.svc.cluster.local": {"v1", "v2"}})
    assert problems == [
        "http route #0 'jason' sends to subset 'v3' of host 'reviews', which the DestinationRule "
        "does not define (defined: v1, v2)"
    ]
    spec["http"][1]["route"][1]["weight"] = 20
    spec["tcp"] = [{"route": [dest("v1", 100.0)]}]
    problems = check_invariant(spec, {"ratings": []})
    assert problems == [
        "http route #1 'reviews-default' weights sum to 110, not 100",
        "tcp route #0 (unnamed).route[0] weight 100.0 is not an integer between 0 and 100",
    ]
    assert check_invariant({"http": [{"route": [dest("v1", 0)]}]}, {}) == [
        "http route #0 (unnamed) weights sum to 0, not 100"
    ]


def test_check_invariant_refuses_bad_subset_map():
    with pytest.raises(CanaryInputError, match="subsets of host 'reviews' 'v1' are not a list of names"):
        check_invariant({}, {"reviews": "v1"})
    with pytest.raises(CanaryInputError, match="subsets by host"):
        check_invariant({}, ["reviews"])
