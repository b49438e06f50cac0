# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The invariant every VirtualService we store must keep: routes only to subsets that exist,
and weights Istio accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryInputError,
    require_mapping,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    ROUTE_SECTIONS,
    iter_destinations,
    route_label,
    virtual_service_spec,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import istio_weight_problems


def _subsets_for_host(existing: Mapping, host: Any, hosts: Hosts) -> set[str] | None:
    for known_host, subsets in existing.items():
        if hosts.same(known_host, host):
            return subsets
    return None


def check_invariant(vs_spec: Any, existing_subsets_by_host: Any, hosts: Hosts | None = None) -> list[str]:
    """Problems that would make Istio misroute or reject the VirtualService; ``[]`` if none.

    Reports destinations to a subset the DestinationRule of their host does not define
    (only hosts present in ``existing_subsets_by_host``, a mapping of host to subset names,
    are checked; hosts compared as Istio resolves them in the namespace of ``hosts``, default
    the object's own), weights Istio rejects (negative or not integers, several destinations
    totalling 0; not "sum to 100", which is only our rule for what we write) and routes that
    carry destinations next to ``delegate``/``redirect``/``directResponse``.
    """
    hint = "give a mapping of host to the subset names its DestinationRule defines"
    require_mapping(existing_subsets_by_host, "subsets by host", hint)
    existing: dict[str, set[str]] = {}
    for known_host, subsets in existing_subsets_by_host.items():
        require_text(known_host, "host in subsets by host", hint)
        if isinstance(subsets, (str, bytes, Mapping)) or not isinstance(subsets, Iterable):
            raise CanaryInputError(
                f"subsets of host {known_host!r} {show(subsets)} are not a list of names; {hint}"
            )
        names = list(subsets)
        for name in names:
            require_text(name, f"subset name of host {known_host!r}", hint)
        existing[known_host] = set(names)

    hosts = hosts_of(vs_spec, hosts)
    spec = virtual_service_spec(vs_spec)
    problems = []
    for section in ROUTE_SECTIONS:
        routes = spec.get(section)
        if routes is None:
            continue
        if not isinstance(routes, list):
            problems.append(f"spec.{section} {show(routes)} is not a list")
            continue
        for index, route in enumerate(routes):
            where = f"{section} route {route_label(index, route)}"
            problems.extend(istio_weight_problems(route, where))
            if section == "http" and isinstance(route, Mapping) and route.get("route"):
                conflicting = [key for key in ("delegate", "redirect", "directResponse") if route.get(key) is not None]
                if conflicting:
                    problems.append(f"{where} carries destinations next to {', '.join(conflicting)}, which Istio "
                                    "rejects (validateHTTPRouteConflict)")
    for where, target in iter_destinations(spec):
        subset = target.get("subset")
        if subset is None:
            continue
        host = target.get("host")
        if not isinstance(subset, str) or not isinstance(host, str):
            problems.append(
                f"{where} has a destination with host {show(host)} and subset {show(subset)}, "
                "which are not both strings"
            )
            continue
        defined = _subsets_for_host(existing, host, hosts)
        if defined is None:
            continue
        if subset not in defined:
            problems.append(
                f"{where} sends to subset {show(subset)} of host {show(host)}, which the DestinationRule "
                f"does not define (defined: {', '.join(sorted(defined)) or 'none'})"
            )
    return problems
