# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which requests an http route's ``match`` selects, and whether an earlier route takes them all.

Rules followed (istio/api ``networking/v1alpha3/virtual_service.proto``, ``HTTPRoute.match`` and
``HTTPMatchRequest``): the routes of a VirtualService are tried in order and the first that
matches a request takes it; a route's ``match`` list is an OR of match requests, the conditions
inside one match request are ANDed; a route without ``match`` (or with an empty list, or with a
match request that sets no condition) matches every request.

Shadowing is decided only where it can be proven: an earlier route shadows a later one when every
request the later one matches is also matched by the earlier one. Conditions are compared exactly
(``exact`` equals ``exact``; ``prefix`` P covers ``exact``/``prefix`` values starting with P;
``regex`` only the identical regex; header names case-insensitively, ``ignoreUriCase`` honoured;
``sourceLabels`` a subset; ``gateways`` a superset; ``port``, ``sourceNamespace`` and
``withoutHeaders`` equal). A condition we do not know (a future field) is never assumed to
cover anything, so an unknown field can only make us miss a shadow, never invent one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Fields of HTTPMatchRequest that select nothing (names for stats and logs).
_NO_CONDITION = frozenset({"name", "statPrefix"})
_STRING_FIELDS = ("uri", "scheme", "method", "authority")


def _is_unconditional(match_request: Any) -> bool:
    if not isinstance(match_request, Mapping):
        return False
    conditions = {key for key, value in match_request.items() if key not in _NO_CONDITION}
    # ignoreUriCase alone selects nothing either.
    return conditions <= {"ignoreUriCase"}


def is_catch_all(route: Any) -> bool:
    """Whether an http route matches every request (no match, an empty one, or one without conditions)."""
    if not isinstance(route, Mapping):
        return False
    match = route.get("match")
    if not match:
        return True
    return isinstance(match, list) and any(_is_unconditional(item) for item in match)


def _string_match_covers(wide: Any, narrow: Any, fold: bool = False) -> bool:
    """Whether every value ``narrow`` (an Istio StringMatch) accepts is accepted by ``wide``."""
    if not isinstance(wide, Mapping) or not isinstance(narrow, Mapping):
        return False
    if len(wide) != 1 or len(narrow) != 1:
        return False
    (wide_kind, wide_value), = wide.items()
    (narrow_kind, narrow_value), = narrow.items()
    if not isinstance(wide_value, str) or not isinstance(narrow_value, str):
        return False
    if wide_kind == "regex" or narrow_kind == "regex":
        return wide_kind == narrow_kind and wide_value == narrow_value and not fold
    if fold:
        wide_value, narrow_value = wide_value.lower(), narrow_value.lower()
    if wide_kind == "exact" and narrow_kind == "exact":
        return wide_value == narrow_value
    if wide_kind == "prefix" and narrow_kind in ("exact", "prefix"):
        return narrow_value.startswith(wide_value)
    return False


def _presence_covers(wide: Any, narrow: Any) -> bool:
    # An empty StringMatch on a header checks only that the header is present; any condition on
    # the same header implies presence.
    if isinstance(wide, Mapping) and not wide:
        return isinstance(narrow, Mapping)
    return _string_match_covers(wide, narrow)


def _keyed_covers(wide: Any, narrow: Any, fold_keys: bool) -> bool:
    if not isinstance(wide, Mapping):
        return False
    if not isinstance(narrow, Mapping):
        return not wide
    lookup = {(key.lower() if fold_keys and isinstance(key, str) else key): value for key, value in narrow.items()}
    for name, condition in wide.items():
        key = name.lower() if fold_keys and isinstance(name, str) else name
        if key not in lookup or not _presence_covers(condition, lookup[key]):
            return False
    return True


def match_covers(wide: Any, narrow: Any) -> bool:
    """Whether every request match request ``narrow`` selects is selected by ``wide`` (provably)."""
    if not isinstance(wide, Mapping) or not isinstance(narrow, Mapping):
        return False
    for key, condition in wide.items():
        if key in _NO_CONDITION or key == "ignoreUriCase":
            continue
        if key == "uri":
            wide_fold, narrow_fold = bool(wide.get("ignoreUriCase")), bool(narrow.get("ignoreUriCase"))
            if narrow_fold and not wide_fold:
                return False
            if not _string_match_covers(condition, narrow.get("uri"), fold=wide_fold):
                return False
        elif key in _STRING_FIELDS:
            if not _string_match_covers(condition, narrow.get(key)):
                return False
        elif key == "headers":
            if not _keyed_covers(condition, narrow.get("headers"), fold_keys=True):
                return False
        elif key == "queryParams":
            if not _keyed_covers(condition, narrow.get("queryParams"), fold_keys=False):
                return False
        elif key == "sourceLabels":
            labels = narrow.get("sourceLabels")
            if not isinstance(condition, Mapping) or not isinstance(labels, Mapping) or \
                    any(labels.get(name) != value for name, value in condition.items()):
                return False
        elif key == "gateways":
            gateways = narrow.get("gateways")
            if not isinstance(condition, list) or not isinstance(gateways, list) or not gateways or \
                    not set(gateways) <= set(condition):
                return False
        elif key in ("port", "sourceNamespace", "withoutHeaders"):
            if narrow.get(key) != condition:
                return False
        else:
            return False
    return True


def route_shadows(earlier: Any, later_match: Any) -> bool:
    """Whether route ``earlier`` takes every request a later route with ``later_match`` would match."""
    if is_catch_all(earlier):
        return True
    if not isinstance(later_match, list) or not later_match:
        return False
    earlier_match = earlier.get("match") if isinstance(earlier, Mapping) else None
    if not isinstance(earlier_match, list):
        return False
    return all(any(match_covers(wide, narrow) for wide in earlier_match) for narrow in later_match)
