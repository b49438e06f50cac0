# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Host names and DestinationRule lookup, against Istio's own rules.

Expected answers come from istio/istio, not from our functions:

- ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN`` and its table test in
  ``pilot/pkg/model/config_test.go`` (``TestResolveShortnameToFQDN``): ``foo`` in namespace
  ``default`` with domain ``cluster.local`` is ``foo.default.svc.cluster.local``; ``foo.bar`` stays
  ``foo.bar``; ``*`` and IP addresses stay as they are.
- ``pilot/pkg/model/push_context.go`` ``destinationRule``: client namespace first, then the
  service's namespace (rules exported to the client), then the root namespace.
- Istio's docs, "Traffic Management Best Practices" (cross-namespace configuration): a rule for
  ``reviews`` in namespace ``staging`` applies to ``reviews.staging.svc.cluster.local``, not to a
  ``reviews`` service in another namespace.
"""

from __future__ import annotations

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import (
    Hosts,
    destination_rule_namespaces,
    merged_subsets,
    resolve_host,
    rules_for_host,
    same_host,
    visible_to,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "namespace", "domain", "fqdn"),
    [
        # TestResolveShortnameToFQDN in istio/istio pilot/pkg/model/config_test.go
        ("*", "default", "cluster.local", "*"),
        ("foo", "default", "cluster.local", "foo.default.svc.cluster.local"),
        ("foo.bar", "default", "cluster.local", "foo.bar"),
        ("42.185.131.210", "default", "cluster.local", "42.185.131.210"),
        ("2a00:4000::614", "default", "cluster.local", "2a00:4000::614"),
    ],
)
def test_resolve_host_follows_istio(host, namespace, domain, fqdn):
    assert resolve_host(host, namespace, domain) == fqdn


@pytest.mark.parametrize(
    ("first", "second", "namespace", "same"),
    [
        ("reviews", "reviews", "bookinfo", True),
        ("reviews", "reviews.bookinfo.svc.cluster.local", "bookinfo", True),
        # A short name lives in the namespace of the object naming it, not in any namespace.
        ("reviews", "reviews.staging.svc.cluster.local", "bookinfo", False),
        # A name with a dot is literal: reviews.staging is not reviews.staging.svc.cluster.local.
        ("reviews.staging", "reviews.staging.svc.cluster.local", "bookinfo", False),
        ("ratings", "reviews.bookinfo.svc.cluster.local", "bookinfo", False),
        ("reviews", "", "bookinfo", False),
        (None, "reviews", "bookinfo", False),
        ("reviews", ["reviews"], "bookinfo", False),
        # Without a namespace a short name only equals itself.
        ("reviews", "reviews.default.svc.cluster.local", None, False),
    ],
)
def test_same_host(first, second, namespace, same):
    assert same_host(first, second, namespace) is same
    assert same_host(second, first, namespace) is same


def test_cluster_domain_is_honoured():
    hosts = Hosts("shop", "corp.example")
    assert hosts.same("cart", "cart.shop.svc.corp.example")
    assert not hosts.same("cart", "cart.shop.svc.cluster.local")
    assert hosts.service_namespace("cart") == "shop"
    assert hosts.service_namespace("cart.payments.svc.corp.example") == "payments"
    assert hosts.service_namespace("api.example.com") is None


def test_destination_rule_namespaces_client_then_service_then_root():
    assert destination_rule_namespaces("frontend", "staging") == ["frontend", "staging", "istio-system"]
    assert destination_rule_namespaces("staging", "staging", "mesh-root") == ["staging", "mesh-root"]
    assert destination_rule_namespaces("frontend", None) == ["frontend", "istio-system"]


def _rule(name, host, subsets=(), export_to=None):
    spec = {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {"metadata": {"name": name}, "spec": spec}


def test_rule_host_resolves_in_the_rules_own_namespace():
    fqdn = "reviews.staging.svc.cluster.local"
    in_staging = _rule("reviews", "reviews", ["v1", "v2"])
    # The same short host in namespace frontend means reviews.frontend..., another service.
    assert rules_for_host([in_staging], "frontend", "frontend", fqdn) == []
    assert rules_for_host([in_staging], "staging", "frontend", fqdn) == [in_staging]


def test_export_to_limits_which_clients_see_a_rule():
    fqdn = "reviews.staging.svc.cluster.local"
    private = _rule("private", "reviews", ["v1"], export_to=["."])
    assert visible_to(private, "staging", "staging")
    assert not visible_to(private, "staging", "frontend")
    assert rules_for_host([private], "staging", "frontend", fqdn) == []
    assert visible_to(_rule("some", "reviews", export_to=["frontend"]), "staging", "frontend")
    assert not visible_to(_rule("none", "reviews", export_to=["~"]), "staging", "frontend")


def test_exact_host_beats_wildcard_and_rules_for_one_host_merge():
    fqdn = "reviews.staging.svc.cluster.local"
    wildcard = _rule("all", "*.staging.svc.cluster.local", ["v9"])
    first = _rule("a", "reviews", ["v1", "v2"])
    second = _rule("b", "reviews.staging.svc.cluster.local", ["v2", "v3"])
    chosen = rules_for_host([wildcard, first, second], "staging", "staging", fqdn)
    assert chosen == [first, second]
    assert merged_subsets(chosen) == ["v1", "v2", "v3"]
    assert rules_for_host([wildcard], "staging", "staging", fqdn) == [wildcard]
