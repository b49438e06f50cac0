# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which Deployments a rollback removes.

The canary's Deployments are found through its subset (the Deployments its labels select). A canary
run that failed before its subset was added - its Deployment never became ready - leaves a Deployment
no subset selects; the rollback then also removes the Deployments the canary's own manifests define,
never one that serves the base.
"""

from __future__ import annotations

from typing import Any


def deployments_to_remove(known_canary: list[str], manifest_objects: list[dict[str, Any]] | None,
                          base: list[str]) -> list[str]:
    """The canary subset's Deployments, then the Deployments of the canary's manifests that are not the
    base's, each once, in that order."""
    names: list[str] = []
    for name in known_canary:
        if name not in names:
            names.append(name)
    for item in manifest_objects or []:
        if item.get("kind") != "Deployment" or str(item.get("api_version", "apps/v1")).partition("/")[0] != "apps":
            continue
        name = item.get("name")
        if name and name not in base and name not in names:
            names.append(name)
    return names
