# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: analysis_record
short_description: What a progressive release keeps of one canary_analysis result - the verdict and its numbers
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Deprecated - canary.istio 2.0.0 removes this filter; until then it works as before, with a deprecation
    warning. Why - the canary_release role no longer calls it; canary.istio.release_run keeps each analysis
    itself (its V(analysed) step).
  - The share it judged, the verdict (V(pass), V(fail), V(inconclusive), or V(error) when the analysis
    could not run, with its message), the summary, each check's canary and base values and the request
    counts - what a release records in the C(canary.istio/history) annotation and draws in the release
    report. The PromQL sent is left out.
positional: _input, step, look, looks, since, at
options:
  _input:
    description: A registered M(canary.istio.canary_analysis) result (failed or not).
    type: dict
    required: true
  step:
    description: The canary's share the analysis judged.
    type: int
    required: true
  look:
    description: The look number the analysis was asked (C(analysis_next)'s C(look)).
    type: int
  looks:
    description: The planned looks of the release.
    type: int
  since:
    description: When the evidence of this look starts (Unix seconds).
    type: float
  at:
    description: When the answer came (Unix seconds); the driver times the next look from it.
    type: float
"""

EXAMPLES = r"""
- name: Keep the verdict
  ansible.builtin.set_fact:
    analyses: "{{ analyses + [analysis | canary.istio.analysis_record(10)] }}"
"""

RETURN = r"""
_value:
  description:
    - C(step), C(look), C(looks), C(since), C(at), C(verdict), C(summary), C(checks) (each with its C(bounds)),
      C(requests), C(alpha), C(more_requests), C(numbers), C(evaluated_at) (and C(msg) for an error).
  type: dict
"""

from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._logic import release


def _number(value, kind):
    return None if value is None or value == "" else kind(value)


display = Display()
# Deprecated: no role of the collection uses this filter any more (issue 23).
DEPRECATED = ("canary.istio.analysis_record is deprecated: the canary_release role no longer calls it. "
              "canary.istio.release_run keeps each analysis itself (its 'analysed' step)")


def analysis_record(result, step, look=None, looks=None, since=None, at=None):
    display.deprecated(DEPRECATED, version="2.0.0", collection_name="canary.istio")
    return release.analysis_record(int(step), result or {}, _number(look, int), _number(looks, int),
                                   _number(since, float), _number(at, float))


class FilterModule:
    """Progressive delivery: one analysis, as the release keeps it."""

    def filters(self):
        return {"analysis_record": analysis_record}
