# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hypothesis strategies for VirtualServices and weights, shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from ansible_collections.canary.istio.plugins.module_utils._logic.weights import split_weights

subset_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)


route_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=10)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))


json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


unknown_fields = st.dictionaries(st.text(alphabet="xyzXYZ_", min_size=1, max_size=6), json_values, max_size=3)


matches = st.lists(
    st.one_of(
        st.builds(lambda value: {"headers": {"end-user": {"exact": value}}}, st.text(min_size=1, max_size=5)),
        st.builds(lambda value: {"uri": {"prefix": "/" + value}}, st.text(max_size=5)),
    ),
    min_size=1,
    max_size=3,
)


retries = st.builds(lambda attempts: {"attempts": attempts, "perTryTimeout": "2s"}, st.integers(0, 5))


faults = st.builds(
    lambda percent: {"abort": {"percentage": {"value": percent}, "httpStatus": 503}},
    st.floats(0, 100, allow_nan=False),
)


@st.composite
def weighted_destinations(draw, host="reviews", min_size=1):
    subsets = draw(st.lists(subset_names, min_size=min_size, max_size=4, unique=True))
    shares = draw(st.lists(st.integers(0, 9), min_size=len(subsets), max_size=len(subsets)))
    if not any(shares):
        shares[0] = 1
    weights = split_weights(shares)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    items = []
    for subset, weight in zip(subsets, weights, strict=True):
        item = {"destination": {"host": host, "subset": subset}}
        if port is not None:
            item["destination"]["port"] = {"number": port}
        if draw(st.booleans()):
            item["headers"] = {"request": {"set": {"x-canary": subset}}}
        if len(subsets) > 1 or draw(st.booleans()):
            item["weight"] = weight
        items.append(item)
    return items


@st.composite
def http_route(draw, with_match, host="reviews"):
    route = dict(draw(unknown_fields))
    if draw(st.booleans()):
        route["name"] = draw(route_names)
    if with_match:
        route["match"] = draw(matches)
    elif draw(st.booleans()):
        route["match"] = []
    if draw(st.booleans()):
        route["retries"] = draw(retries)
    if draw(st.booleans()):
        route["fault"] = draw(faults)
    if draw(st.booleans()):
        route["timeout"] = "10s"
    route["route"] = draw(weighted_destinations(host=host))
    return route


@st.composite
def virtual_services(draw):
    host = draw(st.sampled_from(["reviews", "reviews.bookinfo.svc.cluster.local"]))
    before = draw(st.lists(http_route(True, host=draw(st.sampled_from(["reviews", "ratings"]))), max_size=3))
    after = draw(st.lists(http_route(True), max_size=3))
    # Routes to another host carry a match: a catch-all above the default route would take
    # every request (Istio: first match wins) and leave the rest of the list dead.
    others = draw(st.lists(http_route(True, host="ratings"), max_size=2))
    default = draw(http_route(False, host=host))
    http = before + others + [default] + after
    metadata = {"name": "reviews", "namespace": "bookinfo", "labels": {"app": "reviews"}, "annotations": {"k": "v"}}
    if draw(st.booleans()):
        metadata["resourceVersion"] = str(draw(st.integers(1, 10**9)))
    spec = {"hosts": ["reviews"], "http": http}
    if draw(st.booleans()):
        spec["tcp"] = [{"route": draw(weighted_destinations())}]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": spec,
    }


@st.composite
def new_weights(draw):
    subsets = draw(st.lists(subset_names, min_size=1, max_size=4, unique=True))
    shares = draw(st.lists(st.integers(0, 9), min_size=len(subsets), max_size=len(subsets)))
    if not any(shares):
        shares[-1] = 1
    return dict(zip(subsets, split_weights(shares), strict=True))
