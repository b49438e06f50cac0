# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Finding routes and the subsets they send to."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route, referenced_subsets
from tests.unit.logic.support import bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_find_http_route_default_and_by_name():
    vs = bookinfo_vs()
    assert find_http_route(vs, "reviews") == 1
    assert find_http_route(vs["spec"], "reviews.bookinfo.svc.cluster.local") == 1
    assert find_http_route(vs, "reviews", "jason") == 0
    assert find_http_route(vs, route_name="reviews-default") == 1


def test_find_http_route_empty_match_counts_as_default():
    spec = {"http": [{"match": [], "route": [dest("v1")]}]}
    assert find_http_route(spec, "reviews") == 0


def test_find_http_route_missing_name_lists_routes():
    with pytest.raises(CanaryInputError) as caught:
        find_http_route(bookinfo_vs(), "reviews", "nope")
    message = str(caught.value)
    assert "'nope'" in message
    assert "#0 'jason'" in message
    assert "#1 'reviews-default'" in message


def test_find_http_route_no_default_and_ambiguous():
    with pytest.raises(CanaryInputError, match="no default http route for host 'ratings'"):
        find_http_route(bookinfo_vs(), "ratings")
    spec = {"http": [{"route": [dest("v1")]}, {"name": "b", "route": [dest("v2")]}]}
    with pytest.raises(CanaryConflictError, match=r"2 default http routes .*#0 \(unnamed\), #1 'b'"):
        find_http_route(spec, "reviews")
    dup = {"http": [{"name": "a", "route": [dest("v1")]}, {"name": "a", "match": [{}], "route": []}]}
    with pytest.raises(CanaryConflictError, match="carried by 2 http routes"):
        find_http_route(dup, "reviews", "a")


def test_find_http_route_mixed_hosts_is_not_the_default():
    spec = {"http": [{"route": [dest("v1", 50), dest("v1", 50, host="ratings")]}]}
    with pytest.raises(CanaryInputError, match="no default http route"):
        find_http_route(spec, "reviews")


def test_find_http_route_refuses_malformed():
    with pytest.raises(CanaryInputError, match=r"spec\.http 'x' is not a list"):
        find_http_route({"http": "x"}, "reviews")
    with pytest.raises(CanaryInputError, match=r"spec.http\[0\] 3 is not a mapping"):
        find_http_route({"http": [3]}, "reviews")
    with pytest.raises(CanaryInputError, match="host None"):
        find_http_route({"http": []}, None)


def test_referenced_subsets_covers_http_tcp_tls_and_mirrors():
    spec = bookinfo_vs()["spec"]
    spec["http"][1]["mirror"] = {"host": "reviews", "subset": "v4"}
    spec["http"][1]["mirrors"] = [{"destination": {"host": "reviews.bookinfo", "subset": "v5"}}]
    spec["tcp"] = [{"route": [dest("v6")]}]
    spec["tls"] = [{"match": [{"sniHosts": ["x"]}], "route": [dest("v7"), dest("v9", host="ratings")]}]
    assert referenced_subsets(spec, "reviews") == {"v1", "v2", "v3", "v4", "v5", "v6", "v7"}
    assert referenced_subsets({"spec": spec}, "ratings") == {"v9"}
    assert referenced_subsets({"http": "junk"}, "reviews") == set()
