# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The invariant check: routes to existing subsets, weights Istio accepts."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.invariant import check_invariant
from tests.unit.plugins.module_utils._logic.support import bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_check_invariant_reports_missing_subsets_and_bad_weights():
    spec = bookinfo_vs()["spec"]
    assert check_invariant(spec, {"reviews": ["v1", "v2", "v3"]}) == []
    problems = check_invariant(spec, {"reviews.bookinfo.svc.cluster.local": {"v1", "v2"}}, Hosts("bookinfo"))
    assert problems == [
        "http route #0 'jason' sends to subset 'v3' of host 'reviews', which the DestinationRule "
        "does not define (defined: v1, v2)"
    ]
    # Istio reads weights relatively (weights need not sum to 100 since Istio 1.15) and a lone
    # destination takes all traffic whatever its weight (pilot/pkg/networking/core/route/route.go);
    # it rejects negative weights and several destinations totalling 0
    # (pkg/config/validation/validation.go validateWeight, validateHTTPRouteDestinations).
    spec["http"][1]["route"][1]["weight"] = 20
    assert check_invariant(spec, {"ratings": []}) == []
    assert check_invariant({"http": [{"route": [dest("v1", 0)]}]}, {}) == []
    spec["tcp"] = [{"route": [dest("v1", 100.0)]}]
    assert check_invariant(spec, {"ratings": []}) == [
        "tcp route #0 (unnamed).route[0] weight 100.0 is not an integer of zero or more",
    ]
    assert check_invariant({"http": [{"route": [dest("v1", -1), dest("v2", 101)]}]}, {}) == [
        "http route #0 (unnamed).route[0] weight -1 is not an integer of zero or more",
    ]
    assert check_invariant({"http": [{"route": [dest("v1", 0), dest("v2", 0)]}]}, {}) == [
        "http route #0 (unnamed) has 2 destinations whose weights total 0",
    ]


def test_check_invariant_refuses_bad_subset_map():
    with pytest.raises(CanaryInputError, match="subsets of host 'reviews' 'v1' are not a list of names"):
        check_invariant({}, {"reviews": "v1"})
    with pytest.raises(CanaryInputError, match="subsets by host"):
        check_invariant({}, ["reviews"])
