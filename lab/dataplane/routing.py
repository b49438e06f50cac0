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


def parse_duration(value: Any) -> float | None:
    """Protobuf Duration text ("5s", "0.5s", "100ms", "1m", "1h") to seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|us|µs|ns)?\s*", str(value))
    if not match:
        return None
    number = float(match.group(1))
    unit = match.group(2) or "s"
    return number * {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]


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


def _creation_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name") or "")


# --------------------------------------------------------------------------- snapshot


class Snapshot:
    """One consistent view of VirtualServices, DestinationRules, Gateways, Services and endpoints."""

    def __init__(self, virtual_services: Sequence[Mapping[str, Any]] = (),
                 destination_rules: Sequence[Mapping[str, Any]] = (),
                 gateways: Sequence[Mapping[str, Any]] = (),
                 services: Sequence[ServiceEntry] = (),
                 endpoints: Sequence[Endpoint] = (),
                 workload_labels: Mapping[tuple[str, str], Mapping[str, str]] | None = None):
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
                decision.flags = "FI"
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

    def resolve(self, service: ServiceEntry, subset: str | None, rng: random.Random,
                client_namespace: str = "default") -> Target | str:
        """Picks an endpoint of ``service`` (in ``subset``), or returns the failure flag."""
        endpoints = self.service_endpoints(service)
        if subset:
            rule = self.destination_rule_for(service.fqdn, client_namespace, service.namespace)
            subsets = {s.get("name"): s for s in (rule or {}).get("spec", {}).get("subsets") or []}
            if subset not in subsets:
                return "NC"  # Envoy: no cluster for this subset
            selector = subsets[subset].get("labels") or {}
            endpoints = [e for e in endpoints if labels_match(selector, e.labels)]
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
