#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: header_route
short_description: Send matching requests (a header, a cookie) to one subset, above the default route
version_added: 0.1.0
description:
  - Ensures a named http route of a VirtualService sends requests that match O(match) (or
    O(headers)) to O(subset), for example testers with header C(end-user=jason) to C(v2).
  - Istio uses the first route that matches, so the route is placed just above the default route
    for the host (moved there when it sits below it). Other routes keep their order and content.
  - When an earlier route already matches every request the header route would match (for example
    an unnamed route matching C(end-user=jason) exactly, or a route without match), the header route
    would never receive traffic. The task then fails, naming that route, and nothing changes - the
    module does not move routes it does not own. Only conditions that can be compared exactly count
    (C(exact) and C(prefix) strings, header names, ports, source labels, gateways); a regex covers only
    the same regex.
  - With O(state=absent) only that route is removed.
  - The subset must exist in the DestinationRule Istio applies to the host (resolved as for
    M(canary.istio.traffic_split)); the write is one JSON Patch guarded by the resourceVersion and
    the route list as read, retried after re-reading on a conflict.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.mesh
  - canary.istio.attributes
  - canary.istio.attributes.WRITE
options:
  name:
    description: Name of the VirtualService.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the VirtualService. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  route:
    description: Name of the http route this module owns.
    type: str
    required: true
  state:
    description: V(present) ensures the route; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  match:
    description:
      - "Istio HTTPMatchRequest list, for example C([{headers: {end-user: {exact: jason}}}]) or a
        cookie regex C([{headers: {cookie: {regex: '^(.*?;)?(user=jason)(;.*)?$'}}}])."
      - Mutually exclusive with O(headers).
    type: list
    elements: dict
  headers:
    description:
      - Shorthand for one match on headers. A plain string value means an exact match; a
        dictionary is an Istio StringMatch (C(exact), C(prefix) or C(regex)).
    type: dict
  subset:
    description: Subset that matching requests go to. Required with O(state=present).
    type: str
  service_host:
    description:
      - The service host. Defaults to the VirtualService's only host.
      - The API server is O(host).
    type: str
  destination_rule:
    description:
      - Name of the DestinationRule that defines the subset. Default - the rule Istio applies to the host.
    type: str
  max_retries:
    description: How many times to re-read and retry after another writer changed the VirtualService.
    type: int
    default: 5
  kind:
    description:
      - V(VirtualService) manages an http route of a VirtualService.
      - "V(HTTPRoute) manages a rule of a Gateway API HTTPRoute named O(route) - O(name) names the HTTPRoute, O(service)
        the backend Service that matching requests go to, O(headers) the headers they carry (an exact string, or
        C({exact: ...}) or C({regex: ...}); Gateway API has no prefix match for headers). The rule matches under
        C(PathPrefix /) and goes before the first rule that matches every request; O(subset), O(match),
        O(service_host) and O(destination_rule) are refused."
      - Gateway API gives a request to the most specific match, not to the first rule - a rule with a longer path
        takes the matching requests to that path, and the task warns about such rules.
      - The backend Service must exist, expose the port used and, unless O(require_ready_endpoints) is false, have
        ready endpoints.
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
    version_added: 0.3.0
  service:
    description: With O(kind=HTTPRoute), the backend Service that matching requests go to. Required with O(state=present).
    type: str
    version_added: 0.3.0
  require_ready_endpoints:
    description:
      - With O(kind=HTTPRoute), refuse to route to a backend Service whose Endpoints list no ready address; when
        false, route anyway and warn.
    type: bool
    default: true
    version_added: 0.3.0
seealso:
  - module: canary.istio.traffic_split
  - module: canary.istio.canary_info
"""

EXAMPLES = r"""
- name: Send testers (end-user jason) to reviews-v2 on a Gateway API HTTPRoute
  canary.istio.header_route:
    kind: HTTPRoute
    name: reviews
    namespace: bookinfo
    route: canary-testers
    headers: {end-user: jason}
    service: reviews-v2

- name: Testers signed in as jason see reviews v2
  canary.istio.header_route:
    name: reviews
    namespace: bookinfo
    route: testers
    headers:
      end-user: jason
    subset: v2

- name: A cookie picks the canary
  canary.istio.header_route:
    name: reviews
    namespace: bookinfo
    route: canary-cookie
    match:
      - headers:
          cookie:
            regex: "^(.*?;)?(canary=always)(;.*)?$"
    subset: v2

- name: Remove the tester route
  canary.istio.header_route:
    name: reviews
    namespace: bookinfo
    route: testers
    state: absent
"""

RETURN = r"""
routes:
  description: Names of the http routes (or HTTPRoute rules) in order after the change (C(http[N]) or C(rules[N]) for unnamed ones).
  returned: always
  type: list
  elements: str
  sample: [testers, "http[1]"]
result:
  description: The VirtualService as stored after the change (as the dry run would store it in check mode).
  returned: always
  type: dict
api_version:
  description: The C(networking.istio.io) version used, or the C(gateway.networking.k8s.io) one with O(kind=HTTPRoute).
  returned: always
  type: str
  sample: networking.istio.io/v1
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 3
diff:
  description: The http routes before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES
from ansible_collections.canary.istio.plugins.module_utils._httproute import (
    KIND_ARG_SPEC,
    header_rule_task,
    refuse_route_options,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import MESH_ARG_SPEC, validate_cluster_domain
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import strip_server_fields, validate_name
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, plan_header, write


def _match(params):
    if params.get("match") is not None and params.get("headers") is not None:
        raise CanaryInputError("give match or headers, not both")
    if params.get("headers") is not None:
        headers = {}
        for key, value in params["headers"].items():
            if isinstance(value, str):
                headers[key] = {"exact": value}
            elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("exact", "prefix", "regex"):
                headers[key] = value
            else:
                raise CanaryInputError(f"headers.{key} {value!r} must be a string (exact match) or one of "
                                       "{exact: ...}, {prefix: ...}, {regex: ...}")
        if not headers:
            raise CanaryInputError("headers is empty; an empty match would send all traffic to the subset")
        return [{"headers": headers}]
    return params.get("match")


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "route": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "match": {"type": "list", "elements": "dict"},
    "headers": {"type": "dict"},
    "subset": {"type": "str"},
    "service_host": {"type": "str"},
    "destination_rule": {"type": "str"},
    "max_retries": {"type": "int", "default": 5},
    "service": {"type": "str"},
    **MESH_ARG_SPEC,
    **KIND_ARG_SPEC,
}
USES = (KUBERNETES, ISTIO)


def execute(ctx):
    params = ctx.params
    present = params["state"] == "present"
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    if params["kind"] == "HTTPRoute":
        return header_rule_task(ctx, name, namespace)
    refuse_route_options(params)
    match = _match(params) if present else None
    if present and (match is None or not params.get("subset")):
        raise CanaryInputError("state=present needs subset and match (or headers)")
    if not 0 <= params["max_retries"] <= 50:
        raise CanaryInputError(f"max_retries {params['max_retries']} must be between 0 and 50")
    validate_cluster_domain(params["cluster_domain"])
    validate_name(params["root_namespace"], "root_namespace")
    target = Target(name, namespace, params.get("service_host"), None, params.get("destination_rule"),
                    cluster_domain=params["cluster_domain"], root_namespace=params["root_namespace"])

    def replan():
        plan_header(ctx, target, params["route"], match, params.get("subset"), present)

    replan()
    write(ctx, target, replan, params["max_retries"])
    stored = target.written if target.written is not None else target.vs
    result = {"changed": bool(target.patch), "routes": target.after["routes"],
              "result": strip_server_fields(stored), "api_version": ctx.istio.api_version}
    if ctx.diff_mode:
        before_http = ((target.vs or {}).get("spec") or {}).get("http") or []
        after_http = ((stored or {}).get("spec") or {}).get("http") or []
        result["diff"] = {"before": {"http": before_http}, "after": {"http": after_http}}
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
