# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The documents of manifest files, sorted by what the roles do with them.

The roles apply DestinationRules before VirtualServices (make before break) and everything else
(Gateways, ServiceEntries, ...) first; this is the one place that reads and sorts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The groups a role asks for; ``other`` holds every mapping of another kind (or none).
GROUPS = ("DestinationRule", "VirtualService", "other")


def by_kind(documents: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """Mappings grouped into :data:`GROUPS`, each group in file order; empty documents are dropped."""
    grouped: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
    for document in documents:
        if not isinstance(document, Mapping):
            continue
        kind = document.get("kind")
        grouped[kind if kind in GROUPS[:2] else "other"].append(dict(document))
    return grouped
