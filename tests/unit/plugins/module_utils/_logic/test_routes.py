# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Finding routes and the subsets they send to."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError, CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route, referenced_subsets
from tests.unit.plugins.module_utils._logic.support import bookinfo_vs, dest

pytestmark = pytest.mark.unit


def test_find_http_route_default_and_by_name():
    vs = bookinfo_vs()
    assert find_http_route(vs, "reviews") == 1
    # The object's namespace (bookinfo) resolves the short name, as Istio's ResolveShortnameToFQDN does.
    assert find_http_route(vs, "reviews.bookinfo.svc.cluster.local") == 1
    assert find_http_route(vs["spec"], "reviews.bookinfo.svc.cluster.local", hosts=Hosts("bookinfo")) == 1
    # Without a namespace, a full name cannot be equated with a short one.
    with pytest.raises(CanaryInputError, match="no default http route"):
        find_http_route(vs["spec"], "reviews.bookinfo.svc.cluster.local")
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
    with pytest.raises(CanaryConflictError, match=r"first, #0 \(unnamed\), and #1 'b' never receive traffic"):
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
    spec["http"][1]["mirrors"] = [{"destination": {"host": "reviews.bookinfo.svc.cluster.local", "subset": "v5"}},
                                  # A name with a dot is literal in Istio: not the reviews service.
                                  {"destination": {"host": "reviews.bookinfo", "subset": "v8"}}]
    spec["tcp"] = [{"route": [dest("v6")]}]
    spec["tls"] = [{"match": [{"sniHosts": ["x"]}], "route": [dest("v7"), dest("v9", host="ratings")]}]
    assert referenced_subsets(spec, "reviews", Hosts("bookinfo")) == {"v1", "v2", "v3", "v4", "v5", "v6", "v7"}
    assert referenced_subsets(spec, "reviews.bookinfo.svc.cluster.local", Hosts("bookinfo")) == {
        "v1", "v2", "v3", "v4", "v5", "v6", "v7"}
    assert referenced_subsets(spec, "reviews", Hosts("staging")) == {"v1", "v2", "v3", "v4", "v6", "v7"}
    assert referenced_subsets({"spec": spec}, "ratings") == {"v9"}
    assert referenced_subsets({"http": "junk"}, "reviews") == set()


def test_two_catch_all_routes_name_the_one_istio_uses_and_the_dead_one():
    # Istio uses the first route that matches (virtual_service.proto, HTTPRoute): the second
    # catch-all never receives traffic, so "pass the route name" cannot help when neither has one.
    spec = {"http": [{"route": [dest("v1")]}, {"route": [dest("v2")]}]}
    with pytest.raises(CanaryConflictError) as caught:
        find_http_route(spec, "reviews")
    message = str(caught.value)
    assert "to the first, #0 (unnamed)" in message and "#1 (unnamed) never receive traffic" in message
    assert "give the first one a name" in message


def test_tcp_or_tls_only_virtual_service_says_only_http_routes_are_managed():
    spec = {"hosts": ["mongo"], "tcp": [{"route": [{"destination": {"host": "mongo", "subset": "v1"}}]}]}
    with pytest.raises(CanaryInputError, match="has only tcp routes and no http route; this collection manages http"):
        find_http_route(spec, "mongo")
