"""The router's decisions, as pure functions over one snapshot of the cluster's configuration.

This is the part that stands in for Istio's Pilot + Envoy route tables.  It is written from
Istio's code and documentation (release 1.30.3; the functions named below are in istio/istio),
never from the collection's code (the lab must judge the collection, not agree with it):

- Short host names: a host without a dot names ``<host>.<namespace of the VirtualService or
  DestinationRule that writes it>.svc.cluster.local``; a host with a dot, ``*`` and IP addresses
  are taken as written (``ResolveShortnameToFQDN``, pilot/pkg/model/config.go).
- A VirtualService's ``http`` routes are tried in order and the first whose ``match`` list has a
  matching entry wins (entries are ORed, the fields inside one entry are ANDed; no ``match``
  matches everything): Envoy takes the first matching route of a virtual host, and Istio keeps
  the VirtualService's order (``BuildHTTPRoutesForVirtualService``,
  pilot/pkg/networking/core/route/route.go).  No matching route: 404.
- A VirtualService without ``gateways`` (or with ``mesh`` among them) applies to traffic between
  workloads; one bound to a Gateway applies to that gateway's traffic.
- Weights are relative: a lone destination takes all the traffic whatever its weight; with
  several, those of weight 0 are dropped and the others share by weight/sum of weights (900/100
  is 90/10) (``applyHTTPRouteDestination``, route.go, and Envoy's weighted clusters).
- The DestinationRule for a destination is looked up as istiod does (``destinationRule``,
  pilot/pkg/model/push_context.go): first the client's namespace, then the service's namespace
  (rules exported to the client), then the mesh root namespace ``istio-system``; in each, the
  most specific host wins (exact before wildcard) and rules for the same host merge their
  subsets, the oldest first (``mergeDestinationRule``, destination_rule.go).  DestinationRules
  with a ``workloadSelector`` are not modelled (ignored).
- StringMatch: ``exact``, ``prefix``, ``regex`` (RE2 syntax, the whole value must match).
- Subsets select workloads by the labels the DestinationRule gives them; a service with no
  VirtualService spreads over all its workloads.
- A subset with no ready workload answers 503 "no healthy upstream"; so does a subset the
  DestinationRule does not define (Envoy has no cluster for it).
- Not modelled: delegate VirtualServices (a route that only delegates answers 503).
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.dataplane.resilience import duration_seconds as parse_duration
from lab.dataplane.resilience import merged_traffic_policy

DOMAIN_SUFFIX = "cluster.local"  # constants.DefaultClusterLocalDomain
CLUSTER_DOMAIN = f"svc.{DOMAIN_SUFFIX}"
MESH_GATEWAY = "mesh"
MESH_ROOT_NAMESPACE = "istio-system"  # meshConfig.rootNamespace, by default istiod's namespace
NO_HEALTHY_UPSTREAM = "no healthy upstream"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Endpoint:
    """One running workload (a Deployment's process) the router may send requests to."""

    namespace: str
    workload: str
    labels: Mapping[str, str]
    port: int
    replicas: int = 1

    @property
    def version(self) -> str:
        return self.labels.get("version", "unknown")


@dataclass(frozen=True)
class ServiceEntry:
    """A Kubernetes Service (or, with no Service object, the ``app`` label of Deployments)."""

    namespace: str
    name: str
    selector: Mapping[str, str]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclass
class Request:
    """What the router knows about one incoming request."""

    method: str
    path: str  # with the query string
    authority: str  # the Host header
    headers: Mapping[str, str]  # names in lower case
    scheme: str = "http"
    port: int = 80
    source_workload: str = "unknown"
    source_namespace: str = ""
    source_labels: Mapping[str, str] | None = None


# --------------------------------------------------------------------------- outputs


@dataclass
class Target:
    """A resolved destination: the service and the workload chosen to serve it."""

    service: ServiceEntry
    endpoint: Endpoint
    subset: str | None = None
    client_namespace: str = ""  # whose DestinationRule lookup chose the subset


@dataclass
class Decision:
    """What to do with a request: answer directly (``status``) or forward to ``target``."""

    status: int | None = None
    body: str = ""
    flags: str = "-"  # Envoy-style response flags: NR no route, UH no healthy upstream, FI fault
    service: ServiceEntry | None = None  # the destination service, known even when not forwarded
    target: Target | None = None
    path: str | None = None
    authority: str | None = None
    delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    mirrors: list[Target] = field(default_factory=list)
    request_headers: dict[str, Any] = field(default_factory=dict)
    response_headers: dict[str, Any] = field(default_factory=dict)
    redirect: str | None = None
    route_name: str | None = None
    virtual_service: str | None = None
    retries: Mapping[str, Any] | None = None  # the route's HTTPRetry; None: Istio's default policy


# --------------------------------------------------------------------------- helpers


def split_host_port(authority: str) -> tuple[str, int | None]:
    host = authority.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        return host[: end + 1], int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if ":" in host:
        name, _, port = host.rpartition(":")
        if port.isdigit():
            return name, int(port)
    return host, None


def resolve_shortname_to_fqdn(host: str, namespace: str) -> str:
    """A host as written in a VirtualService/DestinationRule in ``namespace`` (ResolveShortnameToFQDN)."""
    host = host.strip().lower()
    if not host or host == "*" or "." in host or _is_ip_address(host):
        return host
    return f"{host}.{namespace}.svc.{DOMAIN_SUFFIX}"


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def expand_request_host(host: str, namespace: str) -> str:
    """A host as a client in ``namespace`` resolves it through the cluster's DNS search path."""
    host = host.strip().lower().rstrip(".")
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*`` for all, ``*.suffix`` for any name ending in ``.suffix``."""
    if pattern in ("*", host):
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return False


def host_specificity(pattern: str) -> int:
    """Higher for more specific patterns: an exact name beats any wildcard."""
    if pattern == "*":
        return 0
    if pattern.startswith("*"):
        return len(pattern)
    return 10_000 + len(pattern)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None


def string_matches(rule: Mapping[str, Any] | None, value: str | None, ignore_case: bool = False) -> bool:
    """Istio StringMatch.  ``None`` value means absent; an empty rule checks presence only."""
    if value is None:
        return False
    if not rule:
        return True
    if "exact" in rule:
        expected = str(rule["exact"])
        return value.lower() == expected.lower() if ignore_case else value == expected
    if "prefix" in rule:
        expected = str(rule["prefix"])
        return value.lower().startswith(expected.lower()) if ignore_case else value.startswith(expected)
    if "regex" in rule:
        compiled = _compiled(str(rule["regex"]), ignore_case)
        # RE2 semantics in Envoy: the whole value must match, not a substring.
        return bool(compiled is not None and compiled.fullmatch(value))
    return True


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def percentage_of(spec: Mapping[str, Any], absent: float) -> float:
    """Reads ``percentage.value`` (or the deprecated integer ``percent``), defaulting to ``absent``."""
    if isinstance(spec.get("percentage"), Mapping):
        try:
            return float(spec["percentage"].get("value", 0.0))
        except (TypeError, ValueError):
            return 0.0
    if "percent" in spec:
        try:
            return float(spec["percent"])
        except (TypeError, ValueError):
            return 0.0
    return absent


def _chance(percent: float, rng: random.Random) -> bool:
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return rng.random() * 100 < percent


def _sidecar_order(namespace: str, export_to: Sequence[str], from_http_route: bool, created: str, name: str,
                   client_namespace: str) -> tuple[Any, ...] | None:
    """Where a mesh VirtualService (or one Istio converts from HTTPRoutes) stands in the order a sidecar in
    ``client_namespace`` builds its virtual hosts (SelectVirtualServices), or None when it is not visible."""
    exported = {client_namespace if e == "." and namespace == client_namespace else e for e in export_to}
    if not exported or "*" in exported:
        group = 2
    elif namespace == client_namespace and client_namespace in exported:
        group = 0
    elif client_namespace in exported:
        group = 1
    else:
        return None
    return group, 0 if from_http_route and namespace == client_namespace else 1, created, name, namespace


def _virtual_service_first(vs: Mapping[str, Any], routes: Sequence[Mapping[str, Any]], service: ServiceEntry,
                           client_namespace: str, fqdn: str) -> bool:
    """Whether a sidecar keeps the VirtualService's virtual host for ``fqdn`` rather than the one Istio
    converts from the mesh HTTPRoutes ``routes`` (all of one namespace; see the rules above)."""
    meta = vs.get("metadata") or {}
    export_to = [str(e) for e in (vs.get("spec") or {}).get("exportTo") or []]
    vs_order = _sidecar_order(meta.get("namespace") or "default", export_to, False,
                              meta.get("creationTimestamp") or "", meta.get("name") or "", client_namespace)
    if vs_order is None:
        return False
    oldest = min(routes, key=_creation_key)
    route_namespace = _route_namespace(oldest)
    parent_port = next((p.get("port") for p in (oldest.get("spec") or {}).get("parentRefs") or []
                        if p.get("kind") == "Service" and p.get("name") == service.name
                        and p.get("port") is not None), None)
    key = route_namespace if parent_port is None else f"{route_namespace}/{int(parent_port)}"
    converted_name = f"{key}/{fqdn}".replace("/", "~")
    route_order = _sidecar_order(route_namespace, [], True,
                                 (oldest.get("metadata") or {}).get("creationTimestamp") or "", converted_name,
                                 client_namespace)
    assert route_order is not None  # no exportTo: public
    return vs_order < route_order


def _creation_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or "")


# --------------------------------------------------------------------------- Gateway API HTTPRoute
#
# Written from Gateway API v1.6.1's specification (the HTTPRoute type's documentation in
# apis/v1/httproute_types.go, GEP-1426 for Service parents, GEP-2257 for durations), never from
# the collection's code.  Judged by Gateway API's own conformance suite (tests/conformance/gateway_api).
#
# - Mesh traffic: an HTTPRoute whose parentRef is a Service (group "", kind Service) applies to
#   requests for that Service's host (and port, when the parentRef names one).  A producer route
#   (in the Service's namespace) applies to every client; a consumer route (in the client's own
#   namespace) applies to that namespace's clients only and, where one exists, replaces the
#   producer routes for them (GEP-1426 "Namespace boundaries").
# - Ingress: an HTTPRoute whose parentRef is a Gateway (group gateway.networking.k8s.io) applies to
#   the lab's ingress, for the listeners it attaches to (sectionName, port; allowedRoutes Same or
#   All) and the hostnames its hostnames share with the listener's.
# - Among all the matches of the routes that apply, the request takes the one that matches and
#   ranks first: a more specific route hostname; an Exact path, then the longest PathPrefix; a
#   method; more header matches; more query parameter matches; then the oldest route, the route
#   first by "namespace/name", and the first rule and match in it.  No match: 404.
# - Matches: path Exact, PathPrefix (whole path segments: /v2 matches /v2 and /v2/x, not /v2x) and
#   RegularExpression (the whole path); headers (names case-insensitive) and query parameters
#   Exact or RegularExpression; method.
# - backendRefs: weights relative to their sum (default 1); weight 0 takes nothing; a rule with
#   none, or whose weights are all 0, answers 500; so does the share of a backend that is not a
#   Service of the route's namespace (or, for a consumer route, of its parent Service's) or does not
#   exist.  Other cross-namespace backends need a ReferenceGrant, which the lab does not read: 500.
# - A mesh request without a port in its Host is for port 80 (a parentRef's port is compared to it).
# - Filters: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite,
#   RequestMirror (rule-level; RequestHeaderModifier also per backendRef).  timeouts.request.
# - A mesh host claimed both by a VirtualService and by an HTTPRoute (parentRef the Service): Istio
#   turns mesh HTTPRoutes into VirtualServices - one per route namespace (and parentRef port) and
#   host, named "<namespace>~[<port>~]<host>", with the oldest route's creation time
#   (pilot/pkg/config/kube/gateway/route_collections.go, the HTTPRoute collection and
#   mergeHTTPRoutes) - and does not merge VirtualServices for one host on sidecars (IST0109,
#   ConflictingMeshGatewayVirtualServiceHosts; istio/istio#36621): of the virtual hosts built for
#   host:port, the first is kept and the others are dropped as "duplicate domain from virtual
#   service" (buildSidecarOutboundHTTPRouteConfig, pilot/pkg/networking/core/httproute.go).  The
#   order is SelectVirtualServices' (pilot/pkg/model/virtualservice.go): VirtualServices private to
#   the client's namespace, then those exported to it, then public ones (no exportTo: the mesh
#   default "*"); within each, with PILOT_UNIFIED_SIDECAR_SCOPE (on by default), those converted
#   from HTTPRoutes in the client's namespace first; then creation time, name, namespace
#   (MergedVirtualServices' configCompareByCreationTime, pilot/pkg/model/config.go).  So a client
#   in the HTTPRoute's namespace follows the HTTPRoute, and other clients follow whichever is older.
#   Istio documents no rule for this (IST0109 calls it a conflict; the ambient migration guide calls
#   mixing the two for one workload "not supported and leads to undefined behavior"): the lab
#   follows the code.  A VirtualService exported neither to the client's namespace nor to all does
#   not take part.
# - Ingress: the lab has one ingress port for Istio Gateways and Gateway API Gateways, where Istio
#   runs a gateway deployment for each Gateway API Gateway apart from istio-ingressgateway.  A host
#   both serve has no Istio answer to copy, so the lab answers 500 and says so.

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
MIXED_APIS = ("the lab's ingress serves this host both for a VirtualService bound to an Istio Gateway and for an "
              "HTTPRoute attached to a Gateway API Gateway; on a cluster each would be a gateway deployment of its "
              "own, and the lab has one ingress port, so it refuses to pick one")
_WELL_KNOWN_PORTS = {"http": 80, "https": 443}


def parse_gateway_api_duration(value: Any) -> float | None:
    """GEP-2257 durations ("10s", "500ms", "1h30m"); "0s" means no timeout (None)."""
    if value is None:
        return None
    parts = re.findall(r"([0-9]+)(h|ms|m|s)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        return None
    seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)
    return seconds or None


def _is_core_group(group: Any) -> bool:
    return group in (None, "", "core")


def _route_namespace(route: Mapping[str, Any]) -> str:
    return str(route["metadata"].get("namespace") or "default")


def _path_matches(path_match: Mapping[str, Any] | None, path: str) -> bool:
    kind = (path_match or {}).get("type", "PathPrefix")
    value = str((path_match or {}).get("value", "/"))
    if kind == "Exact":
        return path == value
    if kind == "RegularExpression":
        compiled = _compiled(value, False)
        return bool(compiled is not None and compiled.fullmatch(path))
    prefix = value.rstrip("/")
    return prefix in ("", path) or path.startswith(prefix + "/")


def _value_matches(rule: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if rule.get("type") == "RegularExpression":
        compiled = _compiled(str(rule.get("value", "")), False)
        return bool(compiled is not None and compiled.search(value))
    return value == str(rule.get("value", ""))


def http_route_match(match: Mapping[str, Any], request: Request) -> bool:
    """One HTTPRouteMatch: every field present must match."""
    parts = urllib.parse.urlsplit(request.path)
    if not _path_matches(match.get("path") or {"type": "PathPrefix", "value": "/"}, parts.path or "/"):
        return False
    if match.get("method") and str(match["method"]) != request.method.upper():
        return False
    for rule in match.get("headers") or []:
        if not _value_matches(rule, request.headers.get(str(rule.get("name", "")).lower())):
            return False
    if match.get("queryParams"):
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        for rule in match["queryParams"]:
            values = query.get(str(rule.get("name", "")))
            if not values or not _value_matches(rule, values[0]):
                return False
    return True


def _match_rank(match: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """Higher ranks first: Exact path, longer PathPrefix, a method, more headers, more query params."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind = path.get("type", "PathPrefix")
    exact = 1 if kind == "Exact" else 0
    length = len(str(path.get("value", "/"))) if kind in ("Exact", "PathPrefix") else 0
    return (exact, length, 1 if match.get("method") else 0, len(match.get("headers") or []),
            len(match.get("queryParams") or []))


def _hostname_rank(patterns: Sequence[str], host: str) -> int | None:
    """How specifically an HTTPRoute's (or listener's) hostnames name ``host``; None if they do not."""
    if not patterns:
        return 0
    ranks = [host_specificity(p.lower()) for p in patterns
             if host_matches(p.lower(), host) and not (p.startswith("*.") and host == p[2:].lower())]
    return max(ranks) if ranks else None


def _header_ops(modifier: Mapping[str, Any] | None) -> dict[str, Any]:
    """An HTTPHeaderFilter in the router's header-operation form (set / add / remove)."""
    modifier = modifier or {}
    ops: dict[str, Any] = {}
    if modifier.get("set"):
        ops["set"] = {h["name"]: h.get("value", "") for h in modifier["set"]}
    if modifier.get("add"):
        ops["add"] = {h["name"]: h.get("value", "") for h in modifier["add"]}
    if modifier.get("remove"):
        ops["remove"] = list(modifier["remove"])
    return ops


def _replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """ReplacePrefixMatch: the matched prefix (whole segments) replaced, without doubling "/"."""
    rest = path[len(prefix.rstrip("/")):]
    if replacement.endswith("/") and rest.startswith("/"):
        rest = rest[1:]
    elif rest and not rest.startswith("/") and replacement and not replacement.endswith("/"):
        rest = "/" + rest
    new = replacement + rest
    return new if new.startswith("/") else "/" + new


def _new_path(modifier: Mapping[str, Any], match: Mapping[str, Any], path: str) -> str:
    kind = modifier.get("type")
    if kind == "ReplaceFullPath":
        return str(modifier.get("replaceFullPath", "/"))
    if kind == "ReplacePrefixMatch":
        matched = (match.get("path") or {}).get("value", "/")
        return _replace_prefix(path, str(matched), str(modifier.get("replacePrefixMatch", "/")))
    return path


@dataclass(frozen=True)
class _Candidate:
    route: Mapping[str, Any]
    rule_index: int
    match: Mapping[str, Any]
    key: tuple[Any, ...]


def _candidates(routes: Sequence[tuple[Mapping[str, Any], int]], request: Request) -> list[_Candidate]:
    """Every (route, rule, match) that matches ``request``, best first; routes with a hostname rank."""
    found = []
    for route, hostname_rank in routes:
        meta = route["metadata"]
        for rule_index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
            matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
            for match_index, match in enumerate(matches):
                if not http_route_match(match, request):
                    continue
                rank = _match_rank(match)
                key = (-hostname_rank, *(-r for r in rank), meta.get("creationTimestamp") or "",
                       f"{meta.get('namespace', '')}/{meta.get('name', '')}", rule_index, match_index)
                found.append(_Candidate(route, rule_index, match, key))
    return sorted(found, key=lambda c: c.key)


class _GatewayApiMixin:
    """HTTPRoute routing for ``Snapshot`` (kept apart so the VirtualService code above reads alone)."""

    http_routes: list[Mapping[str, Any]]
    kubernetes_gateways: dict[tuple[str, str], Mapping[str, Any]]

    def mesh_http_routes(self, service: ServiceEntry, port: int | None,
                         client_namespace: str) -> list[Mapping[str, Any]]:
        """The HTTPRoutes a client in ``client_namespace`` applies to ``service`` (GEP-1426)."""
        attached = []
        for route in self.http_routes:
            namespace = _route_namespace(route)
            for parent in (route.get("spec") or {}).get("parentRefs") or []:
                if (parent.get("kind") == "Service" and _is_core_group(parent.get("group"))
                        and parent.get("name") == service.name
                        and (parent.get("namespace") or namespace) == service.namespace
                        and (parent.get("port") is None or port is None or int(parent["port"]) == port)):
                    attached.append(route)
                    break
        consumer = [r for r in attached
                    if _route_namespace(r) == client_namespace != service.namespace]
        if consumer:
            return consumer
        return [r for r in attached if _route_namespace(r) == service.namespace]

    def gateway_http_routes(self, host: str) -> list[tuple[Mapping[str, Any], int]]:
        """HTTPRoutes attached to a listener of a Gateway API Gateway serving ``host``, with their hostname rank."""
        found = []
        for route in self.http_routes:
            namespace = _route_namespace(route)
            spec = route.get("spec") or {}
            for parent in spec.get("parentRefs") or []:
                if (parent.get("kind", "Gateway"), parent.get("group", GATEWAY_API_GROUP)) != ("Gateway",
                                                                                               GATEWAY_API_GROUP):
                    continue
                gateway = self.kubernetes_gateways.get((parent.get("namespace") or namespace, parent.get("name")))
                if gateway is None:
                    continue
                rank = self._listener_rank(gateway, parent, namespace, spec.get("hostnames") or [], host)
                if rank is not None:
                    found.append((route, rank))
                    break
        return found

    @staticmethod
    def _listener_rank(gateway: Mapping[str, Any], parent: Mapping[str, Any], route_namespace: str,
                       hostnames: Sequence[str], host: str) -> int | None:
        best = None
        gateway_namespace = gateway["metadata"].get("namespace") or "default"
        for listener in (gateway.get("spec") or {}).get("listeners") or []:
            if listener.get("protocol") not in ("HTTP", "HTTPS"):
                continue
            if parent.get("sectionName") and parent["sectionName"] != listener.get("name"):
                continue
            if parent.get("port") is not None and int(parent["port"]) != int(listener.get("port", 0)):
                continue
            allowed = (((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from")) or "Same"
            if allowed not in ("Same", "All") or (allowed == "Same" and route_namespace != gateway_namespace):
                continue
            listener_host = listener.get("hostname")
            if listener_host and _hostname_rank([listener_host], host) is None:
                continue
            rank = _hostname_rank(list(hostnames), host)
            if rank is None:
                continue
            best = rank if best is None else max(best, rank)
        return best

    def _route_http(self, candidates: list[_Candidate], request: Request, rng: random.Random,
                    default_service: ServiceEntry | None, parent_namespace: str | None = None) -> Decision:
        """The chosen rule's action. ``parent_namespace``: a mesh route's Service namespace, whose
        Services a consumer route may name as backends (GEP-1426; conformance's MeshConsumerRoute)."""
        if not candidates:
            return Decision(status=404, flags="NR", body="", service=default_service)
        chosen = candidates[0]
        route, match = chosen.route, chosen.match
        rule = ((route.get("spec") or {}).get("rules") or [])[chosen.rule_index]
        namespace = _route_namespace(route)
        decision = Decision(route_name=rule.get("name"), service=default_service,
                            virtual_service=f"{namespace}/{route['metadata']['name']}")
        parts = urllib.parse.urlsplit(request.path)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        filters = rule.get("filters") or []
        for entry in filters:
            kind = entry.get("type")
            if kind == "RequestRedirect":
                return self._gateway_api_redirect(entry.get("requestRedirect") or {}, match, request, decision)
            if kind == "RequestHeaderModifier":
                decision.request_headers = _merge_header_ops(decision.request_headers,
                                                             _header_ops(entry.get("requestHeaderModifier")))
            elif kind == "ResponseHeaderModifier":
                decision.response_headers = _merge_header_ops(decision.response_headers,
                                                              _header_ops(entry.get("responseHeaderModifier")))
            elif kind == "URLRewrite":
                rewrite = entry.get("urlRewrite") or {}
                if rewrite.get("hostname"):
                    decision.authority = str(rewrite["hostname"])
                if rewrite.get("path"):
                    decision.path = _new_path(rewrite["path"], match, path) + query
        timeouts = rule.get("timeouts") or {}
        decision.timeout_seconds = parse_gateway_api_duration(timeouts.get("request"))
        # Istio (pilot/pkg/config/kube/gateway/conversion.go): with no retry, a non-zero
        # backendRequest becomes the route's timeout in place of request.
        backend_request = parse_gateway_api_duration(timeouts.get("backendRequest"))
        if backend_request:
            decision.timeout_seconds = backend_request
        backends = rule.get("backendRefs") or []
        weights = [max(0, int(b.get("weight", 1))) for b in backends]
        if not backends or sum(weights) == 0:
            decision.status, decision.body = 500, "no backend"
            return decision
        point = rng.random() * sum(weights)
        backend = backends[-1]
        for candidate, weight in zip(backends, weights, strict=True):
            if point < weight:
                backend = candidate
                break
            point -= weight
        for entry in filters:
            if entry.get("type") == "RequestMirror":
                mirrored = self._backend_service((entry.get("requestMirror") or {}).get("backendRef") or {}, namespace,
                                                 parent_namespace)
                if mirrored is not None:
                    found = self.resolve(mirrored, None, rng, request.source_namespace or "default")
                    if isinstance(found, Target):
                        decision.mirrors.append(found)
        for entry in backend.get("filters") or []:
            if entry.get("type") == "RequestHeaderModifier":
                decision.request_headers = _merge_header_ops(decision.request_headers,
                                                             _header_ops(entry.get("requestHeaderModifier")))
            elif entry.get("type") == "ResponseHeaderModifier":
                decision.response_headers = _merge_header_ops(decision.response_headers,
                                                              _header_ops(entry.get("responseHeaderModifier")))
        service = self._backend_service(backend, namespace, parent_namespace)
        if service is None:
            decision.status, decision.body = 500, f"backend {backend.get('name')} is not a Service this route may use"
            return decision
        return self._forward_to(decision, service, None, rng, request.source_namespace or "default")

    def _backend_service(self, backend: Mapping[str, Any], route_namespace: str,
                         parent_namespace: str | None = None) -> ServiceEntry | None:
        if backend.get("kind", "Service") != "Service" or not _is_core_group(backend.get("group")):
            return None
        namespace = backend.get("namespace") or route_namespace
        if namespace not in (route_namespace, parent_namespace):
            return None  # cross-namespace: needs a ReferenceGrant, which the lab does not read
        return self.service_for(f"{backend.get('name')}.{namespace}.{CLUSTER_DOMAIN}")

    @staticmethod
    def _gateway_api_redirect(redirect: Mapping[str, Any], match: Mapping[str, Any], request: Request,
                              decision: Decision) -> Decision:
        parts = urllib.parse.urlsplit(request.path)
        host, _ = split_host_port(request.authority)
        scheme = str(redirect.get("scheme") or request.scheme)
        if redirect.get("port") is not None:
            port = int(redirect["port"])
        elif redirect.get("scheme"):
            port = _WELL_KNOWN_PORTS.get(scheme, request.port)
        else:
            port = request.port
        hostname = str(redirect.get("hostname") or host)
        authority = hostname if _WELL_KNOWN_PORTS.get(scheme) == port else f"{hostname}:{port}"
        path = _new_path(redirect["path"], match, parts.path or "/") if redirect.get("path") else (parts.path or "/")
        decision.status = int(redirect.get("statusCode") or 302)
        decision.redirect = f"{scheme}://{authority}{path}" + (f"?{parts.query}" if parts.query else "")
        return decision


# --------------------------------------------------------------------------- snapshot


class Snapshot(_GatewayApiMixin):
    """One consistent view of VirtualServices, DestinationRules, Gateways, HTTPRoutes, Services and endpoints.

    ``gateways`` are Istio's; ``kubernetes_gateways`` are Gateway API's (``gateway.networking.k8s.io``).
    """

    def __init__(self, virtual_services: Sequence[Mapping[str, Any]] = (),
                 destination_rules: Sequence[Mapping[str, Any]] = (),
                 gateways: Sequence[Mapping[str, Any]] = (),
                 services: Sequence[ServiceEntry] = (),
                 endpoints: Sequence[Endpoint] = (),
                 workload_labels: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
                 http_routes: Sequence[Mapping[str, Any]] = (),
                 kubernetes_gateways: Sequence[Mapping[str, Any]] = (),
                 envoy_filters: Sequence[Mapping[str, Any]] = ()):
        self.envoy_filters = sorted(envoy_filters, key=_creation_key)
        self.http_routes = sorted(http_routes, key=_creation_key)
        self.kubernetes_gateways = {(g["metadata"].get("namespace", "default"), g["metadata"]["name"]): g
                                    for g in kubernetes_gateways}
        self.virtual_services = sorted(virtual_services, key=_creation_key)
        self.destination_rules = sorted(destination_rules, key=_creation_key)
        self.gateways = {(g["metadata"].get("namespace", "default"), g["metadata"]["name"]): g
                         for g in gateways}
        self.endpoints = list(endpoints)
        # Known workloads' pod labels, running or not (for sourceLabels matching).
        self.workload_labels = dict(workload_labels or {})
        for endpoint in self.endpoints:
            self.workload_labels.setdefault((endpoint.namespace, endpoint.workload), endpoint.labels)
        self.services: dict[str, ServiceEntry] = {service.fqdn: service for service in services}
        self._index_destination_rules()

    def _index_destination_rules(self) -> None:
        """Three pools per namespace, as istiod's ``SetDestinationRules`` (push_context.go) builds them."""
        # namespace -> [(resolved host, exportTo, rule)], oldest first
        self._local_rules: dict[str, list[tuple[str, frozenset[str], Mapping[str, Any]]]] = {}
        self._exported_rules: dict[str, list[tuple[str, frozenset[str], Mapping[str, Any]]]] = {}
        self._root_local_rules: list[tuple[str, frozenset[str], Mapping[str, Any]]] = []
        for rule in self.destination_rules:
            spec = rule.get("spec") or {}
            if spec.get("workloadSelector"):
                continue  # applies to selected client workloads only: not modelled
            namespace = rule["metadata"].get("namespace", "default")
            entry = (resolve_shortname_to_fqdn(str(spec.get("host", "")), namespace),
                     frozenset(str(e) for e in spec.get("exportTo") or []), rule)
            export_to = entry[1]
            # Visible to its own namespace unless exported only elsewhere.
            if not export_to or export_to & {"*", ".", namespace}:
                self._local_rules.setdefault(namespace, []).append(entry)
            # The mesh default exportTo is "*": no exportTo means exported everywhere.
            private_only = len(export_to) == 1 and bool(export_to & {".", namespace})
            if not private_only:
                self._exported_rules.setdefault(namespace, []).append(entry)
            elif namespace == MESH_ROOT_NAMESPACE:
                self._root_local_rules.append(entry)

    # ---- lookups

    def service_for(self, fqdn: str) -> ServiceEntry | None:
        return self.services.get(fqdn)

    def service_endpoints(self, service: ServiceEntry) -> list[Endpoint]:
        return [e for e in self.endpoints
                if e.namespace == service.namespace and service.selector and labels_match(service.selector, e.labels)]

    def destination_rule_for(self, fqdn: str, client_namespace: str,
                             service_namespace: str | None = None) -> Mapping[str, Any] | None:
        """The DestinationRule a client in ``client_namespace`` applies to ``fqdn`` (``destinationRule``)."""
        if service_namespace is None:
            service = self.service_for(fqdn)
            service_namespace = service.namespace if service else ""
        # 1. the client's own namespace (for a client in the root namespace: its private rules)
        if client_namespace != MESH_ROOT_NAMESPACE:
            found = _most_specific(self._local_rules.get(client_namespace, []), fqdn)
        else:
            found = _most_specific(self._root_local_rules, fqdn)
        if found:
            return _merged(found)
        # 2. the service's namespace, then 3. the root namespace: rules exported to the client
        for owner in (service_namespace, MESH_ROOT_NAMESPACE):
            if not owner:
                continue
            found = [entry for entry in _most_specific(self._exported_rules.get(owner, []), fqdn)
                     if not entry[1] or "*" in entry[1] or client_namespace in entry[1]]
            if found:
                return _merged(found)
        return None

    def traffic_policy(self, target: Target) -> dict[str, Any]:
        """The trafficPolicy the client's proxy applies to ``target``'s cluster (subset's fields win)."""
        rule = self.destination_rule_for(target.service.fqdn, target.client_namespace, target.service.namespace)
        return merged_traffic_policy(rule, target.subset)

    def mesh_virtual_service(self, fqdn: str) -> Mapping[str, Any] | None:
        """The VirtualService for mesh traffic to ``fqdn``: most specific host, then the oldest."""
        best: tuple[int, Mapping[str, Any]] | None = None
        for vs in self.virtual_services:
            spec = vs.get("spec", {})
            gateways = spec.get("gateways") or [MESH_GATEWAY]
            if MESH_GATEWAY not in gateways:
                continue
            namespace = vs["metadata"].get("namespace", "default")
            for host in spec.get("hosts") or []:
                pattern = resolve_shortname_to_fqdn(str(host), namespace)
                if host_matches(pattern, fqdn):
                    score = host_specificity(pattern)
                    if best is None or score > best[0]:
                        best = (score, vs)
        return best[1] if best else None

    def gateway_virtual_services(self, host: str, port: int) -> list[tuple[Mapping[str, Any], str]]:
        """VirtualServices bound to an existing Gateway that serves ``host``; with the gateway's name."""
        found = []
        for vs in self.virtual_services:
            spec = vs.get("spec", {})
            namespace = vs["metadata"].get("namespace", "default")
            vs_hosts = [str(h).lower() for h in spec.get("hosts") or []]
            if not any(host_matches(pattern, host) or host_matches(resolve_shortname_to_fqdn(pattern, namespace), host)
                       for pattern in vs_hosts):
                continue
            for reference in spec.get("gateways") or []:
                if reference == MESH_GATEWAY:
                    continue
                gateway_namespace, _, gateway_name = str(reference).rpartition("/")
                gateway_namespace = gateway_namespace or namespace
                gateway = self.gateways.get((gateway_namespace, gateway_name))
                if gateway is None or not self._gateway_serves(gateway, host, port):
                    continue
                found.append((vs, str(reference)))
                break
        return found

    @staticmethod
    def _gateway_serves(gateway: Mapping[str, Any], host: str, port: int) -> bool:
        for server in gateway.get("spec", {}).get("servers") or []:
            for written in server.get("hosts") or []:
                # Gateway hosts may carry a namespace prefix ("*/name", "./name").
                if host_matches(str(written).rpartition("/")[2].lower(), host):
                    return True
        return False

    # ---- decisions

    def route_mesh(self, request: Request, rng: random.Random) -> Decision:
        """Routes a workload-to-workload request by its Host header."""
        host, port = split_host_port(request.authority)
        fqdn = expand_request_host(host, request.source_namespace or "default")
        request.port = port or 80
        vs = self.mesh_virtual_service(fqdn)
        service = self.service_for(fqdn)
        routes = self.mesh_http_routes(service, request.port, request.source_namespace or "default") if service else []
        if routes and vs is not None and service is not None:
            if _virtual_service_first(vs, routes, service, request.source_namespace or "default", fqdn):
                routes = []
            else:
                vs = None
        if routes:
            return self._route_http(_candidates([(route, 0) for route in routes], request), request, rng, service,
                                    parent_namespace=service.namespace if service else None)
        if vs is None:
            if service is None:
                return Decision(status=404, flags="NR", body=f"no route for host {host}")
            return self._forward_to(Decision(service=service), service, None, rng)
        namespace = vs["metadata"].get("namespace", "default")
        routes = vs.get("spec", {}).get("http") or []
        return self._apply_routes(routes, [(vs, MESH_GATEWAY, namespace)] * len(routes), request, rng,
                                  gateway=MESH_GATEWAY, default_service=service)

    def route_gateway(self, request: Request, rng: random.Random, gateway_port: int = 80) -> Decision:
        """Routes a request that came in through the ingress gateway."""
        host, _ = split_host_port(request.authority)
        request.port = gateway_port
        bound = self.gateway_virtual_services(host, gateway_port)
        http_routes = self.gateway_http_routes(host)
        if http_routes and bound:
            return Decision(status=500, body=MIXED_APIS)
        if http_routes:
            return self._route_http(_candidates(http_routes, request), request, rng, None)
        routes: list[Mapping[str, Any]] = []
        origins: list[tuple[Mapping[str, Any], str, str]] = []
        for vs, gateway in bound:
            namespace = vs["metadata"].get("namespace", "default")
            for route in vs.get("spec", {}).get("http") or []:
                routes.append(route)
                origins.append((vs, gateway, namespace))
        if not routes:
            return Decision(status=404, flags="NR", body="")
        return self._apply_routes(routes, origins, request, rng, gateway=None, default_service=None)

    def _apply_routes(self, routes: Sequence[Mapping[str, Any]],
                      origins: Sequence[tuple[Mapping[str, Any], str, str]], request: Request,
                      rng: random.Random, gateway: str | None,
                      default_service: ServiceEntry | None) -> Decision:
        for index, route in enumerate(routes):
            vs, gateway_name, namespace = origins[index]
            if not self.route_matches(route, request, gateway or gateway_name, namespace):
                continue
            decision = Decision(route_name=route.get("name"),
                                virtual_service=f"{namespace}/{vs['metadata']['name']}",
                                service=default_service)
            return self._apply_action(route, request, namespace, decision, rng)
        return Decision(status=404, flags="NR", body="", service=default_service)

    def route_matches(self, route: Mapping[str, Any], request: Request, gateway: str, namespace: str) -> bool:
        matches = route.get("match")
        if not matches:
            return True
        return any(self.match_request(match or {}, request, gateway, namespace) for match in matches)

    def match_request(self, match: Mapping[str, Any], request: Request, gateway: str, namespace: str) -> bool:
        parts = urllib.parse.urlsplit(request.path)
        path = parts.path or "/"
        ignore_case = bool(match.get("ignoreUriCase"))
        if "uri" in match and not string_matches(match["uri"], path, ignore_case):
            return False
        if "method" in match and not string_matches(match["method"], request.method):
            return False
        if "scheme" in match and not string_matches(match["scheme"], request.scheme):
            return False
        if "authority" in match and not string_matches(match["authority"], request.authority):
            return False
        for name, rule in (match.get("headers") or {}).items():
            if not string_matches(rule, request.headers.get(str(name).lower())):
                return False
        for name, rule in (match.get("withoutHeaders") or {}).items():
            if string_matches(rule, request.headers.get(str(name).lower())):
                return False
        if match.get("queryParams"):
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
            for name, rule in match["queryParams"].items():
                values = query.get(str(name))
                if not values or not string_matches(rule, values[0]):
                    return False
        if match.get("port") and int(match["port"]) != request.port:
            return False
        if match.get("gateways"):
            names = {self._gateway_name(g, namespace) for g in match["gateways"]}
            if self._gateway_name(gateway, namespace) not in names:
                return False
        if match.get("sourceLabels"):
            labels = request.source_labels
            if labels is None or not labels_match(match["sourceLabels"], labels):
                return False
        if match.get("sourceNamespace") and match["sourceNamespace"] != request.source_namespace:
            return False
        return True

    @staticmethod
    def _gateway_name(reference: str, namespace: str) -> str:
        if reference == MESH_GATEWAY:
            return MESH_GATEWAY
        gateway_namespace, _, name = str(reference).rpartition("/")
        return f"{gateway_namespace or namespace}/{name}"

    def _apply_action(self, route: Mapping[str, Any], request: Request, namespace: str,
                      decision: Decision, rng: random.Random) -> Decision:
        # Hosts in the route are the VirtualService's (``namespace``); the DestinationRule is the client's.
        client_namespace = request.source_namespace or "default"
        if route.get("redirect"):
            return self._redirect(route["redirect"], request, decision)
        direct = route.get("directResponse")
        if direct:
            decision.status = int(direct.get("status", 200))
            body = direct.get("body") or {}
            decision.body = str(body.get("string", "")) if isinstance(body, Mapping) else ""
            return decision
        headers = route.get("headers") or {}
        decision.request_headers = dict(headers.get("request") or {})
        decision.response_headers = dict(headers.get("response") or {})
        decision.timeout_seconds = parse_duration(route.get("timeout"))
        decision.retries = route.get("retries")
        rewrite = route.get("rewrite") or {}
        parts = urllib.parse.urlsplit(request.path)
        if rewrite.get("uri") is not None:
            decision.path = self._rewrite_path(route, request, parts.path, str(rewrite["uri"]), namespace)
            if parts.query:
                decision.path = f"{decision.path}?{parts.query}"
        if rewrite.get("authority"):
            decision.authority = str(rewrite["authority"])

        fault = route.get("fault") or {}
        if fault.get("delay"):
            delay = fault["delay"]
            # Istio: with no percentage given, no request is delayed.
            if _chance(percentage_of(delay, absent=0.0), rng):
                decision.delay_seconds = parse_duration(delay.get("fixedDelay")) or 0.0
                decision.flags = "DI"  # Envoy: delay injected
        destinations = route.get("route") or []
        chosen = self._pick_weighted(destinations, rng)
        destination = (chosen or {}).get("destination") or {}
        fqdn = resolve_shortname_to_fqdn(str(destination.get("host", "")), namespace) if destination else ""
        service = self.service_for(fqdn) if fqdn else None
        decision.service = service
        if fault.get("abort"):
            abort = fault["abort"]
            # Istio: with no percentage given, no request is aborted.
            if _chance(percentage_of(abort, absent=0.0), rng):
                decision.status = int(abort.get("httpStatus", 503))
                decision.body = "fault filter abort"
                decision.flags = "DI,FI" if decision.flags == "DI" else "FI"
                return decision
        if chosen is None:
            decision.status = 503
            decision.body = NO_HEALTHY_UPSTREAM
            decision.flags = "UH"
            return decision
        if chosen.get("headers"):
            decision.request_headers = _merge_header_ops(decision.request_headers,
                                                         chosen["headers"].get("request") or {})
            decision.response_headers = _merge_header_ops(decision.response_headers,
                                                          chosen["headers"].get("response") or {})
        # ``mirror`` (+ ``mirrorPercentage``, all traffic when absent) and the newer ``mirrors`` list.
        wanted = []
        if route.get("mirror"):
            wanted.append((route["mirror"], _mirror_percent(route)))
        for entry in route.get("mirrors") or []:
            wanted.append(((entry or {}).get("destination") or {}, percentage_of(entry or {}, 100.0)))
        for mirror, percent in wanted:
            if not _chance(percent, rng):
                continue
            mirror_service = self.service_for(resolve_shortname_to_fqdn(str(mirror.get("host", "")), namespace))
            if mirror_service is not None:
                found = self.resolve(mirror_service, mirror.get("subset"), rng, client_namespace)
                if isinstance(found, Target):
                    decision.mirrors.append(found)
        if service is None:
            decision.status = 503
            decision.body = NO_HEALTHY_UPSTREAM
            decision.flags = "UH"
            return decision
        return self._forward_to(decision, service, destination.get("subset"), rng, client_namespace)

    def _forward_to(self, decision: Decision, service: ServiceEntry, subset: str | None,
                    rng: random.Random, client_namespace: str = "default") -> Decision:
        decision.service = service
        found = self.resolve(service, subset, rng, client_namespace)
        if isinstance(found, Target):
            decision.target = found
            return decision
        decision.status = 503
        decision.body = NO_HEALTHY_UPSTREAM
        decision.flags = found
        return decision

    def cluster_endpoints(self, service: ServiceEntry, subset: str | None,
                          client_namespace: str = "default") -> list[Endpoint] | str:
        """The endpoints of Envoy's cluster for ``service`` (and ``subset``), or "NC" when there is none."""
        endpoints = self.service_endpoints(service)
        if subset:
            rule = self.destination_rule_for(service.fqdn, client_namespace, service.namespace)
            subsets = {s.get("name"): s for s in (rule or {}).get("spec", {}).get("subsets") or []}
            if subset not in subsets:
                return "NC"  # Envoy: no cluster for this subset
            selector = subsets[subset].get("labels") or {}
            endpoints = [e for e in endpoints if labels_match(selector, e.labels)]
        return endpoints

    def resolve(self, service: ServiceEntry, subset: str | None, rng: random.Random,
                client_namespace: str = "default", exclude: frozenset[str] | set[str] = frozenset()) -> Target | str:
        """Picks an endpoint of ``service`` (in ``subset``), or returns the failure flag.

        ``exclude``: workloads not to pick (ejected by outlier detection, or tried before by a retry).
        """
        endpoints = self.cluster_endpoints(service, subset, client_namespace)
        if isinstance(endpoints, str):
            return endpoints
        endpoints = [e for e in endpoints if e.workload not in exclude]
        if not endpoints:
            return "UH"
        # A Service balances over pods, so a Deployment with more replicas takes a larger share.
        endpoint = rng.choices(endpoints, weights=[max(1, e.replicas) for e in endpoints])[0]
        return Target(service=service, endpoint=endpoint, subset=subset, client_namespace=client_namespace)

    @staticmethod
    def _pick_weighted(destinations: Sequence[Mapping[str, Any]], rng: random.Random) -> Mapping[str, Any] | None:
        """applyHTTPRouteDestination (route.go): one destination is a plain cluster, its weight unused;
        several are Envoy weighted clusters, weight 0 dropped, the rest relative to their sum."""
        if not destinations:
            return None
        if len(destinations) == 1:
            return destinations[0]
        weights = []
        for destination in destinations:
            try:
                weights.append(max(0, int(destination.get("weight") or 0)))
            except (TypeError, ValueError):
                weights.append(0)
        total = sum(weights)
        if total == 0:
            return None
        point = rng.random() * total
        for destination, weight in zip(destinations, weights, strict=True):
            if point < weight:
                return destination
            point -= weight
        return destinations[-1]

    def _rewrite_path(self, route: Mapping[str, Any], request: Request, path: str, replacement: str,
                      namespace: str) -> str:
        """Istio: a prefix match has its matched prefix replaced; otherwise the whole path is."""
        for match in route.get("match") or []:
            uri = (match or {}).get("uri") or {}
            if "prefix" in uri and string_matches(uri, path, bool((match or {}).get("ignoreUriCase"))):
                return replacement + path[len(str(uri["prefix"])):]
        return replacement

    @staticmethod
    def _redirect(redirect: Mapping[str, Any], request: Request, decision: Decision) -> Decision:
        parts = urllib.parse.urlsplit(request.path)
        host = str(redirect.get("authority") or request.authority)
        path = str(redirect.get("uri") or parts.path)
        scheme = str(redirect.get("scheme") or request.scheme)
        location = f"{scheme}://{host}{path}" + (f"?{parts.query}" if parts.query else "")
        decision.status = int(redirect.get("redirectCode") or 301)
        decision.redirect = location
        return decision


def _most_specific(entries: Sequence[tuple[str, frozenset[str], Mapping[str, Any]]],
                   fqdn: str) -> list[tuple[str, frozenset[str], Mapping[str, Any]]]:
    """MostSpecificHostMatch (pilot/pkg/model): the rules of the exact host, else of the longest wildcard."""
    exact = [entry for entry in entries if entry[0] == fqdn]
    if exact:
        return exact
    wildcards = [entry for entry in entries if entry[0].startswith("*") and host_matches(entry[0], fqdn)]
    if not wildcards:
        return []
    longest = max(len(entry[0]) for entry in wildcards)
    return [entry for entry in wildcards if len(entry[0]) == longest]


def _merged(entries: Sequence[tuple[str, frozenset[str], Mapping[str, Any]]]) -> Mapping[str, Any]:
    """mergeDestinationRule: the oldest rule, plus the subsets of the others whose names are new."""
    first = entries[0][2]
    if len(entries) == 1:
        return first
    subsets = list((first.get("spec") or {}).get("subsets") or [])
    names = {subset.get("name") for subset in subsets}
    for _, _, rule in entries[1:]:
        for subset in (rule.get("spec") or {}).get("subsets") or []:
            if subset.get("name") not in names:
                subsets.append(subset)
                names.add(subset.get("name"))
    return {**first, "spec": {**(first.get("spec") or {}), "subsets": subsets}}


def _mirror_percent(route: Mapping[str, Any]) -> float:
    """Istio: with no ``mirrorPercentage`` every request is mirrored."""
    if isinstance(route.get("mirrorPercentage"), Mapping):
        return percentage_of({"percentage": route["mirrorPercentage"]}, 100.0)
    for key in ("mirrorPercent", "mirror_percent"):
        if key in route:
            return percentage_of({"percent": route[key]}, 100.0)
    return 100.0


def _merge_header_ops(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {key: (dict(value) if isinstance(value, Mapping) else list(value))
                              for key, value in first.items()}
    for key, value in second.items():
        if key == "remove":
            merged["remove"] = list(merged.get("remove", [])) + list(value)
        else:
            merged.setdefault(key, {}).update(value)
    return merged

