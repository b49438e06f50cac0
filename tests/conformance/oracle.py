"""What Istio does with a VirtualService or DestinationRule, written from Istio's own code.

The judge for issue 11: tests compare the collection and the lab against this module, and this
module against Istio's published samples. It imports nothing from ``plugins/`` or ``lab/``.
Each function names the upstream function it follows (istio/istio at the commit recorded in
``upstream/SOURCES.md``); the Go code itself is not copied, only its rules restated.

- Host names: ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN``, applied to the hosts and
  destinations of a VirtualService by ``pilot/pkg/model/virtualservice.go``
  ``ResolveVirtualServiceShortnames``: a name without a dot is ``name.<namespace of the object
  that names it>.svc.cluster.local``; a name with a dot, ``*`` or an IP address is literal.
- Weights: ``pilot/pkg/networking/core/route/route.go`` ``applyHTTPRouteDestination`` (called
  by ``TranslateRoute``) with ``processDestination`` / ``processWeightedDestination``: one
  destination becomes a plain cluster and takes all traffic whatever its weight; several become
  Envoy weighted clusters,
  weight-0 entries dropped, the rest sharing traffic in proportion to their weights (relative, not
  percentages; Envoy's ``WeightedCluster`` has no fixed total since total_weight was deprecated).
- Order: ``BuildHTTPRoutesForVirtualService`` emits one Envoy route per match, in VirtualService
  order, and Envoy takes the first route that matches; ``TranslateRoute`` / ``sourceMatchHTTP``
  drop matches whose ``port``, ``gateways``, ``sourceLabels`` or ``sourceNamespace`` do not fit
  the proxy before Envoy sees them.
- Acceptance: ``pkg/config/validation/validation.go`` ``ValidateVirtualService``,
  ``validateHTTPRouteDestinations`` / ``validateRouteDestinations`` (a negative weight, or several
  destinations whose weights total 0, are refused; any other total is fine since Istio 1.15),
  ``validateDestination``, ``validateSubsetName`` (a DNS-1123 label: ``v2.1`` is refused),
  ``ValidateDestinationRule``; ``pkg/config/validation/virtualservice.go``
  ``validateHTTPRouteConflict`` (route with redirect / directResponse / delegate) and the
  delegate rules; ``agent.ValidateWildcardDomain`` for host names. Messages are Istio's.
- Unreachable rules: ``validation.go`` ``analyzeUnreachableHTTPRules`` (and its TCP/TLS twins),
  the warnings istiod attaches to an accepted VirtualService.
- DestinationRule lookup: ``pilot/pkg/model/push_context.go`` ``(*PushContext).destinationRule``:
  the client's namespace first, then the service's namespace, then the root namespace, the most
  specific host winning inside one namespace (``MostSpecificHostMatch``).

Only what our issue needs is modelled; validation of header names, CORS, retries, TLS settings,
``exportTo`` and the like is not.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

DEFAULT_DOMAIN = "cluster.local"
MESH_GATEWAY = "mesh"
DEFAULT_ROOT_NAMESPACE = "istio-system"

Destination = tuple[str, "str | None"]  # (fully qualified host, subset or None)

# pkg/config/labels/instance.go: Istio's DNS-1123 label admits upper case letters.
_DNS1123_LABEL = re.compile(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$")


# --------------------------------------------------------------------------- host names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def resolve_shortname(host: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """``ResolveShortnameToFQDN``: only a dotless name is completed, in the object's namespace."""
    if not host or host == "*" or _is_ip(host) or "." in host:
        return host
    out = host
    if namespace:
        out = f"{out}.{namespace}"
    if domain:
        out = f"{out}.svc.{domain}"
    return out


def host_matches(pattern: str, name: str) -> bool:
    """``host.Name.Matches``: equal names, or a wildcard covering the other (both ways for two wildcards)."""
    pattern_wild, name_wild = pattern.startswith("*"), name.startswith("*")
    if pattern_wild and name_wild:
        longer, shorter = (pattern, name) if len(pattern) > len(name) else (name, pattern)
        return longer.endswith(shorter[1:])
    if pattern_wild:
        return name.endswith(pattern[1:])
    if name_wild:
        return pattern.endswith(name[1:])
    return pattern == name


def _specificity(pattern: str) -> tuple[int, int]:
    return (0, len(pattern)) if pattern.startswith("*") else (1, len(pattern))


# --------------------------------------------------------------------------- weights


def destination_key(destination: Mapping[str, Any], namespace: str) -> Destination:
    return (resolve_shortname(str(destination.get("host") or ""), namespace), destination.get("subset") or None)


def destination_shares(route_destinations: Sequence[Mapping[str, Any]] | None,
                       namespace: str) -> dict[Destination, Fraction]:
    """Share of traffic per (fqdn host, subset) that Envoy gets for one route's destinations.

    route.go ``applyHTTPRouteDestination``: a lone destination is a plain cluster (its weight is
    never read); several become weighted clusters without the weight-0 ones, each taking
    weight / sum of weights. Several entries naming the same host and subset add up. Raises
    ``ValueError`` for what istiod refuses (a negative weight; several destinations totalling 0),
    so no share is ever made up.
    """
    destinations = list(route_destinations or [])
    if not destinations:
        return {}
    if len(destinations) == 1:
        return {destination_key(destinations[0].get("destination") or {}, namespace): Fraction(1)}
    weights = []
    for entry in destinations:
        weight = int(entry.get("weight") or 0)
        if weight < 0:
            raise ValueError(f"weight {weight} < 0")
        weights.append(weight)
    total = sum(weights)
    if total == 0:
        raise ValueError("total destination weight = 0")
    shares: dict[Destination, Fraction] = {}
    for entry, weight in zip(destinations, weights, strict=True):
        if weight == 0:
            continue
        key = destination_key(entry.get("destination") or {}, namespace)
        shares[key] = shares.get(key, Fraction(0)) + Fraction(weight, total)
    return shares


def route_action(route: Mapping[str, Any]) -> str:
    """What an http route does: ``route``, ``redirect``, ``directResponse`` or ``delegate``."""
    for action in ("delegate", "redirect", "directResponse"):
        if route.get(action):
            return action
    return "route"


def http_route_shares(vs: Mapping[str, Any], namespace: str | None = None) -> list[dict[Destination, Fraction]]:
    """For each http route of ``vs`` in order, the share each (fqdn host, subset) gets.

    Routes that redirect, answer directly or delegate send to no destination here (``{}``).
    ``namespace`` defaults to the object's own.
    """
    namespace = namespace if namespace is not None else _namespace_of(vs)
    out = []
    for written in (vs.get("spec") or {}).get("http") or []:
        route = written or {}
        out.append(destination_shares(route.get("route"), namespace) if route_action(route) == "route" else {})
    return out


# --------------------------------------------------------------------------- first match


@dataclass
class Request:
    """One HTTP request as the client proxy sees it."""

    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    authority: str = ""
    scheme: str = "http"
    port: int = 80  # the listener (service) port
    source_labels: Mapping[str, str] = field(default_factory=dict)
    source_namespace: str = ""
    gateway: str = MESH_GATEWAY  # "mesh" for a sidecar, else the gateway's namespace/name


def _string_match(rule: Mapping[str, Any] | None, value: str | None, ignore_case: bool = False) -> bool:
    """Istio StringMatch as Envoy applies it; an empty rule asks only that the value be present."""
    if value is None:
        return False
    if not rule:
        return True
    if ignore_case:
        value = value.lower()
    if "exact" in rule:
        expected = str(rule["exact"])
        return value == (expected.lower() if ignore_case else expected)
    if "prefix" in rule:
        expected = str(rule["prefix"])
        return value.startswith(expected.lower() if ignore_case else expected)
    if "regex" in rule:
        # Envoy's safe_regex (RE2) must match the whole value.
        return re.fullmatch(str(rule["regex"]), value, re.IGNORECASE if ignore_case else 0) is not None
    return True


def _source_matches(match: Mapping[str, Any], request: Request) -> bool:
    """``sourceMatchHTTP``: gateways if listed, else source labels and namespace."""
    if match.get("gateways"):
        return request.gateway in match["gateways"]
    labels = match.get("sourceLabels") or {}
    if all(request.source_labels.get(k) == v for k, v in labels.items()):
        return not match.get("sourceNamespace") or match["sourceNamespace"] == request.source_namespace
    return False


def request_matches(match: Mapping[str, Any] | None, request: Request) -> bool:
    """One HTTPMatchRequest: every condition it sets holds (conditions are ANDed)."""
    match = match or {}
    if match.get("port") and int(match["port"]) != request.port:
        return False
    if not _source_matches(match, request):
        return False
    path, _sep, query = request.path.partition("?")
    if "uri" in match and not _string_match(match["uri"], path or "/", bool(match.get("ignoreUriCase"))):
        return False
    for name, pseudo in (("method", request.method), ("scheme", request.scheme), ("authority", request.authority)):
        if name in match and not _string_match(match[name], pseudo):
            return False
    for name, rule in (match.get("headers") or {}).items():
        if not _string_match(rule, request.headers.get(str(name).lower())):
            return False
    for name, rule in (match.get("withoutHeaders") or {}).items():
        if _string_match(rule, request.headers.get(str(name).lower())):
            return False
    if match.get("queryParams"):
        params: dict[str, str] = {}
        for pair in filter(None, query.split("&")):
            key, _sep, value = pair.partition("=")
            params.setdefault(key, value)
        for name, rule in match["queryParams"].items():
            if not _string_match(rule, params.get(str(name))):
                return False
    return True


def applies_to(vs: Mapping[str, Any], gateway: str = MESH_GATEWAY) -> bool:
    """Whether ``vs`` is programmed on ``gateway`` (no ``gateways`` means the mesh only)."""
    gateways = (vs.get("spec") or {}).get("gateways") or [MESH_GATEWAY]
    namespace = _namespace_of(vs)
    resolved = {g if g == MESH_GATEWAY or "/" in g else f"{namespace}/{g}" for g in gateways}
    return gateway in resolved


def first_match(vs: Mapping[str, Any], request: Request) -> int | None:
    """Index of the http route Envoy uses for ``request``: the first one that matches, or None."""
    for index, route in enumerate((vs.get("spec") or {}).get("http") or []):
        matches = (route or {}).get("match") or []
        if not matches or any(request_matches(match, request) for match in matches):
            return index
    return None


@dataclass(frozen=True)
class Answer:
    """What happens to one request: which route, what it does, and the share per destination."""

    route_index: int | None
    action: str | None
    shares: Mapping[Destination, Fraction]


def route_request(vs: Mapping[str, Any], request: Request, namespace: str | None = None) -> Answer:
    namespace = namespace if namespace is not None else _namespace_of(vs)
    if not applies_to(vs, request.gateway):
        return Answer(None, None, {})
    index = first_match(vs, request)
    if index is None:
        return Answer(None, None, {})
    route = (vs.get("spec") or {})["http"][index] or {}
    action = route_action(route)
    shares = destination_shares(route.get("route"), namespace) if action == "route" else {}
    return Answer(index, action, shares)


# --------------------------------------------------------------------------- unreachable rules


def _match_key(match: Any, strip_name: bool) -> str:
    if strip_name and isinstance(match, Mapping):
        match = {k: v for k, v in match.items() if k != "name"}
    return json.dumps(match, sort_keys=True)


def unreachable_rules(vs: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """``analyzeUnreachable{HTTP,TCP,TLS}Rules``: ``(kind, index, reason)`` of rules never used."""
    found = []
    spec = vs.get("spec") or {}
    for kind in ("http", "tcp", "tls"):
        seen: set[str] = set()
        empty_seen = False
        for index, route in enumerate(spec.get(kind) or []):
            if route is None:
                continue
            matches = route.get("match") or []
            if not matches:
                if empty_seen:
                    found.append((kind, index, "only the last rule can have no matches"))
                empty_seen = True
                continue
            duplicates = 0
            for match in matches:
                if empty_seen:
                    found.append((kind, index, "route without matches defined before"))
                    continue
                key = _match_key(match, strip_name=kind == "http")
                if key in seen:
                    duplicates += 1
                else:
                    seen.add(key)
            if duplicates == len(matches):
                found.append((kind, index, "all matches used by prior rules"))
    return found


# --------------------------------------------------------------------------- acceptance


def _validate_wildcard_domain(domain: str) -> list[str]:
    """``agent.ValidateWildcardDomain``: a wildcard only in the first label, DNS-1123 labels after."""
    if len(domain) > 255:
        return [f"domain name {domain!r} too long (max 255)"]
    if not domain:
        return ["empty domain name not allowed"]
    first, _sep, rest = domain.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.match(first):
        return [f"domain name {domain!r} invalid (label {first!r} invalid)"]
    if "." not in domain:
        return []
    parts = rest.split(".")
    if parts[-1].isdigit():
        return [f"domain name {domain!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"]
    for position, label in enumerate(parts):
        if position == len(parts) - 1 and label == "":
            return []
        if not is_dns1123_label(label):
            return [f"domain name {domain!r} invalid (label {label!r} invalid)"]
    return []


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.match(value) is not None


def validate_subset_name(name: Any) -> list[str]:
    """``validateSubsetName``."""
    if not name:
        return ["subset name cannot be empty"]
    if not is_dns1123_label(str(name)):
        return [f"subset name is invalid: {name}"]
    return []


def _validate_destination(destination: Mapping[str, Any] | None) -> list[str]:
    """``validateDestination``."""
    if destination is None:
        return []
    errors = []
    host = str(destination.get("host") or "")
    if host == "*":
        errors.append(f"invalid destination host {host}")
    else:
        errors += _validate_wildcard_domain(host)
    if destination.get("subset"):
        errors += validate_subset_name(destination["subset"])
    if destination.get("port") is not None:
        number = int((destination["port"] or {}).get("number") or 0)
        if not 0 < number <= 65535:
            errors.append(f"port number {number} must be in the range 1..65535")
    return errors


def _validate_route_destinations(destinations: Sequence[Any] | None) -> list[str]:
    """``validateHTTPRouteDestinations`` / ``validateRouteDestinations`` (weights and destinations)."""
    errors: list[str] = []
    total = 0
    for entry in destinations or []:
        if entry is None:
            errors.append("weight may not be nil")
            continue
        if entry.get("destination") is None:
            errors.append("destination is required")
        errors += _validate_destination(entry.get("destination"))
        weight = int(entry.get("weight") or 0)
        if weight < 0:
            errors.append(f"weight {weight} < 0")
        total += weight
    if len(destinations or []) > 1 and total == 0:
        errors.append("total destination weight = 0")
    return errors


def _validate_http_route_conflict(route: Mapping[str, Any], route_type: str) -> list[str]:
    """``validateHTTPRouteConflict``; ``route_type`` is independent, root or delegate."""
    errors = []
    name = route.get("name") or ""
    if route_type == "root":
        if route.get("redirect") is not None:
            errors.append(f"root HTTP route {name} must not specify redirect")
        if route.get("route"):  # an empty list decodes to no routes at all
            errors.append(f"root HTTP route {name} must not specify route")
        return errors
    if route_type == "delegate" and route.get("delegate") is not None:
        errors.append("delegate HTTP route cannot contain delegate")
    if route.get("redirect") is not None:
        if route.get("route"):
            errors.append("HTTP route cannot contain both route and redirect")
        if route.get("fault") is not None:
            errors.append("HTTP route cannot contain both fault and redirect")
        if route.get("rewrite") is not None:
            errors.append("HTTP route rule cannot contain both rewrite and redirect")
        if route.get("directResponse") is not None:
            errors.append("HTTP route rule cannot contain both direct_response and redirect")
    elif route.get("directResponse") is not None:
        if route.get("route"):
            errors.append("HTTP route cannot contain both route and direct_response")
        if route.get("fault") is not None:
            errors.append("HTTP route cannot contain both fault and direct_response")
        if route.get("rewrite") is not None:
            errors.append("HTTP route rule cannot contain both rewrite and direct_response")
    elif not route.get("route"):
        errors.append("HTTP route, redirect or direct_response is required")
    if route.get("mirror") is not None and route.get("mirrors"):
        errors.append("HTTP route cannot contain both mirror and mirrors")
    return errors


def _validate_virtual_service(spec: Mapping[str, Any]) -> list[str]:
    """``ValidateVirtualService`` (the parts issue 11 is about)."""
    errors = []
    hosts = [str(h) for h in spec.get("hosts") or []]
    gateways = spec.get("gateways") or []
    delegate = not hosts
    if delegate:
        if gateways:
            errors.append("delegate virtual service must have no gateways specified")
        if spec.get("tls"):
            errors.append("delegate virtual service must have no tls route specified")
        if spec.get("tcp"):
            errors.append("delegate virtual service must have no tcp route specified")
    applies_to_gateway = bool(gateways) and MESH_GATEWAY not in gateways
    applies_to_mesh = not applies_to_gateway
    all_hosts_valid = True
    for host in hosts:
        problems = _validate_wildcard_domain(host)
        if problems and not _is_ip(host):
            errors += problems
            all_hosts_valid = False
        elif not problems and applies_to_mesh and host == "*":
            errors.append("wildcard host * is not allowed for virtual services bound to the mesh gateway")
            all_hosts_valid = False
    if all_hosts_valid:
        for i, first in enumerate(hosts):
            for second in hosts[i + 1:]:
                if host_matches(first, second):
                    errors.append(f"duplicate hosts in virtual service: {first} & {second}")
    if not (spec.get("http") or spec.get("tcp") or spec.get("tls")):
        errors.append("http, tcp or tls must be provided in virtual service")
    for route in spec.get("http") or []:
        if route is None:
            errors.append("http route may not be null")
            continue
        route_type = "delegate" if delegate else ("root" if route.get("delegate") is not None else "independent")
        errors += _validate_http_route_conflict(route, route_type)
        if route.get("mirror") is not None:
            errors += _validate_destination(route["mirror"])
        errors += _validate_route_destinations(route.get("route"))
    for kind in ("tcp", "tls"):
        for route in spec.get(kind) or []:
            errors += _validate_route_destinations((route or {}).get("route"))
    return errors


def _validate_destination_rule(spec: Mapping[str, Any]) -> list[str]:
    """``ValidateDestinationRule`` (host and subset names)."""
    errors = _validate_wildcard_domain(str(spec.get("host") or ""))
    seen: set[str] = set()
    for subset in spec.get("subsets") or []:
        if subset is None:
            errors.append("subset may not be null")
            continue
        name = subset.get("name") or ""
        if name in seen:
            errors.append(f"duplicate subset names: {name}")
        seen.add(name)
        errors += validate_subset_name(name)
    return errors


def validation_errors(obj: Mapping[str, Any]) -> list[str]:
    """Why istiod's webhook would refuse ``obj`` (empty: it is accepted). Kinds other than
    VirtualService and DestinationRule are not judged here."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "VirtualService":
        return _validate_virtual_service(spec)
    if obj.get("kind") == "DestinationRule":
        return _validate_destination_rule(spec)
    return []


def accepts(obj: Mapping[str, Any]) -> bool:
    return not validation_errors(obj)


# --------------------------------------------------------------------------- DestinationRule lookup


def destination_rule_for(fqdn: str, client_namespace: str, service_namespace: str,
                         rules: Sequence[Mapping[str, Any]],
                         root_namespace: str = DEFAULT_ROOT_NAMESPACE) -> Mapping[str, Any] | None:
    """``(*PushContext).destinationRule``: client namespace, service namespace, root namespace.

    Inside one namespace the most specific host wins (an exact name over any wildcard, a longer
    wildcard over a shorter). ``exportTo`` is taken as its default (exported everywhere).
    """
    order = [client_namespace] if client_namespace != root_namespace else []
    order += [service_namespace, root_namespace]
    for namespace in order:
        best: tuple[tuple[int, int], Mapping[str, Any]] | None = None
        for rule in rules:
            if _namespace_of(rule) != namespace:
                continue
            pattern = resolve_shortname(str((rule.get("spec") or {}).get("host") or ""), namespace)
            if host_matches(pattern, fqdn) and not (fqdn.startswith("*") and not pattern.startswith("*")):
                if best is None or _specificity(pattern) > best[0]:
                    best = (_specificity(pattern), rule)
        if best is not None:
            return best[1]
    return None


def _namespace_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")
