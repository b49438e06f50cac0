# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The canary state and history that earlier runs recorded in annotations.

Readers are tolerant: state written by earlier runs (or edited by hand) never makes them raise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import validate_destination_key
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryInputError,
    is_int,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import (
    TOTAL_WEIGHT,
    plain_shares,
    validate_ratio,
)

CANARY_ANNOTATION_PREFIX = "canary.istio/"
STATE_ANNOTATION = CANARY_ANNOTATION_PREFIX + "state"
HISTORY_ANNOTATION = CANARY_ANNOTATION_PREFIX + "history"
HISTORY_LIMIT = 20
# datetime.UTC exists from Python 3.11 only; modules also run on older targets.
_UTC = timezone.utc


def encode_canary_state(base: Any, canary: Any, weight: Any, route: Any = None) -> str:
    """JSON text for the ``canary.istio/state`` annotation."""
    state = {
        "base": validate_destination_key(base, "base destination"),
        "canary": validate_destination_key(canary, "canary destination"),
        "weight": validate_ratio(weight),
        "route": None,
    }
    if route is not None:
        state["route"] = require_text(route, "route name", "pass the http route name or None")
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
        if is_int(weight) and 0 <= weight <= TOTAL_WEIGHT:
            state["weight"] = weight
    state["history"] = _read_history(vs_object)
    return state


def _utc_timestamp(now: Any) -> str:
    if not isinstance(now, datetime):
        raise CanaryInputError(f"time {show(now)} is not a datetime; pass datetime.now(timezone.utc)")
    if now.tzinfo is None or now.utcoffset() is None:
        now = now.replace(tzinfo=_UTC)
    try:
        now = now.astimezone(_UTC)
    except (OverflowError, ValueError) as error:
        raise CanaryInputError(f"time {show(now)} cannot be expressed in UTC: {error}") from None
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

    A step is ``{"time": "<UTC ISO 8601>", "from": {destination: share}, "to": {destination: share},
    "actor": str}``. Only the newest ``limit`` steps are kept. Unreadable existing
    history is treated as empty; the new step's own arguments are validated.
    """
    if not is_int(limit) or limit < 1:
        raise CanaryInputError(
            f"history limit {show(limit)} is not a positive integer; use e.g. {HISTORY_LIMIT}"
        )
    if not isinstance(actor, str):
        raise CanaryInputError(
            f"actor {show(actor)} is not a string; pass who made the change, e.g. 'awx:job/42'"
        )
    step = {
        "time": _utc_timestamp(now),
        "from": plain_shares(from_weights, "from weights"),
        "to": plain_shares(to_weights, "to weights"),
        "actor": actor,
    }
    entries = [*_read_history(vs_object), step][-limit:]
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def append_history_entry(vs_object: Any, entry: Any, actor: Any, now: Any, *, limit: Any = HISTORY_LIMIT) -> str:
    """JSON text for ``canary.istio/history`` with one more non-traffic entry, such as an analysis verdict.

    The entry is ``{"time", "actor", **entry}``; it carries no ``from``/``to``, so readers that
    follow the weights (the release phase, the report's weights over time) pass it by.
    """
    if not is_int(limit) or limit < 1:
        raise CanaryInputError(f"history limit {show(limit)} is not a positive integer; use e.g. {HISTORY_LIMIT}")
    if not isinstance(entry, Mapping) or not entry or {"time", "from", "to", "actor"} & set(entry):
        raise CanaryInputError(f"history entry {show(entry)} must be a non-empty mapping without the keys time, "
                               "from, to and actor (those belong to traffic steps)")
    if not isinstance(actor, str):
        raise CanaryInputError(f"actor {show(actor)} is not a string; pass who made the change, e.g. 'awx:job/42'")
    record = {"time": _utc_timestamp(now), "actor": actor, **entry}
    entries = [*_read_history(vs_object), record][-limit:]
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


def choose_roles(state: dict[str, Any], before: dict[str, int], after: dict[str, int],
                 base: str | None, canary: str | None) -> tuple[str, str]:
    """Which subset is the base and which the canary, for the recorded state."""
    if base and canary:
        return base, canary
    names = list(after)
    if state.get("base") in after and state.get("canary") in after and state["base"] != state["canary"]:
        return state["base"], state["canary"]
    ranked = sorted(names, key=lambda n: (-before.get(n, 0), names.index(n)))
    if len(ranked) == 1:
        return ranked[0], ranked[0]
    return ranked[0], ranked[-1]
