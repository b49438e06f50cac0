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
  - For the weights of one route and the subsets behind them, read with M(canary.istio.canary_info) instead.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.attributes
  - canary.istio.attributes.INFO
  - canary.istio.resource.INFO
options:
  kind:
    description:
      - V(HTTPRoute) reads Gateway API HTTPRoutes (C(gateway.networking.k8s.io)) instead, by name or by namespace and
        label selectors, for releases on Gateway API (see O(canary.istio.traffic_split#module:kind)).
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
    version_added: 0.3.0
seealso:
  - module: canary.istio.virtual_service
  - module: canary.istio.destination_rule_info
  - module: canary.istio.canary_info
"""

EXAMPLES = r"""
- name: Read the Gateway API HTTPRoutes of reviews
  canary.istio.virtual_service_info:
    kind: HTTPRoute
    namespace: bookinfo
    label_selectors: [app=reviews]
  register: routes

- name: Which hosts do the Bookinfo routes serve
  canary.istio.virtual_service_info:
    namespace: bookinfo
    label_selectors:
      - app.kubernetes.io/part-of=bookinfo
  register: routes

- name: Show them
  ansible.builtin.debug:
    msg: "{{ routes.resources | map(attribute='spec.hosts') | flatten | unique }}"
"""

RETURN = r"""
resources:
  description: The VirtualServices found (empty when none match or the named one does not exist), without server-set fields.
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: reviews, namespace: bookinfo},
            spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}, weight: 90},
                                                     {destination: {host: reviews, subset: v2}, weight: 10}]}]}}]
api_version:
  description: The C(networking.istio.io) version used, or the C(gateway.networking.k8s.io) one with O(kind=HTTPRoute).
  returned: always
  type: str
  sample: networking.istio.io/v1
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 1
"""

from ansible_collections.canary.istio.plugins.module_utils._httproute import KIND_ARG_SPEC, RouteReader
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._resource import INFO_ARG_SPEC, INFO_USES, read_info

ARGUMENT_SPEC = {**INFO_ARG_SPEC, "kind": KIND_ARG_SPEC["kind"]}
USES = INFO_USES


def execute(ctx):
    if ctx.params["kind"] == "HTTPRoute":
        return read_info(ctx, "HTTPRoute", RouteReader(ctx))
    return read_info(ctx, "VirtualService")


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
