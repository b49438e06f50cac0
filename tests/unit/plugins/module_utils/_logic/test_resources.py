# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Specs the resource modules accept, and the one rule for what a user owns of an object."""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import (
    comparable,
    validate_destination_rule_spec,
    validate_virtual_service_spec,
)

pytestmark = pytest.mark.unit

# The delegate VirtualService of Istio's reference docs (istio/api virtual_service.proto,
# "Delegate"): no hosts, routes only.
DELEGATE = {"http": [{"match": [{"uri": {"prefix": "/productpage/v1/"}}],
                      "route": [{"destination": {"host": "productpage-v1.nsA.svc.cluster.local"}}]}]}


def test_delegate_virtual_service_without_hosts_is_accepted():
    assert validate_virtual_service_spec(DELEGATE) == DELEGATE
    assert validate_virtual_service_spec({**DELEGATE, "hosts": []})


@pytest.mark.parametrize("field", ["gateways", "tcp", "tls"])
def test_delegate_virtual_service_refuses_what_istio_refuses(field):
    # istio/istio pkg/config/validation/validation.go ValidateVirtualService: "delegate virtual
    # service must have no gateways specified" / "no tcp route" / "no tls route".
    value = ["mesh"] if field == "gateways" else [{"route": [{"destination": {"host": "x"}}]}]
    with pytest.raises(CanaryInputError, match=f"spec.{field} .* without hosts"):
        validate_virtual_service_spec({**DELEGATE, field: value})


def test_delegate_inside_a_delegate_is_refused():
    spec = {"http": [{"delegate": {"name": "deeper"}}]}
    with pytest.raises(CanaryInputError, match="one level of delegation"):
        validate_virtual_service_spec(spec)


def test_istio_valid_weights_are_accepted_and_invalid_subset_names_refused():
    spec = {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 900},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]}]}
    assert validate_virtual_service_spec(spec) == spec
    spec["http"][0]["route"][1]["destination"]["subset"] = "v2.1"
    with pytest.raises(CanaryInputError, match=r"'v2\.1' is not a valid subset name"):
        validate_virtual_service_spec(spec)
    with pytest.raises(CanaryInputError, match=r"spec.subsets\[0\].name 'v2_1'"):
        validate_destination_rule_spec({"host": "reviews", "subsets": [{"name": "v2_1", "labels": {"v": "1"}}]})


def test_comparable_is_one_rule_for_every_kind():
    stored = {"apiVersion": "v1", "kind": "ConfigMap", "status": {"x": 1},
              "metadata": {"name": "a", "resourceVersion": "7", "uid": "u", "managedFields": [], "labels": {},
                           "annotations": {"deployment.kubernetes.io/revision": "3"}}, "data": {"k": "v"}}
    assert comparable(stored) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                  "data": {"k": "v"}}
    assert comparable(None) == {}
