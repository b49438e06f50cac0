# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: project_paths
short_description: Manifest paths read from the user's project, the same way in every stage
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Relative paths are joined to the project's root - O(project_dir) when given; else, when O(playbook_dir) lies
    inside an installed collection (a project imported C(canary.istio.canary)), the working directory, which
    AWX sets to the job's project; else O(playbook_dir), or its parent when it is named C(playbooks).
    Absolute paths and C(~) paths are kept.
  - The rules are in C(plugins/module_utils/_logic/project_paths.py), unit-tested.
positional: _input, playbook_dir, project_dir
options:
  _input:
    description: The paths (a string is one path).
    type: raw
    required: true
  playbook_dir:
    description: C(playbook_dir).
    type: str
    required: true
  project_dir:
    description: The project's root, when set (C(canary_project_dir)).
    type: str
"""

EXAMPLES = r"""
- name: The canary's manifests
  ansible.builtin.set_fact:
    paths: "{{ ['deploy/ratings/v2'] | canary.istio.project_paths(playbook_dir, canary_project_dir | default('')) }}"
"""

RETURN = r"""
_value:
  description: Absolute paths.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.module_utils._logic import project_paths as logic


def project_paths(paths, playbook_dir, project_dir=None):
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, (list, tuple)):
        raise AnsibleFilterError(f"project_paths: expects a list of paths, got {type(paths).__name__} {paths!r}")
    return logic.resolve(list(paths), logic.project_root(project_dir, str(playbook_dir), os.getcwd()))


class FilterModule:
    """Manifest paths of the user's project."""

    def filters(self):
        return {"project_paths": project_paths}
