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
      - For a delegate VirtualService (no C(hosts)) it defaults to the one host its routes send to; when
        they send to several, only RV(routes) and the recorded state are reported.
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
  kind:
    description:
      - "V(HTTPRoute) reads a Gateway API HTTPRoute named O(name) - RV(weights) of the rule named O(route_name), else
        of the only rule or the one rule that matches every request; RV(routes) lists every rule; RV(backends) the
        Services its rules send to plus O(base) and O(canary), with whether each exists and its ready endpoints;
        RV(subsets) the backend Services that exist (on an HTTPRoute a version is a Service). O(service_host) and
        O(destination_rule) are refused."
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
    version_added: 0.3.0
  base:
    description:
      - The subset that serves traffic now. With O(canary), the module also returns RV(phase),
        RV(pending_steps) and RV(next_run).
    type: str
  canary:
    description:
      - The subset of the new version; see O(base).
    type: str
  goal:
    description:
      - What the next run is asked to do, for RV(next_run). V(release) - the whole canary flow
        (deploy, steps, promotion gate); V(set_ratio) - one traffic step; V(promote); V(rollback);
        V(status) - read only.
      - Deprecated - the run's planning moved into the C(canary_release) role (its C(release_run) filter);
        canary.istio 2.0.0 removes this option. Given, it still works, with a deprecation warning.
      - Not given - V(release).
    type: str
    choices: [release, set_ratio, promote, rollback, status]
  ratio:
    description:
      - The canary's share of traffic the next run would set, a whole number from 0 to 100. Not given,
        the run asks for it (see RV(next_run.ask)).
      - Validated here (booleans, fractions and text are refused) before any request.
      - Deprecated - the run's planning moved into the C(canary_release) role (its C(release_run) filter);
        canary.istio 2.0.0 removes this option. Given, it still works, with a deprecation warning.
    type: raw
  steps:
    description:
      - Shares for successive steps, whole numbers from 0 to 100 in increasing order. A resumed
        release keeps only the steps above the canary's current share.
      - Deprecated - the run's planning moved into the C(canary_release) role (its C(release_run) filter);
        canary.istio 2.0.0 removes this option. Given, it still works, with a deprecation warning.
    type: list
    elements: raw
  decision:
    description:
      - The promotion gate's answer the next run would use. Not given, the run asks for it.
      - V(auto) (only with O(analysis)) promotes once every step passed its analysis.
      - Deprecated - the run's planning moved into the C(canary_release) role (its C(release_run) filter);
        canary.istio 2.0.0 removes this option. Given, it still works, with a deprecation warning.
    type: str
  analysis:
    description:
      - The analysis after each step (progressive delivery), validated here before any request and
        returned with its defaults as RV(analysis). Keys C(checks) (as M(canary.istio.canary_analysis)'s
        O(canary.istio.canary_analysis#module:checks)), C(window), C(interval) (seconds before each
        analysis), C(analyses) (per step), C(failure_limit), C(looks_per_step), C(consecutive_error_limit),
        C(initial_delay), C(dry_run), C(inconclusive) (V(hold), V(ask) or V(rollback)), C(on_error) (V(stop) or
        V(rollback)), C(reporter), and C(min_requests), C(confidence), C(power), C(caller_failures),
        C(scrape_interval), which are passed to M(canary.istio.canary_analysis) as they are.
      - C(min_requests), C(confidence), C(power) and C(caller_failures) default to null - M(canary.istio.canary_analysis)'s
        own defaults then apply (C(confidence) 99 and C(power) 95, in percent, over all the looks of the release, and
        C(min_requests) worked out from C(power) for each check), not fixed numbers.
      - Empty or not given - no analysis.
    type: raw
  input_names:
    description:
      - How refusals name O(ratio), O(steps), O(decision), O(base) and O(canary). A role passes the names
        of its own variables, so that a message names what the user set (for example
        C(canary_release_ratio) for O(ratio)).
      - Deprecated - the run's planning moved into the C(canary_release) role (its C(release_run) filter);
        canary.istio 2.0.0 removes this option. Given, it still works, with a deprecation warning.
    type: dict
seealso:
  - module: canary.istio.traffic_split
"""

EXAMPLES = r"""
- name: Read a release on a Gateway API HTTPRoute
  canary.istio.canary_info:
    kind: HTTPRoute
    name: reviews
    namespace: bookinfo
    base: reviews-v1
    canary: reviews-v2
  register: release

- name: Where does the reviews canary stand?
  canary.istio.canary_info:
    name: reviews
    namespace: bookinfo
  register: canary

- name: Show the weights
  ansible.builtin.debug:
    msg: "v1 {{ canary.weights.v1 | default(0) }}% / v2 {{ canary.weights.v2 | default(0) }}%"

- name: What would a run with steps 30 and 60 do?
  canary.istio.canary_info:
    name: reviews
    namespace: bookinfo
    base: v1
    canary: v2
    steps: [30, 60]
  register: plan

- name: Show the phase and the plan
  ansible.builtin.debug:
    msg: "{{ plan.phase }}: {{ plan.next_run.summary }}"
"""

RETURN = r"""
exists:
  description: Whether the VirtualService exists.
  returned: always
  type: bool
weights:
  description:
    - Share of traffic (percent) per destination of the route named by O(route_name), else of the host's
      default route, else of the first route that matches every request (empty only when there is no such
      route), as Istio routes it. Whole numbers when exact, else two decimals.
    - A destination is its resolved host plus its subset. Keys name the subset; the host itself for a
      destination without subset; C(host:subset) for every destination with a subset when the route sends to
      several hosts. Entries naming one destination add up, as Istio builds them.
  returned: always
  type: dict
  sample: {v1: 70, v2: 30}
routes:
  description:
    - The http routes in order, with name, match and weights (keyed as RV(weights)).
    - A route whose weights Istio would refuse has C(weights) null and C(problem) saying why.
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
backends:
  description:
    - With O(kind=HTTPRoute), each backend Service of the route's namespace that a rule sends to, and O(base) and
      O(canary) - whether it exists, how many ready endpoints it has, whether a rule gives it a share, its selector.
  returned: with O(kind=HTTPRoute)
  type: list
  elements: dict
  sample: [{name: reviews-v2, exists: true, ready_endpoints: 1, routed: true, selector: {app: reviews, version: v2}}]
  version_added: 0.3.0
kind:
  description: V(HTTPRoute) when the object read is an HTTPRoute.
  returned: with O(kind=HTTPRoute)
  type: str
  version_added: 0.3.0
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
phase:
  description:
    - Where the release of O(canary) over O(base) stands. V(missing) - no VirtualService;
      V(promoted) - the route sends to the canary alone; V(conflict) - the route sends traffic to a
      third version; V(in_progress) - the canary has a share, or a step of this pair is recorded;
      V(rolled_back) - the last recorded step took the canary's share back and its subset is gone;
      V(fresh) - none of these. The first that holds wins, in this order.
  returned: when O(base) and O(canary) are given
  type: str
  sample: in_progress
pending_steps:
  description:
    - The shares the next run would move to the canary, in order (empty when it asks for the share,
      or when a resumed canary keeps its share).
  returned: when O(base) and O(canary) are given
  type: list
  elements: int
  sample: [30, 60]
analysis:
  description: The analysis policy with its defaults filled in, or V(null) when there is none.
  returned: when O(base) and O(canary) are given
  type: dict
  sample: {checks: null, window: 1m, interval: 60, analyses: 1, failure_limit: 1, looks_per_step: 1,
           consecutive_error_limit: 4, initial_delay: 0, dry_run: false, scrape_interval: null, inconclusive: hold,
           on_error: rollback, min_requests: null, confidence: null, power: null, caller_failures: null,
           reporter: destination}
next_run:
  description: What the next run with O(goal) and these inputs would do.
  returned: when O(base) and O(canary) are given
  type: dict
  contains:
    action:
      description:
        - V(refuse) (see RV(next_run.problem)), V(release), V(finish) (the canary is promoted, only
          the clean-up may be left), V(nothing), V(step), V(promote), V(rollback) or V(show).
      type: str
    ask:
      description: The gates that need an answer nobody gave, V(ratio) and/or V(decision).
      type: list
      elements: str
    problem:
      description: Why the run cannot start from this phase; null when it can.
      type: str
    summary:
      description: The plan in one sentence.
      type: str
  sample:
    action: release
    ask: [decision]
    problem: null
    summary: resume v2 at 30%, move 60% of the traffic to it, then ask whether to promote, roll back or hold
api_version:
  description: The C(networking.istio.io) version used, or the C(gateway.networking.k8s.io) one with O(kind=HTTPRoute).
  returned: always
  type: str
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
"""

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES
from ansible_collections.canary.istio.plugins.module_utils._httproute import KIND_ARG_SPEC, info_task
from ansible_collections.canary.istio.plugins.module_utils._logic import release
from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import RouteDestinations
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import (
    MESH_ARG_SPEC,
    Hosts,
    service_host,
    validate_cluster_domain,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.info import routes_report, subsets_report
from ansible_collections.canary.istio.plugins.module_utils._logic.matches import is_catch_all
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    find_http_route,
    iter_destinations,
    route_label,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.state import read_canary_state
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, read_destination_rule

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "service_host": {"type": "str"},
    "destination_rule": {"type": "str"},
    "route_name": {"type": "str"},
    **MESH_ARG_SPEC,
    "base": {"type": "str"},
    "canary": {"type": "str"},
    "goal": {"type": "str", "choices": list(release.GOALS)},
    "ratio": {"type": "raw"},
    "steps": {"type": "list", "elements": "raw"},
    "decision": {"type": "str"},
    "analysis": {"type": "raw"},
    "input_names": {"type": "dict"},
    "kind": KIND_ARG_SPEC["kind"],
}
USES = (KUBERNETES, ISTIO)
# The planner's options: canary_info only reads state now; the planning lives in the role's release_run filter.
PLANNER_OPTIONS = ("goal", "ratio", "steps", "decision", "input_names")
PLANNER_REMOVED_IN = "2.0.0"


def execute(ctx):
    params = ctx.params
    given = [name for name in PLANNER_OPTIONS if params.get(name) is not None]
    if given:
        ctx.deprecate(f"canary_info options {', '.join(given)} are deprecated: canary_info only reads the state now, "
                      "and the canary_release role plans the run itself (its release_run filter). They still work; "
                      f"canary.istio {PLANNER_REMOVED_IN} removes them", PLANNER_REMOVED_IN)
    inputs = None
    if params.get("base") is not None or params.get("canary") is not None:
        # Refused before any request.
        inputs = release.validate_inputs(params.get("base"), params.get("canary"), params.get("ratio"),
                                         params.get("steps"), params.get("decision"),
                                         release.InputNames.from_mapping(params.get("input_names")),
                                         params.get("analysis"))
    result = _read(ctx)
    if inputs is not None:
        observed = release.Observed(
            exists=result["exists"], weights=result["weights"], subsets=[s["name"] for s in result["subsets"]],
            recorded=result["state"], history=result["history"],
            where=f"{params.get('namespace') or ctx.default_namespace}/{params['name']}",
            destination_rule=result["destination_rule"])
        result.update(release.answer(params.get("goal") or "release", observed, inputs))
    return result


def _read(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    validate_cluster_domain(params["cluster_domain"])
    validate_name(params["root_namespace"], "root_namespace")
    if params["kind"] == "HTTPRoute":
        return info_task(ctx, name, namespace)
    vs = ctx.istio.get("VirtualService", namespace, name)
    result = {"changed": False, "exists": vs is not None, "weights": {}, "routes": [], "subsets": [],
              "destination_rule": "", "destination_rule_namespace": "", "state": {"base": None, "canary": None, "weight": None, "route": None},
              "history": [], "api_version": ctx.istio.api_version}
    if vs is None:
        return result
    spec = vs.get("spec") or {}
    hosts = Hosts(namespace, params["cluster_domain"])
    result["routes"] = routes_report(spec, hosts)
    recorded = read_canary_state(vs)
    result["history"] = recorded.pop("history")
    result["state"] = recorded
    host = _reported_host(vs, params.get("service_host"))
    index = _reported_route(spec, host, params.get("route_name"), hosts)
    if index is not None:
        chosen = result["routes"][index]
        if chosen["weights"] is None:
            raise CanaryInputError(f"http route {route_label(index, spec['http'][index])} cannot be read: "
                                   f"{chosen['problem']}")
        result["weights"] = chosen["weights"]
        if not params.get("service_host"):
            # The service whose subsets matter is the one the route sends to (a destination is its host
            # plus its subset), which need not be the VirtualService's own host.
            view = RouteDestinations(spec["http"][index], hosts)
            if len(view.service_hosts) == 1:
                host = view.spelling[view.service_hosts[0]]
    if host is None:
        # A delegate VirtualService whose routes name several services: its routes are all there is to read.
        return result
    target = Target(name, namespace, host, None, params.get("destination_rule"),
                    cluster_domain=params["cluster_domain"], root_namespace=params["root_namespace"])
    rule = read_destination_rule(ctx, target, host)
    if rule is not None:
        result["destination_rule"] = rule["metadata"]["name"]
        result["destination_rule_namespace"] = rule["metadata"].get("namespace") or ""
        # The Service and its Deployments live in the service's namespace, not necessarily the VirtualService's.
        service_namespace = target.hosts.service_namespace(host) or namespace
        short = target.hosts.service_name(host) or host.split(".")[0]
        selector = None
        try:
            service = ctx.client.get(f"/api/v1/namespaces/{service_namespace}/services/{short}")
            selector = (service.get("spec") or {}).get("selector")
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise
        selector = selector or {"app": short}
        deployments = ctx.client.get(f"/apis/apps/v1/namespaces/{service_namespace}/deployments").get("items") or []
        result["subsets"] = subsets_report(spec, host, target.rules, selector, deployments, target.hosts)
    return result


def _reported_route(spec, host, route_name, hosts):
    """Index of the route whose weights are reported: ``route_name``'s; else the host's default route;
    else the first route that matches every request (the one Istio gives unmatched requests, whatever
    host it sends to); None when there is none."""
    if route_name or host is not None:
        try:
            return find_http_route(spec, host, route_name, hosts=hosts)
        except CanaryInputError:
            if route_name:
                raise
    catch_all = [index for index, route in enumerate(spec.get("http") or []) if is_catch_all(route)]
    return catch_all[0] if catch_all else None


def _reported_host(vs, given):
    """The service host to report on; for a delegate VirtualService (no hosts) without ``service_host``,
    the one host its routes send to, or None when they send to several."""
    if given or (vs.get("spec") or {}).get("hosts"):
        return service_host(vs, given)
    routed = {target["host"] for where, target in iter_destinations(vs["spec"])
              if not where.endswith(("mirror", "mirrors")) and isinstance(target.get("host"), str)}
    return routed.pop() if len(routed) == 1 else None


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
