#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virtual_service_info
short_description: Read Istio VirtualServices
version_added: 0.1.0
description:
  - Returns one C(VirtualService) by name, or the VirtualServices of a namespace (or of all namespaces) that match label selectors.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.attributes
  - canary.istio.attributes.INFO
  - canary.istio.resource.INFO
seealso:
  - module: canary.istio.virtual_service
  - module: canary.istio.destination_rule_info
  - module: canary.istio.canary_info
"""

EXAMPLES = r"""
- name: Read the reviews VirtualService
  canary.istio.virtual_service_info:
    name: reviews
    namespace: bookinfo
  register: found

- name: List the VirtualServices of the app
  canary.istio.virtual_service_info:
    namespace: bookinfo
    label_selectors:
      - app.kubernetes.io/part-of=bookinfo
"""

RETURN = r"""
resources:
  description: The VirtualServices found (empty when none match or the named one does not exist).
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
    return read_info(ctx, "VirtualService", "virtualservices", ctx.params)


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
