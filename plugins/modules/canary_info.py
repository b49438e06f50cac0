#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: canary_info
short_description: Where a service's canary stands - routes and weights, subsets, Deployments, recorded state
version_added: 0.1.0
description:
  - For one service, returns its VirtualService's http routes with their weights, the
    DestinationRule's subsets, which Deployments back each subset (their pod template labels
    match the Service selector and the subset's labels), and the canary state and history that
    M(canary.istio.traffic_split) recorded.
  - Hosts and the DestinationRule are resolved as Istio resolves them (see M(canary.istio.traffic_split));
    the Service and Deployments are read in the service's own namespace.
  - Weights are reported as the shares of traffic Istio routes - relative to their sum, a lone
    destination taking everything - so V(900)/V(100) reads as 90/10.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.mesh
  - canary.istio.attributes
  - canary.istio.attributes.INFO
options:
  name:
    description: Name of the VirtualService (usually the service's name).
    type: str
    required: true
  namespace:
    description:
      - Namespace. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  service_host:
    description:
      - The service host. Defaults to the VirtualService's only host.
      - The API server is O(host).
    type: str
  destination_rule:
    description:
      - Name of the DestinationRule. Default - the rule Istio applies to the host.
    type: str
  route_name:
    description:
      - The route whose weights are reported as RV(weights). Default - the host's default route.
    type: str
seealso:
  - module: canary.istio.traffic_split
"""

EXAMPLES = r"""
- name: Where does the reviews canary stand?
  canary.istio.canary_info:
    name: reviews
    namespace: bookinfo
  register: canary

- name: Show the weights
  ansible.builtin.debug:
    msg: "v1 {{ canary.weights.v1 | default(0) }}% / v2 {{ canary.weights.v2 | default(0) }}%"
"""

RETURN = r"""
exists:
  description: Whether the VirtualService exists.
  returned: always
  type: bool
weights:
  description:
    - Share of traffic (percent) per subset of the route named by O(route_name), or of the default route
      (empty when there is none), as Istio routes it. Whole numbers when exact, else two decimals.
  returned: always
  type: dict
  sample: {v1: 70, v2: 30}
routes:
  description: The http routes in order, with name, match and weights.
  returned: always
  type: list
  elements: dict
  sample: [{index: 0, name: testers, match: [{headers: {end-user: {exact: jason}}}], weights: {v2: 100}}]
subsets:
  description: The DestinationRule's subsets, each with its labels, the Deployments backing it and whether a route uses it.
  returned: always
  type: list
  elements: dict
  sample: [{name: v1, labels: {version: v1}, deployments: [reviews-v1], routed: true}]
destination_rule:
  description: Name of the DestinationRule found (empty when none).
  returned: always
  type: str
destination_rule_namespace:
  description: Namespace of that DestinationRule (empty when none).
  returned: always
  type: str
state:
  description: Recorded canary state (base, canary, weight, route); values are null when nothing was recorded.
  returned: always
  type: dict
  sample: {base: v1, canary: v2, weight: 30, route: null}
history:
  description: Recorded steps, oldest first, each with time, from, to and actor.
  returned: always
  type: list
  elements: dict
api_version:
  description: The C(networking.istio.io) version used.
  returned: always
  type: str
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
"""

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import (
    MESH_ARG_SPEC,
    service_host,
    validate_cluster_domain,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.info import routes_report, subsets_report
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route
from ansible_collections.canary.istio.plugins.module_utils._logic.state import read_canary_state
from ansible_collections.canary.istio.plugins.module_utils._module import build_module, run
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, read_destination_rule

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "service_host": {"type": "str"},
    "destination_rule": {"type": "str"},
    "route_name": {"type": "str"},
    **MESH_ARG_SPEC,
}
USES_ISTIO = True


def execute(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    validate_cluster_domain(params["cluster_domain"])
    validate_name(params["root_namespace"], "root_namespace")
    ctx.at("get", "virtualservices", name, namespace)
    vs = ctx.istio.get("VirtualService", namespace, name)
    result = {"changed": False, "exists": vs is not None, "weights": {}, "routes": [], "subsets": [],
              "destination_rule": "", "destination_rule_namespace": "", "state": {"base": None, "canary": None, "weight": None, "route": None},
              "history": [], "api_version": ctx.istio.api_version}
    if vs is None:
        return result
    spec = vs.get("spec") or {}
    host = service_host(vs, params.get("service_host"))
    target = Target(name, namespace, host, None, params.get("destination_rule"),
                    cluster_domain=params["cluster_domain"], root_namespace=params["root_namespace"])
    result["routes"] = routes_report(spec)
    try:
        index = find_http_route(spec, host, params.get("route_name"), hosts=target.hosts)
        result["weights"] = result["routes"][index]["weights"]
    except CanaryInputError:
        if params.get("route_name"):
            raise
    recorded = read_canary_state(vs)
    result["history"] = recorded.pop("history")
    result["state"] = recorded
    rule = read_destination_rule(ctx, target, host)
    if rule is not None:
        result["destination_rule"] = rule["metadata"]["name"]
        result["destination_rule_namespace"] = rule["metadata"].get("namespace") or ""
        # The Service and its Deployments live in the service's namespace, not necessarily the VirtualService's.
        service_namespace = target.hosts.service_namespace(host) or namespace
        short = target.hosts.service_name(host) or host.split(".")[0]
        selector = None
        ctx.at("get", "services", short, service_namespace, "")
        try:
            service = ctx.client.get(f"/api/v1/namespaces/{service_namespace}/services/{short}")
            selector = (service.get("spec") or {}).get("selector")
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise
        selector = selector or {"app": short}
        ctx.at("list", "deployments", None, service_namespace, "apps")
        deployments = ctx.client.get(f"/apis/apps/v1/namespaces/{service_namespace}/deployments").get("items") or []
        result["subsets"] = subsets_report(spec, host, target.rules, selector, deployments, target.hosts)
    return result


def main() -> None:
    run(build_module(ARGUMENT_SPEC, istio=USES_ISTIO), execute)


if __name__ == "__main__":
    main()
