#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: destination_rule
short_description: Manage an Istio DestinationRule and its subsets without dropping the ones you did not name
version_added: 0.1.0
description:
  - Creates, updates or deletes one Istio C(DestinationRule).
  - Subsets are merged by name. A subset the task does not name is kept, so adding C(v2) to a
    rule that holds C(v1) and C(v3) keeps C(v3), even when O(spec) lists only C(v1) and C(v2).
  - Removing a subset (O(remove_subsets), O(keep_subsets=false) or O(state=absent)) is refused
    while a VirtualService in the namespace still routes to it (make before break), unless O(force=true).
  - Writes carry the resourceVersion that was read; a concurrent change is re-read, never overwritten.
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
      - The DestinationRule spec as in Istio's documentation (C(host), C(trafficPolicy), C(subsets), ...).
      - Every field is set as given, except that stored subsets it does not list are kept
        (see O(keep_subsets)).
      - Required to create a rule; without it, O(subsets) and O(remove_subsets) change the stored rule.
    type: dict
  subsets:
    description:
      - Subsets to add, or to replace by name, each with C(name) and C(labels) (and optionally C(trafficPolicy)).
    type: list
    elements: dict
    default: []
  remove_subsets:
    description:
      - Names of subsets to remove. Absent names are ignored.
    type: list
    elements: str
    default: []
  keep_subsets:
    description:
      - With O(spec), keep stored subsets that O(spec) does not list.
      - V(false) makes the stored subsets exactly those of O(spec) (still refusing to drop a routed one).
    type: bool
    default: true
  force:
    description:
      - Remove subsets (or the whole rule) even while a VirtualService routes to them.
        Traffic to such a subset then fails with 503 errors.
      - Without it, VirtualServices are checked as Istio resolves hosts - the rule's C(spec.host) in the
        rule's namespace, each destination's host in its VirtualService's namespace - in every namespace
        the rule is exported to (all namespaces when the client may list them, else the rule's own).
    type: bool
    default: false
  cluster_domain:
    description:
      - The cluster's DNS domain, used to resolve short host names (V(reviews) in namespace C(shop) is
        C(reviews.shop.svc.cluster.local)).
    type: str
    default: cluster.local
seealso:
  - module: canary.istio.destination_rule_info
  - module: canary.istio.traffic_split
  - name: Istio DestinationRule reference
    description: The upstream API reference.
    link: https://istio.io/latest/docs/reference/config/networking/destination-rule/
"""

EXAMPLES = r"""
- name: Base rule for reviews with subset v1
  canary.istio.destination_rule:
    name: reviews
    namespace: bookinfo
    spec:
      host: reviews
      subsets:
        - name: v1
          labels: {version: v1}

- name: Add the canary subset v2 (v1 and any other subset stay)
  canary.istio.destination_rule:
    name: reviews
    namespace: bookinfo
    subsets:
      - name: v2
        labels: {version: v2}

- name: Remove v1 after promotion (refused while a route still sends traffic to v1)
  canary.istio.destination_rule:
    name: reviews
    namespace: bookinfo
    remove_subsets: [v1]
"""

RETURN = r"""
result:
  description: The DestinationRule as stored (or as the dry run would store it); empty after deletion.
  returned: always
  type: dict
  sample:
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews, namespace: bookinfo}
    spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
subsets:
  description: Names of the subsets the rule holds afterwards.
  returned: always
  type: list
  elements: str
  sample: [v1, v2, v3]
removed_subsets:
  description: Names of the subsets this task removed.
  returned: always
  type: list
  elements: str
  sample: []
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
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import MESH_ARG_SPEC, validate_cluster_domain
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import (
    from_definition,
    merged_object,
    validate_destination_rule_spec,
    validate_name,
    validate_string_map,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.subsets import (
    plan_destination_rule_spec,
    removed_subsets,
)
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._resource import OBJECT_ARG_SPEC, ensure, routes_to_subsets

KIND = "DestinationRule"


ARGUMENT_SPEC = {
    **OBJECT_ARG_SPEC,
    "spec": {"type": "dict"},
    "subsets": {"type": "list", "elements": "dict", "default": []},
    "remove_subsets": {"type": "list", "elements": "str", "default": []},
    "keep_subsets": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "cluster_domain": MESH_ARG_SPEC["cluster_domain"],
}
USES = (KUBERNETES, ISTIO)


def execute(ctx):
    params = ctx.params
    validate_cluster_domain(params["cluster_domain"])
    name, namespace, spec, labels, annotations = from_definition(params, KIND)
    validate_name(name, "name")
    namespace = validate_name(namespace or ctx.default_namespace, "namespace")
    labels = validate_string_map(labels, "labels")
    annotations = validate_string_map(annotations, "annotations")
    if spec is not None:
        validate_destination_rule_spec(spec)
    removed: list[str] = []

    def refuse_if_routed(rule, names, what):
        if params["force"] or not names:
            return
        users = routes_to_subsets(ctx, namespace, rule, names, params["cluster_domain"])
        if users:
            detail = "; ".join(f"subset {subset!r} by VirtualService {', '.join(vs)}"
                               for subset, vs in sorted(users.items()))
            raise ModuleFailure(
                f"refusing to {what} of DestinationRule {namespace}/{name}: still routed to ({detail}). "
                "Move traffic off it first (canary.istio.traffic_split), or set force: true")

    def desired(existing):
        if existing is None and spec is None:
            raise ModuleFailure(f"DestinationRule {namespace}/{name} does not exist; give spec to create it")
        existing_spec = (existing or {}).get("spec")
        new_spec = plan_destination_rule_spec(existing_spec, spec, params["subsets"], params["remove_subsets"],
                                              params["keep_subsets"])
        validate_destination_rule_spec(new_spec)
        removed[:] = removed_subsets(existing_spec, new_spec)
        if removed:
            refuse_if_routed({"spec": new_spec}, removed, f"remove subset(s) {', '.join(removed)}")
        return merged_object(existing, name, namespace, new_spec, labels, annotations)

    def before_delete(existing):
        names = [s.get("name") for s in (existing.get("spec") or {}).get("subsets") or []]
        refuse_if_routed(existing, names, "delete every subset")
        removed[:] = names

    result = ensure(ctx, KIND, "destinationrules", namespace, name, params["state"],
                    desired if params["state"] == "present" else None, before_delete)
    result["subsets"] = [s.get("name") for s in (result["result"].get("spec") or {}).get("subsets") or []]
    result["removed_subsets"] = removed if result["changed"] else []
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
