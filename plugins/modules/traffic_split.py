#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_split
short_description: Move a share of traffic between subsets of one or many VirtualServices, safely
version_added: 0.1.0
description:
  - Sets the weights of named subsets in one http route of a VirtualService, for example
    70% to C(v1) and 30% to C(v2). Everything else is kept as it is - other routes and their
    order, match rules, retries, timeouts, fault injection, mirrors, headers, ports, fields this
    module does not know, labels and annotations.
  - The route is the one named O(route_name), or else the single default route (no C(match))
    for the service host. An ambiguous or missing route is an error.
  - Before any write, every subset that gets a weight above 0 must exist in the DestinationRule
    Istio applies to the host; otherwise the task fails, naming the subset and the rule, and nothing
    changes. Hosts are resolved as Istio resolves them - V(reviews) in a VirtualService of namespace
    C(shop) is C(reviews.shop.svc.cluster.local), a name with a dot is taken as written - and the rule
    is looked up as Istio does - in the VirtualService's namespace, then the service's namespace (rules
    exported to the VirtualService's namespace), then O(root_namespace).
  - Weights written are integers from 0 to 100 summing to 100 (this collection's rule). Weights read
    (RV(before)) are the shares Istio routes - weights are relative, and a lone destination takes all
    traffic whatever its weight.
  - A route that delegates, redirects or answers directly has no destinations to weigh; naming one is
    refused.
  - One guarded write per VirtualService, a JSON Patch whose C(test) operations pin the
    resourceVersion and the route as read. When someone else wrote in between, the object is
    read again and the change planned again, up to O(max_retries) times; their change is kept.
  - O(services) moves several VirtualServices as one step (lockstep), up to 10,000 in one task. All are
    read and validated before the first write; when a later write fails, no new write starts, and the
    ones already moved - and any whose write may have been applied although its answer was lost - are
    put back; the result says so for each service. Reads and writes run O(concurrency) at a time, each
    worker on a connection of its own. DestinationRules of a namespace with 50 or more of the services are
    listed once for the whole task; otherwise found as for one service (see the collection's docs).
  - When the task runs in the controller (a local connection, see the collection's docs), a move of 100
    services or more prints progress lines while it reads, writes and, on failure, puts back.
  - With O(kind=HTTPRoute) the same promises hold on a Gateway API HTTPRoute - only the C(backendRefs)
    weights of one rule move, one guarded write, check and diff mode - and every backend Service whose
    share rises must exist, expose the port its backendRef names and, unless O(require_ready_endpoints)
    is false, have ready endpoints. See the collection's C(docs/gateway-api.md).
  - Each step is recorded on the VirtualService in annotations with the prefix C(canary.istio/),
    C(canary.istio/state) (base, canary, weight) and C(canary.istio/history) (the last O(history_limit)
    steps with time, weights before and after, and actor).
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
    description:
      - Name of the VirtualService. Required unless O(services) is given.
    type: str
  namespace:
    description:
      - Namespace of the VirtualService(s). Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  service_host:
    description:
      - The service host whose traffic moves. A destination is its resolved host plus its subset, and a
        split moves weight only between the destinations of one service host; destinations of other hosts
        in the route keep their entries and weights exactly.
      - Without it, the host the route already sends to when that is one host (the result's
        RV(services[].notes) says so when that is not the VirtualService's own host); a route that sends to
        several hosts needs this option, or weights named as C(host:subset).
      - When given, the route must already send to it (or to nothing); otherwise the task is refused, naming
        both hosts, and nothing is written.
      - The API server is O(host); this option names the mesh service the VirtualService routes to.
    type: str
  route_name:
    description:
      - Name of the http route to change. Without it, the single http route with no C(match) that
        sends only to O(service_host) is used.
      - A route that comes after a route matching every request is refused, naming that route - Istio never
        builds it (route.go), so its weights would move nothing.
    type: str
  destination_rule:
    description:
      - Name of the DestinationRule that defines the subsets. It is looked up in the namespaces Istio
        searches (see O(root_namespace)) and must apply to the host. Without it, the rule Istio applies
        to the host is found by its C(spec.host).
    type: str
  weights:
    description:
      - "Weight per destination of the moved host, integers from 0 to 100 summing to 100, for example
        C({v1: 70, v2: 30})."
      - "A key names a subset (C(v2); Istio's subset names, upper case allowed), the host itself with no
        subset (C(reviews), every version of the service), or both (C(reviews.staging.svc.cluster.local:v2))."
      - When other hosts in the route receive traffic, the moved host keeps its share of the route and these
        weights split that share (largest remainder over its integer weight).
      - Subsets not yet in the route are added with the host spelling and port of the moved host's
        destinations. Weight 0 keeps a destination in the route. Entries that repeat one destination with
        the same fields are merged into the first.
      - Mutually exclusive with O(base), O(canary) and O(canary_weight).
    type: dict
  base:
    description:
      - Shorthand with O(canary) and O(canary_weight) - the base subset, which gets C(100 - canary_weight).
    type: str
  canary:
    description:
      - The canary subset, which gets O(canary_weight).
    type: str
  canary_weight:
    description:
      - Percentage of traffic for the canary subset, an integer from 0 to 100.
    type: raw
  remove_unnamed:
    description:
      - Drop destinations of the route that the weights do not name. Without it, such a destination
        is an error, so traffic is never moved away from a subset by accident.
    type: bool
    default: false
  services:
    description:
      - Several VirtualServices to move in lockstep with the same weights. Each item has C(name) and
        optionally C(namespace), C(service_host), C(route_name), C(destination_rule) and its own C(weights).
    type: list
    elements: dict
  actor:
    description:
      - Who made the change, recorded in the history (roles fill it from AWX job data or the local user).
      - Defaults to the user the module runs as.
    type: str
  record:
    description:
      - Record the canary state and history in annotations.
    type: bool
    default: true
  history_limit:
    description:
      - Number of steps kept in the C(canary.istio/history) annotation.
    type: int
    default: 20
  max_retries:
    description:
      - How many times to re-read and retry when another writer changed the VirtualService in between.
    type: int
    default: 5
  concurrency:
    description:
      - How many VirtualServices of O(services) are read, written or put back at the same time, each on a
        connection of its own; an integer from 1 to 64. V(1) moves one after another.
      - All or nothing holds whatever the value - every service is validated before the first write.
      - Higher values load the API server (and Istio's validating webhook) more; the default suits a
        shared control plane.
    type: int
    default: 8
    version_added: 0.2.0
  kind:
    description:
      - V(VirtualService) moves weights between subsets of a VirtualService route.
      - V(HTTPRoute) moves weights between backend Services of one rule of a Gateway API HTTPRoute - O(name)
        names the route; O(base), O(canary) and the keys of O(weights) name backend Services in its namespace
        (for example C(reviews-v1)); O(route_name) names a rule (C(spec.rules[].name)), else the only rule or the
        one rule that matches every request is moved; O(service_host) and O(destination_rule) are refused.
        Gateway API weights are relative (a backend receives its weight over the sum of the rule's weights);
        backends of other namespaces or kinds keep their share of the rule.
      - An item of O(services) may set its own C(kind), so one lockstep task can move both kinds.
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
    version_added: 0.3.0
  require_ready_endpoints:
    description:
      - With O(kind=HTTPRoute), refuse to raise the share of a backend Service whose Endpoints list no ready
        address. When false, the move is made and a warning says which Service has no ready endpoints.
      - A Service whose share falls is never checked, so taking traffic from a failing canary always works.
    type: bool
    default: true
    version_added: 0.3.0
seealso:
  - module: canary.istio.canary_info
  - module: canary.istio.header_route
  - module: canary.istio.destination_rule
"""

EXAMPLES = r"""
- name: Send 30% of reviews traffic to v2
  canary.istio.traffic_split:
    name: reviews
    namespace: bookinfo
    base: v1
    canary: v2
    canary_weight: 30

- name: Explicit weights on a named route
  canary.istio.traffic_split:
    name: reviews
    namespace: bookinfo
    route_name: primary
    weights: {v1: 50, v2: 50}

- name: Move three services in lockstep (all or none)
  canary.istio.traffic_split:
    namespace: shop
    services:
      - name: cart
      - name: checkout
      - name: payments
        route_name: default
    weights: {stable: 90, canary: 10}
    actor: "{{ awx_user_name | default(lookup('ansible.builtin.env', 'USER')) }}"

- name: Move a thousand services (a list of {name, ...} items), 16 requests at a time
  canary.istio.traffic_split:
    namespace: shop
    services: "{{ shop_services }}"
    weights: {stable: 90, canary: 10}
    concurrency: 16

- name: Send 10% of reviews to v2 on a Gateway API HTTPRoute (Istio's route-reviews-90-10.yaml)
  canary.istio.traffic_split:
    kind: HTTPRoute
    name: reviews
    namespace: bookinfo
    base: reviews-v1
    canary: reviews-v2
    canary_weight: 10

- name: Promote fully and drop the old destination from the route
  canary.istio.traffic_split:
    name: reviews
    namespace: bookinfo
    weights: {v2: 100}
    remove_unnamed: true
"""

RETURN = r"""
before:
  description:
    - Share of traffic (percent) per destination before the change, as Istio routed it (of the first service
      with O(services)); whole numbers when exact, else two decimals. Keys as in O(weights); a route that
      sends to several hosts names every destination with a subset as C(host:subset).
  returned: always
  type: dict
  sample: {v1: 100, v2: 0}
after:
  description: Weights per subset after the change (of the first service with O(services)).
  returned: always
  type: dict
  sample: {v1: 70, v2: 30}
route:
  description: Name of the route changed, or C(http[N]) for an unnamed one (the rule, or C(rules[N]), on an HTTPRoute).
  returned: always
  type: str
  sample: primary
services:
  description: One entry per VirtualService, with what happened to it.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: VirtualService name., type: str, returned: always}
    namespace: {description: Namespace., type: str, returned: always}
    service_host: {description: Service host moved., type: str, returned: always}
    route: {description: Route changed., type: str, returned: always}
    before: {description: Weights before., type: dict, returned: always}
    after: {description: Weights after., type: dict, returned: always}
    changed: {description: Whether the weights differ from before., type: bool, returned: always}
    moved: {description: Whether the change is stored now., type: bool, returned: always}
    rolled_back: {description: 'Whether the change was written, then put back because another service failed.', type: bool, returned: always}
    error: {description: 'Why this service failed (null when it did not).', type: str, returned: always}
    destination_rule: {description: Name of the DestinationRule whose subsets were checked., type: str, returned: always}
    destination_rule_namespace: {description: Namespace of that DestinationRule., type: str, returned: always}
    notes: {description: 'How the moved host was chosen, when it is not the VirtualService''s own host.', type: list, elements: str, returned: always}
    kind: {description: V(HTTPRoute) for an HTTPRoute., type: str, returned: for an HTTPRoute, version_added: 0.3.0}
    backend_services:
      description: Ready endpoints of each backend Service whose share rose (HTTPRoute).
      type: dict
      returned: for an HTTPRoute
      version_added: 0.3.0
api_version:
  description: The C(networking.istio.io) version used, or the C(gateway.networking.k8s.io) one when the first service is an HTTPRoute.
  returned: always
  type: str
  sample: networking.istio.io/v1
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 3
memory:
  description:
    - Peak resident memory of the process that ran the task, and how much this task raised it (MiB). On
      the default path the process is Ansible's task worker on the controller.
  returned: success
  type: dict
  sample: {peak_rss_mib: 61.2, peak_rss_growth_mib: 4.1}
  version_added: 0.2.0
lockstep:
  description: How the services were moved - workers used, seconds reading and validating, seconds writing.
  returned: success
  type: dict
  sample: {concurrency: 8, read_seconds: 1.21, write_seconds: 2.05}
  version_added: 0.2.0
diff:
  description: Route weights before and after per VirtualService, in diff mode.
  returned: when diff mode is on
  type: dict
"""

import getpass

from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES
from ansible_collections.canary.istio.plugins.module_utils._httproute import (
    KIND_ARG_SPEC,
    item_kind,
    plan_either,
    route_target,
)
from ansible_collections.canary.istio.plugins.module_utils._lockstep import (
    DEFAULT_CONCURRENCY,
    move,
    validate_concurrency,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import MESH_ARG_SPEC, validate_cluster_domain
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import canary_weights, validate_weights
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, write

# Every service is held in memory while the task runs: about 15 KiB each (5,000 raised the worker's peak
# RSS by 69 MiB; docs/performance.md section 6), so 10,000 stay well within a controller's means.
MAX_SERVICES = 10000
MEMORY_KEYS = ("peak_rss_mib", "peak_rss_growth_mib")
SERVICE_KEYS = {"name", "namespace", "service_host", "route_name", "destination_rule", "weights", "kind"}


def _weights(params):
    shorthand = [params.get(k) is not None for k in ("base", "canary", "canary_weight")]
    if params.get("weights") is not None:
        if any(shorthand):
            raise CanaryInputError("give either weights or base/canary/canary_weight, not both")
        return validate_weights(params["weights"])
    if not all(shorthand):
        if any(shorthand):
            missing = [k for k, given in zip(("base", "canary", "canary_weight"), shorthand) if not given]
            raise CanaryInputError(f"base, canary and canary_weight go together; missing {', '.join(missing)}")
        return None
    split = canary_weights(params["canary_weight"], params["base"], params["canary"])
    return validate_weights(split)


def _targets(params, default_namespace, weights):
    items = params.get("services")
    if items is None:
        if not params.get("name"):
            raise CanaryInputError("name (the VirtualService) or services is required")
        items = [{"name": params["name"]}]
    elif params.get("name"):
        raise CanaryInputError("give name or services, not both")
    if not items:
        raise CanaryInputError("services is empty; list at least one VirtualService")
    if len(items) > MAX_SERVICES:
        raise CanaryInputError(f"services lists {len(items)} VirtualServices; at most {MAX_SERVICES} move in one "
                               "step (split the list over several tasks)")
    targets = []
    seen = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise CanaryInputError(f"services[{index}] {item!r} must be a mapping with at least a name")
        unknown = sorted(set(item) - SERVICE_KEYS)
        if unknown:
            raise CanaryInputError(f"services[{index}] has unknown keys {unknown}; allowed: {sorted(SERVICE_KEYS)}")
        name = validate_name(item.get("name"), f"services[{index}].name" if params.get("services") else "name")
        namespace = validate_name(item.get("namespace") or params.get("namespace") or default_namespace, "namespace")
        if (namespace, name) in seen:
            raise CanaryInputError(f"VirtualService {namespace}/{name} is listed twice in services")
        seen.add((namespace, name))
        own = validate_weights(item["weights"]) if item.get("weights") is not None else weights
        if own is None:
            raise CanaryInputError("no weights given: set weights, or base + canary + canary_weight")
        where = f"services[{index}]" if params.get("services") else "the task"
        if item_kind(item, params, where) == "HTTPRoute":
            targets.append(route_target(item, params, name, namespace, own, where))
            continue
        targets.append(Target(name, namespace, item.get("service_host") or params.get("service_host"),
                              item.get("route_name") or params.get("route_name"),
                              item.get("destination_rule") or params.get("destination_rule"), own,
                              cluster_domain=params.get("cluster_domain"),
                              root_namespace=params.get("root_namespace")))
    return targets


ARGUMENT_SPEC = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "service_host": {"type": "str"},
    "route_name": {"type": "str"},
    "destination_rule": {"type": "str"},
    "weights": {"type": "dict"},
    "base": {"type": "str"},
    "canary": {"type": "str"},
    "canary_weight": {"type": "raw"},
    "remove_unnamed": {"type": "bool", "default": False},
    "services": {"type": "list", "elements": "dict"},
    "actor": {"type": "str"},
    "record": {"type": "bool", "default": True},
    "history_limit": {"type": "int", "default": 20},
    "max_retries": {"type": "int", "default": 5},
    "concurrency": {"type": "int", "default": DEFAULT_CONCURRENCY},
    **MESH_ARG_SPEC,
    **KIND_ARG_SPEC,
}
USES = (KUBERNETES, ISTIO)


def execute(ctx):
    params = ctx.params
    validate_cluster_domain(params["cluster_domain"])
    validate_name(params["root_namespace"], "root_namespace")
    weights = _weights(params)
    targets = _targets(params, ctx.default_namespace, weights)
    if not 1 <= params["history_limit"] <= 1000:
        raise CanaryInputError(f"history_limit {params['history_limit']} must be between 1 and 1000")
    if not 0 <= params["max_retries"] <= 50:
        raise CanaryInputError(f"max_retries {params['max_retries']} must be between 0 and 50")
    concurrency = validate_concurrency(params["concurrency"])
    actor = params.get("actor") or _local_user()
    options = dict(remove_unnamed=params["remove_unnamed"], record=params["record"], actor=actor,
                   history_limit=params["history_limit"], base=params.get("base"), canary=params.get("canary"))

    figures = move(ctx, targets, lambda worker, target: plan_either(worker, target, **options),
                   lambda worker, target: write(worker, target, lambda: plan_either(worker, target, **options),
                                                params["max_retries"]),
                   concurrency)

    first = targets[0]
    result = {"changed": any(t.patch for t in targets), "before": first.before, "after": first.after,
              "route": first.route_label(), "services": [t.report() for t in targets],
              "api_version": getattr(first, "api_version", None) or ctx.istio.api_version, "memory": {k: figures[k] for k in MEMORY_KEYS},
              "lockstep": {k: v for k, v in figures.items() if k not in MEMORY_KEYS}}
    notes = [f"{t.label}: {note}" for t in targets for note in t.notes]
    if notes:
        result["warnings"] = notes
    if ctx.diff_mode:
        result["diff"] = {"before": {t.label: t.before for t in targets},
                          "after": {t.label: t.after for t in targets}}
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


def _local_user():
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


if __name__ == "__main__":
    main()
