# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: analysis_progress
short_description: What a progressive release does after each analysis (move, analyse, roll back, hold, ask, stop)
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - The decision the C(canary_release) role acts on after each M(canary.istio.canary_analysis) run, made
    in Python (C(plugins/module_utils/_logic/release.py), unit-tested) so that the role only acts.
  - See also C(canary.istio.analysis_settle) (the end of the run) and C(canary.istio.analysis_record)
    (what is kept of one analysis result).
positional: _input, current, policy, results
options:
  _input:
    description: The shares of the steps this run moves through, in order.
    type: list
    elements: int
    required: true
  current:
    description: The canary's share before the first step.
    type: int
    required: true
  policy:
    description: The analysis policy as M(canary.istio.canary_info) returned it.
    type: dict
    required: true
  results:
    description: Every analysis of the run so far, as C(analysis_record) made them.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Ask what to do next
  ansible.builtin.set_fact:
    progress: "{{ [10, 25, 50] | canary.istio.analysis_progress(0, info.analysis, analyses) }}"
"""

RETURN = r"""
_value:
  description: C(action) (move, analyse, done, rollback, hold, ask or stop), C(share), C(reason) and the counts.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic import release
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError


def analysis_progress(steps, current, policy, results):
    try:
        return release.analysis_progress([int(step) for step in steps or []], int(current or 0), policy,
                                         list(results or []))
    except (CanaryInputError, KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError(f"analysis_progress: {error}") from None


class FilterModule:
    """Progressive delivery: what to do after each analysis."""

    def filters(self):
        return {"analysis_progress": analysis_progress}
