# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: rollback_deployments
short_description: The Deployments a canary rollback removes
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - The canary subset's Deployments, then the Deployments defined by the canary's manifests (as
    M(canary.istio.manifest) lists them in RV(canary.istio.manifest#module:objects)) that are not the base's.
    A run that failed before the canary's subset was added leaves a Deployment no subset selects; this finds it.
  - The rule is C(deployments_to_remove) in C(plugins/module_utils/_logic/leftovers.py), unit-tested.
positional: _input, manifest_objects, base
options:
  _input:
    description: The canary subset's Deployments.
    type: list
    elements: str
    required: true
  manifest_objects:
    description: The objects of the canary's manifests (C(kind), C(api_version), C(name)).
    type: list
    elements: dict
  base:
    description: The base subset's Deployments, never removed.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The Deployments to delete
  ansible.builtin.set_fact:
    doomed: "{{ canary_deployments | canary.istio.rollback_deployments(listed.objects, base_deployments) }}"
"""

RETURN = r"""
_value:
  description: Deployment names, each once.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic.leftovers import deployments_to_remove


def rollback_deployments(known_canary, manifest_objects=None, base=None):
    if not isinstance(known_canary, list) or not isinstance(manifest_objects or [], list):
        raise AnsibleFilterError(f"rollback_deployments: expects lists, got {known_canary!r} and {manifest_objects!r}")
    return deployments_to_remove(known_canary, manifest_objects, list(base or []))


class FilterModule:
    """Canary rollback: what to remove."""

    def filters(self):
        return {"rollback_deployments": rollback_deployments}
