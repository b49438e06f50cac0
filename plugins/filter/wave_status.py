# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: wave_status
short_description: One table of a release across clusters - cluster, wave, service, phase, weights, last verdict
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Turns one row per cluster and service (C(name), C(wave), C(service), C(phase), C(weights), C(history)
    as the C(canary_release) role's C(status) entry point publishes them) into the lines of one table.
  - The last verdict is the last analysis recorded in the history. See C(status_table) in
    C(plugins/module_utils/_logic/waves.py).
positional: _input
options:
  _input:
    description: The rows.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the table
  ansible.builtin.debug:
    msg: "{{ rows | canary.istio.wave_status }}"
"""

RETURN = r"""
_value:
  description: The table's lines, header first.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic import waves


def wave_status(rows):
    try:
        return waves.status_table(rows)
    except waves.WaveError as exc:
        raise AnsibleFilterError(f"wave_status: {exc}") from None


class FilterModule:
    """Release waves: the status table."""

    def filters(self):
        return {"wave_status": wave_status}
