# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""First match wins: a header route must not sit below a route that already takes its requests.

Expected answers come from Istio: istio/api ``networking/v1alpha3/virtual_service.proto``
(``HTTPRoute.match``: "match conditions to be satisfied for the rule to be activated. All
conditions inside a single match block have AND semantics, while the list of match blocks have
OR semantics"; routes are evaluated in order and the first match is used), and the upstream
sample istio/istio ``samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml``.
"""

from __future__ import annotations

import copy

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryConflictError
from ansible_collections.canary.istio.plugins.module_utils._logic.header_routes import plan_header_route
from ansible_collections.canary.istio.plugins.module_utils._logic.matches import match_covers, route_shadows

pytestmark = pytest.mark.unit

# istio/istio samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml (spec)
JASON_V2_V3 = {
    "hosts": ["reviews"],
    "http": [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
        {"route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
    ],
}


def test_header_route_below_the_upstream_jason_route_is_refused_naming_it():
    spec = copy.deepcopy(JASON_V2_V3)
    with pytest.raises(CanaryConflictError) as caught:
        plan_header_route(spec, "testers", "reviews", [{"headers": {"end-user": {"exact": "jason"}}}], "v1")
    message = str(caught.value)
    assert "#0 (unnamed)" in message and "never receive traffic" in message and "'testers'" in message
    assert spec == JASON_V2_V3


def test_a_narrower_match_below_a_wider_one_is_refused_and_a_wider_one_is_not():
    spec = {"http": [
        {"name": "beta", "match": [{"headers": {"x-group": {"prefix": "beta"}}}],
         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ]}
    # Every request with x-group "beta-1" also starts with "beta": the earlier route takes it.
    with pytest.raises(CanaryConflictError, match="'beta'"):
        plan_header_route(spec, "t", "reviews", [{"headers": {"x-group": {"exact": "beta-1"}}}], "v3")
    # "beta-1" AND end-user=jason is still inside "beta".
    with pytest.raises(CanaryConflictError):
        plan_header_route(spec, "t", "reviews",
                          [{"headers": {"X-Group": {"prefix": "beta-1"}, "end-user": {"exact": "jason"}}}], "v3")
    # "bet" is wider than "beta": some of its requests reach the new route.
    http = plan_header_route(spec, "t", "reviews", [{"headers": {"x-group": {"prefix": "bet"}}}], "v3")
    assert [route.get("name") for route in http] == ["beta", "t", None]


@pytest.mark.parametrize(
    ("wide", "narrow", "covers"),
    [
        ({"uri": {"prefix": "/api"}}, {"uri": {"exact": "/api/v1"}}, True),
        ({"uri": {"prefix": "/api"}}, {"uri": {"exact": "/API/v1"}}, False),
        ({"uri": {"prefix": "/api"}, "ignoreUriCase": True}, {"uri": {"exact": "/API/v1"}}, True),
        ({"uri": {"prefix": "/api"}}, {"uri": {"prefix": "/api"}, "ignoreUriCase": True}, False),
        # A regex is compared only with the same regex.
        ({"uri": {"regex": "/api.*"}}, {"uri": {"exact": "/api/v1"}}, False),
        ({"uri": {"regex": "/api.*"}}, {"uri": {"regex": "/api.*"}}, True),
        # Header presence (an empty StringMatch) is implied by any condition on that header.
        ({"headers": {"cookie": {}}}, {"headers": {"cookie": {"regex": "user=jason"}}}, True),
        ({"headers": {"end-user": {"exact": "jason"}}}, {"uri": {"prefix": "/"}}, False),
        ({"sourceLabels": {"app": "web"}}, {"sourceLabels": {"app": "web", "version": "v1"}}, True),
        ({"sourceLabels": {"app": "web", "version": "v1"}}, {"sourceLabels": {"app": "web"}}, False),
        ({"gateways": ["a", "b"]}, {"gateways": ["a"]}, True),
        ({"gateways": ["a"]}, {}, False),
        ({"port": 9080}, {"port": 9080, "uri": {"prefix": "/"}}, True),
        ({"withoutHeaders": {"x": {"exact": "1"}}}, {}, False),
        # A field we do not know is never assumed to cover anything.
        ({"futureCondition": {"x": 1}}, {"futureCondition": {"x": 1}}, False),
        ({"name": "only-a-name"}, {"uri": {"exact": "/"}}, True),
    ],
)
def test_match_covers(wide, narrow, covers):
    assert match_covers(wide, narrow) is covers


def test_route_without_match_or_with_an_empty_match_request_shadows_everything():
    later = [{"headers": {"end-user": {"exact": "jason"}}}]
    assert route_shadows({"route": []}, later)
    assert route_shadows({"match": [], "route": []}, later)
    assert route_shadows({"match": [{"uri": {"exact": "/x"}}, {}], "route": []}, later)
    # OR of the later route's match requests: all must be covered.
    assert not route_shadows({"match": later}, [*later, {"uri": {"prefix": "/"}}])
