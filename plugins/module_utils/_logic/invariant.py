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
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import same_host
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    ROUTE_SECTIONS,
    iter_destinations,
    route_label,
    virtual_service_spec,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import weight_problems


def _subsets_for_host(existing: Mapping, host: Any) -> set[str] | None:
    for known_host, subsets in existing.items():
        if same_host(known_host, host):
            return subsets
    return None


def check_invariant(vs_spec: Any, existing_subsets_by_host: Any) -> list[str]:
    """Problems that would make Istio misroute or reject the VirtualService; ``[]`` if none.

    Reports destinations to a subset the DestinationRule of their host does not define
    (only hosts present in ``existing_subsets_by_host``, a mapping of host to subset names,
    are checked) and weighted routes whose weights are not integers 0..100 summing to 100
    (a lone destination without weight is fine).
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
            problems.extend(weight_problems(route, f"{section} route {route_label(index, route)}"))
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
        defined = _subsets_for_host(existing, host)
        if defined is None:
            continue
        if subset not in defined:
            problems.append(
                f"{where} sends to subset {show(subset)} of host {show(host)}, which the DestinationRule "
                f"does not define (defined: {', '.join(sorted(defined)) or 'none'})"
            )
    return problems
