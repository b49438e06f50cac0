# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Weights: the ones we are asked to write, and the ones a route carries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import (
    MAX_ISTIO_WEIGHT,
    TOTAL_WEIGHT,
    Destination,
    RouteDestinations,
    is_subset_name,
    moved_host,
    refuse_duplicates,
    validate_destination_key,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    MAX_NUMBER_DIGITS,
    CanaryInputError,
    integer_in_range,
    is_int,
    json_copy,
    require_mapping,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import route_destinations

_DECIMAL_TEXT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def validate_ratio(value: Any) -> int:
    """Return the canary ratio as an int in 0..100.

    Accepts ints, integral floats and strings holding them (``"30"``, ``" 30 "``); refuses
    booleans, fractions, ``None``, empty or non-numeric strings and out-of-range numbers.
    """
    return integer_in_range(
        value, "ratio", 0, TOTAL_WEIGHT, "give the canary's share of traffic as a whole percentage, e.g. 30"
    )


def canary_weights(ratio: Any, base: str = "base", canary: str = "canary") -> dict[str, int]:
    """Weights for a two-destination canary: ``{base: 100 - ratio, canary: ratio}``.

    ``base`` and ``canary`` name destinations as weights do (:mod:`destinations`): usually subsets.
    """
    percent = validate_ratio(ratio)
    validate_destination_key(base, "base subset name")
    validate_destination_key(canary, "canary subset name")
    if base == canary:
        raise CanaryInputError(
            f"base and canary subset are both {base!r}; name two different subsets (e.g. 'v1' and 'v2')"
        )
    return {base: TOTAL_WEIGHT - percent, canary: percent}


def _share(value: Any, what: str) -> Fraction:
    hint = "give each share as a finite number that is zero or more"
    number = None
    if is_int(value):
        number = Fraction(value)
    elif isinstance(value, float):
        if math.isfinite(value):
            number = Fraction(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DECIMAL_TEXT_RE.fullmatch(text) and len(text) <= MAX_NUMBER_DIGITS * 2:
            number = Fraction(text)
    if number is None or number < 0:
        raise CanaryInputError(f"{what} {show(value)} is not a finite number of zero or more; {hint}")
    return number


def _largest_remainder(shares: list[Fraction], total_out: int) -> list[int]:
    """Integers proportional to ``shares`` summing to ``total_out`` (Hamilton's method).

    Each result is the floor or the ceiling of the exact share; the leftover units go to
    the largest remainders, earlier entries first on ties, so the result is deterministic.
    """
    total = sum(shares, Fraction(0))
    exact = [share * total_out / total for share in shares]
    result = [math.floor(value) for value in exact]
    leftover = total_out - sum(result)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - result[i]), i))
    for index in by_remainder[:leftover]:
        result[index] += 1
    return result


def split_weights(shares: Any) -> dict[str, int] | list[int]:
    """Scale shares to integer weights that sum to exactly 100 (largest remainder).

    ``shares`` is a mapping of subset name to share, or a list of shares. Shares are
    non-negative finite numbers (or numeric strings), not all zero. The result has the
    same shape and order as the input; each weight is within 1 of its exact share.

    >>> split_weights({"v1": 1, "v2": 1, "v3": 1})
    {'v1': 34, 'v2': 33, 'v3': 33}
    """
    hint = "give a mapping of subset name to share, e.g. {'v1': 2, 'v2': 1}, or a list of shares"
    if isinstance(shares, Mapping):
        names = list(shares)
        for name in names:
            require_text(name, "share name", hint)
        values = [_share(shares[name], f"share of {name!r}") for name in names]
    elif isinstance(shares, (list, tuple)):
        names = None
        values = [_share(value, f"share #{index}") for index, value in enumerate(shares)]
    else:
        raise CanaryInputError(f"shares {show(shares)} are neither a mapping nor a list; {hint}")
    if not values:
        raise CanaryInputError(f"shares {show(shares)} are empty; {hint}")
    if not any(values):
        raise CanaryInputError(f"shares {show(shares)} are all zero; give at least one share above zero")
    weights = _largest_remainder(values, TOTAL_WEIGHT)
    if names is None:
        return weights
    return {name: weights[index] for index, name in enumerate(names)}


def plain_weights(weights: Any, what: str) -> dict[str, int]:
    """Mapping of destination keys (a subset, a host, or ``host:subset``; see :mod:`destinations`) to
    integers 0..100, without the sum rule."""
    hint = "give a mapping of subset name to weight, e.g. {'v1': 90, 'v2': 10}"
    require_mapping(weights, what, hint)
    result = {}
    for name, weight in weights.items():
        validate_destination_key(name, f"subset name in {what}")
        result[name] = integer_in_range(
            weight, f"weight of {'subset' if is_subset_name(name) else 'destination'} {name!r}", 0, TOTAL_WEIGHT,
            "weights are whole percentages"
        )
    return result


def plain_shares(shares: Any, what: str) -> dict[str, int | float]:
    """Shares as read from a route (:func:`route_weights`): destination keys (a subset, or a host for
    a destination without subset) to finite numbers 0..100."""
    hint = "give a mapping of destination to its share in percent, e.g. {'v1': 90, 'v2': 10}"
    require_mapping(shares, what, hint)
    result: dict[str, int | float] = {}
    for name, share in shares.items():
        require_text(name, f"destination in {what}", hint)
        if isinstance(share, float) and math.isfinite(share) and 0 <= share <= TOTAL_WEIGHT:
            result[name] = share
        else:
            result[name] = integer_in_range(share, f"share of {name!r}", 0, TOTAL_WEIGHT, hint)
    return result


def validate_weights(weights: Any) -> dict[str, int]:
    """Return ``weights`` as ``{subset: int}`` after checking every rule.

    Rules: a non-empty mapping; keys name destinations (a subset, a host, or ``host:subset``:
    :func:`destinations.validate_destination_key`);
    values are integers 0..100 (int-like strings accepted, booleans refused); the values
    sum to exactly 100.
    """
    result = plain_weights(weights, "weights")
    if not result:
        raise CanaryInputError("weights {} name no subset; give at least one, e.g. {'v1': 100}")
    total = sum(result.values())
    if total != TOTAL_WEIGHT:
        raise CanaryInputError(
            f"weights {show(weights)} sum to {total}, not {TOTAL_WEIGHT}; make them add up to "
            f"{TOTAL_WEIGHT} (split_weights scales any shares to {TOTAL_WEIGHT})"
        )
    return result


def refuse_routes_without_destinations(route: Any, where: str) -> None:
    """Refuse to give weights to a route that delegates, redirects or answers directly.

    istio/istio ``pkg/config/validation/virtualservice.go`` ``validateHTTPRouteConflict``: a
    route with ``delegate`` must not carry ``route``, and neither may one with ``redirect`` or
    ``directResponse``; istiod rejects such a VirtualService.
    """
    if not isinstance(route, Mapping):
        return
    present = [key for key in ("delegate", "redirect", "directResponse") if route.get(key) is not None]
    if present:
        doing = {"delegate": "delegates to another VirtualService", "redirect": "redirects",
                 "directResponse": "answers directly"}
        raise CanaryInputError(
            f"{where} {' and '.join(doing[key] for key in present)} ({', '.join(present)}), so it has no destinations "
            "to weigh: Istio rejects a route that carries both (validateHTTPRouteConflict). Nothing was changed. "
            + ("Move traffic in the delegate VirtualService instead" if "delegate" in present
               else "Choose a route that sends to destinations")
        )


def route_weights(route: Any, hosts: Hosts | None = None) -> dict[str, int | float]:
    """The share of traffic (percent) each destination of one http/tcp/tls route receives from Istio.

    A destination is its resolved host plus its subset (:mod:`destinations`, which also says how
    keys name them). Read the way Istio routes (istio/istio
    ``pilot/pkg/networking/core/route/route.go``): a lone destination takes all traffic whatever its
    weight; among several, weights are relative (``weight / sum``), a missing weight is 0, a weight-0
    destination gets nothing (and is listed with 0), and entries naming the same destination add
    up. Shares are whole numbers when exact, else rounded to two decimals. Weights Istio rejects
    (negative, not integers, several destinations summing to 0) raise. ``hosts`` resolves short
    host names (default: none known, so hosts compare as spelled).
    """
    route_destinations(route, "route")
    return RouteDestinations(route, hosts).percent()


def plan_route_weights(route: Any, host: Any, weights: Any, remove_unnamed: bool = False,
                       hosts: Hosts | None = None, host_given: bool = True) -> dict:
    """A deep copy of ``route`` whose destinations of one service host carry ``weights``.

    The host moved is chosen by :func:`destinations.moved_host`: ``host`` when ``host_given``
    (it must be one the route sends to), else the one host the route already sends to (``host``,
    the VirtualService's, is then only the default for a route without destinations). Keys of
    ``weights`` name destinations of that host only. Destinations of other hosts keep their
    entries and weights exactly; the moved host keeps its share of the route, split as ``weights``
    say (largest remainder over its current total when other hosts receive traffic, else ``weights``
    as given, summing to 100). Every field of the route and of each kept destination (headers,
    port, ...) stays; entries that repeat a destination with the same fields are merged into the
    first. Destinations not yet routed to are appended, using the route's spelling and port of the
    moved host. A destination of the moved host that ``weights`` does not name raises, unless
    ``remove_unnamed`` is true, in which case it is dropped. A route that delegates, redirects or
    answers directly is refused (:func:`refuse_routes_without_destinations`).
    """
    return plan_route_move(route, host, weights, remove_unnamed, hosts, host_given)[0]


def plan_route_move(route: Any, host: Any, weights: Any, remove_unnamed: bool = False,
                    hosts: Hosts | None = None, host_given: bool = True) -> tuple[dict, str, str | None]:
    """:func:`plan_route_weights`, and the resolved host moved with a note on how it was chosen."""
    hosts = hosts or Hosts()
    where = (f"http route {route.get('name')!r}" if isinstance(route, Mapping) and route.get("name")
             else "the http route")
    refuse_routes_without_destinations(route, where)
    wanted_keys = validate_weights(weights)
    route_destinations(route, "route")
    view = RouteDestinations(route, hosts)
    if host_given:
        require_text(host, "host", "pass the service host the route sends to, e.g. 'reviews'")
    moved, spelling, note = moved_host(view, wanted_keys, host if host_given else None, host, where)
    wanted: dict[Destination, int] = {}
    for key, weight in wanted_keys.items():
        destination = view.parse_key(key, moved)
        if destination in wanted:
            raise CanaryInputError(f"weights {show(weights)} name destination {destination} twice; name it once")
        wanted[destination] = weight
    merged = set(refuse_duplicates(view, moved))
    raw = view.raw_weights(where) if len(view.items) > 1 else [TOTAL_WEIGHT]
    others = [i for i, d in enumerate(view.destinations) if d.host != moved]
    mine = [i for i, d in enumerate(view.destinations) if d.host == moved and i not in merged]

    unnamed = [view.destinations[i] for i in mine if view.destinations[i] not in wanted]
    if unnamed and not remove_unnamed:
        subsets = [view.key(d) for d in unnamed if d.subset]
        whole_hosts = [view.key(d) for d in unnamed if not d.subset]
        parts = []
        if subsets:
            parts.append(f"subset(s) {subsets}, which weights {show(weights)} do not name; name them (weight 0 "
                         "keeps them in the route) or set remove_unnamed to drop them")
        if whole_hosts:
            parts.append(f"host {', '.join(repr(h) for h in whole_hosts)} with no subset (every version of the "
                         "service, not a missing subset: name it by its host in weights to keep it, or set "
                         "remove_unnamed to replace it by the subsets in weights)")
        raise CanaryInputError("the route also sends to " + "; and to ".join(parts))

    order = list(wanted)
    if any(raw[i] for i in others):
        share = sum(raw[i] for i in range(len(raw)) if view.destinations[i].host == moved)
        if share == 0:
            raise CanaryInputError(
                f"{where} sends nothing to {moved} (its destinations there have weight 0 or none); splitting that "
                "host's share would move no traffic, and giving it a share would take traffic from "
                f"{', '.join(h for h in view.service_hosts if h != moved)}. Nothing was changed")
        values = _largest_remainder([Fraction(wanted[d]) for d in order], share)  # wanted sums to 100
    else:
        values = [wanted[d] for d in order]
    new_weight = dict(zip(order, values))

    new_route = {key: None if key == "route" else json_copy(value) for key, value in route.items()}
    new_destinations = []
    template = None
    for index, (item, destination) in enumerate(zip(view.items, view.destinations)):
        if index in others:
            new_destinations.append(json_copy(item))
        elif index in merged or destination not in new_weight:
            continue
        else:
            template = template or item["destination"]
            kept = json_copy(item)
            kept["weight"] = new_weight[destination]
            new_destinations.append(kept)
    present = set(view.destinations)
    for destination in order:
        if destination in present:
            continue
        target: dict[str, Any] = {"host": template["host"] if template else spelling}
        if destination.subset:
            target["subset"] = destination.subset
        if template is not None and "port" in template:
            target["port"] = json_copy(template["port"])
        new_destinations.append({"destination": target, "weight": new_weight[destination]})
    new_route["route"] = new_destinations
    return new_route, moved, note


def _destinations_to_check(route: Any, where: str) -> tuple[list, list[str]]:
    """The destination list of one stored route, and the problem that leaves nothing to check
    (a route or a ``route`` field of the wrong type). No ``route`` field: nothing to check."""
    if not isinstance(route, Mapping):
        return [], [f"{where} {show(route)} is not a mapping"]
    destinations = route.get("route")
    if destinations is None:
        return [], []
    if not isinstance(destinations, list):
        return [], [f"{where}.route {show(destinations)} is not a list"]
    return destinations, []


def istio_weight_problems(route: Any, where: str) -> list[str]:
    """What Istio rejects in the weights of one stored route: a weight that is not an integer of
    zero or more, or several destinations whose weights total 0 (istio/istio
    ``pkg/config/validation/validation.go`` ``validateWeight``, ``validateHTTPRouteDestinations``;
    since Istio 1.15 weights need not sum to 100)."""
    destinations, problems = _destinations_to_check(route, where)
    if not destinations:
        return problems
    total = 0
    for index, item in enumerate(destinations):
        if not isinstance(item, Mapping):
            problems.append(f"{where}.route[{index}] {show(item)} is not a mapping")
            continue
        weight = item.get("weight")
        if weight is None:
            continue
        if not is_int(weight) or not 0 <= weight <= MAX_ISTIO_WEIGHT:
            problems.append(f"{where}.route[{index}] weight {show(weight)} is not an integer of zero or more")
            continue
        total += weight
    if not problems and len(destinations) > 1 and total == 0:
        problems.append(f"{where} has {len(destinations)} destinations whose weights total 0")
    return problems


def weight_problems(route: Any, where: str) -> list[str]:
    """What breaks our rule for weights we write in one route (integers 0..100 summing to 100;
    a lone destination without weight is fine). Istio is more lenient when reading
    (:func:`istio_weight_problems`); we write the plain form everyone can read at a glance."""
    destinations, problems = _destinations_to_check(route, where)
    if not destinations:
        return problems
    if (
        len(destinations) == 1
        and isinstance(destinations[0], Mapping)
        and destinations[0].get("weight") is None
    ):
        return []
    total = 0
    for index, item in enumerate(destinations):
        if not isinstance(item, Mapping):
            problems.append(f"{where}.route[{index}] {show(item)} is not a mapping")
            continue
        weight = item.get("weight", 0)
        if weight is None:
            weight = 0
        if not is_int(weight) or not 0 <= weight <= TOTAL_WEIGHT:
            problems.append(
                f"{where}.route[{index}] weight {show(weight)} "
                f"is not an integer between 0 and {TOTAL_WEIGHT}"
            )
            continue
        total += weight
    if not problems and total != TOTAL_WEIGHT:
        problems.append(f"{where} weights sum to {total}, not {TOTAL_WEIGHT}")
    return problems
