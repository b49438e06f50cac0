# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DestinationRule subsets: their names and merging them without losing anyone's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import validate_subset_name
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryConflictError,
    CanaryInputError,
    pairs,
    require_mapping,
    require_text,
    show,
)


def _validate_subset_entry(entry: Any, index: int) -> dict:
    hint = "each subset needs a 'name' and 'labels', e.g. {'name': 'v2', 'labels': {'version': 'v2'}}"
    require_mapping(entry, f"subset #{index}", hint)
    validate_subset_name(entry.get("name"), f"name of subset #{index}")
    labels = entry.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise CanaryInputError(
            f"labels {show(labels)} of subset {entry.get('name')!r} are not a non-empty mapping; "
            "a subset without labels selects every version. " + hint
        )
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise CanaryInputError(
                f"label {show(key)}: {show(value)} of subset {entry.get('name')!r} is not a "
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
            f"existing subsets {show(existing)} are not a list; pass spec.subsets as read"
        )
    if not isinstance(upsert, (list, tuple)):
        raise CanaryInputError(
            f"subsets to upsert {show(upsert)} are not a list; give a list of subset mappings"
        )
    if not isinstance(remove, (list, tuple)):
        raise CanaryInputError(
            f"subsets to remove {show(remove)} are not a list; give a list of subset names"
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
        require_text(name, "subset name to remove", "give the names of subsets to remove")
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
    for entry, name in pairs(existing, existing_names):
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


def subsets_of(rule: dict[str, Any] | None) -> list[str]:
    """The subset names a DestinationRule object defines, in order."""
    return [s.get("name") for s in ((rule or {}).get("spec") or {}).get("subsets") or [] if isinstance(s, dict)]


def plan_destination_rule_spec(existing_spec: dict[str, Any] | None, given_spec: dict[str, Any] | None,
                               upsert: list[Any], remove: list[str], keep_subsets: bool) -> dict[str, Any]:
    """The DestinationRule spec to store.

    A given spec sets every field; its subsets are merged with the stored ones, so a subset the
    task did not name (Bookinfo's v3) survives, unless ``keep_subsets`` is false. ``upsert``
    subsets are added or replaced by name, ``remove`` names are dropped.
    """
    stored_subsets = list((existing_spec or {}).get("subsets") or [])
    if given_spec is not None:
        spec = copy.deepcopy(given_spec)
        given_subsets = list(spec.get("subsets") or [])
        base = merge_subsets(stored_subsets, given_subsets, []) if keep_subsets else given_subsets
    else:
        spec = copy.deepcopy(existing_spec or {})
        base = stored_subsets
    merged = merge_subsets(base, upsert, remove)
    if merged or "subsets" in spec or stored_subsets:
        spec["subsets"] = merged
    return spec


def removed_subsets(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Names of subsets ``before`` defines and ``after`` does not (specs)."""
    old = [s.get("name") for s in (before or {}).get("subsets") or [] if isinstance(s, dict)]
    new = {s.get("name") for s in after.get("subsets") or [] if isinstance(s, dict)}
    return [name for name in old if name not in new]
