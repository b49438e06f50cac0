# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure canary logic over Istio resources held as plain dicts.

Nothing here talks to Kubernetes or imports Ansible: modules and filters call these
functions, and unit tests call them directly. Resources look exactly like Istio's YAML
(``spec.http[].route[].destination.subset`` and so on).

Every function refuses bad input with :class:`CanaryInputError` (a ``ValueError``) whose
message names the bad value, the rule it broke and what to do. Functions that read
state written by earlier runs (annotations) are tolerant and never raise on garbage.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

CANARY_ANNOTATION_PREFIX = "canary.istio/"
STATE_ANNOTATION = CANARY_ANNOTATION_PREFIX + "state"
HISTORY_ANNOTATION = CANARY_ANNOTATION_PREFIX + "history"
HISTORY_LIMIT = 20

TOTAL_WEIGHT = 100
MAX_SUBSET_NAME_LENGTH = 63
_ROUTE_SECTIONS = ("http", "tcp", "tls")

_SUBSET_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
# An integer, optionally written with a zero fraction ("50.0") because templating
# arithmetic produces such values.
_INTEGER_TEXT_RE = re.compile(r"[+-]?[0-9]+(\.0*)?")
_DECIMAL_TEXT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
# Longer digit strings are out of any range we accept; refusing them early also keeps
# int() away from Python's limit on huge integer strings.
_MAX_NUMBER_DIGITS = 30
_SHOW_LIMIT = 120
# datetime.UTC exists from Python 3.11 only; modules also run on older targets.
_UTC = timezone.utc


class CanaryInputError(ValueError):
    """Input that breaks a rule; the message names the value, the rule and the remedy."""


class CanaryConflictError(CanaryInputError):
    """The request is well formed but contradicts the resource as it stands.

    Examples: two http routes carry the requested name, or a header route would take
    the name of the default route. A subclass of :class:`CanaryInputError` so callers
    that refuse bad input before any write catch both with one ``except``.
    """


# --------------------------------------------------------------------------------------
# small helpers


def _show(value: Any) -> str:
    """A short, unambiguous rendering of a value for error messages."""
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<unprintable {type(value).__name__}>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 3] + "..."
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer_in_range(value: Any, what: str, low: int, high: int, hint: str) -> int:
    """Return ``value`` as an int within ``low..high`` or raise CanaryInputError.

    Accepts ints, integral floats (50.0) and strings of such numbers (" 30 ", "50.0"),
    because Ansible templating yields strings and floats. Refuses booleans, fractions,
    NaN/infinity, empty strings and everything else.
    """
    number = None
    if _is_int(value):
        number = value
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _INTEGER_TEXT_RE.fullmatch(text):
            digits = text.lstrip("+-").split(".")[0].lstrip("0")
            if len(digits) <= _MAX_NUMBER_DIGITS:
                number = int(text.split(".")[0])
            else:
                number = high + 1
    if number is None or not low <= number <= high:
        raise CanaryInputError(f"{what} {_show(value)} is not an integer between {low} and {high}; {hint}")
    return number


def _require_text(value: Any, what: str, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CanaryInputError(f"{what} {_show(value)} is not a non-blank string; {hint}")
    return value


def _require_mapping(value: Any, what: str, hint: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise CanaryInputError(f"{what} {_show(value)} is not a mapping; {hint}")
    return value


def validate_subset_name(name: Any, what: str = "subset name") -> str:
    """Return ``name`` if it is a usable DestinationRule subset name, else raise.

    Rule: a string of 1..63 characters from ``A-Z a-z 0-9 - _ .`` that starts and ends
    with a letter or digit (Istio's subset names are Kubernetes-label-like).
    """
    if not isinstance(name, str) or len(name) > MAX_SUBSET_NAME_LENGTH or not _SUBSET_NAME_RE.fullmatch(name):
        raise CanaryInputError(
            f"{what} {_show(name)} is not a valid subset name: use 1 to {MAX_SUBSET_NAME_LENGTH} "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. 'v2')"
        )
    return name


def _pairs(first: list, second: list) -> list[tuple]:
    """Pairs of two equally long lists (``zip(strict=True)`` needs Python 3.10)."""
    if len(first) != len(second):
        raise AssertionError("lists of different lengths")
    return [(first[index], second[index]) for index in range(len(first))]


def _json_pointer_token(key: str) -> str:
    """Escape one JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _route_label(index: int, route: Any) -> str:
    name = route.get("name") if isinstance(route, Mapping) else None
    if isinstance(name, str) and name:
        return f"#{index} {name!r}"
    return f"#{index} (unnamed)"


# --------------------------------------------------------------------------------------
# ratios and weights


def validate_ratio(value: Any) -> int:
    """Return the canary ratio as an int in 0..100.

    Accepts ints, integral floats and strings holding them (``"30"``, ``" 30 "``); refuses
    booleans, fractions, ``None``, empty or non-numeric strings and out-of-range numbers.
    """
    return _integer_in_range(
        value, "ratio", 0, TOTAL_WEIGHT, "give the canary's share of traffic as a whole percentage, e.g. 30"
    )


def canary_weights(ratio: Any, base: str = "base", canary: str = "canary") -> dict[str, int]:
    """Weights for a two-subset canary: ``{base: 100 - ratio, canary: ratio}``."""
    percent = validate_ratio(ratio)
    validate_subset_name(base, "base subset name")
    validate_subset_name(canary, "canary subset name")
    if base == canary:
        raise CanaryInputError(
            f"base and canary subset are both {base!r}; name two different subsets (e.g. 'v1' and 'v2')"
        )
    return {base: TOTAL_WEIGHT - percent, canary: percent}


def _share(value: Any, what: str) -> Fraction:
    hint = "give each share as a finite number that is zero or more"
    number = None
    if _is_int(value):
        number = Fraction(value)
    elif isinstance(value, float):
        if math.isfinite(value):
            number = Fraction(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DECIMAL_TEXT_RE.fullmatch(text) and len(text) <= _MAX_NUMBER_DIGITS * 2:
            number = Fraction(text)
    if number is None or number < 0:
        raise CanaryInputError(f"{what} {_show(value)} is not a finite number of zero or more; {hint}")
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
            _require_text(name, "share name", hint)
        values = [_share(shares[name], f"share of {name!r}") for name in names]
    elif isinstance(shares, (list, tuple)):
        names = None
        values = [_share(value, f"share #{index}") for index, value in enumerate(shares)]
    else:
        raise CanaryInputError(f"shares {_show(shares)} are neither a mapping nor a list; {hint}")
    if not values:
        raise CanaryInputError(f"shares {_show(shares)} are empty; {hint}")
    if not any(values):
        raise CanaryInputError(f"shares {_show(shares)} are all zero; give at least one share above zero")
    weights = _largest_remainder(values, TOTAL_WEIGHT)
    if names is None:
        return weights
    return {name: weights[index] for index, name in enumerate(names)}


def _plain_weights(weights: Any, what: str) -> dict[str, int]:
    """Mapping of valid subset names to integers 0..100, without the sum rule."""
    hint = "give a mapping of subset name to weight, e.g. {'v1': 90, 'v2': 10}"
    _require_mapping(weights, what, hint)
    result = {}
    for name, weight in weights.items():
        validate_subset_name(name, f"subset name in {what}")
        result[name] = _integer_in_range(
            weight, f"weight of subset {name!r}", 0, TOTAL_WEIGHT, "weights are whole percentages"
        )
    return result


def validate_weights(weights: Any) -> dict[str, int]:
    """Return ``weights`` as ``{subset: int}`` after checking every rule.

    Rules: a non-empty mapping; keys are valid subset names (:func:`validate_subset_name`);
    values are integers 0..100 (int-like strings accepted, booleans refused); the values
    sum to exactly 100.
    """
    result = _plain_weights(weights, "weights")
    if not result:
        raise CanaryInputError("weights {} name no subset; give at least one, e.g. {'v1': 100}")
    total = sum(result.values())
    if total != TOTAL_WEIGHT:
        raise CanaryInputError(
            f"weights {_show(weights)} sum to {total}, not {TOTAL_WEIGHT}; make them add up to "
            f"{TOTAL_WEIGHT} (split_weights scales any shares to {TOTAL_WEIGHT})"
        )
    return result


# --------------------------------------------------------------------------------------
# hosts and routes


def _host_labels(host: str) -> list[str]:
    return host.strip().rstrip(".").lower().split(".")


def same_host(first: Any, second: Any) -> bool:
    """Whether two Istio host names denote the same service.

    Names compare case-insensitively. A short name matches a longer one when its DNS
    labels are the leading labels of the longer one, the way Kubernetes resolves
    namespace-relative names: ``reviews`` and ``reviews.default`` both match
    ``reviews.default.svc.cluster.local``; ``reviews.prod`` does not. Non-strings never match.
    """
    if not isinstance(first, str) or not isinstance(second, str) or not first.strip() or not second.strip():
        return False
    first_labels = _host_labels(first)
    second_labels = _host_labels(second)
    if first_labels == second_labels:
        return True
    shorter, longer = sorted((first_labels, second_labels), key=len)
    return longer[: len(shorter)] == shorter


def virtual_service_spec(resource: Any) -> Mapping:
    """The spec of a VirtualService given either the whole object or its spec.

    An object is recognised by a ``spec`` mapping next to no ``http``/``tcp``/``tls`` key.
    """
    hint = "pass the VirtualService object or its spec"
    _require_mapping(resource, "VirtualService", hint)
    spec = resource.get("spec")
    if isinstance(spec, Mapping) and not any(section in resource for section in _ROUTE_SECTIONS):
        return spec
    return resource


def _http_list(spec: Any) -> list:
    spec = virtual_service_spec(spec)
    http = spec.get("http")
    if http is None:
        return []
    if not isinstance(http, list):
        raise CanaryInputError(f"spec.http {_show(http)} is not a list; the VirtualService is malformed")
    for index, route in enumerate(http):
        if not isinstance(route, Mapping):
            raise CanaryInputError(
                f"spec.http[{index}] {_show(route)} is not a mapping; the VirtualService is malformed"
            )
    return http


def _destinations(route: Any, where: str) -> list:
    """The destination list of a route, validated."""
    hint = "each route destination needs 'destination' with a 'host' and an optional 'subset'"
    _require_mapping(route, where, hint)
    destinations = route.get("route")
    if destinations is None:
        return []
    if not isinstance(destinations, list):
        raise CanaryInputError(f"{where}.route {_show(destinations)} is not a list; {hint}")
    for index, item in enumerate(destinations):
        target = item.get("destination") if isinstance(item, Mapping) else None
        if not isinstance(target, Mapping):
            raise CanaryInputError(
                f"{where}.route[{index}] {_show(item)} has no 'destination' mapping; {hint}"
            )
        _require_text(target.get("host"), f"{where}.route[{index}].destination.host", hint)
        subset = target.get("subset")
        if subset is not None:
            _require_text(subset, f"{where}.route[{index}].destination.subset", hint)
    return destinations


def _destination_key(item: Mapping) -> str:
    """How weights name a destination: its subset, or its host when it has no subset."""
    target = item["destination"]
    subset = target.get("subset")
    return subset if subset else target["host"]


def _route_names(http: list) -> list[str]:
    return [_route_label(index, route) for index, route in enumerate(http)]


def _sends_only_to(route: Mapping, host: str) -> bool:
    destinations = route.get("route")
    if not isinstance(destinations, list) or not destinations:
        return False
    for item in destinations:
        target = item.get("destination") if isinstance(item, Mapping) else None
        if not isinstance(target, Mapping) or not same_host(target.get("host"), host):
            return False
    return True


def _default_route_indexes(http: list, host: str) -> list[int]:
    return [
        index
        for index, route in enumerate(http)
        if isinstance(route, Mapping) and not route.get("match") and _sends_only_to(route, host)
    ]


def find_http_route(spec: Any, host: Any = None, route_name: Any = None) -> int:
    """Index in ``spec.http`` of the route a canary step changes.

    With ``route_name``: the route carrying that name (missing or duplicated names raise,
    listing the routes present). Without it: the host's default route, i.e. the one route
    without ``match`` (or with an empty one) whose destinations all go to ``host``
    (:func:`same_host`). None or several raise, asking for a route name.
    ``spec`` may be the VirtualService object or its spec; ``host`` may be ``None`` when
    ``route_name`` is given.
    """
    hint = "pass the service host the VirtualService routes to, e.g. 'reviews'"
    if host is not None or route_name is None:
        _require_text(host, "host", hint)
    http = _http_list(spec)
    if route_name is not None:
        _require_text(route_name, "route name", "pass the 'name' of an http route, or omit it")
        found = [index for index, route in enumerate(http) if route.get("name") == route_name]
        if not found:
            raise CanaryInputError(
                f"route name {route_name!r} is not among the http routes of the VirtualService "
                f"(present: {', '.join(_route_names(http)) or 'none'}); pass one of those names"
            )
        if len(found) > 1:
            raise CanaryConflictError(
                f"route name {route_name!r} is carried by {len(found)} http routes (indexes {found}); "
                "give the routes unique names"
            )
        return found[0]
    found = _default_route_indexes(http, host)
    if not found:
        raise CanaryInputError(
            f"the VirtualService has no default http route for host {host!r} (a route without 'match' "
            "whose destinations all go to that host; routes present: "
            f"{', '.join(_route_names(http)) or 'none'}); add one or pass the route name"
        )
    if len(found) > 1:
        raise CanaryConflictError(
            f"the VirtualService has {len(found)} default http routes for host {host!r} "
            f"({', '.join(_route_label(index, http[index]) for index in found)}); "
            "pass the route name to choose one"
        )
    return found[0]


def route_weights(route: Any) -> dict[str, int]:
    """``{subset: weight}`` of one http/tcp/tls route.

    Destinations are keyed by subset, or by host when they have none. A lone destination
    without ``weight`` counts as 100; among several, a missing weight counts as 0 (as
    Istio reads it). A key that appears twice raises.
    """
    destinations = _destinations(route, "route")
    weights: dict[str, int] = {}
    for index, item in enumerate(destinations):
        key = _destination_key(item)
        if key in weights:
            raise CanaryConflictError(
                f"route destination {key!r} appears more than once in the route (again at #{index}); "
                "merge those destinations so each subset appears once"
            )
        weight = item.get("weight")
        if weight is None:
            weights[key] = TOTAL_WEIGHT if len(destinations) == 1 else 0
        else:
            weights[key] = _integer_in_range(
                weight, f"weight of destination {key!r}", 0, TOTAL_WEIGHT, "fix the VirtualService"
            )
    return weights


def plan_route_weights(route: Any, host: Any, weights: Any, remove_unnamed: bool = False) -> dict:
    """A deep copy of ``route`` whose destinations carry ``weights``.

    Every field of the route and of each existing destination (headers, port, ...) is
    kept; only ``weight`` values change. Existing destinations keep their place, subsets
    not yet routed to are appended in the order given, using the host spelling and port
    of the route's existing destination for ``host`` (or ``host`` itself). Weights are
    always written explicitly, including a lone ``weight: 100``; weight-0 destinations
    stay in the list.

    A destination the call does not name raises, unless ``remove_unnamed`` is true, in
    which case it is dropped.
    """
    _require_text(host, "host", "pass the service host the route sends to, e.g. 'reviews'")
    wanted = validate_weights(weights)
    destinations = _destinations(route, "route")
    new_route = copy.deepcopy(dict(route))

    existing_keys = [_destination_key(item) for item in destinations]
    duplicates = sorted({key for key in existing_keys if existing_keys.count(key) > 1})
    if duplicates:
        raise CanaryConflictError(
            f"route destinations {duplicates} appear more than once in the route; "
            "merge them so each subset appears once before changing weights"
        )
    unnamed = [key for key in existing_keys if key not in wanted]
    if unnamed and not remove_unnamed:
        raise CanaryInputError(
            f"the route also sends to {unnamed}, which weights {_show(weights)} do not name; "
            "name them (weight 0 keeps them in the route) or set remove_unnamed to drop them"
        )

    template = None
    for item in destinations:
        if same_host(item["destination"].get("host"), host):
            template = item["destination"]
            break

    new_destinations = []
    for key, item in _pairs(existing_keys, destinations):
        if key in wanted:
            kept = copy.deepcopy(dict(item))
            kept["weight"] = wanted[key]
            new_destinations.append(kept)
    for key, weight in wanted.items():
        if key in existing_keys:
            continue
        target: dict[str, Any] = {"host": template["host"] if template else host, "subset": key}
        if template is not None and "port" in template:
            target["port"] = copy.deepcopy(template["port"])
        new_destinations.append({"destination": target, "weight": weight})
    new_route["route"] = new_destinations
    return new_route


def _weight_problems(route: Any, where: str) -> list[str]:
    """What breaks the weight rule in one route (integers 0..100 summing to 100)."""
    if not isinstance(route, Mapping):
        return [f"{where} {_show(route)} is not a mapping"]
    destinations = route.get("route")
    if destinations is None:
        return []
    if not isinstance(destinations, list):
        return [f"{where}.route {_show(destinations)} is not a list"]
    if not destinations:
        return []
    problems = []
    if (
        len(destinations) == 1
        and isinstance(destinations[0], Mapping)
        and destinations[0].get("weight") is None
    ):
        return []
    total = 0
    for index, item in enumerate(destinations):
        if not isinstance(item, Mapping):
            problems.append(f"{where}.route[{index}] {_show(item)} is not a mapping")
            continue
        weight = item.get("weight", 0)
        if weight is None:
            weight = 0
        if not _is_int(weight) or not 0 <= weight <= TOTAL_WEIGHT:
            problems.append(
                f"{where}.route[{index}] weight {_show(weight)} "
                f"is not an integer between 0 and {TOTAL_WEIGHT}"
            )
            continue
        total += weight
    if not problems and total != TOTAL_WEIGHT:
        problems.append(f"{where} weights sum to {total}, not {TOTAL_WEIGHT}")
    return problems


def _object_parts(vs_object: Any) -> tuple[Mapping, list]:
    hint = "pass the VirtualService object as read from the API server"
    _require_mapping(vs_object, "VirtualService", hint)
    metadata = vs_object.get("metadata", {})
    if metadata is None:
        metadata = {}
    _require_mapping(metadata, "VirtualService metadata", hint)
    spec = vs_object.get("spec")
    _require_mapping(spec, "VirtualService spec", hint)
    return metadata, _http_list(spec)


def _resource_version_test(metadata: Mapping) -> list[dict]:
    version = metadata.get("resourceVersion")
    if isinstance(version, str) and version:
        return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
    return []


def build_route_patch(vs_object: Any, route_index: Any, new_route: Any) -> list[dict]:
    """JSON Patch (RFC 6902) that replaces only ``/spec/http/<i>/route``.

    Guards come first: ``test`` of ``metadata.resourceVersion`` (when the object has one),
    of the route's current destination list and of its name, so a concurrent edit makes
    the PATCH fail instead of being overwritten. Only the destination list of
    ``new_route`` is written; its other fields are ignored. Returns ``[]`` when the
    destinations are unchanged. Raises when ``new_route`` would break the weight rule.
    """
    metadata, http = _object_parts(vs_object)
    if not _is_int(route_index) or not 0 <= route_index < len(http):
        raise CanaryInputError(
            f"route index {_show(route_index)} is not an index of spec.http (0..{len(http) - 1}); "
            "use find_http_route to locate the route"
        )
    where = f"http route {_route_label(route_index, http[route_index])}"
    new_destinations = _destinations(new_route, f"new {where}")
    problems = _weight_problems(new_route, f"new {where}")
    if problems:
        raise CanaryInputError("; ".join(problems) + "; refusing to write weights Istio would reject")
    old_route = http[route_index]
    base_path = f"/spec/http/{route_index}"
    if "route" in old_route and old_route["route"] == new_destinations:
        return []
    ops = _resource_version_test(metadata)
    if "route" in old_route:
        ops.append({"op": "test", "path": base_path + "/route", "value": copy.deepcopy(old_route["route"])})
        if "name" in old_route:
            ops.append({"op": "test", "path": base_path + "/name", "value": copy.deepcopy(old_route["name"])})
        ops.append({"op": "replace", "path": base_path + "/route", "value": copy.deepcopy(new_destinations)})
    else:
        # JSON Patch cannot test that a member is absent; pinning the whole route does.
        ops.append({"op": "test", "path": base_path, "value": copy.deepcopy(dict(old_route))})
        ops.append({"op": "add", "path": base_path + "/route", "value": copy.deepcopy(new_destinations)})
    return ops


def build_annotation_ops(vs_object: Any, annotations: Any) -> list[dict]:
    """JSON Patch ops that set (string value) or delete (``None``) annotations.

    Produces ``add``/``replace``/``remove`` under ``/metadata/annotations/<key>`` with the
    key escaped as a JSON Pointer token, or one ``add`` of the whole block when the object
    has no annotations yet. Keys already holding the value produce no op. No guard is
    included: append these ops to a guarded patch such as :func:`build_route_patch`'s.
    """
    hint = "give a mapping of annotation key to string value, or to null to delete it"
    _require_mapping(annotations, "annotations", hint)
    _require_mapping(
        vs_object, "VirtualService", "pass the VirtualService object as read from the API server"
    )
    metadata = vs_object.get("metadata")
    if metadata is not None:
        _require_mapping(metadata, "VirtualService metadata", "pass the object as read from the API server")
    current = metadata.get("annotations") if metadata is not None else None
    if current is not None:
        _require_mapping(current, "metadata.annotations", "pass the object as read from the API server")

    ops: list[dict] = []
    new_block: dict[str, str] = {}
    for key, value in annotations.items():
        _require_text(key, "annotation key", hint)
        if value is not None and not isinstance(value, str):
            raise CanaryInputError(
                f"annotation {key!r} value {_show(value)} is not a string; Kubernetes annotations hold "
                "strings only, so quote or serialise it"
            )
        path = "/metadata/annotations/" + _json_pointer_token(key)
        if current is None:
            if value is not None:
                new_block[key] = value
        elif value is None:
            if key in current:
                ops.append({"op": "remove", "path": path})
        elif key not in current:
            ops.append({"op": "add", "path": path, "value": value})
        elif current[key] != value:
            ops.append({"op": "replace", "path": path, "value": value})
    if new_block:
        if metadata is None:
            ops.append({"op": "add", "path": "/metadata", "value": {"annotations": new_block}})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": new_block})
    return ops


# --------------------------------------------------------------------------------------
# canary state kept in annotations


def encode_canary_state(base: Any, canary: Any, weight: Any, route: Any = None) -> str:
    """JSON text for the ``canary.istio/state`` annotation."""
    state = {
        "base": validate_subset_name(base, "base subset name"),
        "canary": validate_subset_name(canary, "canary subset name"),
        "weight": validate_ratio(weight),
        "route": None,
    }
    if route is not None:
        state["route"] = _require_text(route, "route name", "pass the http route name or None")
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def _annotations_of(vs_object: Any) -> Mapping:
    metadata = vs_object.get("metadata") if isinstance(vs_object, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _load_json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _read_history(vs_object: Any) -> list[dict]:
    entries = _load_json(_annotations_of(vs_object).get(HISTORY_ANNOTATION))
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict)]


def read_canary_state(vs_object: Any) -> dict[str, Any]:
    """What earlier runs recorded on a VirtualService. Never raises.

    Returns ``{"base", "canary", "weight", "route", "history"}``; a value that is missing
    or unreadable (hand-edited, truncated JSON) comes back as ``None`` (``[]`` for history).
    """
    state: dict[str, Any] = {"base": None, "canary": None, "weight": None, "route": None}
    stored = _load_json(_annotations_of(vs_object).get(STATE_ANNOTATION))
    if isinstance(stored, dict):
        for key in ("base", "canary", "route"):
            if isinstance(stored.get(key), str) and stored[key]:
                state[key] = stored[key]
        weight = stored.get("weight")
        if _is_int(weight) and 0 <= weight <= TOTAL_WEIGHT:
            state["weight"] = weight
    state["history"] = _read_history(vs_object)
    return state


def _utc_timestamp(now: Any) -> str:
    if not isinstance(now, datetime):
        raise CanaryInputError(f"time {_show(now)} is not a datetime; pass datetime.now(timezone.utc)")
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=_UTC)
    try:
        now = now.astimezone(_UTC)
    except (OverflowError, ValueError) as error:
        raise CanaryInputError(f"time {_show(now)} cannot be expressed in UTC: {error}") from None
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def append_history(
    vs_object: Any,
    from_weights: Any,
    to_weights: Any,
    actor: Any,
    now: Any,
    *,
    limit: Any = HISTORY_LIMIT,
) -> str:
    """JSON text for ``canary.istio/history`` with one more step appended.

    A step is ``{"time": "<UTC ISO 8601>", "from": {subset: w}, "to": {subset: w},
    "actor": str}``. Only the newest ``limit`` steps are kept. Unreadable existing
    history is treated as empty; the new step's own arguments are validated.
    """
    if not _is_int(limit) or limit < 1:
        raise CanaryInputError(
            f"history limit {_show(limit)} is not a positive integer; use e.g. {HISTORY_LIMIT}"
        )
    if not isinstance(actor, str):
        raise CanaryInputError(
            f"actor {_show(actor)} is not a string; pass who made the change, e.g. 'awx:job/42'"
        )
    step = {
        "time": _utc_timestamp(now),
        "from": _plain_weights(from_weights, "from weights"),
        "to": _plain_weights(to_weights, "to weights"),
        "actor": actor,
    }
    entries = [*_read_history(vs_object), step][-limit:]
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------
# header routes


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
    spec: Any, name: Any, host: Any, match: Any, destination_subset: Any, *, port: Any = None
) -> list[dict]:
    """A new ``spec.http`` list in which route ``name`` sends ``match``-ing requests to a subset.

    The route gets ``match`` and one destination (``host``/``destination_subset``, weight
    100); other fields of an existing route of that name are kept. It must sit above
    the host's default route, because Istio uses the first route that matches: an
    existing route below it moves to just above it, a new one is inserted just above it
    (or before the first route to the host, or at the end, when there is no default
    route). Everything else in the list is untouched.
    """
    hint_match = (
        "give a non-empty list of Istio HTTPMatchRequest mappings, "
        "e.g. [{'headers': {'end-user': {'exact': 'jason'}}}]"
    )
    _require_text(name, "header route name", "name the route, e.g. 'reviews-canary-testers'")
    _require_text(host, "host", "pass the service host, e.g. 'reviews'")
    validate_subset_name(destination_subset, "destination subset")
    if (
        not isinstance(match, list)
        or not match
        or not all(isinstance(item, Mapping) and item for item in match)
    ):
        raise CanaryInputError(
            f"match {_show(match)} is not a non-empty list of non-empty mappings; an empty match would "
            f"send all traffic to the subset. {hint_match}"
        )
    if port is not None and (not _is_int(port) or not 1 <= port <= 65535):
        raise CanaryInputError(
            f"port {_show(port)} is not an integer between 1 and 65535; give the service port or omit it"
        )

    http = [copy.deepcopy(dict(route)) for route in _http_list(spec)]
    named = [index for index, route in enumerate(http) if route.get("name") == name]
    if len(named) > 1:
        raise CanaryConflictError(
            f"header route name {name!r} is carried by {len(named)} http routes (indexes {named}); "
            "give the routes unique names"
        )
    defaults = [index for index in _default_route_indexes(http, host) if index not in named]
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
        updated = dict(current)
        updated["match"] = desired["match"]
        updated["route"] = desired["route"]
        if default_index is not None and index > default_index:
            del http[index]
            http.insert(default_index, updated)
        else:
            http[index] = updated
        return http

    if default_index is not None:
        http.insert(default_index, desired)
    else:
        to_host = [
            position
            for position, route in enumerate(http)
            if any(
                isinstance(item, Mapping)
                and isinstance(item.get("destination"), Mapping)
                and same_host(item["destination"].get("host"), host)
                for item in (route.get("route") if isinstance(route.get("route"), list) else [])
            )
        ]
        http.insert(to_host[0] if to_host else len(http), desired)
    return http


def remove_header_route(spec: Any, name: Any) -> list[dict]:
    """A new ``spec.http`` list without header route ``name`` (unchanged when absent).

    Refuses to remove a route without ``match``: that is a default route, and removing
    it would leave the host's traffic unrouted.
    """
    _require_text(name, "header route name", "name the header route to remove")
    http = [copy.deepcopy(dict(route)) for route in _http_list(spec)]
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


def build_http_list_patch(vs_object: Any, old_http: Any, new_http: Any) -> list[dict]:
    """JSON Patch replacing ``/spec/http`` with ``new_http``, guarded by ``test`` ops.

    Tests ``metadata.resourceVersion`` (when present) and that ``/spec/http`` still equals
    ``old_http``. Returns ``[]`` when the lists are equal. Raises when a route of
    ``new_http`` would break the weight rule.
    """
    metadata, _current = _object_parts(vs_object)
    if old_http is not None and not isinstance(old_http, list):
        raise CanaryInputError(f"old http list {_show(old_http)} is not a list; pass spec.http as read")
    if not isinstance(new_http, list):
        raise CanaryInputError(f"new http list {_show(new_http)} is not a list; pass the planned spec.http")
    problems = []
    for index, route in enumerate(new_http):
        problems.extend(_weight_problems(route, f"new http route {_route_label(index, route)}"))
    if problems:
        raise CanaryInputError("; ".join(problems) + "; refusing to write routes Istio would reject")
    if old_http == new_http:
        return []
    ops = _resource_version_test(metadata)
    if old_http is None:
        ops.append({"op": "add", "path": "/spec/http", "value": copy.deepcopy(new_http)})
    else:
        ops.append({"op": "test", "path": "/spec/http", "value": copy.deepcopy(old_http)})
        ops.append({"op": "replace", "path": "/spec/http", "value": copy.deepcopy(new_http)})
    return ops


# --------------------------------------------------------------------------------------
# invariants and subsets


def _iter_destinations(spec: Mapping) -> Iterable[tuple[str, Mapping]]:
    """``(where, destination)`` for every destination a spec sends or mirrors traffic to.

    Skips anything malformed; callers that must report malformed routes use
    :func:`_weight_problems`.
    """
    for section in _ROUTE_SECTIONS:
        routes = spec.get(section)
        if not isinstance(routes, list):
            continue
        for index, route in enumerate(routes):
            if not isinstance(route, Mapping):
                continue
            where = f"{section} route {_route_label(index, route)}"
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


def referenced_subsets(vs_spec: Any, host: Any) -> set[str]:
    """Subsets of ``host`` that any http/tcp/tls route or http mirror sends traffic to.

    Make-before-break: a subset in this set must not be removed from the DestinationRule.
    """
    _require_text(host, "host", "pass the service host, e.g. 'reviews'")
    spec = virtual_service_spec(vs_spec)
    result = set()
    for _where, target in _iter_destinations(spec):
        subset = target.get("subset")
        if isinstance(subset, str) and subset and same_host(target.get("host"), host):
            result.add(subset)
    return result


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
    _require_mapping(existing_subsets_by_host, "subsets by host", hint)
    existing: dict[str, set[str]] = {}
    for known_host, subsets in existing_subsets_by_host.items():
        _require_text(known_host, "host in subsets by host", hint)
        if isinstance(subsets, (str, bytes, Mapping)) or not isinstance(subsets, Iterable):
            raise CanaryInputError(
                f"subsets of host {known_host!r} {_show(subsets)} are not a list of names; {hint}"
            )
        names = list(subsets)
        for name in names:
            _require_text(name, f"subset name of host {known_host!r}", hint)
        existing[known_host] = set(names)

    spec = virtual_service_spec(vs_spec)
    problems = []
    for section in _ROUTE_SECTIONS:
        routes = spec.get(section)
        if routes is None:
            continue
        if not isinstance(routes, list):
            problems.append(f"spec.{section} {_show(routes)} is not a list")
            continue
        for index, route in enumerate(routes):
            problems.extend(_weight_problems(route, f"{section} route {_route_label(index, route)}"))
    for where, target in _iter_destinations(spec):
        subset = target.get("subset")
        if subset is None:
            continue
        host = target.get("host")
        if not isinstance(subset, str) or not isinstance(host, str):
            problems.append(
                f"{where} has a destination with host {_show(host)} and subset {_show(subset)}, "
                "which are not both strings"
            )
            continue
        defined = _subsets_for_host(existing, host)
        if defined is None:
            continue
        if subset not in defined:
            problems.append(
                f"{where} sends to subset {_show(subset)} of host {_show(host)}, which the DestinationRule "
                f"does not define (defined: {', '.join(sorted(defined)) or 'none'})"
            )
    return problems


def _validate_subset_entry(entry: Any, index: int) -> dict:
    hint = "each subset needs a 'name' and 'labels', e.g. {'name': 'v2', 'labels': {'version': 'v2'}}"
    _require_mapping(entry, f"subset #{index}", hint)
    validate_subset_name(entry.get("name"), f"name of subset #{index}")
    labels = entry.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise CanaryInputError(
            f"labels {_show(labels)} of subset {entry.get('name')!r} are not a non-empty mapping; "
            "a subset without labels selects every version. " + hint
        )
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise CanaryInputError(
                f"label {_show(key)}: {_show(value)} of subset {entry.get('name')!r} is not a "
                "string to string pair; quote label values such as version numbers"
            )
    return copy.deepcopy(dict(entry))


def merge_subsets(existing: Any, upsert: Any = (), remove: Any = ()) -> list:
    """DestinationRule subsets with ``upsert`` applied and ``remove`` names deleted.

    Order is kept: an upserted subset replaces the one of the same name in place (the
    whole subset mapping is replaced), new ones are appended in the order given, and
    subsets neither upserted nor removed are kept untouched. Removing an absent name
    does nothing. Upsert entries need a valid ``name`` and non-empty ``labels`` of
    string to string.
    """
    if existing is None:
        existing = []
    if not isinstance(existing, list):
        raise CanaryInputError(
            f"existing subsets {_show(existing)} are not a list; pass spec.subsets as read"
        )
    if not isinstance(upsert, (list, tuple)):
        raise CanaryInputError(
            f"subsets to upsert {_show(upsert)} are not a list; give a list of subset mappings"
        )
    if not isinstance(remove, (list, tuple)):
        raise CanaryInputError(
            f"subsets to remove {_show(remove)} are not a list; give a list of subset names"
        )
    wanted = [_validate_subset_entry(entry, index) for index, entry in enumerate(upsert)]
    wanted_by_name: dict[str, dict] = {}
    for entry in wanted:
        if entry["name"] in wanted_by_name:
            raise CanaryInputError(
                f"subset {entry['name']!r} is given twice to upsert; give each subset once"
            )
        wanted_by_name[entry["name"]] = entry
    removed = set()
    for name in remove:
        _require_text(name, "subset name to remove", "give the names of subsets to remove")
        if name in wanted_by_name:
            raise CanaryInputError(f"subset {name!r} is both upserted and removed; do one or the other")
        removed.add(name)

    existing_names = [entry.get("name") if isinstance(entry, Mapping) else None for entry in existing]
    for name in wanted_by_name:
        if existing_names.count(name) > 1:
            raise CanaryConflictError(
                f"the DestinationRule defines subset {name!r} more than once; "
                "fix it by hand before changing it"
            )

    result = []
    for entry, name in _pairs(existing, existing_names):
        if isinstance(name, str) and name in removed:
            continue
        if isinstance(name, str) and name in wanted_by_name:
            result.append(wanted_by_name[name])
        else:
            result.append(copy.deepcopy(entry))
    for name, entry in wanted_by_name.items():
        if name not in existing_names:
            result.append(entry)
    return result
