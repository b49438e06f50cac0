#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: virtual_service
short_description: Manage an Istio VirtualService
version_added: 0.1.0
description:
  - Creates, updates or deletes one Istio C(VirtualService).
  - With O(state=present) the stored spec is made equal to the given one; given labels and
    annotations are merged into the object's own, others are kept.
  - Writes carry the resourceVersion that was read, so a concurrent change is never overwritten
    blindly; on a conflict the object is read again and the desired state applied to it.
  - To move traffic between subsets without rewriting the whole spec, use M(canary.istio.traffic_split).
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.attributes
  - canary.istio.attributes.WRITE
  - canary.istio.resource
options:
  spec:
    description:
      - The VirtualService spec, as in Istio's documentation (C(hosts), C(gateways), C(http), C(tcp), C(tls), ...).
      - Validated before any request by Istio's own rules for the fields this collection relies on - every
        route has destinations with a host, weights are whole numbers that are not negative and, among
        several destinations, not all 0 (Istio reads them relative to their sum); a route with
        C(redirect), C(directResponse) or C(delegate) carries no weighted destinations; without C(hosts)
        the object is a delegate VirtualService, which has no C(gateways), C(tcp) or C(tls) routes.
      - Required with O(state=present) unless O(definition) holds it.
    type: dict
  create_only:
    description:
      - With O(state=present), create the VirtualService when it is missing and leave one that exists as it
        is, whatever its spec (one read, no write; RV(method=unchanged)) - for a base deployment run again
        while a canary release holds the route.
    type: bool
    default: false
    version_added: 0.3.0
seealso:
  - module: canary.istio.virtual_service_info
  - module: canary.istio.traffic_split
  - name: Istio VirtualService reference
    description: The upstream API reference.
    link: https://istio.io/latest/docs/reference/config/networking/virtual-service/
"""

EXAMPLES = r"""
- name: Route all reviews traffic to v1
  canary.istio.virtual_service:
    name: reviews
    namespace: bookinfo
    spec:
      hosts: [reviews]
      http:
        - name: primary
          route:
            - destination: {host: reviews, subset: v1}
              weight: 100

- name: Apply a VirtualService from a file
  canary.istio.virtual_service:
    definition: "{{ lookup('ansible.builtin.file', 'virtual-service-reviews.yaml') | from_yaml }}"
    namespace: bookinfo

- name: Create the route unless it exists (a release in progress keeps its weights)
  canary.istio.virtual_service:
    definition: "{{ lookup('ansible.builtin.file', 'virtual-service-reviews.yaml') | from_yaml }}"
    namespace: bookinfo
    create_only: true

- name: Remove it
  canary.istio.virtual_service:
    name: reviews
    namespace: bookinfo
    state: absent
"""

RETURN = r"""
result:
  description: The VirtualService as stored (or as the dry run would store it); empty after deletion.
  returned: always
  type: dict
  sample:
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews, namespace: bookinfo, resourceVersion: "1234"}
    spec:
      hosts: [reviews]
      http: [{route: [{destination: {host: reviews, subset: v1}, weight: 100}]}]
api_version:
  description: The C(networking.istio.io) version used.
  returned: always
  type: str
  sample: networking.istio.io/v1
method:
  description: What was done.
  returned: always
  type: str
  sample: updated
  choices: [created, updated, deleted, unchanged]
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 2
diff:
  description: Spec, labels and annotations before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import (
    from_definition,
    merged_object,
    validate_name,
    validate_string_map,
    validate_virtual_service_spec,
)
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._resource import OBJECT_ARG_SPEC, ensure

KIND = "VirtualService"


ARGUMENT_SPEC = {
    **OBJECT_ARG_SPEC,
    "spec": {"type": "dict"},
    "create_only": {"type": "bool", "default": False},
}
USES = (KUBERNETES, ISTIO)


def execute(ctx):
    params = ctx.params
    name, namespace, spec, labels, annotations = from_definition(params, KIND)
    validate_name(name, "name")
    namespace = validate_name(namespace or ctx.default_namespace, "namespace")
    labels = validate_string_map(labels, "labels")
    annotations = validate_string_map(annotations, "annotations")
    if params["state"] == "present":
        if spec is None:
            raise ModuleFailure("state=present needs spec (or a definition with a spec)")
        validate_virtual_service_spec(spec)

    def desired(existing):
        if existing is not None and params["create_only"]:
            return existing
        return merged_object(existing, name, namespace, spec, labels, annotations)

    return ensure(ctx, KIND, "virtualservices", namespace, name, params["state"], desired)


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
