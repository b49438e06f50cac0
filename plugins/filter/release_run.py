# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: release_run
short_description: One run of the canary_release role as one state, advanced by what the role did
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - The C(canary_release) role keeps one fact, the state of its run, and after everything it does
    passes the state and what happened through this filter; the answer is the new state, with what
    the role does next. The role decides nothing in Jinja.
  - The rules are C(advance) in C(plugins/module_utils/_logic/release_run.py) (unit-tested), over the
    planner in C(_logic/release.py) and the release driver in C(_logic/driver.py).
  - Events - V(start) (the role's inputs, checked before any request; with C(playbook_dir) and C(project_dir) the
    canary's manifests are found and its DestinationRule manifests read from the project), V(read)
    (M(canary.istio.canary_info)'s result, or the results of the role's loop over C(reads)), V(checked) (the
    analysis run once before any change), V(acted) (the role's slot did C(next) - C(reply), C(split), C(analysis)),
    V(reported) and V(failed); V(rules), V(plan), V(moved), V(analysed), V(settle), V(answered) and V(swapped) are
    the steps that V(read) and V(acted) take.
positional: _input, event, payload, now, extra
options:
  _input:
    description: The state (for V(start), the role's inputs).
    type: dict
    required: true
  event:
    description: What happened.
    type: str
    required: true
    choices: [start, read, rules, plan, moved, analysed, settle, answered, swapped, reported, failed, acted, checked]
  payload:
    description: The module result or answer of the event.
    type: raw
  now:
    description: The time, Unix seconds.
    type: float
    default: 0
  extra:
    description: For V(read), the inventory host (whose AWX artifacts are checked); for V(swapped), the winner.
    type: str
"""

EXAMPLES = r"""
- name: Keep what the move did, and what comes next
  ansible.builtin.set_fact:
    state: "{{ state | canary.istio.release_run('moved', split, now(utc=true).timestamp()) }}"
"""

RETURN = r"""
_value:
  description:
    - The new state. C(next) is the driver's answer (C(action) move, analyse, promote, rollback, hold, ask or
      stop); C(plan) what this run does (C(action), C(ask)); C(refusal) why it stops before the lock;
      C(weights) and C(weights_text) the split; C(say) the lines to print after the event; C(args) each module's
      arguments now (the role's module_defaults); C(acting) whether the role's loop has a C(next) to do.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.project_manifests import project_manifests
from ansible_collections.canary.istio.plugins.filter.project_paths import project_paths
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release_run import advance


def _project_files(inputs):
    """At start: the canary's manifest paths (a rollback lists their objects too) and, for a release, the
    DestinationRules of its rule manifests, read from the user's project (C(playbook_dir), C(project_dir):
    canary.istio.project_paths)."""
    if not isinstance(inputs, dict) or "playbook_dir" not in inputs:
        return inputs

    def given(name):
        return inputs.get(f"canary_release_{name}", inputs.get(name)) or []

    where = (inputs["playbook_dir"], inputs.get("project_dir") or "")
    found = {**inputs, "manifest_paths": project_paths(given("manifests"), *where)}
    if inputs.get("goal") in (None, "release"):
        found["rule_documents"] = project_manifests(given("destination_rule_manifests"), *where)["DestinationRule"]
    return found


def release_run(state, event, payload=None, now=0, extra=None):
    try:
        if event == "start":
            state = _project_files(state)
        return advance(state, event, payload, float(now or 0), extra)
    except (CanaryInputError, KeyError, TypeError, ValueError) as error:
        raise AnsibleFilterError(f"{error}") from None


class FilterModule:
    """The canary_release role's run."""

    def filters(self):
        return {"release_run": release_run}
