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
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
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
      - Name of the DestinationRule (default - named like the host, else found by host).
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
  description: Weights of the route named by O(route_name), or of the default route (empty when there is none).
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
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import service_host
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
}
USES_ISTIO = True


def execute(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    ctx.at("get", "virtualservices", name, namespace)
    vs = ctx.istio.get("VirtualService", namespace, name)
    result = {"changed": False, "exists": vs is not None, "weights": {}, "routes": [], "subsets": [],
              "destination_rule": "", "state": {"base": None, "canary": None, "weight": None, "route": None},
              "history": [], "api_version": ctx.istio.api_version}
    if vs is None:
        return result
    spec = vs.get("spec") or {}
    host = service_host(vs, params.get("service_host"))
    result["routes"] = routes_report(spec)
    try:
        index = find_http_route(spec, host, params.get("route_name"))
        result["weights"] = result["routes"][index]["weights"]
    except CanaryInputError:
        if params.get("route_name"):
            raise
    recorded = read_canary_state(vs)
    result["history"] = recorded.pop("history")
    result["state"] = recorded
    target = Target(name, namespace, host, None, params.get("destination_rule"))
    rule = read_destination_rule(ctx, target, host)
    if rule is not None:
        result["destination_rule"] = rule["metadata"]["name"]
        short = host.split(".")[0]
        selector = None
        ctx.at("get", "services", short, namespace, "")
        try:
            service = ctx.client.get(f"/api/v1/namespaces/{namespace}/services/{short}")
            selector = (service.get("spec") or {}).get("selector")
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise
        selector = selector or {"app": short}
        ctx.at("list", "deployments", None, namespace, "apps")
        deployments = ctx.client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").get("items") or []
        result["subsets"] = subsets_report(spec, host, rule, selector, deployments)
    return result


def main() -> None:
    run(build_module(ARGUMENT_SPEC, istio=USES_ISTIO), execute)


if __name__ == "__main__":
    main()
