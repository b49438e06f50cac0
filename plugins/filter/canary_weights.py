# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: canary_weights
short_description: Turn a canary ratio into base and canary subset weights
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Takes the canary's share of traffic as a whole percentage and returns the weights of the
    two subsets of a canary release, C(base) getting V(100 - ratio) and C(canary) getting the ratio.
  - The result is meant for the weights of a M(canary.istio.traffic_split) task.
  - A ratio that is not a whole number between 0 and 100 fails the template with a message that
    names the value.
positional: _input, base, canary
options:
  _input:
    description:
      - The canary's share of traffic in percent.
      - An integer 0..100, or a string holding one (such as a survey answer V("30")).
      - Booleans, fractions such as V(50.5), empty strings and other text are refused.
    type: raw
    required: true
  base:
    description: Subset name that receives the remaining traffic.
    type: str
    default: base
  canary:
    description: Subset name that receives the ratio; must differ from O(base).
    type: str
    default: canary
"""

EXAMPLES = r"""
- name: Weights for a 30 percent canary
  ansible.builtin.debug:
    msg: "{{ 30 | canary.istio.canary_weights }}"
  # => {"base": 70, "canary": 30}

- name: Weights keyed by the Bookinfo subsets, from a survey answer
  ansible.builtin.set_fact:
    reviews_weights: "{{ canary_release_ratio | canary.istio.canary_weights('v1', 'v2') }}"
  vars:
    canary_release_ratio: "20"
  # => {"v1": 80, "v2": 20}
"""

RETURN = r"""
_value:
  description: Mapping of the base and canary subset names to integer weights summing to 100.
  type: dict
  sample: {"base": 70, "canary": 30}
"""

from ansible_collections.canary.istio.plugins.plugin_utils._weights_filters import canary_weights_filter


class FilterModule:
    """Canary ratio to subset weights."""

    def filters(self):
        return {"canary_weights": canary_weights_filter}
