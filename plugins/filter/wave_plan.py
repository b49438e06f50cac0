# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: wave_plan
short_description: Which clusters of a release wave run, which are already promoted, which are skipped
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Given every cluster of a release (C(name), C(wave), the role's C(phase) at the start, and the
    C(outcome) or C(decision) of the waves that already ran), says what wave O(wave) does. A wave runs
    only when every cluster of every earlier wave ended promoted; clusters already promoted are not run again.
  - The rules are C(plan_wave) in C(plugins/module_utils/_logic/waves.py), unit-tested.
positional: _input, wave
options:
  _input:
    description: The clusters, one mapping each.
    type: list
    elements: dict
    required: true
  wave:
    description: The wave number.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Plan wave 2
  ansible.builtin.set_fact:
    plan: "{{ clusters | canary.istio.wave_plan(2) }}"
"""

RETURN = r"""
_value:
  description: C(run), C(done) and C(skip) (lists of cluster names) and C(reason).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic import waves


def wave_plan(clusters, wave):
    try:
        return waves.plan_wave(clusters, int(wave))
    except (waves.WaveError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"wave_plan: {exc}") from None


class FilterModule:
    """Release waves: the next wave."""

    def filters(self):
        return {"wave_plan": wave_plan}
