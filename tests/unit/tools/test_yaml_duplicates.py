# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""tools/yaml_duplicates.py, the YAML duplicate check of ``make lint``: what it reports and what it does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TOOL = Path(__file__).resolve().parents[3] / "tools" / "yaml_duplicates.py"
_spec = importlib.util.spec_from_file_location("yaml_duplicates", TOOL)
tool = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tool
_spec.loader.exec_module(tool)

TASK = """- name: Send all traffic to the base
  canary.istio.traffic_split:
    weights: "{{ {base: 100} }}"
    remove_unnamed: true
  register: swap
- name: Remember the split
  ansible.builtin.set_fact:
    weights: "{{ swap.after }}"
"""


def indented(text, spaces):
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(True))


def test_a_task_repeated_in_another_file_is_reported_with_both_places():
    first = "---\n# promote\n" + TASK
    second = "---\n- name: Something else\n  ansible.builtin.debug:\n    msg: hi\n\n" + TASK
    repeats = tool.find_repeats([("a.yml", first), ("b.yml", second)])
    assert [str(repeat) for repeat in repeats] == ["a.yml:3-10 ~ b.yml:6-13 (8 lines)"]


def test_indentation_comments_and_blank_lines_do_not_hide_a_repeat():
    spaced = TASK.replace("\n- name: Remember", "\n\n# why\n- name: Remember")
    block = "- name: Recover\n  block:\n" + indented(spaced, 4)
    repeats = tool.find_repeats([("a.yml", TASK), ("b.yml", block)])
    assert len(repeats) == 1 and repeats[0].lines == 8


def test_a_repeat_within_one_file_counts_and_five_lines_do_not():
    assert len(tool.find_repeats([("a.yml", TASK + TASK)])) == 1
    five = "\n".join(TASK.splitlines()[:5]) + "\n"
    assert tool.find_repeats([("a.yml", five), ("b.yml", five)]) == []
    assert len(tool.find_repeats([("a.yml", five), ("b.yml", five)], min_lines=5)) == 1


def test_a_line_repeated_over_and_over_is_no_pair_with_itself():
    assert tool.find_repeats([("a.yml", "- x\n" * 7)]) == []


def test_the_command_fails_on_a_repeat_and_passes_without(tmp_path, capsys):
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "meta").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "a.yml").write_text(TASK)
    (tmp_path / "roles" / "r" / "meta" / "main.yml").write_text(TASK)  # galaxy metadata is left out
    assert tool.main([str(tmp_path / "roles")]) == 0
    (tmp_path / "roles" / "r" / "tasks" / "b.yml").write_text(TASK)
    assert tool.main([str(tmp_path / "roles")]) == 1
    assert "a.yml:1-8 ~ " in capsys.readouterr().out
