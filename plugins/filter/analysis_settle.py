# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: analysis_settle
short_description: The end of a progressive release - promote, rollback, hold, ask or stop, and why
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Turns the last answer of C(canary.istio.analysis_progress) and the decision input into what the
    C(canary_release) role does at the end of an analysed release. A failed analysis rolls back, an
    inconclusive one follows the policy's C(inconclusive), one that could not run follows C(on_error),
    whatever the decision; after every step passed, V(auto) and V(promote) promote.
  - The rule is C(settle_decision) in C(plugins/module_utils/_logic/release.py), unit-tested.
positional: _input, decision
options:
  _input:
    description: The last answer of C(canary.istio.analysis_progress).
    type: dict
    required: true
  decision:
    description: The decision input (V(auto), V(promote), V(rollback), V(hold) or none).
    type: str
"""

EXAMPLES = r"""
- name: Settle
  ansible.builtin.set_fact:
    verdict: "{{ progress | canary.istio.analysis_settle('auto') }}"
"""

RETURN = r"""
_value:
  description: C(decision) (promote, rollback, hold, ask or stop) and C(reason).
  type: dict
"""

from ansible_collections.canary.istio.plugins.module_utils._logic import release


def analysis_settle(progress, decision=None):
    return release.settle_decision(decision or None, progress)


class FilterModule:
    """Progressive delivery: the end of a run."""

    def filters(self):
        return {"analysis_settle": analysis_settle}
