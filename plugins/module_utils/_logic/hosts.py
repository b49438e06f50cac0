# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Service host names, resolved the way Istio resolves them, and which DestinationRule applies.

Rules followed (istio/istio):

- ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN``: a host without a dot is short for
  ``<name>.<namespace of the object that names it>.svc.<cluster domain>``; a host with a dot is
  taken literally (``reviews.staging`` is *not* ``reviews.staging.svc.cluster.local``); ``*`` and
  IP addresses are left alone. Hosts are then compared as plain strings.
- ``pilot/pkg/model/push_context.go`` ``destinationRule``: for a client in namespace C and a
  service host H in namespace S, Istio uses the DestinationRules for H (1) in C, (2) else those of
  S exported to C, (3) else those of the mesh root namespace (``istio-system`` by default)
  exported to C; within a namespace the most specific host wins (exact before wildcard), and
  several rules for the same host are merged (``setDestinationRules``/``mergeDestinationRule``).
  A VirtualService's clients are taken to live in the VirtualService's namespace.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError, show

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_ROOT_NAMESPACE = "istio-system"
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@functools.lru_cache(maxsize=4096)  # thousands of services resolve the same few hosts many times
def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def resolve_host(host: Any, namespace: str | None, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> Any:
    """``host`` as Istio resolves it for an object in ``namespace`` (``ResolveShortnameToFQDN``).

    With no namespace known, a short name stays as it is (it can then only equal itself).
    Non-strings come back unchanged.
    """
    if not isinstance(host, str) or not host or host == "*" or "." in host or _is_ip_address(host):
        return host
    if not namespace:
        return host
    return f"{host}.{namespace}.svc.{cluster_domain}"


class Hosts:
    """Host names as seen from one namespace (the namespace of the object that names them)."""

    def __init__(self, namespace: str | None = None, cluster_domain: str | None = None):
        self.namespace = namespace or None
        self.cluster_domain = cluster_domain or DEFAULT_CLUSTER_DOMAIN

    def fqdn(self, host: Any) -> Any:
        return resolve_host(host, self.namespace, self.cluster_domain)

    def same(self, first: Any, second: Any) -> bool:
        """Whether two hosts named in this namespace denote the same service."""
        if not isinstance(first, str) or not isinstance(second, str) or not first or not second:
            return False
        return self.fqdn(first) == self.fqdn(second)

    def service_namespace(self, host: Any) -> str | None:
        """The namespace of a Kubernetes service host (``name.ns.svc.<cluster domain>``), else None."""
        fqdn = self.fqdn(host)
        suffix = f".svc.{self.cluster_domain}"
        if not isinstance(fqdn, str) or not fqdn.endswith(suffix):
            return None
        labels = fqdn[: -len(suffix)].split(".")
        return labels[1] if len(labels) == 2 and all(labels) else None

    def service_name(self, host: Any) -> str | None:
        """The name of a Kubernetes service host, else None."""
        if self.service_namespace(host) is None:
            return None
        return self.fqdn(host).split(".", 1)[0]


def hosts_of(resource: Any, hosts: Hosts | None = None) -> Hosts:
    """``hosts`` if given, else the scope of the object's own namespace (a bare spec has none)."""
    if hosts is not None:
        return hosts
    metadata = resource.get("metadata") if isinstance(resource, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return Hosts(namespace if isinstance(namespace, str) else None)


def same_host(first: Any, second: Any, namespace: str | None = None,
              cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> bool:
    """Whether two hosts named by objects in ``namespace`` denote the same service (see module doc)."""
    return Hosts(namespace, cluster_domain).same(first, second)


def service_host(vs: dict[str, Any], given: str | None) -> str:
    """The service host a canary step moves, as spelled: ``given``, else the VirtualService's only
    host, else the one of its hosts that resolves to the service named like the VirtualService."""
    if given:
        return given
    hosts = (vs.get("spec") or {}).get("hosts") or []
    if len(hosts) == 1 and isinstance(hosts[0], str):
        return hosts[0]
    metadata = vs.get("metadata") or {}
    name = metadata.get("name")
    scope = Hosts(metadata.get("namespace"))
    for host in hosts:
        if isinstance(host, str) and scope.same(host, name):
            return host
    where = f"{metadata.get('namespace')}/{name}"
    if not hosts:
        raise CanaryInputError(f"VirtualService {where} has no hosts (a delegate VirtualService, used only through "
                               "a root VirtualService's delegate); say which service to move with service_host")
    raise CanaryInputError(f"VirtualService {where} has hosts {hosts!r}; say which service to move with service_host")


# --------------------------------------------------------------------------------------
# which DestinationRule applies


def destination_rule_namespaces(client_namespace: str, service_namespace: str | None,
                                root_namespace: str = DEFAULT_ROOT_NAMESPACE) -> list[str]:
    """Namespaces Istio searches for a host's DestinationRule, in order, without repeats."""
    order = [client_namespace, service_namespace, root_namespace or DEFAULT_ROOT_NAMESPACE]
    result: list[str] = []
    for namespace in order:
        if namespace and namespace not in result:
            result.append(namespace)
    return result


def _export_to(rule: Mapping) -> list[str]:
    export_to = (rule.get("spec") or {}).get("exportTo")
    return [item for item in export_to if isinstance(item, str)] if isinstance(export_to, list) else []


def visible_to(rule: Mapping, rule_namespace: str, client_namespace: str) -> bool:
    """Whether Istio applies ``rule`` (stored in ``rule_namespace``) to clients in ``client_namespace``.

    ``exportTo`` absent means the mesh default (``*``, every namespace); ``.`` means the rule's own
    namespace; ``~`` nobody; otherwise namespace names (``setDestinationRules``).
    """
    export_to = _export_to(rule)
    if not export_to or "*" in export_to:
        return True
    if client_namespace == rule_namespace:
        return "." in export_to or rule_namespace in export_to
    return client_namespace in export_to


def _wildcard_matches(pattern: str, fqdn: str) -> bool:
    if pattern == "*":
        return True
    return pattern.startswith("*.") and fqdn.endswith(pattern[1:])


def rules_for_host(rules: list[Mapping], rule_namespace: str, client_namespace: str, fqdn: str,
                   cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> list[Mapping]:
    """The rules of one namespace that Istio applies to ``fqdn`` for the client namespace.

    Each rule's ``spec.host`` is resolved in the rule's namespace. An exact host beats any
    wildcard; among wildcards the longest (most specific) wins (``MostSpecificHostMatch``).
    Several rules with the winning host are all returned (Istio merges them).
    """
    scope = Hosts(rule_namespace, cluster_domain)
    candidates = []
    for rule in rules:
        if not isinstance(rule, Mapping) or not visible_to(rule, rule_namespace, client_namespace):
            continue
        host = scope.fqdn((rule.get("spec") or {}).get("host"))
        if isinstance(host, str) and (host == fqdn or _wildcard_matches(host, fqdn)):
            candidates.append((host, rule))
    if not candidates:
        return []
    exact = [rule for host, rule in candidates if host == fqdn]
    if exact:
        return exact
    best = max(len(host) for host, _rule in candidates)
    return [rule for host, rule in candidates if len(host) == best]


def merged_subsets(rules: list[Mapping]) -> list[str]:
    """Subset names of rules Istio merges, first definition first."""
    names: list[str] = []
    for rule in rules:
        for subset in (rule.get("spec") or {}).get("subsets") or []:
            name = subset.get("name") if isinstance(subset, Mapping) else None
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def validate_cluster_domain(value: Any) -> str:
    """A DNS domain such as ``cluster.local``."""
    labels = value.split(".") if isinstance(value, str) else []
    if not labels or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise CanaryInputError(f"cluster_domain {show(value)} is not a DNS domain of lower-case labels; "
                               "give the cluster's DNS domain, e.g. 'cluster.local'")
    return value


# Options of the modules that resolve hosts (documented in doc_fragments/mesh.py).
MESH_ARG_SPEC: dict[str, dict[str, Any]] = {
    "cluster_domain": {"type": "str", "default": DEFAULT_CLUSTER_DOMAIN},
    "root_namespace": {"type": "str", "default": DEFAULT_ROOT_NAMESPACE},
}
