# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The options every module that manages one Istio object (virtual_service, destination_rule) shares;
    # their argument spec is OBJECT_ARG_SPEC in module_utils/_resource.py.
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the object. Required unless given in O(definition).
    type: str
  namespace:
    description:
      - Namespace of the object. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  state:
    description:
      - V(present) creates or updates the object; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  definition:
    description:
      - The whole object (C(apiVersion), C(kind), C(metadata), C(spec)), for example from
        C(lookup('file', ...) | from_yaml). Options given alongside take precedence.
    type: dict
  labels:
    description:
      - Labels to set on the object; labels not named here are kept.
    type: dict
  annotations:
    description:
      - Annotations to set on the object; annotations not named here are kept.
    type: dict
"""

    # The options of the read-only modules that find objects by name or by label (the *_info modules);
    # their argument spec is INFO_ARG_SPEC in module_utils/_resource.py.
    INFO = r"""
options:
  name:
    description:
      - Name of one object to read. Without it, every object of the module's kind in the namespace is listed.
    type: str
  namespace:
    description:
      - Namespace to read from. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  all_namespaces:
    description:
      - List across all namespaces (needs cluster-wide list permission).
    type: bool
    default: false
  label_selectors:
    description:
      - Label selectors such as C(app=reviews) or C(tier in (backend)); all must match.
    type: list
    elements: str
    default: []
"""
