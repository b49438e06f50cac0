# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: release_artifacts
short_description: A release stage's artifacts for AWX (set_stats) - service, versions, share, verdicts, report
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Deprecated - canary.istio 2.0.0 removes this filter; until then it works as before, with a deprecation
    warning. Why - the canary_release role no longer calls it; canary.istio.release_run builds a stage's
    artifacts (the state's C(stage_artifacts)).
  - Builds what a release stage publishes with C(ansible.builtin.set_stats) as
    C(canary_release_artifacts[inventory_hostname]) - AWX shows it as the job's artifacts and passes it to the
    workflow's later nodes.
  - The rules are in C(plugins/module_utils/_logic/artifacts.py), unit-tested.
positional: _input, service, namespace, base, canary, weights, decision, reason, analyses, report
options:
  _input:
    description: The stage (V(release), V(set_ratio), V(promote), V(rollback), V(status)).
    type: str
    required: true
  service: {description: The service., type: str, required: true}
  namespace: {description: Its namespace., type: str, required: true}
  base: {description: The base version., type: str, required: true}
  canary: {description: The canary version., type: str, required: true}
  weights: {description: The weights after the stage., type: dict}
  decision: {description: What the stage decided., type: str}
  reason: {description: Why., type: str}
  analyses: {description: The analysis records of the run., type: list, elements: dict}
  report: {description: Where the report is (C(path), C(configmap), C(url))., type: dict}
"""

EXAMPLES = r"""
- name: Publish the artifacts
  ansible.builtin.set_stats:
    data:
      canary_release_artifacts: "{{ {inventory_hostname: 'release' | canary.istio.release_artifacts(
        'ratings', 'shop', 'v1', 'v2', {'v1': 90, 'v2': 10})} }}"
"""

RETURN = r"""
_value:
  description: C(stage), C(service), C(namespace), C(base), C(canary), C(weights), C(share), C(decision), C(reason),
    C(verdicts) (each with C(share), C(look), C(verdict), C(summary), C(checks) with values and C(bounds)), C(report).
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._logic import artifacts
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

display = Display()
# Deprecated: no role of the collection uses this filter any more (issue 23).
DEPRECATED = ("canary.istio.release_artifacts is deprecated: the canary_release role no longer calls it. "
              "canary.istio.release_run builds a stage's artifacts (its state's 'stage_artifacts')")


def release_artifacts(stage, service, namespace, base, canary, weights=None, decision=None, reason=None,
                      analyses=None, report=None):
    display.deprecated(DEPRECATED, version="2.0.0", collection_name="canary.istio")
    try:
        return artifacts.release_artifacts(stage, service, namespace, base, canary, weights, decision, reason,
                                           analyses, report)
    except (CanaryInputError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"release_artifacts: {exc}") from None


class FilterModule:
    """AWX artifacts of a release stage."""

    def filters(self):
        return {"release_artifacts": release_artifacts}
