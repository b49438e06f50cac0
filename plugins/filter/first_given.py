# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: first_given
short_description: The first value of a list that was given (an empty answer means not given)
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Returns the first item of the list that is not null, an empty or blank string, or an empty list or
    mapping; strings are returned stripped. V(0) and V(false) count as given.
  - An AWX survey sends an optional question's empty default as an extra var, which beats every other
    variable; the roles read such answers through this filter so that the empty answer does not hide a
    value set elsewhere (an inventory, the environment).
  - The rule is C(first_given) in C(plugins/module_utils/_logic/given.py), unit-tested.
positional: _input, default
options:
  _input:
    description: The candidates, most important first.
    type: list
    elements: raw
    required: true
  default:
    description: What to return when none was given.
    type: raw
    default: ""
"""

EXAMPLES = r"""
- name: The Prometheus URL of the role, else the cluster's, else the environment's
  ansible.builtin.set_fact:
    url: "{{ [canary_release_prometheus_url, canary_prometheus_url | default(''),
              lookup('ansible.builtin.env', 'CANARY_ISTIO_PROMETHEUS_URL')] | canary.istio.first_given }}"
"""

RETURN = r"""
_value:
  description: The first given value, or O(default).
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic.given import first_given as _first_given


def first_given(values, default=""):
    if not isinstance(values, (list, tuple)):
        raise AnsibleFilterError(f"first_given: expects a list of candidates, got {type(values).__name__} {values!r}")
    return _first_given(list(values), default)


class FilterModule:
    """Empty survey answers are not answers."""

    def filters(self):
        return {"first_given": first_given}
