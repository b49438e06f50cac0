#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: destination_rule_info
short_description: Read Istio DestinationRules
version_added: 0.1.0
description:
  - Returns one C(DestinationRule) by name, or the DestinationRules of a namespace (or of all namespaces) that match label selectors.
  - A route may only send traffic to a subset its DestinationRule defines; read the subsets here before you route to one.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.attributes
  - canary.istio.attributes.INFO
  - canary.istio.resource.INFO
seealso:
  - module: canary.istio.destination_rule
  - module: canary.istio.virtual_service_info
"""

EXAMPLES = r"""
- name: Read the reviews DestinationRule
  canary.istio.destination_rule_info:
    name: reviews
    namespace: bookinfo
  register: rule

- name: Stop unless the canary's subset is defined
  ansible.builtin.assert:
    that: "'v2' in (rule.resources | map(attribute='spec.subsets') | flatten | map(attribute='name'))"
"""

RETURN = r"""
resources:
  description: The DestinationRules found (empty when none match or the named one does not exist), without server-set fields.
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: reviews, namespace: bookinfo},
            spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}}]
api_version:
  description: The C(networking.istio.io) version used.
  returned: always
  type: str
  sample: networking.istio.io/v1
api_requests:
  description: Number of API requests the task made (one GET by name, one LIST otherwise).
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._resource import INFO_ARG_SPEC, INFO_USES, read_info

ARGUMENT_SPEC = INFO_ARG_SPEC
USES = INFO_USES


def execute(ctx):
    return read_info(ctx, "DestinationRule")


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
