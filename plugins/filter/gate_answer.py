# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: gate_answer
short_description: Read an answer typed at a canary gate, by the rule that checks the same input given as a variable
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Takes what a person typed at a prompt and returns it normalised when it is a valid answer of the
    gate, else V(null), so a prompt can ask again.
  - The rules are those that M(canary.istio.canary_info) applies to its O(canary.istio.canary_info#module:ratio)
    and O(canary.istio.canary_info#module:decision) options - one rule for each input, wherever it comes from.
positional: _input, gate
options:
  _input:
    description: The answer as typed (surrounding blanks are ignored).
    type: raw
    required: true
  gate:
    description:
      - V(ratio) - the canary's share of traffic, a whole number from 0 to 100, returned as an integer.
      - V(decision) - V(promote), V(rollback) or V(hold) (any case), returned in lower case.
    type: str
    required: true
    choices: [ratio, decision]
"""

EXAMPLES = r"""
- name: Ask for the share
  ansible.builtin.pause:
    prompt: Share of traffic for the canary, in percent
  register: reply

- name: Keep a valid answer
  ansible.builtin.set_fact:
    share: "{{ reply.user_input | canary.istio.gate_answer('ratio') }}"
  # " 30 " => 30; "abc", "101", "50.5" => null
"""

RETURN = r"""
_value:
  description:
    - The normalised answer (an integer for V(ratio), a string for V(decision)), or V(null) when it is not valid.
  type: raw
  sample: 30
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.release import parse_answer


def gate_answer(answer, gate):
    try:
        return parse_answer(gate, answer)
    except CanaryInputError as error:
        raise AnsibleFilterError(f"gate_answer: {error}") from None


class FilterModule:
    """Answers typed at the canary gates."""

    def filters(self):
        return {"gate_answer": gate_answer}
