# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: analysis_next
short_description: What a canary release does next - move, analyse, promote, roll back, hold, ask or stop
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Deprecated - canary.istio 2.0.0 removes this filter; until then it works as before, with a deprecation
    warning. Why - the canary_release role no longer calls it; it drives a run with canary.istio.release_run,
    whose state holds the driver's answer (C(next)).
  - The release driver (C(next_action) in C(plugins/module_utils/_logic/driver.py), unit-tested over every
    transition). A caller asks it after every move and every analysis, and does what it says.
  - V(analyse) comes with the C(look), C(looks) and C(since) to pass to M(canary.istio.canary_analysis) and
    the seconds to C(wait) before it; a final action comes with C(by) - who decided it (V(analysis), the
    V(decision) input, or a V(person)) - and C(reason).
positional: _input, moved, analyses, now, answer
options:
  _input:
    description: The plan from C(canary.istio.analysis_plan).
    type: dict
    required: true
  moved:
    description: This run's moves, each C(share) and C(at) (Unix seconds).
    type: list
    elements: dict
    required: true
  analyses:
    description: This run's analyses, as C(canary.istio.analysis_record) made them.
    type: list
    elements: dict
    required: true
  now:
    description: The time, Unix seconds.
    type: float
    required: true
  answer:
    description: A person's answer at the decision gate, after the driver said V(ask).
    type: str
"""

EXAMPLES = r"""
- name: Ask what to do next
  ansible.builtin.set_fact:
    next: "{{ plan | canary.istio.analysis_next(moved, analyses, now(utc=true).timestamp()) }}"
"""

RETURN = r"""
_value:
  description:
    - C(action) (move, analyse, promote, rollback, hold, ask or stop), C(reason), C(share), C(wait), C(look),
      C(looks), C(since), C(by) and C(would) (what a dry run's analysis would have done).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._logic import driver

display = Display()
# Deprecated: no role of the collection uses this filter any more (issue 23).
DEPRECATED = ("canary.istio.analysis_next is deprecated: the canary_release role no longer calls it. It drives a run "
              "with canary.istio.release_run, whose state holds the driver's answer (its 'next' key)")


def analysis_next(plan, moved, analyses, now, answer=None):
    display.deprecated(DEPRECATED, version="2.0.0", collection_name="canary.istio")
    try:
        return driver.next_action(plan, list(moved or []), list(analyses or []), float(now), answer or None)
    except (KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError(f"analysis_next: {error}") from None


class FilterModule:
    """The release driver: the next action."""

    def filters(self):
        return {"analysis_next": analysis_next}
