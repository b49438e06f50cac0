# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: analysis_plan
short_description: The plan of a canary release run - its shares, its planned looks, how often to ask what is next
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Deprecated - canary.istio 2.0.0 removes this filter; until then it works as before, with a deprecation
    warning. Why - the canary_release role no longer calls it; it drives a run with canary.istio.release_run,
    whose state holds the plan (C(plan)).
  - The first half of the release driver (C(plan_release) in C(plugins/module_utils/_logic/driver.py),
    unit-tested); C(canary.istio.analysis_next) is the second. A caller plans a run with it once, then asks
    C(analysis_next) after everything it does.
  - With an analysis, the looks are planned - each step gets at most C(looks_per_step) looks, and the
    release's total C(looks) continues from the looks a resumed run finds in the VirtualService's
    C(canary.istio/history) annotation.
positional: _input, start_share, policy, decision, history, canary, interactive, step_interval
options:
  _input:
    description: The shares this run moves the canary to, in order (none - judge the share it has).
    type: list
    elements: int
    required: true
  start_share:
    description: The canary's share before the first move.
    type: int
    required: true
  policy:
    description:
      - The analysis settings as M(canary.istio.canary_info) returned them
        (RV(canary.istio.canary_info#module:analysis)), or V(null) for a release without analysis.
    type: dict
  decision:
    description: The decision input (V(auto), V(promote), V(rollback), V(hold) or none).
    type: str
  history:
    description: The VirtualService's history entries (RV(canary.istio.canary_info#module:history)).
    type: list
    elements: dict
  canary:
    description: The canary's subset.
    type: str
  interactive:
    description: Whether a person can answer at a prompt (else the driver holds where it would ask).
    type: bool
    default: false
  step_interval:
    description: Seconds between steps when there is no analysis.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Plan the run
  ansible.builtin.set_fact:
    plan: "{{ [10, 25, 50] | canary.istio.analysis_plan(0, info.analysis, 'auto', info.history, 'v2') }}"
"""

RETURN = r"""
_value:
  description:
    - C(shares), C(moves), C(policy), C(decision), C(looks_before) (recorded looks of the release in progress),
      C(looks_per_step), C(looks) (planned for the whole release), C(share_since) and C(slots) (the most
      times the role asks what is next).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._logic import driver

display = Display()
# Deprecated: no role of the collection uses this filter any more (issue 23).
DEPRECATED = ("canary.istio.analysis_plan is deprecated: the canary_release role no longer calls it. It drives a run "
              "with canary.istio.release_run, whose state holds the plan (its 'plan' key)")


def analysis_plan(moves, start_share, policy=None, decision=None, history=None, canary="", interactive=False,
                  step_interval=0):
    display.deprecated(DEPRECATED, version="2.0.0", collection_name="canary.istio")
    try:
        return driver.plan_release([int(share) for share in moves or []], int(start_share or 0), policy or None,
                                   decision or None, list(history or []), str(canary or ""), bool(interactive),
                                   int(step_interval or 0))
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError(f"analysis_plan: {error}") from None


class FilterModule:
    """The release driver: the plan of a run."""

    def filters(self):
        return {"analysis_plan": analysis_plan}
