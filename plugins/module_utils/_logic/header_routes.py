# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Header routes: a named http route that sends matching requests (testers) to one subset.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryConflictError,
    CanaryInputError,
    is_int,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.matches import route_shadows
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    default_route_indexes,
    http_list,
    route_label,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.subsets import validate_subset_name
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    TOTAL_WEIGHT,
    refuse_routes_without_destinations,
)


def _header_route(name: str, host: str, match: list, subset: str, port: Any) -> dict:
    target: dict[str, Any] = {"host": host, "subset": subset}
    if port is not None:
        target["port"] = {"number": port}
    return {
        "name": name,
        "match": copy.deepcopy(match),
        "route": [{"destination": target, "weight": TOTAL_WEIGHT}],
    }


def plan_header_route(
    spec: Any, name: Any, host: Any, match: Any, destination_subset: Any, *, port: Any = None,
    hosts: Hosts | None = None,
) -> list[dict]:
    """A new ``spec.http`` list in which route ``name`` sends ``match``-ing requests to a subset.

    The route gets ``match`` and one destination (``host``/``destination_subset``, weight
    100); other fields of an existing route of that name are kept. It must sit above
    the host's default route, because Istio uses the first route that matches: an
    existing route below it moves to just above it, a new one is inserted just above it
    (or before the first route to the host, or at the end, when there is no default
    route). Everything else in the list is untouched.

    Istio gives a request to the first route that matches it, so a header route below an
    earlier route that matches every request it would match never receives traffic. Such a
    plan is refused, naming the earlier route (see :mod:`matches` for what is compared): the
    earlier route belongs to someone, and moving ours above it would take requests away from it.
    """
    hosts = hosts_of(spec, hosts)
    hint_match = (
        "give a non-empty list of Istio HTTPMatchRequest mappings, "
        "e.g. [{'headers': {'end-user': {'exact': 'jason'}}}]"
    )
    require_text(name, "header route name", "name the route, e.g. 'reviews-canary-testers'")
    require_text(host, "host", "pass the service host, e.g. 'reviews'")
    validate_subset_name(destination_subset, "destination subset")
    if (
        not isinstance(match, list)
        or not match
        or not all(isinstance(item, Mapping) and item for item in match)
    ):
        raise CanaryInputError(
            f"match {show(match)} is not a non-empty list of non-empty mappings; an empty match would "
            f"send all traffic to the subset. {hint_match}"
        )
    if port is not None and (not is_int(port) or not 1 <= port <= 65535):
        raise CanaryInputError(
            f"port {show(port)} is not an integer between 1 and 65535; give the service port or omit it"
        )

    http = [copy.deepcopy(dict(route)) for route in http_list(spec)]
    named = [index for index, route in enumerate(http) if route.get("name") == name]
    if len(named) > 1:
        raise CanaryConflictError(
            f"header route name {name!r} is carried by {len(named)} http routes (indexes {named}); "
            "give the routes unique names"
        )
    defaults = [index for index in default_route_indexes(http, host, hosts) if index not in named]
    default_index = defaults[0] if defaults else None
    desired = _header_route(name, host, match, destination_subset, port)

    if named:
        index = named[0]
        current = http[index]
        if not current.get("match"):
            raise CanaryConflictError(
                f"http route {name!r} has no match, so it is a default route, not a header route; "
                "choose another name for the header route"
            )
        refuse_routes_without_destinations(current, f"http route {route_label(index, current)}")
        updated = dict(current)
        updated["match"] = desired["match"]
        updated["route"] = desired["route"]
        if default_index is not None and index > default_index:
            del http[index]
            http.insert(default_index, updated)
        else:
            http[index] = updated
        return _refuse_shadowed(http, name)

    if default_index is not None:
        http.insert(default_index, desired)
    else:
        to_host = [
            position
            for position, route in enumerate(http)
            if any(
                isinstance(item, Mapping)
                and isinstance(item.get("destination"), Mapping)
                and hosts.same(item["destination"].get("host"), host)
                for item in (route.get("route") if isinstance(route.get("route"), list) else [])
            )
        ]
        http.insert(to_host[0] if to_host else len(http), desired)
    return _refuse_shadowed(http, name)


def _refuse_shadowed(http: list[dict], name: str) -> list[dict]:
    """``http`` unchanged, unless an earlier route takes every request header route ``name`` matches."""
    position = next(index for index, route in enumerate(http) if route.get("name") == name)
    match = http[position]["match"]
    for index in range(position):
        if route_shadows(http[index], match):
            earlier = http[index]
            what = (f"matches {show(earlier.get('match'))}" if earlier.get("match")
                    else "has no match, so it takes every request")
            raise CanaryConflictError(
                f"header route {name!r} with match {show(match)} would sit below http route "
                f"{route_label(index, earlier)}, which {what}: Istio gives each request to the first route that "
                "matches it, so the header route would never receive traffic. Nothing was changed. Give the header "
                f"route a match that route {route_label(index, earlier)} does not cover, or change or remove that route"
            )
    return http


def remove_header_route(spec: Any, name: Any) -> list[dict]:
    """A new ``spec.http`` list without header route ``name`` (unchanged when absent).

    Refuses to remove a route without ``match``: that is a default route, and removing
    it would leave the host's traffic unrouted.
    """
    require_text(name, "header route name", "name the header route to remove")
    http = [copy.deepcopy(dict(route)) for route in http_list(spec)]
    kept = []
    for index, route in enumerate(http):
        if route.get("name") == name:
            if not route.get("match"):
                raise CanaryConflictError(
                    f"http route #{index} {name!r} has no match, so it is a default route, not a header "
                    "route; refusing to remove it"
                )
            continue
        kept.append(route)
    return kept


def header_route_port(spec: Any, host: str, hosts: Hosts | None = None) -> int | None:
    """The port number the VirtualService's existing destinations of ``host`` use (first found), if any."""
    hosts = hosts or Hosts()
    port = None
    for item in (spec or {}).get("http") or []:
        for destination in (item or {}).get("route") or []:
            target_port = ((destination or {}).get("destination") or {}).get("port")
            if port is None and hosts.same(((destination or {}).get("destination") or {}).get("host"), host) \
                    and isinstance(target_port, dict) and isinstance(target_port.get("number"), int):
                port = target_port["number"]
    return port
