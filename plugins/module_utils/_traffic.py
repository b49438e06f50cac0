# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Moving traffic: plan a weight change on one VirtualService, write it with one guarded JSON
Patch, retry on conflicts, and put it back when a lockstep move fails later.

Requests for one VirtualService: GET of the VirtualService; GET of the DestinationRule named
after the service, or the names of the rules for its host from the API server's watch cache and a
GET of each (:func:`_rules_beside`), or, when neither can show the answer, one LIST of
DestinationRules per namespace Istio searches until one applies to the host (the VirtualService's
namespace; then the service's namespace when it lives elsewhere; then the mesh root namespace); one
PATCH - three requests in the common case of a rule named after its service beside the
VirtualService. A lockstep task lists the DestinationRules and VirtualServices of a namespace it
moves many services of once for all of them (``_lockstep``): about one request per service, the
PATCH. A conflict (someone wrote in between; the patch's ``test`` ops fail) costs a re-read and a
re-plan, never a blind overwrite.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, RequestOutcomeUnknown
from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.destinations import RouteDestinations, routed_subsets
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.header_routes import (
    header_route_port,
    plan_header_route,
    remove_header_route,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import (
    DEFAULT_ROOT_NAMESPACE,
    Hosts,
    destination_rule_namespaces,
    merged_subsets,
    rules_for_host,
    service_host,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.matches import is_catch_all
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import (
    build_annotation_ops,
    build_http_list_patch,
    build_route_patch,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    find_http_route,
    refuse_unreachable,
    route_checked,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.state import (
    HISTORY_ANNOTATION,
    STATE_ANNOTATION,
    append_history,
    choose_roles,
    encode_canary_state,
    read_canary_state,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import plan_route_move, route_weights

UTC = timezone.utc
# Objects per page when a namespace is listed: what is held whole at once stays bounded.
LIST_PAGE = 500


def is_patch_conflict(error: ApiError) -> bool:
    """A failed JSON Patch ``test`` op (the object changed since it was read), or a 409."""
    if error.status == 409:
        return True
    return error.status == 422 and not error.causes and "error in our request" in error.message


class Target:
    """One VirtualService to move, and what was read and planned for it.

    What :func:`write`, :func:`settle_unknown` and :func:`rollback` need of a target - ``kind``,
    :meth:`send_patch`, :meth:`read_current`, :meth:`put_back` - an HTTPRoute's target has too
    (``_httproute.RouteTarget``), so one lockstep move can hold both kinds."""

    kind = "VirtualService"

    def __init__(self, name: str, namespace: str, host: str | None = None, route_name: str | None = None,
                 destination_rule: str | None = None, weights: dict[str, int] | None = None,
                 cluster_domain: str | None = None, root_namespace: str | None = None):
        self.name = name
        self.namespace = namespace
        # Hosts named in the VirtualService resolve in its namespace (Istio's ResolveShortnameToFQDN).
        self.hosts = Hosts(namespace, cluster_domain)
        self.root_namespace = root_namespace or DEFAULT_ROOT_NAMESPACE
        self.host = host
        # The service host the task named (service_host); None: the route's own host decides.
        self.given_host = host
        self.notes: list[str] = []
        self.fqdn: str | None = None
        self.route_name = route_name
        self.destination_rule = destination_rule
        self.weights = weights or {}
        self.vs: dict[str, Any] | None = None
        self.rule: dict[str, Any] | None = None
        self.rules: list[dict[str, Any]] = []
        self.route_index = -1
        self.before: dict[str, int] = {}
        self.after: dict[str, int] = {}
        self.patch: list[dict[str, Any]] = []
        self.written: dict[str, Any] | None = None
        # The write failed in a way that leaves open whether it was applied (a lost answer).
        self.maybe_written = False
        # The VirtualService as a LIST of its namespace returned it (read once, for the first plan).
        self.listed: dict[str, Any] | None = None
        self.rolled_back = False
        self.error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def send_patch(self, ctx: Context, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return ctx.istio.json_patch("VirtualService", self.namespace, self.name, ops, dry_run=ctx.check_mode)

    def read_current(self, ctx: Context) -> dict[str, Any] | None:
        return ctx.istio.get("VirtualService", self.namespace, self.name)

    def put_back(self, ctx: Context) -> None:
        _put_back_route(ctx, self)

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "service_host": self.host,
                "route": self.route_label(), "before": self.before, "after": self.after,
                "changed": bool(self.patch), "moved": self.written is not None and not self.rolled_back,
                "rolled_back": self.rolled_back, "error": self.error, "notes": self.notes,
                "destination_rule": (self.rule or {}).get("metadata", {}).get("name"),
                "destination_rule_namespace": (self.rule or {}).get("metadata", {}).get("namespace")}

    def route_label(self) -> str | None:
        if self.vs is None or self.route_index < 0:
            return self.route_name
        route = self.vs["spec"]["http"][self.route_index]
        return route.get("name") or f"http[{self.route_index}]"


def list_virtual_services(ctx: Context, namespace: str) -> dict[str, dict[str, Any]] | None:
    """Every VirtualService of a namespace by name, in one LIST; None when listing is not allowed
    (a Role may grant ``get`` on named objects only: then each is read on its own).

    The LIST is answered from the API server's watch cache, which may lag behind etcd by a moment.
    That is safe here: each PATCH tests the resourceVersion read, so one made from a stale copy is
    refused, and the VirtualService is read again (GET), planned and checked anew before it is
    written (see :func:`write`); one missing from the cache is read with a GET."""
    try:
        items = ctx.istio.list("VirtualService", namespace, page_size=LIST_PAGE, each=_forget_managed_fields,
                               cached=True)
    except ApiError as exc:
        if exc.status == 403:
            return None
        raise
    return {(item.get("metadata") or {}).get("name"): item for item in items}


def read_destination_rules(ctx: Context, target: Target, host: str,
                           needed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The DestinationRules Istio applies to ``host`` for clients in the VirtualService's namespace.

    Namespaces are searched in Istio's order (:func:`destination_rule_namespaces`), one LIST each,
    stopping at the first that has a rule for the host. With ``destination_rule`` set, that name
    is looked up (one GET per namespace, same order) and must apply to the host. Without it, the
    short way (:func:`_rules_beside`) is tried first; ``needed`` are the subsets the caller will
    route to.
    """
    fqdn = target.hosts.fqdn(host)
    target.fqdn = fqdn
    namespaces = destination_rule_namespaces(target.namespace, target.hosts.service_namespace(fqdn),
                                             target.root_namespace)
    istio = ctx.istio
    if not target.destination_rule:
        rules = _rules_beside(ctx, target, fqdn, needed)
        if rules:
            return rules
    for namespace in namespaces:
        if target.destination_rule:
            found = ctx.cache.get(("DestinationRule", namespace, target.destination_rule),
                                  lambda namespace=namespace: istio.get("DestinationRule", namespace,
                                                                        target.destination_rule))
            if found is None:
                continue
            rules = rules_for_host([found], namespace, target.namespace, fqdn, target.hosts.cluster_domain)
            if not rules:
                raise ModuleFailure(
                    f"DestinationRule {namespace}/{target.destination_rule} (host "
                    f"{(found.get('spec') or {}).get('host')!r}) is not the rule Istio applies to {fqdn} for "
                    f"VirtualService {target.label}: its host names another service or it is not exported to "
                    f"namespace {target.namespace!r}. Name the right rule, or leave destination_rule out")
            return rules
        index = destination_rules_of(ctx, namespace, target.hosts.cluster_domain)
        rules = rules_for_host(index.candidates(fqdn), namespace, target.namespace, fqdn,
                               target.hosts.cluster_domain)
        if rules:
            return rules
    return []


def _rules_beside(ctx: Context, target: Target, fqdn: str, needed: tuple[str, ...]) -> list[dict[str, Any]]:
    """The common case without listing every rule of a busy namespace: rules for exactly ``fqdn``
    in the VirtualService's own namespace (the first Istio searches), or [] when this cannot be
    shown cheaply and the caller must search in full.

    Two rules of Istio's make a partial view safe. Rules for the same exact host in one namespace
    are merged, so a rule not seen could only add subsets, never remove one; and an exact host
    beats every wildcard. Hence:

    1. With ``needed`` subsets (a split, a header route): the rule named after the service (GET,
       current) answers alone when it is for exactly this host and defines them all.
    2. Otherwise the API server's watch cache names the namespace's rules for this host (a Table
       of names and hosts); each is read with a GET, so what is used is current. A rule the cache
       missed (it may lag) is again one that could only add subsets.

    The answer stands when the rules read apply to ``fqdn`` exactly and define every ``needed``
    subset; otherwise (no such rule, a rule changed or deleted since the cache saw it, a subset
    missing) the full search decides, as it would without this.
    """
    namespace, domain = target.namespace, target.hosts.cluster_domain
    if ctx.cache.holds(("DestinationRules", namespace, domain)):
        return []  # this task listed the namespace already: that answer is complete and costs nothing
    service = target.hosts.service_name(fqdn)
    if needed and service:
        rules = _exact_rules(ctx, namespace, [service], fqdn, domain)
        if rules and _defines(rules, needed):
            return rules
    names = destination_rule_hosts(ctx, namespace, domain)
    if not names or not names.get(fqdn):
        return []
    rules = _exact_rules(ctx, namespace, names[fqdn], fqdn, domain)
    return rules if rules and _defines(rules, needed) else []


def _defines(rules: list[dict[str, Any]], needed: tuple[str, ...]) -> bool:
    defined = merged_subsets(rules)
    return all(subset in defined for subset in needed)


def _exact_rules(ctx: Context, namespace: str, names: list[str], fqdn: str, domain: str) -> list[dict[str, Any]]:
    """The rules of ``names`` (read with GET, current) that Istio applies to ``fqdn`` for clients in
    their own namespace, when every one of them is for exactly ``fqdn``; else []."""
    istio = ctx.istio
    found = []
    for name in names:
        try:
            rule = ctx.cache.get(("DestinationRule", namespace, name),
                                 lambda name=name: istio.get("DestinationRule", namespace, name))
        except ApiError as exc:
            if exc.status == 403:  # a Role with list but not get: the full search needs only list
                return []
            raise
        if rule is not None:
            found.append(_forget_managed_fields(rule))
    rules = rules_for_host(found, namespace, namespace, fqdn, domain)
    scope = Hosts(namespace, domain)
    if any(scope.fqdn((rule.get("spec") or {}).get("host")) != fqdn for rule in rules):
        return []
    return rules


def destination_rule_hosts(ctx: Context, namespace: str, cluster_domain: str) -> dict[str, list[str]] | None:
    """Names of a namespace's DestinationRules by resolved exact host (wildcards left out), from the
    watch cache (:meth:`Istio.cached_column`): one small request per namespace and task. None when
    the server gives no host column."""

    def read() -> dict[str, list[str]] | None:
        pairs = ctx.istio.cached_column("DestinationRule", namespace, "Host")
        if pairs is None:
            return None
        scope = Hosts(namespace, cluster_domain)
        by_host: dict[str, list[str]] = {}
        for name, host in pairs:
            exact = exact_host(scope, host)
            if exact is not None:
                by_host.setdefault(exact, []).append(name)
        return by_host

    return ctx.cache.get(("DestinationRuleHosts", namespace, cluster_domain), read)


def destination_rules_of(ctx: Context, namespace: str, cluster_domain: str) -> RuleIndex:
    """The DestinationRules of a namespace: one LIST per namespace and task, however many services
    of the task look there."""
    return ctx.cache.get(("DestinationRules", namespace, cluster_domain),
                         lambda: RuleIndex(ctx.istio.list("DestinationRule", namespace, page_size=LIST_PAGE,
                                                          each=_forget_managed_fields), namespace, cluster_domain))


def exact_host(scope: Hosts, host: Any) -> str | None:
    """A rule's ``spec.host`` resolved in its namespace, or None when it is a wildcard (or no host):
    the key by which a namespace's rules are indexed, from their objects or from the host table."""
    resolved = scope.fqdn(host)
    return resolved if isinstance(resolved, str) and "*" not in resolved else None


class RuleIndex:
    """The DestinationRules of one namespace by resolved host, so that finding the rules for one
    host does not scan every rule of the namespace (thousands of services, thousands of rules).

    :meth:`candidates` returns, in the order the API server listed them, the rules whose host is
    the given one plus every rule with a wildcard (or unusual) host: a superset of what
    :func:`rules_for_host` can choose, which still makes the choice.
    """

    def __init__(self, rules: list[dict[str, Any]], namespace: str, cluster_domain: str | None):
        scope = Hosts(namespace, cluster_domain)
        self.by_host: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.others: list[tuple[int, dict[str, Any]]] = []
        for position, rule in enumerate(rules):
            host = exact_host(scope, ((rule.get("spec") if isinstance(rule, dict) else None) or {}).get("host"))
            if host is not None:
                self.by_host.setdefault(host, []).append((position, rule))
            else:
                self.others.append((position, rule))

    def candidates(self, fqdn: str) -> list[dict[str, Any]]:
        found = self.by_host.get(fqdn, [])
        if not self.others:
            return [rule for _position, rule in found]
        return [rule for _position, rule in sorted(found + self.others, key=lambda pair: pair[0])]


def read_destination_rule(ctx: Context, target: Target, host: str,
                          needed: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The first of :func:`read_destination_rules` (the one reported), or None."""
    target.rules = read_destination_rules(ctx, target, host, needed)
    target.rule = target.rules[0] if target.rules else None
    return target.rule


def _no_subset_message(target: Target, subject: str) -> str:
    """Why routing to ``subsets`` is refused: which rules Istio would apply, and what they define."""
    fqdn = target.fqdn
    searched = destination_rule_namespaces(target.namespace, target.hosts.service_namespace(fqdn),
                                           target.root_namespace)
    if not target.rules:
        where = f"named {target.destination_rule!r}" if target.destination_rule else f"for host {fqdn}"
        return (f"refusing to route {target.label} {subject}: there is no DestinationRule "
                f"{where} that Istio would apply (searched namespaces {', '.join(searched)}, in Istio's order), so "
                "no subset exists. Create it first (canary.istio.destination_rule)")
    names = ", ".join(f"{r['metadata'].get('namespace')}/{r['metadata']['name']}" for r in target.rules)
    defined = merged_subsets(target.rules)
    return (f"refusing to route {target.label} {subject}: DestinationRule {names} "
            f"(the rule Istio applies to {fqdn} for clients in namespace {target.namespace!r}) defines only "
            f"{', '.join(defined) or 'no subsets'}. Add the subset there first (canary.istio.destination_rule)")


def plan(ctx: Context, target: Target, remove_unnamed: bool, record: bool, actor: str, history_limit: int,
         base: str | None = None, canary: str | None = None) -> None:
    """Reads the VirtualService and DestinationRule and builds the guarded patch (no write)."""
    vs, target.listed = target.listed, None  # a listed copy serves the first plan only, never a re-plan
    if vs is None:
        vs = ctx.istio.get("VirtualService", target.namespace, target.name)
    if vs is None:
        raise ModuleFailure(f"VirtualService {target.label} not found; create it first "
                            "(canary.istio.virtual_service or the base_release role)")
    _forget_managed_fields(vs)
    target.vs = vs
    default = target.given_host or (service_host(vs, None) if target.route_name is None else _own_host(vs))
    target.route_index = find_http_route(vs.get("spec") or {}, default, target.route_name, hosts=target.hosts)
    if target.route_name is not None:
        refuse_unreachable(vs["spec"]["http"], target.route_index)
    route = vs["spec"]["http"][target.route_index]
    target.before = route_weights(route, target.hosts)
    new_route, moved, note = plan_route_move(route, default, target.weights, remove_unnamed=remove_unnamed,
                                             hosts=target.hosts, host_given=bool(target.given_host))
    target.notes = [note] if note else []
    view = RouteDestinations(new_route, target.hosts)  # one reading of the planned route serves all three
    target.after = view.percent()
    host = target.host = view.spelling.get(moved, default)
    routed = routed_subsets(view, moved)
    read_destination_rule(ctx, target, host, tuple(routed))
    if routed:
        defined = merged_subsets(target.rules)
        missing = [subset for subset in routed if subset not in defined]
        if missing:
            raise ModuleFailure(_no_subset_message(target, f"to subset(s) {', '.join(missing)}"))
    patch = build_route_patch(vs, target.route_index, new_route)
    if patch and record:
        patch = patch + record_step_ops(vs, target.before, target.after, route.get("name"), actor, history_limit,
                                        base, canary)
    target.patch = patch


def record_step_ops(obj: dict[str, Any], before: dict[str, Any], after: dict[str, Any], route_name: str | None,
                    actor: str, history_limit: int, base: str | None, canary: str | None,
                    canary_weight: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
    """The ops that record a step in the state and history annotations of the object moved. The state's
    weight is the canary's share after the step, or ``canary_weight(canary)`` when the caller knows better."""
    base_name, canary_name = choose_roles(read_canary_state(obj), before, after, base, canary)
    weight = canary_weight(canary_name) if canary_weight else after.get(canary_name, 0)
    annotations = {
        STATE_ANNOTATION: encode_canary_state(base_name, canary_name, weight, route_name),
        HISTORY_ANNOTATION: append_history(obj, before, after, actor, datetime.now(UTC), limit=history_limit),
    }
    return build_annotation_ops(obj, annotations)


def _default_route_host(vs: dict[str, Any], hosts: Hosts) -> str:
    """The host a header route sends its testers to when the task names none: the one host the first
    catch-all route (the route everyone else gets) already sends to, so testers reach the same service;
    else the VirtualService's own host (:func:`service_host`)."""
    for route in (vs.get("spec") or {}).get("http") or []:
        if isinstance(route, dict) and is_catch_all(route) and isinstance(route.get("route"), list) and route["route"]:
            try:
                view = RouteDestinations(route_checked(route), hosts)
            except CanaryInputError:
                break
            if len(view.service_hosts) == 1:
                return view.spelling[view.service_hosts[0]]
            break
    return service_host(vs, None)


def _own_host(vs: dict[str, Any]) -> str | None:
    """The VirtualService's own service host when it can be told (see :func:`service_host`), else None:
    with a route name given, the route's destinations say which host moves."""
    try:
        return service_host(vs, None)
    except CanaryInputError:
        return None


def _forget_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Drops ``metadata.managedFields`` from an object we keep: no patch of ours reads or tests it, and
    it is most of the object's size (thousands of services are held at once)."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj


def read_optional(ctx: Context, path: str) -> dict[str, Any] | None:
    """The object at ``path`` without its managedFields, or None when the API server has none (404)."""
    try:
        found = ctx.client.get(path)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return _forget_managed_fields(found)


_ABSENT = object()


def _at_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer, or ``_ABSENT``."""
    for escaped in pointer.split("/")[1:]:
        token = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return _ABSENT
    return document


def holds_patch(obj: dict[str, Any] | None, ops: list[dict[str, Any]]) -> bool:
    """Whether ``obj`` already holds what the patch writes: every added or replaced value in place,
    every removed member gone. Our patches write whole destination lists and a history entry with
    its time and actor, so a match is our own write, not a coincidence."""
    if obj is None:
        return False
    for op in ops:
        if op["op"] in ("add", "replace") and _at_pointer(obj, op["path"]) != op["value"]:
            return False
        if op["op"] == "remove" and _at_pointer(obj, op["path"]) is not _ABSENT:
            return False
    return any(op["op"] in ("add", "replace", "remove") for op in ops)


def json_patch_once(ctx: Context, target: Any, ops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sends the guarded PATCH once. When its answer is lost, re-reads the object instead
    of sending it again: the object if the write is there, None if it is not (then the caller may
    plan and send anew; the ``test`` ops keep a late duplicate from applying twice)."""
    try:
        return target.send_patch(ctx, ops)
    except RequestOutcomeUnknown:
        if ctx.check_mode:
            return None  # a server-side dry run stores nothing; there is nothing to recognise
        current = target.read_current(ctx)
        return current if holds_patch(current, ops) else None


def write(ctx: Context, target: Any, replan: Callable[[], None], retries: int) -> None:
    """The guarded PATCH; on a conflict, re-read, re-plan and try again up to ``retries`` times."""
    for attempt in range(retries + 1):
        if not target.patch:
            return
        try:
            written = json_patch_once(ctx, target, target.patch)
            if written is not None:
                target.written = _forget_managed_fields(written)
                return
        except ApiError as exc:
            if not is_patch_conflict(exc):
                raise
        if attempt == retries:
            raise ModuleFailure(
                f"{target.kind} {target.label} kept changing while we tried to move traffic "
                f"({retries + 1} attempts, each refused because someone else wrote first); nothing of theirs "
                "was overwritten. Re-run the task") from None
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        replan()


def settle_unknown(ctx: Context, target: Any) -> None:
    """After a write whose outcome is unknown (the answer was lost and the re-read failed too), reads
    the object once more: when it holds our patch, the write happened and is ours to put back."""
    if target.written is not None or not target.patch or ctx.check_mode:
        return
    current = target.read_current(ctx)
    if holds_patch(current, target.patch):
        target.written = current


def rollback(ctx: Context, target: Any) -> None:
    """Puts a moved object's weights and recorded state back as they were (see :meth:`Target.put_back`)."""
    if target.vs is None or target.written is None:
        return
    target.put_back(ctx)
    target.rolled_back = True


def put_back_failed(target: Any) -> ModuleFailure:
    return ModuleFailure(f"{target.kind} {target.label}: the answer to putting it back was lost and a re-read "
                         "shows the old weights are not back; check it now")


def _put_back_route(ctx: Context, target: Target) -> None:
    original_route = target.vs["spec"]["http"][target.route_index]
    now = target.written
    ops = build_route_patch(now, target.route_index, original_route, restoring=True)
    old_annotations = (target.vs.get("metadata") or {}).get("annotations") or {}
    ops += build_annotation_ops(now, {key: old_annotations.get(key) for key in (STATE_ANNOTATION, HISTORY_ANNOTATION)})
    if ops and json_patch_once(ctx, target, ops) is None and not ctx.check_mode:
        raise put_back_failed(target)


def plan_header(ctx: Context, target: Target, route: str, match: list[dict[str, Any]] | None, subset: str | None,
                present: bool) -> None:
    """Reads the VirtualService (and the DestinationRule when routing) and builds the http-list patch."""
    vs = ctx.istio.get("VirtualService", target.namespace, target.name)
    if vs is None:
        raise ModuleFailure(f"VirtualService {target.label} not found; create it first")
    target.vs = vs
    spec = vs.get("spec") or {}
    host = target.host = target.given_host or _default_route_host(vs, target.hosts)
    old_http = spec.get("http")
    if not present:
        new_http = remove_header_route(spec, route)
    else:
        new_http = plan_header_route(spec, route, host, match, subset, port=header_route_port(spec, host, target.hosts),
                                     hosts=target.hosts)
        read_destination_rule(ctx, target, host, (subset,))
        if subset not in merged_subsets(target.rules):
            raise ModuleFailure(_no_subset_message(target, f"route {route!r} to subset {subset!r}"))
    target.patch = build_http_list_patch(vs, old_http, new_http)
    target.before = {"routes": [r.get("name") or f"http[{i}]" for i, r in enumerate(old_http or [])]}
    target.after = {"routes": [r.get("name") or f"http[{i}]" for i, r in enumerate(new_http)]}
