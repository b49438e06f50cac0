#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: resilience
short_description: Set or remove timeouts, retries, fault injection, circuit breaking and local rate limiting of one service
version_added: 0.3.0
description:
  - Sets, or with O(state=absent) removes, Istio's resilience policies of one service, changing only the fields named.
    Weights, other routes and their order, match rules, the load balancer, TLS settings, other subsets, labels and
    annotations stay as they are.
  - O(timeout), O(retries) and O(fault) go on one http route of the VirtualService O(name), chosen as
    M(canary.istio.traffic_split) chooses it - the route named O(route_name), else the single route with no C(match)
    that sends to the service host.
  - O(fault) with C(match) goes into a tester route of its own, O(fault_route_name), placed just above the chosen
    route with the same destinations, so that only the matching requests (for example one user's) get the fault.
  - O(circuit_breaker) goes into C(trafficPolicy) of the DestinationRule O(destination_rule), or of its subset
    O(subset) only (C(connectionPool) and C(outlierDetection)).
  - O(rate_limit) is the EnvoyFilter of Istio's local rate limit task, in the service's namespace, inserting Envoy's
    C(envoy.filters.http.local_ratelimit) on the inbound sidecar listener of the workloads
    O(rate_limit.workload_selector) selects. Requests over the limit are answered 429.
    Local rate limiting is sidecar-only - Istio does not apply EnvoyFilters to waypoint proxies, so in ambient mode
    the limit has no effect on a service served through a waypoint.
  - Option names are Istio's field names in snake_case (C(per_try_timeout) is C(perTryTimeout)). Where an option
    is not set, Istio's default applies; each option states it.
  - Setting merges - the fields given replace those stored, the fields not given stay (setting
    O(retries.attempts) keeps a stored C(perTryTimeout)).
  - O(state=absent) removes exactly the fields named by the options given, whatever their values; an empty mapping
    names a whole group (for example an empty O(circuit_breaker.outlier_detection)), and a group emptied by the removal goes too. Naming
    O(retries.attempts) removes the whole retry policy (Istio refuses retries without attempts). O(fault) with
    C(match) removes the tester route. O(rate_limit) deletes the EnvoyFilter this module created. The same
    options therefore set a profile with V(present) and take it away with V(absent).
  - Every value is checked before anything is read or written, by Istio's rules (durations of at least 1ms in whole
    milliseconds, percentages 0 or 0.0001 to 100, attempts 0 or more, the retry policies Envoy accepts); a missing
    object or subset is refused after reading, before the first write. The message names the value and the rule.
  - Each object gets one guarded write, a JSON Patch whose C(test) operations pin what was read; when someone
    else wrote in between, the object is read and the change planned again, up to O(max_retries) times.
  - With O(kind=HTTPRoute), O(timeout) is the rule's C(timeouts.request) and O(retries.per_try_timeout) its
    C(timeouts.backendRequest) (Gateway API durations, GEP-2257). Gateway API's standard channel has no retry
    attempts, fault injection or circuit breaking, so the other options are refused with O(kind=HTTPRoute).
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
      - Name of the VirtualService (of the HTTPRoute with O(kind=HTTPRoute)) whose route gets O(timeout),
        O(retries) and O(fault). Also the default of O(destination_rule), of the C(app) label O(rate_limit) selects
        and of the EnvoyFilter's name.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the objects. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  kind:
    description:
      - V(VirtualService) or V(HTTPRoute) (Gateway API; O(timeout) and O(retries.per_try_timeout) only).
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
  state:
    description:
      - V(present) sets the options given; V(absent) removes the fields they name.
    type: str
    choices: [present, absent]
    default: present
  route_name:
    description:
      - Name of the http route (the HTTPRoute rule) to change. Without it, the single http route with no C(match)
        that sends to O(service_host) (on an HTTPRoute, the only rule or the one that matches every request).
    type: str
  service_host:
    description:
      - The service host whose default route is changed, when O(route_name) is not given. Defaults to the
        VirtualService's own host.
    type: str
  destination_rule:
    description:
      - Name of the DestinationRule that gets O(circuit_breaker), in O(namespace). Defaults to O(name).
    type: str
  subset:
    description:
      - Put O(circuit_breaker) in this subset's C(trafficPolicy) instead of the rule's, for example only for the
        canary. The subset must exist in the DestinationRule.
    type: str
  timeout:
    description:
      - The route's C(timeout), a duration such as V(500ms) or V(2s).
      - Istio's default - no route timeout.
    type: str
  retries:
    description:
      - The route's C(retries) (Istio's C(HTTPRetry)).
      - Istio's default when the route sets none - 2 attempts, on
        C(connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes), 25ms base backoff.
    type: dict
    suboptions:
      attempts:
        description: Number of retries, 0 or more (0 disables retries and goes alone).
        type: raw
      per_try_timeout:
        description: Timeout per attempt (C(perTryTimeout)). Istio's default - the route timeout.
        type: raw
      retry_on:
        description:
          - Conditions to retry on (C(retryOn)), comma separated or a list - Envoy's retry policies (V(5xx),
            V(gateway-error), V(reset), V(connect-failure), V(retriable-4xx), V(refused-stream),
            V(retriable-status-codes), ...) and HTTP status codes such as V(503).
        type: raw
      retry_remote_localities:
        description: Retry in other localities (C(retryRemoteLocalities)). Istio's default - false.
        type: raw
      retry_ignore_previous_hosts:
        description: Retry on other hosts than the one that failed (C(retryIgnorePreviousHosts)). Istio's default - true.
        type: raw
      backoff:
        description: Base interval between retries (C(backoff)). Istio's default - 25ms.
        type: raw
  fault:
    description:
      - The route's C(fault) (Istio's C(HTTPFaultInjection)), C(delay) and/or C(abort).
      - Istio's default - no fault. Without a percentage Istio injects nothing, so each needs one.
    type: dict
    suboptions:
      delay:
        description: "C(fixed_delay) (a duration) and C(percentage) (0, or 0.0001 to 100) of requests delayed."
        type: dict
      abort:
        description: "C(http_status) (200 to 599) or C(grpc_status), and C(percentage) of requests aborted."
        type: dict
      match:
        description:
          - "Istio C(HTTPMatchRequest) list, for example C([{headers: {end-user: {exact: jason}}}]). The fault then
            goes into the tester route O(fault_route_name) for matching requests only."
        type: list
        elements: dict
  fault_route_name:
    description:
      - Name of the tester route that carries O(fault) with C(match). Defaults to C(<name>-fault-testers).
    type: str
  circuit_breaker:
    description:
      - C(connectionPool) and C(outlierDetection) of the DestinationRule's C(trafficPolicy) (of O(subset)'s with O(subset)).
    type: dict
    suboptions:
      connection_pool:
        description:
          - "C(tcp) - C(max_connections) (Istio's default 2^32-1), C(connect_timeout) (10s), C(max_connection_duration),
            C(idle_timeout)."
          - "C(http) - C(http1_max_pending_requests) (2^32-1), C(http2_max_requests) (2^32-1),
            C(max_requests_per_connection) (0, unlimited), C(max_retries) (2^32-1), C(idle_timeout) (1h),
            C(max_concurrent_streams), C(h2_upgrade_policy), C(use_client_protocol)."
          - Requests over the limits are answered 503 with response flag C(UO).
        type: dict
      outlier_detection:
        description:
          - "C(consecutive_5xx_errors) (Istio's default 5), C(consecutive_gateway_errors) (0, off),
            C(consecutive_local_origin_failures), C(split_external_local_origin_errors), C(interval) (10s),
            C(base_ejection_time) (30s), C(max_ejection_percent) (10), C(min_health_percent) (0)."
        type: dict
  rate_limit:
    description:
      - Local rate limit of the selected workloads - Envoy's token bucket. Sidecar-only (see the description).
      - Istio's default - no limit.
    type: dict
    suboptions:
      max_tokens:
        description: Size of the bucket, 1 or more.
        type: raw
      tokens_per_fill:
        description: Tokens added each fill interval. Envoy's default 1.
        type: raw
      fill_interval:
        description: Duration between fills, at least 50ms (Envoy).
        type: raw
      workload_selector:
        description: "Labels of the workloads limited (the EnvoyFilter's C(workloadSelector.labels)). Defaults to C({app: <name>})."
        type: dict
  envoy_filter:
    description:
      - Name of the EnvoyFilter that holds O(rate_limit). Defaults to C(<name>-local-ratelimit).
    type: str
  max_retries:
    description:
      - How many times to re-read and retry when another writer changed an object in between.
    type: int
    default: 5
seealso:
  - module: canary.istio.traffic_split
  - module: canary.istio.destination_rule
  - name: Istio traffic management tasks (request timeouts, fault injection, circuit breaking)
    description: The tasks whose outcomes the collection's lab reproduces.
    link: https://istio.io/latest/docs/tasks/traffic-management/
  - name: Istio local rate limiting
    description: The EnvoyFilter this module writes.
    link: https://istio.io/latest/docs/tasks/policy-enforcement/rate-limit/
"""

EXAMPLES = r"""
- name: Istio's Request Timeouts task - a 0.5 s timeout on the reviews route
  canary.istio.resilience:
    name: reviews
    namespace: bookinfo
    timeout: 0.5s

- name: Retry twice on gateway errors, 2 s per try
  canary.istio.resilience:
    name: ratings
    namespace: bookinfo
    retries:
      attempts: 2
      per_try_timeout: 2s
      retry_on: gateway-error,connect-failure,refused-stream

- name: Istio's Fault Injection task - delay ratings by 7 s for user jason only
  canary.istio.resilience:
    name: ratings
    namespace: bookinfo
    fault:
      delay: {fixed_delay: 7s, percentage: 100}
      match:
        - headers: {end-user: {exact: jason}}

- name: Istio's Circuit Breaking task, on the canary subset only
  canary.istio.resilience:
    name: reviews
    namespace: bookinfo
    subset: v2
    circuit_breaker:
      connection_pool:
        tcp: {max_connections: 1}
        http: {http1_max_pending_requests: 1, max_requests_per_connection: 1}
      outlier_detection:
        consecutive_5xx_errors: 1
        interval: 1s
        base_ejection_time: 3m
        max_ejection_percent: 100

- name: Local rate limit of productpage - 4 requests a minute (sidecars only)
  canary.istio.resilience:
    name: productpage
    namespace: bookinfo
    rate_limit: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}

- name: Remove outlier detection of the canary subset and the retry policy, nothing else
  canary.istio.resilience:
    name: reviews
    namespace: bookinfo
    subset: v2
    state: absent
    circuit_breaker:
      outlier_detection: {}
    retries: {}

- name: Request timeout of 10 s on an HTTPRoute rule
  canary.istio.resilience:
    kind: HTTPRoute
    name: reviews
    namespace: bookinfo
    timeout: 10s
"""

RETURN = r"""
route:
  description: Name of the route changed, or C(http[N]) (C(rules[N]) on an HTTPRoute) for an unnamed one; null when no route option was given.
  returned: always
  type: str
  sample: http[0]
route_policy:
  description: The chosen route's C(timeout), C(retries) and C(fault) afterwards (on an HTTPRoute, the rule's C(timeouts)).
  returned: when a route option was given
  type: dict
  sample: {timeout: 0.5s}
fault_route:
  description: The tester route that carries the fault afterwards (null once removed).
  returned: when O(fault) has C(match)
  type: dict
traffic_policy:
  description: The C(trafficPolicy) of the DestinationRule (or of O(subset)) afterwards.
  returned: when O(circuit_breaker) was given
  type: dict
  sample: {connectionPool: {tcp: {maxConnections: 1}}}
token_bucket:
  description: The EnvoyFilter's token bucket afterwards (null once removed).
  returned: when O(rate_limit) was given
  type: dict
  sample: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}
objects:
  description: The objects the task read, and whether each changed.
  returned: always
  type: list
  elements: dict
  sample: [{kind: DestinationRule, namespace: bookinfo, name: reviews, changed: true}]
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 2
diff:
  description: The spec of each object changed, before and after, in diff mode.
  returned: when diff mode is on
  type: dict
"""

from ansible_collections.canary.istio.plugins.module_utils import _resilience as objects
from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES
from ansible_collections.canary.istio.plugins.module_utils._logic import resilience as logic
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import (
    MESH_ARG_SPEC,
    Hosts,
    service_host,
    validate_cluster_domain,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import find_rule, rule_label
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import build_http_list_patch
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import find_http_route, refuse_unreachable
from ansible_collections.canary.istio.plugins.module_utils._module import run

RAW = {"type": "raw"}
POLICIES = ("timeout", "retries", "fault", "circuit_breaker", "rate_limit")
ROUTE_OPTIONS = ("timeout", "retries", "fault")

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "kind": {"type": "str", "choices": ["VirtualService", "HTTPRoute"], "default": "VirtualService"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "route_name": {"type": "str"},
    "service_host": {"type": "str"},
    "destination_rule": {"type": "str"},
    "subset": {"type": "str"},
    "timeout": {"type": "str"},
    "retries": {"type": "dict", "options": {key: RAW for key in (
        "attempts", "per_try_timeout", "retry_on", "retry_remote_localities", "retry_ignore_previous_hosts",
        "backoff")}},
    "fault": {"type": "dict", "options": {"delay": {"type": "dict"}, "abort": {"type": "dict"},
                                          "match": {"type": "list", "elements": "dict"}}},
    "fault_route_name": {"type": "str"},
    "circuit_breaker": {"type": "dict", "options": {"connection_pool": {"type": "dict"},
                                                    "outlier_detection": {"type": "dict"}}},
    # Envoy's token bucket counts requests; "tokens" here are no secret.
    "rate_limit": {"type": "dict", "options": {"max_tokens": {"type": "raw", "no_log": False},
                                               "tokens_per_fill": {"type": "raw", "no_log": False},
                                               "fill_interval": RAW, "workload_selector": {"type": "dict"}}},
    "envoy_filter": {"type": "str"},
    "max_retries": {"type": "int", "default": 5},
    **MESH_ARG_SPEC,
}
USES = (KUBERNETES, ISTIO)


def _given(value):
    """The option as the user gave it: Ansible fills the suboptions not given with None."""
    if isinstance(value, dict):
        return {key: _given(child) for key, child in value.items() if child is not None}
    return value


class _Plan:
    """What the options ask for, validated before any read: fields to set, or paths to remove."""

    def __init__(self, params, name):
        istio = params["kind"] != "HTTPRoute"  # an HTTPRoute's options are checked by Gateway API's rules
        self.present = params["state"] == "present"
        self.options = {key: params.get(key) for key in POLICIES if params.get(key) is not None}
        if not self.options:
            raise CanaryInputError(f"no policy named; give at least one of {', '.join(POLICIES)}")
        fault = _given(params.get("fault") or {})
        self.tester = params.get("fault_route_name") or f"{name}-fault-testers"
        self.with_tester = bool(fault.get("match"))
        if self.present:
            self.match = logic.fault_match(fault)
            fault_fields = logic.route_fields(fault={k: v for k, v in fault.items() if k != "match"}
                                              ).get("fault") if "fault" in self.options and istio else None
            self.fault_fields = fault_fields
            route_fault = None if self.with_tester else fault_fields
            self.route_fields = logic.route_fields(timeout=params.get("timeout"),
                                                   retries=_given(params.get("retries"))) if istio else {}
            if route_fault is not None:
                self.route_fields["fault"] = route_fault
            self.policy = (logic.traffic_policy_fields(_given(params["circuit_breaker"]))
                           if "circuit_breaker" in self.options else None)
            rate_limit = _given(params.get("rate_limit") or {})
            self.selector = rate_limit.pop("workload_selector", None) or {"app": name}
            self.bucket = logic.token_bucket(rate_limit) if "rate_limit" in self.options else None
        else:
            names = logic.removal_names({key: _given(value) for key, value in self.options.items()})
            self.paths = logic.removal_paths(names)
            if self.with_tester:
                self.paths["route"] = [path for path in self.paths["route"] if path[0] != "fault"]

    @property
    def touches_route(self):
        return any(key in self.options for key in ROUTE_OPTIONS)


def _route_change(ctx, params, plan, namespace, report):
    hosts = Hosts(namespace, params["cluster_domain"])
    route_name = params.get("route_name")

    def plan_patch(vs):
        spec = vs.get("spec") or {}
        host = params.get("service_host") or (service_host(vs, None) if route_name is None else None)
        index = find_http_route(spec, host, route_name, hosts=hosts)
        if route_name is not None:
            refuse_unreachable(spec["http"], index)
        report["route"] = route_label(index, spec["http"][index])
        if not plan.with_tester:
            if plan.present:
                return logic.build_route_policy_patch(vs, index, plan.route_fields)
            return logic.build_route_policy_removal(vs, index, plan.paths["route"])
        if plan.present:
            new_http = logic.plan_fault_tester_route(spec, index, plan.tester, plan.match, plan.fault_fields)
        else:
            new_http = logic.remove_fault_tester_route(spec, plan.tester)
        moved = find_http_route({**spec, "http": new_http}, host, route_name, hosts=hosts)
        report["route"] = route_label(moved, new_http[moved])  # where the route is once the tester route is in
        if plan.present and plan.route_fields:
            new_http[moved] = logic.route_with_fields(new_http[moved], plan.route_fields)
        elif not plan.present and plan.paths["route"]:
            new_http[moved] = logic.route_without(new_http[moved], plan.paths["route"])
        return build_http_list_patch(vs, spec.get("http"), new_http)

    return objects.virtual_service(ctx, namespace, params["name"], plan_patch)


def _refuse_for_http_route(params):
    refused = [key for key in ("fault", "circuit_breaker", "rate_limit", "subset", "destination_rule",
                               "service_host", "fault_route_name", "envoy_filter") if params.get(key) is not None]
    if refused:
        raise CanaryInputError(
            f"{', '.join(refused)} cannot be used with kind HTTPRoute: Gateway API's standard channel has only "
            "request and backend-request timeouts (timeout, retries.per_try_timeout); use a VirtualService and "
            "DestinationRule for the rest")


def _rule_change(ctx, params, plan, namespace, report):
    if plan.present:
        fields = logic.http_route_fields(timeout=params.get("timeout"), retries=_given(params.get("retries")))
    else:
        names = logic.removal_names({key: _given(params.get(key)) for key in ("timeout", "retries")})

    def plan_patch(route):
        index = find_rule(route, params.get("route_name"))
        report["route"] = rule_label(index, route["spec"]["rules"][index])
        if plan.present:
            return logic.build_http_route_rule_patch(route, index, fields)
        return logic.build_http_route_rule_removal(route, index, sorted(set(names)))

    return objects.http_route(ctx, namespace, params["name"], plan_patch)


def _policy_change(ctx, params, plan, namespace):
    subset = params.get("subset")

    def plan_patch(rule):
        if plan.present:
            return logic.build_traffic_policy_patch(rule, subset, plan.policy)
        return logic.build_traffic_policy_removal(rule, subset, plan.paths["traffic_policy"])

    return objects.destination_rule(ctx, namespace, params.get("destination_rule") or params["name"], plan_patch)


def route_label(index, route):
    """How results name an http route: its name, else ``http[N]`` (as traffic_split's results do)."""
    return route.get("name") or f"http[{index}]"


def _holder(rule, subset):
    spec = (rule or {}).get("spec") or {}
    if subset is None:
        return spec
    return next((s for s in spec.get("subsets") or [] if s.get("name") == subset), {})


def _bucket(envoy_filter):
    try:
        return envoy_filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["value"]["token_bucket"]
    except (KeyError, IndexError, TypeError):
        return None


def execute(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    validate_cluster_domain(params["cluster_domain"])
    validate_name(params["root_namespace"], "root_namespace")
    if not 0 <= params["max_retries"] <= 50:
        raise CanaryInputError(f"max_retries {params['max_retries']} must be between 0 and 50")
    if params["kind"] == "HTTPRoute":
        _refuse_for_http_route(params)
    plan = _Plan(params, name)
    if params.get("subset") is not None and "circuit_breaker" not in plan.options:
        raise CanaryInputError(f"subset {params['subset']!r} applies to circuit_breaker only; give circuit_breaker "
                               "or leave subset out")
    report = {"route": None}
    changes = []
    if plan.touches_route:
        route_change = (_rule_change if params["kind"] == "HTTPRoute" else _route_change)
        changes.append(route_change(ctx, params, plan, namespace, report))
    if "circuit_breaker" in plan.options:
        changes.append(_policy_change(ctx, params, plan, namespace))
    envoy_filter_name = validate_name(params.get("envoy_filter") or f"{name}-local-ratelimit", "envoy_filter")
    limiter = None
    if "rate_limit" in plan.options:
        limiter = objects.envoy_filter(ctx, namespace, envoy_filter_name,
                                       lambda current: logic.build_token_bucket_patch(current, plan.bucket))

    # Every object is read and planned before the first write: a refusal leaves the cluster as it was.
    for change in changes:
        change.prepare(ctx)
    filter_before = filter_after = None
    create = delete = False
    if limiter is not None:
        filter_before = filter_after = objects.read_envoy_filter(ctx, namespace, envoy_filter_name)
        if plan.present and filter_before is None:
            create = True
        elif plan.present:
            limiter.prepare(ctx)
        else:
            delete = filter_before is not None

    for change in changes:
        change.commit(ctx, params["max_retries"])
    if create:
        body = logic.local_rate_limit_envoy_filter(envoy_filter_name, namespace, plan.selector, plan.bucket)
        filter_after = objects.create_envoy_filter(ctx, body)
    elif delete:
        objects.delete_envoy_filter(ctx, filter_before)
        filter_after = None
    elif limiter is not None and plan.present:
        limiter.commit(ctx, params["max_retries"])
        filter_after = limiter.after

    listed = [(c.kind, c.namespace, c.name, bool(c.patch), c.before, c.after) for c in changes]
    if limiter is not None:
        listed.append(("EnvoyFilter", namespace, envoy_filter_name, create or delete or bool(limiter.patch),
                       filter_before, filter_after))
    result = {"changed": any(entry[3] for entry in listed), "route": report["route"],
              "objects": [{"kind": k, "namespace": ns, "name": n, "changed": c} for k, ns, n, c, _b, _a in listed]}
    for change in changes:
        after = change.after
        if change.kind == "VirtualService":
            http = after["spec"]["http"]
            chosen = next((r for i, r in enumerate(http) if route_label(i, r) == report["route"]), {})
            result["route_policy"] = {k: chosen[k] for k in ROUTE_OPTIONS if k in chosen}
            if plan.with_tester:
                result["fault_route"] = next((r for r in http if r.get("name") == plan.tester), None)
        elif change.kind == "HTTPRoute":
            rules = after["spec"]["rules"]
            chosen = next((r for i, r in enumerate(rules) if rule_label(i, r) == report["route"]), {})
            result["route_policy"] = {"timeouts": chosen.get("timeouts") or {}}
        else:
            result["traffic_policy"] = _holder(after, params.get("subset")).get("trafficPolicy") or {}
    if limiter is not None:
        result["token_bucket"] = _bucket(filter_after)
    if ctx.diff_mode:
        result["diff"] = {
            "before": {f"{k} {ns}/{n}": (b or {}).get("spec") for k, ns, n, c, b, _a in listed if c},
            "after": {f"{k} {ns}/{n}": (a or {}).get("spec") for k, ns, n, c, _b, a in listed if c}}
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
