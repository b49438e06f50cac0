# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Moving traffic on a Gateway API HTTPRoute: read the route, check the backend Services it will send
more traffic to, write one guarded JSON Patch, record the step, put it back when a lockstep move fails.

The pure part (which rule, new backendRefs, the patch) is ``_logic.httproutes``; this is the I/O around
it, over the same :class:`Context` (connection, check mode, read cache) as VirtualServices.

Requests for one change: GET of the HTTPRoute; for each backend Service whose share of the rule rises
(on a canary step, the canary; on a rollback, the base): GET of the Service and GET of its Endpoints;
one PATCH - four requests for a step, one GET when the route already holds the weights asked.

Make-before-break: a backend Service that would receive more traffic must exist, expose the port the
backendRef names, and - unless the task says otherwise - have ready endpoints. The Endpoints object
(core/v1) is read because every Kubernetes version serves it and the endpoints controller keeps it
beside the EndpointSlices: ``subsets[].addresses`` are the ready ones, ``notReadyAddresses`` are not.
A Service losing traffic is never checked: taking traffic away from a broken canary must always work.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import (
    build_rule_patch,
    build_rules_patch,
    find_rule,
    header_matches,
    header_rule_port,
    plan_header_rule,
    plan_rule_backends,
    remove_header_rule,
    rule_label,
    rule_shares,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.info import labels_match
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import build_annotation_ops
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import strip_server_fields
from ansible_collections.canary.istio.plugins.module_utils._logic.state import (
    HISTORY_ANNOTATION,
    STATE_ANNOTATION,
    read_canary_state,
)
from ansible_collections.canary.istio.plugins.module_utils._traffic import (
    _forget_managed_fields,
    json_patch_once,
    put_back_failed,
    read_optional,
    record_step_ops,
    write,
)
from ansible_collections.canary.istio.plugins.module_utils._traffic import plan as plan_virtual_service

GROUP = "gateway.networking.k8s.io"
# HTTPRoute is GA at v1 (Gateway API 1.0); v1beta1 is still served by the standard channel's CRDs.
VERSIONS = ("v1", "v1beta1")
RESOURCE = "httproutes"
FIELD_MANAGER = "canary.istio"
KIND = "HTTPRoute"


# Options the modules that work on both kinds add (documented in each module).
KIND_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kind": {"type": "str", "choices": ["VirtualService", KIND], "default": "VirtualService"},
    "require_ready_endpoints": {"type": "bool", "default": True},
}
# Options that name Istio objects, which an HTTPRoute does not use.
ISTIO_ONLY = ("service_host", "destination_rule")


def refuse_istio_options(given: dict[str, Any], where: str = "", names: tuple[str, ...] = ISTIO_ONLY) -> None:
    """Refuses options that mean nothing on an HTTPRoute (a route names its backend Services itself)."""
    used = [name for name in names if given.get(name) not in (None, "")]
    if used:
        raise CanaryInputError(f"{where}{', '.join(used)} {'is' if len(used) == 1 else 'are'} for VirtualServices; "
                               "an HTTPRoute names its backend Services in backendRefs. Leave "
                               f"{'it' if len(used) == 1 else 'them'} out with kind HTTPRoute")


def item_kind(item: dict[str, Any], params: dict[str, Any], where: str) -> str:
    """The kind of one ``services:`` item (its own ``kind``, else the task's)."""
    kind = item.get("kind") or params.get("kind") or "VirtualService"
    if kind not in KIND_ARG_SPEC["kind"]["choices"]:
        raise CanaryInputError(f"{where}.kind {kind!r} is not one of {KIND_ARG_SPEC['kind']['choices']}")
    return kind


def route_target(item: dict[str, Any], params: dict[str, Any], name: str, namespace: str,
                 weights: dict[str, int], where: str) -> RouteTarget:
    """The target of a ``services:`` item (or of the task's ``name``) of kind HTTPRoute."""
    refuse_istio_options(item, f"{where}: ")
    refuse_istio_options(params)
    return RouteTarget(name, namespace, route_name=item.get("route_name") or params.get("route_name"),
                       weights=weights, require_ready_endpoints=params.get("require_ready_endpoints", True))


class GatewayApi:
    """HTTPRoutes at the best version the cluster serves: v1 first, v1beta1 only after the server says
    it does not serve v1 (no request is spent on discovery in the common case). One per task, shared by
    the workers (each passes its own client)."""

    def __init__(self) -> None:
        self.version = VERSIONS[0]

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{self.version}"

    def path(self, namespace: str | None, name: str | None, version: str | None = None) -> str:
        """An HTTPRoute's path, or its collection's (all namespaces when ``namespace`` is None)."""
        scope = f"namespaces/{namespace}/" if namespace else ""
        return f"/apis/{GROUP}/{version or self.version}/{scope}{RESOURCE}" + (f"/{name}" if name else "")

    def call(self, client: Any, method: str, namespace: str | None, name: str | None, **kwargs: Any) -> Any:
        for version in VERSIONS[VERSIONS.index(self.version):]:
            try:
                answer = client.request(method, self.path(namespace, name, version), **kwargs)
            except ApiError as exc:
                # A 404 that names no object: this version does not serve HTTPRoutes.
                if exc.status == 404 and not exc.object_missing and "namespaces" not in exc.message:
                    continue
                raise
            self.version = version
            return answer
        raise ModuleFailure(f"the cluster does not serve {RESOURCE}.{GROUP} at {', '.join(VERSIONS)}: Gateway API's "
                            "CRDs are missing. Install them (standard channel) first")

    def get(self, client: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.call(client, "GET", namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def json_patch(self, client: Any, namespace: str, name: str, ops: list[dict[str, Any]], dry_run: bool) -> Any:
        query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
        return self.call(client, "PATCH", namespace, name, body=ops, query=query,
                         content_type="application/json-patch+json")


class RouteReader:
    """HTTPRoutes read the way ``_resource.read_info`` reads Istio's objects (``get``, ``list``,
    ``api_version``), for the _info modules' ``kind: HTTPRoute``."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.api = gateway_api(ctx)

    @property
    def api_version(self) -> str:
        return self.api.api_version

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        del kind  # always HTTPRoute
        return self.api.get(self.ctx.client, namespace, name)

    def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        del kind
        query = {"labelSelector": label_selector} if label_selector else None
        listed = self.api.call(self.ctx.client, "GET", namespace, None, query=query) or {}
        items = listed.get("items") or []
        for item in items:
            # List items carry no kind/apiVersion; fill them so results look like single reads.
            item.setdefault("apiVersion", self.api.api_version)
            item.setdefault("kind", KIND)
        return items


def gateway_api(ctx: Context) -> GatewayApi:
    """The task's Gateway API access (the version found is shared by every worker of the task)."""
    return ctx.cache.get(("GatewayApi",), GatewayApi)


def read_core(ctx: Context, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    """A core/v1 object (a Service, its Endpoints), or None when there is none."""
    return read_optional(ctx, f"/api/v1/namespaces/{namespace}/{resource}/{name}")


def ready_addresses(endpoints: dict[str, Any] | None) -> int:
    """How many ready addresses an Endpoints object lists (``subsets[].addresses``)."""
    if not isinstance(endpoints, dict):
        return 0
    return sum(len(subset.get("addresses") or []) for subset in endpoints.get("subsets") or []
               if isinstance(subset, dict))


class RouteTarget:
    """One HTTPRoute to move, and what was read and planned for it (the shape ``_lockstep`` moves)."""

    kind = KIND

    def __init__(self, name: str, namespace: str, route_name: str | None = None,
                 weights: dict[str, int] | None = None, require_ready_endpoints: bool = True):
        self.name = name
        self.namespace = namespace
        self.route_name = route_name
        self.weights = weights or {}
        self.require_ready_endpoints = require_ready_endpoints
        self.route: dict[str, Any] | None = None
        self.rule_index = -1
        self.before: dict[str, int | float] = {}
        self.after: dict[str, int | float] = {}
        self.new_refs: list[dict[str, Any]] = []
        self.patch: list[dict[str, Any]] = []
        self.written: dict[str, Any] | None = None
        self.maybe_written = False
        self.rolled_back = False
        self.error: str | None = None
        self.notes: list[str] = []
        # What the backend Services that gain traffic showed: name -> ready addresses.
        self.checked: dict[str, int] = {}
        self.api_version = f"{GROUP}/{VERSIONS[0]}"
        # Asked by the lockstep code of VirtualServices; an HTTPRoute has no DestinationRule or listing (that code
        # lists the VirtualServices and DestinationRules of a namespace crowded with VirtualServices only).
        self.destination_rule = None
        self.listed = None
        self.host = None

    @property
    def vs(self) -> dict[str, Any] | None:
        """The object read (``_lockstep`` asks whether the first target was planned)."""
        return self.route

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def send_patch(self, ctx: Context, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return gateway_api(ctx).json_patch(ctx.client, self.namespace, self.name, ops, dry_run=ctx.check_mode)

    def read_current(self, ctx: Context) -> dict[str, Any] | None:
        return gateway_api(ctx).get(ctx.client, self.namespace, self.name)

    def put_back(self, ctx: Context) -> None:
        put_back(ctx, self)

    def route_label(self) -> str | None:
        """The rule moved as results name it: its name, else ``rules[N]`` (as VirtualServices' ``http[N]``)."""
        if self.route is None or self.rule_index < 0:
            return self.route_name
        return self.route["spec"]["rules"][self.rule_index].get("name") or f"rules[{self.rule_index}]"

    def rule_where(self) -> str:
        """The rule moved as messages name it: ``HTTPRoute ns/name rules[1] ('primary')``."""
        if self.route is None or self.rule_index < 0:
            return f"HTTPRoute {self.label} rule {self.route_name!r}"
        return f"HTTPRoute {self.label} {rule_label(self.rule_index, self.route['spec']['rules'][self.rule_index])}"

    def report(self) -> dict[str, Any]:
        return {"kind": KIND, "name": self.name, "namespace": self.namespace, "route": self.route_label(),
                "before": self.before, "after": self.after, "changed": bool(self.patch),
                "moved": self.written is not None and not self.rolled_back, "rolled_back": self.rolled_back,
                "error": self.error, "notes": self.notes, "backend_services": dict(self.checked),
                "service_host": None, "destination_rule": None, "destination_rule_namespace": None}


def read_route(ctx: Context, target: RouteTarget) -> dict[str, Any]:
    route = target.read_current(ctx)
    target.api_version = gateway_api(ctx).api_version
    if route is None:
        raise ModuleFailure(f"HTTPRoute {target.label} not found; create it first (for example Istio's "
                            "samples/bookinfo/gateway-api/route-reviews-v1.yaml) or check name and namespace")
    return _forget_managed_fields(route)


def _rising(target: RouteTarget, refs: list[dict[str, Any]], before: dict[str, Any],
            after: dict[str, Any]) -> list[str]:
    """Backend Services of the route's namespace whose share rises (new ones included)."""
    local = [ref["name"] for ref in refs
             if (ref.get("group") or "") == "" and (ref.get("kind") or "Service") == "Service"
             and (ref.get("namespace") or target.namespace) == target.namespace]
    return [name for name in dict.fromkeys(local) if after.get(name, 0) > before.get(name, 0)]


def check_backends(ctx: Context, target: RouteTarget, refs: list[dict[str, Any]], before: dict[str, Any],
                   after: dict[str, Any]) -> None:
    """Refuses, before any write, to send more traffic to a Service that does not exist, lacks the port
    the backendRef names, or (unless allowed) has no ready endpoints. ``before``/``after``: the share (percent)
    each backend gets of the rule ``refs`` belong to."""
    where = target.rule_where()
    for name in _rising(target, refs, before, after):
        service = read_core(ctx, "services", target.namespace, name)
        if service is None:
            raise ModuleFailure(
                f"refusing to route {where} to backend Service {name!r}: no Service {name!r} exists in namespace "
                f"{target.namespace!r}, so its share ({after.get(name)}%) would fail. Create it first - "
                "a per-version Service selects one version's pods (Istio's bookinfo-versions.yaml) - then move "
                "traffic. Nothing was changed")
        ports = [port.get("port") for port in (service.get("spec") or {}).get("ports") or []]
        for ref in refs:
            if ref.get("name") == name and ref.get("port") is not None and ref["port"] not in ports:
                raise ModuleFailure(
                    f"refusing to route {where} to backend Service {name!r} port {ref['port']}: the Service "
                    f"exposes port(s) {ports}, and Gateway API sends nothing to a port a Service lacks. Nothing "
                    "was changed")
        endpoints = read_core(ctx, "endpoints", target.namespace, name)
        target.checked[name] = ready_addresses(endpoints)
        if target.checked[name] == 0:
            seen = ("no Endpoints object" if endpoints is None
                    else f"Endpoints with {_not_ready(endpoints)} address(es), none ready")
            message = (f"backend Service {target.namespace}/{name} has no ready endpoints ({seen}): its share "
                       f"({after.get(name)}%) of {where} would fail until its pods are ready")
            if target.require_ready_endpoints:
                raise ModuleFailure(f"refusing to route to it: {message}. Wait for the version's pods to be "
                                    "ready, or set require_ready_endpoints to false to move traffic anyway. Nothing "
                                    "was changed")
            target.notes.append(message)


def _not_ready(endpoints: dict[str, Any]) -> int:
    return sum(len(subset.get("notReadyAddresses") or []) for subset in endpoints.get("subsets") or []
               if isinstance(subset, dict))


def plan(ctx: Context, target: RouteTarget, remove_unnamed: bool = False, record: bool = True,
         actor: str = "unknown", history_limit: int = 20, base: str | None = None,
         canary: str | None = None) -> None:
    """Reads the HTTPRoute (and the Services it will send more to) and builds the guarded patch; no write."""
    route = target.route = read_route(ctx, target)
    namespace = (route.get("metadata") or {}).get("namespace") or target.namespace
    target.rule_index = find_rule(route, target.route_name)
    rule = route["spec"]["rules"][target.rule_index]
    where = rule_label(target.rule_index, rule)
    target.before = rule_shares(rule, namespace, where)
    target.new_refs, target.notes = plan_rule_backends(route, target.rule_index, target.weights,
                                                       remove_unnamed=remove_unnamed)
    target.after = rule_shares({"backendRefs": target.new_refs}, namespace, where)
    patch = build_rule_patch(route, target.rule_index, target.new_refs)
    if patch:
        check_backends(ctx, target, target.new_refs, target.before, target.after)
    if patch and record:
        # The state's weight is the canary's share of the Services moved (what was asked), which is its share
        # of the rule unless the rule also sends to other backends.
        patch = patch + record_step_ops(route, target.before, target.after, rule.get("name"), actor, history_limit,
                                        base, canary, canary_weight=lambda name: target.weights.get(name, 0))
    target.patch = patch


def put_back(ctx: Context, target: RouteTarget) -> None:
    """Puts the rule's backendRefs and the recorded state back as they were read."""
    if target.route is None or target.written is None:
        raise AssertionError("put_back needs the route as read and the weights written")
    original = target.route["spec"]["rules"][target.rule_index]
    now = target.written
    ops = build_rule_patch(now, target.rule_index, original.get("backendRefs") or [])
    old = (target.route.get("metadata") or {}).get("annotations") or {}
    ops += build_annotation_ops(now, {key: old.get(key) for key in (STATE_ANNOTATION, HISTORY_ANNOTATION)})
    if ops and json_patch_once(ctx, target, ops) is None and not ctx.check_mode:
        raise put_back_failed(target)


def plan_header(ctx: Context, target: RouteTarget, rule_name: str, matches: list[dict[str, Any]] | None,
                service: str | None, present: bool = True) -> None:
    """Reads the HTTPRoute and builds the patch that adds, updates (``present``) or removes rule
    ``rule_name``, which sends ``matches``-ing requests to backend Service ``service``. The Service is
    checked as a split checks a Service gaining traffic. ``before``/``after`` list the rules by label."""
    route = target.route = read_route(ctx, target)
    target.route_name = rule_name
    target.rule_index = -1
    rules = route["spec"].get("rules") or []
    target.notes = []
    if not present:
        new_rules = remove_header_rule(route, rule_name)
    else:
        port = header_rule_port(route)
        if port is None and service:
            found = read_core(ctx, "services", target.namespace, service)
            ports = [p.get("port") for p in ((found or {}).get("spec") or {}).get("ports") or []]
            if len(ports) != 1:
                raise ModuleFailure(f"HTTPRoute {target.label} sends to no Service with a port, and Service "
                                    f"{service!r} has {len(ports)} ports ({ports}); Gateway API needs the port of a "
                                    "Service backend. Route to the Service with its port in another rule first")
            port = ports[0]
        new_rules, target.notes = plan_header_rule(route, rule_name, matches, service, port)
    target.before = {"routes": [rule.get("name") or f"rules[{i}]" for i, rule in enumerate(rules)]}
    target.after = {"routes": [rule.get("name") or f"rules[{i}]" for i, rule in enumerate(new_rules)]}
    target.patch = build_rules_patch(route, new_rules)
    if target.patch and present:
        rule = next(rule for rule in new_rules if rule.get("name") == rule_name)
        check_backends(ctx, target, rule["backendRefs"], {}, {service: 100})


def header_rule_task(ctx: Context, name: str, namespace: str) -> dict[str, Any]:
    """header_route with ``kind: HTTPRoute``: ensures (or removes) rule ``route`` sending requests with
    ``headers`` to backend Service ``service``, with one guarded write (re-planned on a conflict)."""
    params = ctx.params
    refuse_istio_options(params)
    if params.get("subset") or params.get("match"):
        raise CanaryInputError("with kind HTTPRoute, name the backend Service with service (not subset) and the "
                               "requests with headers (not match: Istio's match has another shape than Gateway "
                               "API's)")
    if not 0 <= params["max_retries"] <= 50:
        raise CanaryInputError(f"max_retries {params['max_retries']} must be between 0 and 50")
    present = params["state"] == "present"
    if present and (not params.get("headers") or not params.get("service")):
        raise CanaryInputError("state=present with kind HTTPRoute needs service (the backend Service) and headers")
    matches = header_matches(params["headers"]) if present else None
    target = RouteTarget(name, namespace, require_ready_endpoints=params["require_ready_endpoints"])

    def replan() -> None:
        plan_header(ctx, target, params["route"], matches, params.get("service"), present)

    replan()
    write(ctx, target, replan, params["max_retries"])
    stored = target.written if target.written is not None else target.route
    result: dict[str, Any] = {"changed": bool(target.patch), "routes": target.after["routes"],
                              "result": strip_server_fields(stored), "api_version": target.api_version}
    if target.notes:
        result["warnings"] = list(target.notes)
    if ctx.diff_mode:
        result["diff"] = {"before": {"rules": ((target.route or {}).get("spec") or {}).get("rules") or []},
                          "after": {"rules": ((stored or {}).get("spec") or {}).get("rules") or []}}
    return result


def refuse_route_options(params: dict[str, Any]) -> None:
    """Refuses, on a VirtualService, an option that only an HTTPRoute takes."""
    if params.get("service"):
        raise CanaryInputError(f"service {params['service']!r} names an HTTPRoute's backend Service; set kind "
                               "HTTPRoute, or name a subset with subset on a VirtualService")


def info_task(ctx: Context, name: str, namespace: str) -> dict[str, Any]:
    """canary_info with ``kind: HTTPRoute``: :func:`describe`, with ``base`` and ``canary`` among the
    Services reported whether the route sends to them or not."""
    params = ctx.params
    refuse_istio_options(params)
    wanted = tuple(service for service in (params.get("base"), params.get("canary")) if service)
    return describe(ctx, name, namespace, params.get("route_name"), wanted)


def plan_either(ctx: Context, target: Any, **options: Any) -> None:
    """Plans a move of either kind: an HTTPRoute's here, a VirtualService's in ``_traffic`` (a lockstep
    ``services:`` list may hold both)."""
    if isinstance(target, RouteTarget):
        plan(ctx, target, **options)
    else:
        plan_virtual_service(ctx, target, **options)


def describe(ctx: Context, name: str, namespace: str, route_name: str | None = None,
             services: tuple[str, ...] = ()) -> dict[str, Any]:
    """What ``canary_info`` reports for an HTTPRoute, in the keys it reports for a VirtualService.

    ``weights`` are the shares of the rule named ``route_name``, else of the rule a split would move (the
    only rule, or the one catch-all), else empty. ``routes`` lists every rule. ``backends`` lists the
    Services of the route's namespace the rules send to, plus ``services`` (say, a canary not routed yet),
    each with whether it exists and its ready endpoints; ``subsets`` lists those that exist (what a split
    may route to: on an HTTPRoute a version is a Service). Requests: the GET of the route, then a GET of
    each such Service and of its Endpoints.
    """
    target = RouteTarget(name, namespace, route_name=route_name)
    api = gateway_api(ctx)
    route = target.read_current(ctx)
    result: dict[str, Any] = {"changed": False, "kind": KIND, "exists": route is not None, "weights": {},
                              "routes": [], "subsets": [], "backends": [], "destination_rule": "",
                              "destination_rule_namespace": "", "state": {"base": None, "canary": None,
                                                                          "weight": None, "route": None},
                              "history": [], "api_version": api.api_version}
    if route is None:
        return result
    _forget_managed_fields(route)
    rules = (route.get("spec") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        label = rule_label(index, rule)
        entry = {"index": index, "name": rule.get("name"), "match": rule.get("matches"), "weights": None}
        try:
            entry["weights"] = rule_shares(rule, namespace, label)
        except CanaryInputError as problem:
            entry["problem"] = str(problem)
        result["routes"].append(entry)
    try:
        index = find_rule(route, route_name)
    except CanaryInputError:
        if route_name is not None:
            raise
    else:
        chosen = result["routes"][index]
        if chosen["weights"] is None:
            raise CanaryInputError(f"{rule_label(index, rules[index])} cannot be read: {chosen['problem']}")
        result["weights"] = chosen["weights"]
    recorded = read_canary_state(route)
    result["history"] = recorded.pop("history")
    result["state"] = recorded
    readable = [entry["weights"] for entry in result["routes"] if entry["weights"] is not None]
    # A Service is routed when some rule gives it a share; keys with "/" are backends of other namespaces or kinds.
    shares: dict[str, float] = {}
    for weights in readable:
        for key, share in weights.items():
            shares[key] = max(shares.get(key, 0), share)
    routed = [key for key in shares if "/" not in key]
    for service in dict.fromkeys([*routed, *services]):
        found = read_core(ctx, "services", namespace, service)
        ready = ready_addresses(read_core(ctx, "endpoints", namespace, service)) if found is not None else 0
        result["backends"].append({"name": service, "exists": found is not None, "ready_endpoints": ready,
                                   "routed": shares.get(service, 0) > 0,
                                   "selector": ((found or {}).get("spec") or {}).get("selector")})
    existing = [entry for entry in result["backends"] if entry["exists"]]
    # The Deployments behind each Service (pod template labels matching its selector), as a VirtualService's
    # subsets report them: what a promotion or a rollback removes of the version that lost. One list request.
    deployments = (ctx.client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").get("items") or []
                   if existing else [])
    result["subsets"] = [{"name": entry["name"], "labels": entry["selector"], "routed": entry["routed"],
                          "deployments": _backing(entry["selector"], deployments)} for entry in existing]
    return result


def _backing(selector: dict[str, Any] | None, deployments: list[dict[str, Any]]) -> list[str]:
    if not selector:
        return []
    return [item["metadata"]["name"] for item in deployments
            if labels_match(selector, ((((item.get("spec") or {}).get("template") or {}).get("metadata") or {})
                                       .get("labels") or {}))]
