# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: split_weights
short_description: Scale traffic shares to integer weights that sum to exactly 100
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Istio needs integer route weights that add up to exactly 100. This filter scales any
    shares, such as three equal shares or V(2) against V(1), to such weights by the
    largest-remainder method; every weight is the exact share rounded down or up, never
    further off than 1.
  - Leftover points go to the largest remainders; on a tie, the entry that comes first wins,
    so the same input always gives the same weights.
  - Shares that are negative, infinite, not numbers, or all zero fail the template with a
    message that names the value.
positional: _input
options:
  _input:
    description:
      - A mapping of subset name to share, or a list of shares.
      - Shares are numbers, or strings holding decimal numbers, that are zero or more.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Three equal subsets
  ansible.builtin.debug:
    msg: "{{ {'v1': 1, 'v2': 1, 'v3': 1} | canary.istio.split_weights }}"
  # => {"v1": 34, "v2": 33, "v3": 33}

- name: A list of shares keeps its order
  ansible.builtin.debug:
    msg: "{{ [2, 1] | canary.istio.split_weights }}"
  # => [67, 33]
"""

RETURN = r"""
_value:
  description:
    - Integer weights summing to 100, in the shape and order of the input
      (a mapping for a mapping, a list for a list).
  type: raw
  sample: {"v1": 34, "v2": 33, "v3": 33}
"""

from ansible_collections.canary.istio.plugins.plugin_utils._weights_filters import split_weights_filter


class FilterModule:
    """Largest-remainder weight split."""

    def filters(self):
        return {"split_weights": split_weights_filter}
