# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The http/tcp/tls routes of a VirtualService held as a plain dict, as in Istio's YAML.

Resources look exactly like Istio's YAML (``spec.http[].route[].destination.subset`` and so on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryConflictError,
    CanaryInputError,
    require_mapping,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, hosts_of
from ansible_collections.canary.istio.plugins.module_utils._logic.matches import is_catch_all

ROUTE_SECTIONS = ("http", "tcp", "tls")


def route_label(index: int, route: Any) -> str:
    name = route.get("name") if isinstance(route, Mapping) else None
    if isinstance(name, str) and name:
        return f"#{index} {name!r}"
    return f"#{index} (unnamed)"


def virtual_service_spec(resource: Any) -> Mapping:
    """The spec of a VirtualService given either the whole object or its spec.

    An object is recognised by a ``spec`` mapping next to no ``http``/``tcp``/``tls`` key.
    """
    hint = "pass the VirtualService object or its spec"
    require_mapping(resource, "VirtualService", hint)
    spec = resource.get("spec")
    if isinstance(spec, Mapping) and not any(section in resource for section in ROUTE_SECTIONS):
        return spec
    return resource


def http_list(spec: Any) -> list:
    spec = virtual_service_spec(spec)
    http = spec.get("http")
    if http is None:
        return []
    if not isinstance(http, list):
        raise CanaryInputError(f"spec.http {show(http)} is not a list; the VirtualService is malformed")
    for index, route in enumerate(http):
        if not isinstance(route, Mapping):
            raise CanaryInputError(
                f"spec.http[{index}] {show(route)} is not a mapping; the VirtualService is malformed"
            )
    return http


def route_destinations(route: Any, where: str) -> list:
    """The destination list of a route, validated."""
    hint = "each route destination needs 'destination' with a 'host' and an optional 'subset'"
    require_mapping(route, where, hint)
    destinations = route.get("route")
    if destinations is None:
        return []
    if not isinstance(destinations, list):
        raise CanaryInputError(f"{where}.route {show(destinations)} is not a list; {hint}")
    for index, item in enumerate(destinations):
        target = item.get("destination") if isinstance(item, Mapping) else None
        if not isinstance(target, Mapping):
            raise CanaryInputError(
                f"{where}.route[{index}] {show(item)} has no 'destination' mapping; {hint}"
            )
        require_text(target.get("host"), f"{where}.route[{index}].destination.host", hint)
        subset = target.get("subset")
        if subset is not None:
            require_text(subset, f"{where}.route[{index}].destination.subset", hint)
    return destinations


def route_checked(route: Any, where: str = "route") -> Any:
    """``route`` after :func:`route_destinations` found its destinations well formed."""
    route_destinations(route, where)
    return route


def route_names(http: list) -> list[str]:
    return [route_label(index, route) for index, route in enumerate(http)]


def sends_only_to(route: Mapping, host: str, hosts: Hosts) -> bool:
    destinations = route.get("route")
    if not isinstance(destinations, list) or not destinations:
        return False
    for item in destinations:
        target = item.get("destination") if isinstance(item, Mapping) else None
        if not isinstance(target, Mapping) or not hosts.same(target.get("host"), host):
            return False
    return True


def default_route_indexes(http: list, host: str, hosts: Hosts | None = None) -> list[int]:
    """Routes that match every request (no or empty ``match``) and send only to ``host``."""
    hosts = hosts or Hosts()
    return [
        index
        for index, route in enumerate(http)
        if isinstance(route, Mapping) and is_catch_all(route) and sends_only_to(route, host, hosts)
    ]


def _only_tcp_or_tls(spec: Any) -> list[str]:
    spec = virtual_service_spec(spec)
    if spec.get("http"):
        return []
    return [section for section in ("tcp", "tls") if spec.get(section)]


def find_http_route(spec: Any, host: Any = None, route_name: Any = None, hosts: Hosts | None = None) -> int:
    """Index in ``spec.http`` of the route a canary step changes.

    With ``route_name``: the route carrying that name (missing or duplicated names raise,
    listing the routes present). Without it: the host's default route, i.e. the one route
    without ``match`` (or with an empty one) whose destinations all go to ``host``
    (hosts compared as Istio resolves them, see :mod:`hosts`, in the namespace of ``hosts`` or
    of the object). None or several raise, naming the route Istio actually uses.
    ``spec`` may be the VirtualService object or its spec; ``host`` may be ``None`` when
    ``route_name`` is given. Only http routes are managed: a VirtualService with only tcp/tls
    routes is refused as such.
    """
    hosts = hosts_of(spec, hosts)
    hint = "pass the service host the VirtualService routes to, e.g. 'reviews'"
    if host is not None or route_name is None:
        require_text(host, "host", hint)
    http = http_list(spec)
    other_sections = _only_tcp_or_tls(spec)
    if other_sections:
        raise CanaryInputError(
            f"the VirtualService has only {' and '.join(other_sections)} routes and no http route; this collection "
            "manages http routes only (weights of tcp/tls routes are not changed)"
        )
    if route_name is not None:
        require_text(route_name, "route name", "pass the 'name' of an http route, or omit it")
        found = [index for index, route in enumerate(http) if route.get("name") == route_name]
        if not found:
            raise CanaryInputError(
                f"route name {route_name!r} is not among the http routes of the VirtualService "
                f"(present: {', '.join(route_names(http)) or 'none'}); pass one of those names"
            )
        if len(found) > 1:
            raise CanaryConflictError(
                f"route name {route_name!r} is carried by {len(found)} http routes (indexes {found}); "
                "give the routes unique names"
            )
        return found[0]
    found = default_route_indexes(http, host, hosts)
    if not found:
        raise CanaryInputError(
            f"the VirtualService has no default http route for host {host!r} (a route without 'match' "
            "whose destinations all go to that host; routes present: "
            f"{', '.join(route_names(http)) or 'none'}); add one or pass the route name"
        )
    if len(found) > 1:
        # Istio uses the first route that matches a request (VirtualService docs, "http"): the
        # first catch-all takes every request that reaches it, and the later ones never match.
        first, dead = found[0], found[1:]
        name = http[first].get("name")
        remedy = (f"remove the dead route(s), or pass route_name {name!r} to change the one in use" if name
                  else "remove the dead route(s), or give the first one a name and pass it as route_name")
        raise CanaryConflictError(
            f"the VirtualService has {len(found)} http routes without match for host {host!r}: Istio sends every "
            f"request that reaches them to the first, {route_label(first, http[first])}, and "
            f"{', '.join(route_label(index, http[index]) for index in dead)} never receive traffic; {remedy}"
        )
    return found[0]


def iter_destinations(spec: Mapping) -> Iterable[tuple[str, Mapping]]:
    """``(where, destination)`` for every destination a spec sends or mirrors traffic to.

    Skips anything malformed; callers that must report malformed routes use
    :func:`weight_problems`.
    """
    for section in ROUTE_SECTIONS:
        routes = spec.get(section)
        if not isinstance(routes, list):
            continue
        for index, route in enumerate(routes):
            if not isinstance(route, Mapping):
                continue
            where = f"{section} route {route_label(index, route)}"
            destinations = route.get("route")
            for item in destinations if isinstance(destinations, list) else []:
                target = item.get("destination") if isinstance(item, Mapping) else None
                if isinstance(target, Mapping):
                    yield where, target
            if section != "http":
                continue
            mirror = route.get("mirror")
            if isinstance(mirror, Mapping):
                yield where + " mirror", mirror
            mirrors = route.get("mirrors")
            for item in mirrors if isinstance(mirrors, list) else []:
                target = item.get("destination") if isinstance(item, Mapping) else None
                if isinstance(target, Mapping):
                    yield where + " mirrors", target


def referenced_subsets(vs_spec: Any, host: Any, hosts: Hosts | None = None) -> set[str]:
    """Subsets of ``host`` that any http/tcp/tls route or http mirror sends traffic to.

    Hosts are compared as Istio resolves them in the namespace of ``hosts`` (default: the
    object's own); ``host`` may be a full name. Make-before-break: a subset in this set must
    not be removed from the DestinationRule.
    """
    require_text(host, "host", "pass the service host, e.g. 'reviews'")
    hosts = hosts_of(vs_spec, hosts)
    spec = virtual_service_spec(vs_spec)
    result = set()
    for _where, target in iter_destinations(spec):
        subset = target.get("subset")
        if isinstance(subset, str) and subset and hosts.same(target.get("host"), host):
            result.add(subset)
    return result


def refuse_unreachable(http: list, index: int) -> None:
    """Refuse to write into route ``index`` when an earlier route matches every request.

    istio/istio ``pilot/pkg/networking/core/route/route.go`` ``BuildHTTPRoutesForVirtualService``
    stops building routes after the first catch-all route (no match, or a match without
    conditions), and ``analyzeUnreachableHTTPRules`` warns of every route after it: such a route
    never receives traffic, so weights written there would move nothing.
    """
    for earlier in range(index):
        if is_catch_all(http[earlier]):
            raise CanaryConflictError(
                f"http route {route_label(index, http[index])} comes after {route_label(earlier, http[earlier])}, "
                "which matches every request: Istio stops building routes after the first catch-all (route.go), so "
                f"{route_label(index, http[index])} never receives traffic and weights written there would move "
                f"nothing. Nothing was changed. Move traffic on {route_label(earlier, http[earlier])} instead, or "
                "give it a match")
