# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of the weight filters through their FilterModule mappings, as Ansible loads them."""

from __future__ import annotations

import importlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

FILTER_NAMES = ("canary_weights", "split_weights", "route_weights")


def load(name):
    module = importlib.import_module(f"ansible_collections.canary.istio.plugins.filter.{name}")
    return module


def get_filter(name):
    return load(name).FilterModule().filters()[name]


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_each_file_exposes_its_filter_and_documents_it(name):
    module = load(name)
    assert list(module.FilterModule().filters()) == [name]
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["name"] == name
    assert str(doc["version_added"]) == "0.1.0"
    assert doc["short_description"]
    assert doc["author"]
    assert doc["options"]["_input"]["required"] is True
    assert doc["positional"].split(",")[0].strip() == "_input"
    assert yaml.safe_load(module.RETURN)["_value"]["description"]
    examples = yaml.safe_load(module.EXAMPLES)
    assert isinstance(examples, list)
    assert all(f"canary.istio.{name}" in str(task) for task in examples if "msg" in str(task))


# --------------------------------------------------------------------------------------
# canary_weights


def test_canary_weights_filter():
    canary_weights = get_filter("canary_weights")
    assert canary_weights(30) == {"base": 70, "canary": 30}
    assert canary_weights("30", "v1", "v2") == {"v1": 70, "v2": 30}
    assert canary_weights(" 0 ", base="v1", canary="v2") == {"v1": 100, "v2": 0}
    assert canary_weights(100) == {"base": 0, "canary": 100}


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (150, "ratio 150 "),
        ("abc", "ratio 'abc' "),
        ("", "ratio '' "),
        (-5, "ratio -5 "),
        (True, "ratio True "),
        (12.5, "ratio 12.5 "),
        (None, "ratio None "),
    ],
)
def test_canary_weights_filter_refuses(ratio, shown):
    with pytest.raises(AnsibleFilterError) as caught:
        get_filter("canary_weights")(ratio)
    message = str(caught.value)
    assert message.startswith("canary_weights: " + shown)
    assert "is not an integer between 0 and 100" in message


def test_canary_weights_filter_refuses_equal_subsets():
    with pytest.raises(AnsibleFilterError, match="canary_weights: base and canary subset are both 'v1'"):
        get_filter("canary_weights")(10, "v1", "v1")


@given(st.integers(0, 100))
def test_canary_weights_filter_always_sums_to_100(ratio):
    weights = get_filter("canary_weights")(str(ratio), "v1", "v2")
    assert weights == {"v1": 100 - ratio, "v2": ratio}


# --------------------------------------------------------------------------------------
# split_weights


def test_split_weights_filter():
    split_weights = get_filter("split_weights")
    assert split_weights({"v1": 1, "v2": 1, "v3": 1}) == {"v1": 34, "v2": 33, "v3": 33}
    assert split_weights([2, 1]) == [67, 33]
    assert split_weights({"v1": "3", "v2": "1"}) == {"v1": 75, "v2": 25}


@pytest.mark.parametrize(
    ("shares", "fragment"),
    [({"v1": 0}, "are all zero"), ([], "are empty"), ({"v1": -2}, "share of 'v1' -2"), ("abc", "'abc'")],
)
def test_split_weights_filter_refuses(shares, fragment):
    with pytest.raises(AnsibleFilterError) as caught:
        get_filter("split_weights")(shares)
    assert str(caught.value).startswith("split_weights: ")
    assert fragment in str(caught.value)


@given(st.dictionaries(st.sampled_from(["v1", "v2", "v3", "v4"]), st.integers(1, 1000), min_size=1))
def test_split_weights_filter_sums_to_100(shares):
    weights = get_filter("split_weights")(shares)
    assert sum(weights.values()) == 100
    assert list(weights) == list(shares)


# --------------------------------------------------------------------------------------
# route_weights

VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "bookinfo", "resourceVersion": "7"},
    "spec": {
        "hosts": ["reviews"],
        "http": [
            {
                "name": "testers",
                "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
            },
            {
                "name": "reviews-default",
                "route": [
                    {
                        "destination": {"host": "reviews.bookinfo.svc.cluster.local", "subset": "v1"},
                        "weight": 80,
                    },
                    {
                        "destination": {"host": "reviews.bookinfo.svc.cluster.local", "subset": "v2"},
                        "weight": 20,
                    },
                ],
            },
        ],
    },
}


def test_route_weights_filter_reads_object_spec_and_route():
    route_weights = get_filter("route_weights")
    assert route_weights(VIRTUAL_SERVICE, host="reviews") == {"v1": 80, "v2": 20}
    # A bare spec carries no namespace: short names resolve only when it is given (Istio's
    # ResolveShortnameToFQDN uses the namespace of the object naming the host).
    assert route_weights(VIRTUAL_SERVICE["spec"], "reviews", namespace="bookinfo") == {"v1": 80, "v2": 20}
    assert route_weights(VIRTUAL_SERVICE, route_name="testers") == {"v2": 100}
    assert route_weights(VIRTUAL_SERVICE["spec"]["http"][1]) == {"v1": 80, "v2": 20}


def test_route_weights_filter_reads_duplicates_and_several_hosts_as_istio_builds_them():
    # route.go: one weighted cluster per entry, named by resolved host and subset; entries for one destination
    # add up, and two services of the same subset name are two destinations (tests/conformance/oracle.py).
    route_weights = get_filter("route_weights")
    duplicated = {"name": "d", "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                                         {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50}]}
    assert route_weights(duplicated) == {"v1": 100}
    across = {"metadata": {"name": "reviews", "namespace": "bookinfo"}, "spec": {"hosts": ["reviews"], "http": [
        {"name": "primary", "route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 75},
            {"destination": {"host": "reviews.staging.svc.cluster.local", "subset": "v1"}, "weight": 25}]}]}}
    assert route_weights(across, route_name="primary") == {"reviews:v1": 75,
                                                           "reviews.staging.svc.cluster.local:v1": 25}
    whole = {"route": [{"destination": {"host": "reviews"}}]}
    assert route_weights(whole) == {"reviews": 100}


@pytest.mark.parametrize(
    ("resource", "options", "fragment"),
    [
        (VIRTUAL_SERVICE, {"host": "ratings"}, "no default http route for host 'ratings'"),
        (VIRTUAL_SERVICE, {"route_name": "nope"}, "route name 'nope' is not among"),
        (VIRTUAL_SERVICE, {}, "host None"),
        ("reviews", {"host": "reviews"}, "VirtualService 'reviews' is not a mapping"),
        (VIRTUAL_SERVICE["spec"]["http"][1], {"host": "reviews"}, "already a single route"),
        ({"route": [{"weight": 10}]}, {}, "has no 'destination' mapping"),
    ],
)
def test_route_weights_filter_refuses(resource, options, fragment):
    with pytest.raises(AnsibleFilterError) as caught:
        get_filter("route_weights")(resource, **options)
    assert str(caught.value).startswith("route_weights: ")
    assert fragment in str(caught.value)
