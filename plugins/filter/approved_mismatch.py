# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: approved_mismatch
short_description: Why the canary job's artifacts describe another release than this job's
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Deprecated - canary.istio 2.0.0 removes this filter; until then it works as before, with a deprecation
    warning. Why - the canary_release role no longer calls it; canary.istio.release_run checks, on V(read), that
    the canary job's artifacts describe this job's release.
  - The promote and rollback jobs of an AWX workflow get the canary job's C(canary_release_artifacts) (what the
    approver saw). Returns why they name another service, namespace or canary than this job does, or an empty
    string (also when there are none).
  - The rule is C(approved_mismatch) in C(plugins/module_utils/_logic/artifacts.py), unit-tested.
positional: _input, service, namespace, canary
options:
  _input:
    description: This host's entry of C(canary_release_artifacts), or null.
    type: raw
    required: true
  service: {description: This job's service., type: str, required: true}
  namespace: {description: This job's namespace., type: str, required: true}
  canary: {description: This job's canary version., type: str, required: true}
"""

EXAMPLES = r"""
- name: Refuse to promote another release than the approved one
  ansible.builtin.assert:
    that: problem | length == 0
    fail_msg: "{{ problem }}"
  vars:
    problem: "{{ approved | canary.istio.approved_mismatch('ratings', 'shop', 'v2') }}"
"""

RETURN = r"""
_value:
  description: The mismatch in one sentence, or an empty string.
  type: str
"""

from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._logic import artifacts

display = Display()
# Deprecated: no role of the collection uses this filter any more (issue 23).
DEPRECATED = ("canary.istio.approved_mismatch is deprecated: the canary_release role no longer calls it. "
              "canary.istio.release_run checks on 'read' that the canary job's artifacts describe "
              "this job's release")


def approved_mismatch(given, service, namespace, canary):
    display.deprecated(DEPRECATED, version="2.0.0", collection_name="canary.istio")
    return artifacts.approved_mismatch(given if isinstance(given, dict) else None, service, namespace, canary)


class FilterModule:
    """AWX: the promote job acts on the release the approver saw."""

    def filters(self):
        return {"approved_mismatch": approved_mismatch}
