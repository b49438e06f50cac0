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
  - module: canary.istio.canary_info
"""

EXAMPLES = r"""
- name: Read the reviews DestinationRule
  canary.istio.destination_rule_info:
    name: reviews
    namespace: bookinfo
  register: found

- name: List the DestinationRules of the app
  canary.istio.destination_rule_info:
    namespace: bookinfo
    label_selectors:
      - app.kubernetes.io/part-of=bookinfo
"""

RETURN = r"""
resources:
  description: The DestinationRules found (empty when none match or the named one does not exist).
  returned: always
  type: list
  elements: dict
api_version:
  description: The C(networking.istio.io) version used.
  returned: always
  type: str
  sample: networking.istio.io/v1
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._resource import INFO_ARG_SPEC, read_info

ARGUMENT_SPEC = INFO_ARG_SPEC
USES = (KUBERNETES, ISTIO)


def execute(ctx):
    return read_info(ctx, "DestinationRule", "destinationrules", ctx.params)


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
