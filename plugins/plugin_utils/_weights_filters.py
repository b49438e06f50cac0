# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller-side glue between the weight filters and the pure logic in module_utils.

Each function takes the filter's input and options, calls the logic, and turns
:class:`CanaryInputError` into :class:`AnsibleFilterError` prefixed with the filter's
name, so a failing template says which filter refused which value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route, virtual_service_spec
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    canary_weights,
    route_weights,
    split_weights,
)


def _refuse(filter_name: str, error: CanaryInputError) -> AnsibleFilterError:
    return AnsibleFilterError(f"{filter_name}: {error}")


def canary_weights_filter(ratio: Any, base: Any = "base", canary: Any = "canary") -> dict[str, int]:
    """``{base: 100 - ratio, canary: ratio}``; see the canary_weights filter docs."""
    try:
        return canary_weights(ratio, base=base, canary=canary)
    except CanaryInputError as error:
        raise _refuse("canary_weights", error) from None


def split_weights_filter(shares: Any) -> dict[str, int] | list[int]:
    """Largest-remainder split of shares into weights summing to 100."""
    try:
        return split_weights(shares)
    except CanaryInputError as error:
        raise _refuse("split_weights", error) from None


def _is_route(value: Mapping) -> bool:
    """A single http/tcp/tls route rather than a VirtualService object or spec."""
    return "route" in value and not any(key in value for key in ("spec", "http", "tcp", "tls"))


def route_weights_filter(resource: Any, host: Any = None, route_name: Any = None, namespace: Any = None,
                         cluster_domain: Any = None) -> dict[str, int | float]:
    """Shares of one route as Istio routes them, read from a route, a VirtualService spec or a whole object."""
    try:
        if isinstance(resource, Mapping) and _is_route(resource):
            if host is not None or route_name is not None:
                raise CanaryInputError(
                    f"host {host!r} and route_name {route_name!r} select a route inside a VirtualService, "
                    "but the input is already a single route; drop them or pass the VirtualService"
                )
            return route_weights(resource)
        hosts = None
        if namespace is not None or cluster_domain is not None:
            metadata = resource.get("metadata") if isinstance(resource, Mapping) else None
            own = metadata.get("namespace") if isinstance(metadata, Mapping) else None
            hosts = Hosts(namespace or own, cluster_domain)
        hosts = hosts_of(resource, hosts)
        index = find_http_route(resource, host=host, route_name=route_name, hosts=hosts)
        return route_weights(virtual_service_spec(resource)["http"][index], hosts)
    except CanaryInputError as error:
        raise _refuse("route_weights", error) from None
