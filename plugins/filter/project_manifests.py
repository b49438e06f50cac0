# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: project_manifests
short_description: The documents of manifest files in the user's project, by kind
version_added: 0.1.0
author:
  - canary.istio developers
description:
  - Resolves the paths as the C(canary.istio.project_paths) filter does (one base for every stage - the
    project's root), reads every YAML document of the files (a directory - its C(.yaml) and C(.yml) files,
    sorted) and groups them - C(DestinationRule), C(VirtualService) and C(other).
  - Runs on the controller, like the C(file) lookup it replaces in the roles.
positional: _input, playbook_dir, project_dir
options:
  _input:
    description: Manifest files or directories; a single string is read as one.
    type: raw
    required: true
  playbook_dir:
    description: The playbook's directory (pass C(playbook_dir)); the root is found from it as described above.
    type: str
    required: true
  project_dir:
    description: The project's root when the user sets it (pass C(canary_project_dir | default(''))).
    type: str
"""

EXAMPLES = r"""
- name: Name the DestinationRules of the project's networking manifests
  ansible.builtin.debug:
    msg: >-
      {{ (['networking/reviews.yaml'] | canary.istio.project_manifests(playbook_dir)).DestinationRule
         | map(attribute='metadata.name') | list }}
"""

RETURN = r"""
_value:
  description: C(DestinationRule), C(VirtualService) and C(other) - lists of documents, in file order.
  type: dict
"""

import os

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.canary.istio.plugins.filter.project_paths import project_paths
from ansible_collections.canary.istio.plugins.module_utils._logic.manifests import by_kind


def _files(path):
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in sorted(os.listdir(path)) if name.endswith((".yaml", ".yml"))]
    return [path]


def project_manifests(paths, playbook_dir, project_dir=None):
    documents = []
    for path in project_paths(paths or [], playbook_dir, project_dir):
        for name in _files(path):
            try:
                with open(name, encoding="utf-8") as stream:
                    documents.extend(yaml.safe_load_all(stream))
            except (OSError, yaml.YAMLError) as error:
                raise AnsibleFilterError(f"project_manifests: cannot read {name}: {error}") from None
    return by_kind(documents)


class FilterModule:
    """Manifests of the user's project."""

    def filters(self):
        return {"project_manifests": project_manifests}
