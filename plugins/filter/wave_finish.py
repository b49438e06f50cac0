# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: wave_finish
short_description: The end of a release in waves - what failed, what stays promoted, what is rolled back
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Given every cluster with the outcome of this run, says which promoted clusters to roll back (with
    O(policy=rollback) when a cluster rolled back or failed), which failed, were held or left untouched.
  - The rules are C(finish) in C(plugins/module_utils/_logic/waves.py), unit-tested.
positional: _input, policy
options:
  _input:
    description: The clusters, one mapping each (C(name), C(wave), C(phase), C(outcome) or C(decision)).
    type: list
    elements: dict
    required: true
  policy:
    description: What happens to clusters already promoted when a later one fails.
    type: str
    choices: [keep, rollback]
    default: keep
"""

EXAMPLES = r"""
- name: Settle the waves
  ansible.builtin.set_fact:
    end: "{{ clusters | canary.istio.wave_finish('rollback') }}"
"""

RETURN = r"""
_value:
  description: C(ok), C(failed), C(held), C(untouched), C(promoted), C(rollback) (lists of names) and C(summary).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic import waves


def wave_finish(clusters, policy="keep"):
    try:
        return waves.finish(clusters, policy)
    except waves.WaveError as exc:
        raise AnsibleFilterError(f"wave_finish: {exc}") from None


class FilterModule:
    """Release waves: the end."""

    def filters(self):
        return {"wave_finish": wave_finish}
