"""What istiod's validating webhook refuses, for VirtualService, DestinationRule and Gateway.

Written from Istio's own code, release 1.30.3 (commit 56df41f6), never from the collection's:
``pkg/config/validation/validation.go``, ``pkg/config/validation/virtualservice.go``,
``pkg/config/validation/agent/validation.go``, ``pkg/config/labels/instance.go``,
``pkg/config/host/name.go`` and ``pkg/webhooks/validation/server/server.go``. Each function names
the upstream function it follows; messages are Istio's, word for word.

How errors add up, as in Istio (it matters for the message a user sees):

- a rule returns nothing, one plain error, or a hashicorp ``multierror`` list;
- ``appendErrors``/``AppendValidation`` keep a lone error plain and start a list from the second
  one on; lists are flattened; a few rules call ``multierror.Append`` directly, which makes a list
  even of one error;
- a list prints as ``"1 error occurred:\\n\\t* ...\\n\\n"`` or ``"N errors occurred:\\n\\t* a\\n\\t* b\\n\\n"``
  (hashicorp's ``ListFormatFunc``); the webhook answers ``"configuration is invalid: " + that``.

Covered: hosts (wildcards, the mesh gateway, duplicates, delegates), gateway names, HTTP routes
(route/redirect/directResponse/delegate conflicts, match blocks, header operations, fault,
mirror(s), redirect, direct response, retries, rewrite, timeout), destinations, weights, subsets,
TCP/TLS routes, exportTo, DestinationRule hosts and subsets, Gateway servers, hosts and ports.
Not covered (accepted as istiod would accept valid ones): CORS details, the inner fields of
traffic policies and server TLS options, and warnings (istiod's warnings never refuse a write).
Regular expressions are checked with Python's ``re`` plus RE2's refusals of look-around and
back-references, so the wording of a bad-regex message may differ from Go's.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lab.webhook import crd_rules

VALIDATED_KINDS = ("VirtualService", "DestinationRule", "Gateway")
ISTIO_NETWORKING_GROUP = "networking.istio.io"
MESH_GATEWAY = "mesh"  # constants.IstioMeshGateway
JWT_CLAIM_HEADER = "@request.auth.claims"  # jwt.HeaderJWTClaim
DRY_RUN_ANNOTATION = "istio.io/dry-run"  # annotation.IoIstioDryRun
ALWAYS_REJECT = "internal.istio.io/webhook-always-reject"  # constants.AlwaysReject
INTERNAL_PARENT_NAMESPACE = "internal.istio.io/parent-namespace"  # constants.InternalParentNamespace
INTERNAL_PARENT_NAMES = "internal.istio.io/parents"  # constants.InternalParentNames
VALID_TOP_LEVEL_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}  # server.go validFields

# labels/instance.go
_DNS1123_LABEL = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL}$")
_WILDCARD_PREFIX_RE = re.compile(rf"^(\*|(\*|\*-)?{_DNS1123_LABEL})$")
_QUALIFIED_NAME = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_TAG_RE = re.compile(rf"^({_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*/)?({_QUALIFIED_NAME})$")
_LABEL_VALUE_RE = re.compile(f"^({_QUALIFIED_NAME})?$")
# validation.go: validHeaderNameRegex, httpHeaderValueRegexp
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")
_HEADER_VALUE_RE = re.compile("^[^\x00-\x08\x0a-\x1f\x7f]*$")
_PSEUDO_HEADERS = {":method", ":scheme", ":authority", ":path", ":status"}
# istiod decodes durations with the legacy jsonpb (pkg/util/protomarshal), which reads them with Go's
# time.ParseDuration: "0.5s", "500ms", "1m30s" are all durations there.
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_RE = re.compile(r"^([-+])?((?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|0)$")
_DURATION_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo",
              "redis": "Redis", "mysql": "MySQL"}  # protocol.Parse
_RETRY_ON = {"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
             "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
             "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
             "unavailable"}  # supportedRetryOnPolicies
_HTTP_STATUS_TEXT = {100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303,
                     304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413,
                     414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502,
                     503, 504, 505, 506, 507, 508, 510, 511}  # Go's http.StatusText knows these codes
_GRPC_STATUS = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}


# --------------------------------------------------------------------------- errors as Istio adds them


class MultiError(list):
    """hashicorp/go-multierror's ``*Error``: a flat list of messages."""

    def __str__(self) -> str:  # multierror.ListFormatFunc
        if len(self) == 1:
            return f"1 error occurred:\n\t* {self[0]}\n\n"
        points = "\n\t".join(f"* {error}" for error in self)
        return f"{len(self)} errors occurred:\n\t{points}\n\n"


Error = str | MultiError | None


def multierror_append(error: Error, *errors: Error) -> MultiError:
    """``multierror.Append``: always a list, nested lists flattened, nils dropped."""
    result = MultiError(error) if isinstance(error, MultiError) else MultiError([error] if error else [])
    for other in errors:
        if isinstance(other, MultiError):
            result.extend(other)
        elif other:
            result.append(other)
    return result


def append_errors(error: Error, *errors: Error) -> Error:
    """``agent.AppendErrors`` / ``agent.AppendValidation``: a lone error stays as it is."""
    for other in errors:
        if not error:
            error = other or None
        elif other:
            error = multierror_append(error, other)
    return error


def message(error: Error) -> str:
    return str(error) if error else ""


def _q(value: Any) -> str:
    """Go's ``%q`` for a string."""
    return json.dumps(str(value), ensure_ascii=False)


def _go_list(values: Sequence[Any]) -> str:
    """Go's ``%v`` for a []string."""
    return "[" + " ".join(str(v) for v in values) + "]"


def _go_float(value: float) -> str:
    """Go's ``%v`` for a float64: the shortest form, no ".0" on whole numbers."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)


def _present(obj: Mapping[str, Any] | None, key: str) -> bool:
    """A message field is set (non-nil) when the key is there and not null."""
    return isinstance(obj, Mapping) and obj.get(key) is not None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- names and hosts


def is_dns1123_label(value: str) -> bool:  # labels.IsDNS1123Label
    return len(value) <= 63 and bool(_DNS1123_LABEL_RE.match(value))


def is_wildcard_dns1123_label(value: str) -> bool:  # labels.IsWildcardDNS1123Label
    return len(value) <= 63 and bool(_WILDCARD_PREFIX_RE.match(value))


def is_valid_ip_address(value: str) -> bool:  # netutil.IsValidIPAddress
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_dns1123_preconditions(name: str) -> Error:  # agent.CheckDNS1123Preconditions
    if len(name) > 255:
        return f"domain name {_q(name)} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def validate_dns1123_labels(domain: str) -> Error:  # agent.ValidateDNS1123Labels
    parts = domain.split(".")
    top_level = parts[-1]
    if top_level.lstrip("+-").isdigit():
        return f"domain name {_q(domain)} invalid (top level domain {_q(top_level)} cannot be all-numeric)"
    for index, label in enumerate(parts):
        if index == len(parts) - 1 and label == "":
            return None  # a trailing dot, as in "istio.io."
        if not is_dns1123_label(label):
            return f"domain name {_q(domain)} invalid (label {_q(label)} invalid)"
    return None


def validate_fqdn(fqdn: str) -> Error:  # agent.ValidateFQDN
    return check_dns1123_preconditions(fqdn) or validate_dns1123_labels(fqdn)


def validate_wildcard_domain(domain: str) -> Error:  # agent.ValidateWildcardDomain
    error = check_dns1123_preconditions(domain)
    if error:
        return error
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f"domain name {_q(domain)} invalid (label {_q(first)} invalid)"
    if dot:
        return validate_dns1123_labels(rest)
    return None


def validate_wildcard_domain_for_gateway_vs(sni: bool, domain: str) -> Error:
    # agent.ValidateWildcardDomainForVirtualServiceBoundToGateway
    error = check_dns1123_preconditions(domain)
    if error:
        return error
    if sni and domain.startswith("outbound_"):
        parts = domain.split("_")
        if len(parts) < 4:
            return f"domain name {domain} invalid, should follow 'outbound_.<PORT>_._.<HOSTNAME>' format"
        port, hostname = parts[1].strip("."), parts[3].strip(".")
        if not re.search("[0-9]", port):
            return (f"domain name {_q(domain)} invalid (label {_q(port)} invalid). "
                    "should follow outbound_.<PORT>_._.<HOSTNAME> format")
        if not re.search("[a-zA-Z]", hostname):
            return (f"domain name {_q(domain)} invalid (label {_q(hostname)} invalid). "
                    "should follow outbound_.<PORT>_._.<HOSTNAME> format")
        return None
    return validate_wildcard_domain(domain)


def host_name_matches(first: str, second: str) -> bool:  # host.Name.Matches
    first_wild, second_wild = first.startswith("*"), second.startswith("*")
    if first_wild and second_wild:
        return (second[1:].endswith(first[1:]) if len(first) < len(second) else first[1:].endswith(second[1:]))
    if first_wild:
        return second.endswith(first[1:])
    if second_wild:
        return first.endswith(second[1:])
    return first == second


def host_name_subset_of(first: str, second: str) -> bool:  # host.Name.SubsetOf
    first_wild, second_wild = first.startswith("*"), second.startswith("*")
    if first_wild:
        return second_wild and len(first) >= len(second) and first[1:].endswith(second[1:])
    if second_wild:
        return first.endswith(second[1:])
    return first == second


def validate_port(port: int) -> Error:  # agent.ValidatePort
    if 1 <= port <= 65535:
        return None
    return f"port number {port} must be in the range 1..65535"


def validate_label_instance(labels: Mapping[str, Any] | None) -> Error:  # labels.Instance.Validate
    if not labels:
        return None
    errors: Error = None
    for key, value in labels.items():
        error = _validate_tag_key(str(key))
        if error:
            errors = multierror_append(errors, error)
        if not _LABEL_VALUE_RE.match(str(value if value is not None else "")):
            errors = multierror_append(errors, f"invalid tag value: {_q(value)}")
    return errors


def _validate_tag_key(key: str) -> Error:  # labels.validateTagKey
    found = _TAG_RE.match(key)
    if not found:
        return f"invalid tag key: {_q(key)}"
    if found.group(1) and len(found.group(1)) - 1 > 253:
        return f"invalid tag key: {_q(key)} (DNS prefix is too long)"
    if len(found.group(2)) > 63:
        return f"invalid tag key: {_q(key)} (name is too long)"
    return None


def validate_ip_subnet(subnet: str) -> Error:  # agent.ValidateIPSubnet
    if subnet.count("/") == 1:
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            return f"{subnet} is not a valid CIDR block"
        return None
    return None if is_valid_ip_address(subnet) else f"{subnet} is not a valid IP"


def validate_duration(value: Any) -> Error:  # agent.ValidateDuration
    parsed = _DURATION_RE.match(str(value).strip())
    if not parsed:
        # Approximation: istiod fails earlier, decoding the proto ("error decoding configuration").
        return f"duration {_q(value)} is not a valid protobuf Duration"
    sign, text = parsed.groups()
    nanos = 0
    for number, unit in _DURATION_PART_RE.findall(text):
        whole, _dot, fraction = number.partition(".")
        scale = _DURATION_NANOS[unit]
        nanos += int(whole or 0) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    if sign == "-":
        nanos = -nanos
    if nanos < 1_000_000:
        return "duration must be greater than 1ms"
    if nanos % 1_000_000:
        return "only durations to ms precision are supported"
    return None


def validate_export_to(namespace: str, export_to: Sequence[Any] | None) -> Error:
    # validateExportTo, for a VirtualService or DestinationRule without workloadSelector
    errors: Error = None
    if not export_to:
        return None
    seen: set[str] = set()
    for entry in (str(e) for e in export_to):
        key = namespace if entry == "." else entry
        if key in seen:
            if key != entry:
                errors = append_errors(errors, f"duplicate entries in exportTo: . and current namespace {namespace}")
            else:
                errors = append_errors(errors, f"duplicate entries in exportTo for entry {entry}")
            continue
        if key == "~":  # visibility.Instance.Validate
            errors = append_errors(errors, "exportTo ~ (none) is not allowed for Istio configuration objects")
        elif key not in (".", "*") and not is_dns1123_label(key):
            errors = append_errors(errors, "only .,*, or a valid DNS 1123 label is allowed as exportTo entry")
        else:
            seen.add(key)
    if "*" in seen and len(export_to) > 1:
        errors = append_errors(errors, "cannot have both public (*) and non-public exportTo values for a resource")
    return errors


# --------------------------------------------------------------------------- headers and string matches


def _is_jwt_claim(name: str) -> bool:  # jwt.ToRoutingClaim(...).Match
    if not name.lower().startswith(JWT_CLAIM_HEADER):
        return False
    rest = name[len(JWT_CLAIM_HEADER):]
    return (rest.startswith(".") and len(rest) > 1) or (rest.startswith("[") and rest.endswith("]") and len(rest) > 2)


def _is_internal_header(name: str) -> bool:  # isInternalHeader
    return name.startswith(":") or name.lower() == "host"


def _is_authority_header(name: str) -> bool:  # isAuthorityHeader
    return name.lower() in (":authority", "host")


def validate_header_name_or_jwt_claim_route(name: str) -> Error:  # ValidateHTTPHeaderNameOrJwtClaimRoute
    if not name:
        return "header name cannot be empty"
    if _is_jwt_claim(name) or name in _PSEUDO_HEADERS:
        return None
    if not _HEADER_NAME_RE.match(name):
        return f"header name {name} is not a valid header name"
    return None


def validate_header_with_authority_operation_name(name: str) -> Error:
    # ValidateHTTPHeaderWithAuthorityOperationName
    if not name:
        return "header name cannot be empty"
    if _is_internal_header(name) and not _is_authority_header(name):
        return f'invalid header {_q(name)}: header cannot have ":" prefix'
    return None


def validate_header_operation_name(name: str) -> Error:  # ValidateHTTPHeaderOperationName
    if not name:
        return "header name cannot be empty"
    if name.lower() == "host":
        return f'invalid header {_q(name)}: cannot set Host header'
    if _is_internal_header(name):
        return f'invalid header {_q(name)}: header cannot have ":" prefix'
    return None


def validate_header_value(value: Any) -> Error:  # ValidateHTTPHeaderValue
    text = str(value)
    if not _HEADER_VALUE_RE.match(text):
        return f"header value configuration {text} is invalid"
    return None


def _validate_header_operations(headers: Mapping[str, Any] | None) -> Error:
    """The header operations of a route (validateHTTPRoute) or a destination (validateHTTPRouteDestinations)."""
    errors: Error = None
    headers = headers if isinstance(headers, Mapping) else {}
    request = headers.get("request") if isinstance(headers.get("request"), Mapping) else {}
    response = headers.get("response") if isinstance(headers.get("response"), Mapping) else {}
    for operation in ("add", "set"):
        for name, value in (request.get(operation) or {}).items():
            errors = append_errors(errors, validate_header_with_authority_operation_name(str(name)),
                                   validate_header_value(value))
    for name in request.get("remove") or []:
        errors = append_errors(errors, validate_header_operation_name(str(name)))
    for operation in ("add", "set"):
        for name, value in (response.get(operation) or {}).items():
            errors = append_errors(errors, validate_header_operation_name(str(name)), validate_header_value(value))
    for name in response.get("remove") or []:
        errors = append_errors(errors, validate_header_operation_name(str(name)))
    return errors


def validate_string_regexp(expression: str, where: str) -> Error:  # validateStringRegexp
    if len(expression) > 1024:
        return f"{_q(where)}: regex is too large, max length allowed is 1024"
    problem = None
    if re.search(r"\(\?<?[=!]|\\[1-9]", expression):
        problem = "invalid or unsupported Perl syntax"  # RE2 has no look-around or back-references
    else:
        try:
            re.compile(expression)
        except re.error as exc:
            problem = str(exc)
    if problem is None:
        return None
    return (f"{_q(where)}: error parsing regexp: {problem}; "
            "Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)")


def _match_type(match: Mapping[str, Any] | None) -> str | None:
    if not isinstance(match, Mapping):
        return None
    for kind in ("exact", "prefix", "regex"):
        if match.get(kind) is not None:
            return kind
    return None


def validate_string_match(match: Mapping[str, Any] | None, where: str) -> Error:  # validateStringMatch
    kind = _match_type(match)
    if kind == "prefix" and not str(match["prefix"]):  # type: ignore[index]
        return f"{_q(where)}: prefix string match should not be empty"
    if kind == "regex":
        return validate_string_match_regexp(match, where)
    return None


def validate_string_match_regexp(match: Mapping[str, Any] | None, where: str) -> Error:
    # validateStringMatchRegexp
    if _match_type(match) != "regex":
        return None
    expression = str(match["regex"])  # type: ignore[index]
    if not expression:
        return f"{_q(where)}: regex string match should not be empty"
    return validate_string_regexp(expression, where)


def validate_gateway_names(names: Sequence[Any], gateway_semantics: bool = False) -> Error:
    # validateGatewayNames
    errors: Error = None
    for name in (str(n) for n in names):
        namespace, slash, gateway = name.partition("/")
        if not slash:
            # Istio also warns about the legacy "name.namespace" form; warnings never refuse.
            return append_errors(errors, validate_fqdn(name))
        if not namespace or not gateway:
            errors = append_errors(errors, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(namespace):
            errors = append_errors(errors, f"invalid value for namespace: {_q(namespace)}")
        if not is_dns1123_label(gateway) and not gateway_semantics:
            errors = append_errors(errors, f"invalid value for gateway name: {_q(gateway)}")
    return errors


# --------------------------------------------------------------------------- destinations and weights


def validate_subset_name(name: str) -> Error:  # validateSubsetName
    if not name:
        return "subset name cannot be empty"
    if not is_dns1123_label(name):
        return f"subset name is invalid: {name}"
    return None


def validate_destination(destination: Mapping[str, Any] | None) -> Error:  # validateDestination
    if destination is None:
        return None
    errors: Error = None
    host = str(destination.get("host") or "")
    if host == "*":
        errors = append_errors(errors, f"invalid destination host {host}")
    else:
        errors = append_errors(errors, validate_wildcard_domain(host))
    if destination.get("subset"):
        errors = append_errors(errors, validate_subset_name(str(destination["subset"])))
    if _present(destination, "port"):
        errors = append_errors(errors, validate_port(_int(destination["port"].get("number"))))
    return errors


def validate_weight(weight: int) -> Error:  # validateWeight
    return f"weight {weight} < 0" if weight < 0 else None


def _validate_weighted_destinations(destinations: Sequence[Any], gateway_semantics: bool, http: bool) -> Error:
    # The loop validateHTTPRouteDestinations and validateRouteDestinations share; only an HTTP
    # destination carries header operations.
    errors: Error = None
    total = 0
    for entry in destinations:
        if entry is None:
            errors = multierror_append(errors, "weight may not be nil")
            continue
        if not _present(entry, "destination"):
            errors = multierror_append(errors, "destination is required")
        if http:
            errors = append_errors(errors, _validate_header_operations(entry.get("headers")))
        if not gateway_semantics:
            errors = append_errors(errors, validate_destination(entry.get("destination")))
        weight = _int(entry.get("weight"))
        errors = append_errors(errors, validate_weight(weight))
        total += weight
    if len(destinations) > 1 and total == 0:
        errors = append_errors(errors, "total destination weight = 0")
    return errors


def validate_http_route_destinations(destinations: Sequence[Any], gateway_semantics: bool = False) -> Error:
    # validateHTTPRouteDestinations
    return _validate_weighted_destinations(destinations, gateway_semantics, http=True)


def validate_route_destinations(destinations: Sequence[Any], gateway_semantics: bool = False) -> Error:
    # validateRouteDestinations (TCP and TLS routes)
    return _validate_weighted_destinations(destinations, gateway_semantics, http=False)


# --------------------------------------------------------------------------- HTTP routes

INDEPENDENT_ROUTE, ROOT_ROUTE, DELEGATE_ROUTE = "independent", "root", "delegate"


def http_route_type(route: Mapping[str, Any], is_delegate: bool) -> str:  # getHTTPRouteType
    if is_delegate:
        return DELEGATE_ROUTE
    if _present(route, "delegate"):
        return ROOT_ROUTE
    return INDEPENDENT_ROUTE


def validate_http_route_conflict(route: Mapping[str, Any], route_type: str) -> Error:
    # validateHTTPRouteConflict
    errors: Error = None
    name = route.get("name") or ""
    has_redirect, has_direct = _present(route, "redirect"), _present(route, "directResponse")
    has_route = bool(route.get("route"))  # Go: http.Route != nil (an empty list decodes to nil)
    if route_type == ROOT_ROUTE:
        # A root route may only delegate.
        if has_redirect:
            errors = append_errors(errors, f"root HTTP route {name} must not specify redirect")
        if has_route:
            errors = append_errors(errors, f"root HTTP route {name} must not specify route")
        return errors
    if route_type == DELEGATE_ROUTE and _present(route, "delegate"):
        errors = append_errors(errors, "delegate HTTP route cannot contain delegate")
    destinations = route.get("route") or []
    # A redirect, or else a direct response, excludes a route, a fault and a rewrite (Istio checks
    # the two in turn with the same three rules; a redirect also excludes a direct response).
    answer = "redirect" if has_redirect else "direct_response" if has_direct else ""
    if answer:
        if destinations:
            errors = append_errors(errors, f"HTTP route cannot contain both route and {answer}")
        if _present(route, "fault"):
            errors = append_errors(errors, f"HTTP route cannot contain both fault and {answer}")
        if _present(route, "rewrite"):
            errors = append_errors(errors, f"HTTP route rule cannot contain both rewrite and {answer}")
        if has_redirect and has_direct:
            errors = append_errors(errors, "HTTP route rule cannot contain both direct_response and redirect")
    elif not destinations:
        errors = append_errors(errors, "HTTP route, redirect or direct_response is required")
    if _present(route, "mirror") and route.get("mirrors"):
        errors = append_errors(errors, "HTTP route cannot contain both mirror and mirrors")
    return errors


def validate_http_route_match_request(route: Mapping[str, Any]) -> Error:  # validateHTTPRouteMatchRequest
    errors: Error = None
    matches = [m for m in route.get("match") or [] if m is not None]
    for match in matches:
        for name, header in (match.get("headers") or {}).items():
            if header is None:
                errors = append_errors(errors, f"header match {name} cannot be null")
            errors = append_errors(errors, validate_header_name_or_jwt_claim_route(str(name)),
                                   validate_string_match(header, "headers"))
        for name, header in (match.get("withoutHeaders") or {}).items():
            errors = append_errors(errors, validate_header_name_or_jwt_claim_route(str(name)))
            # "*" is not a regex there: Istio reads it as "present".
            if header is not None and header.get("regex") != "*":
                errors = append_errors(errors, validate_string_match(header, "withoutHeaders"))
        # An empty uri prefix is allowed (Envoy accepts it); scheme, method, authority may not be empty.
        errors = append_errors(errors, validate_string_match_regexp(match.get("uri"), "uri"),
                               validate_string_match(match.get("scheme"), "scheme"),
                               validate_string_match(match.get("method"), "method"),
                               validate_string_match(match.get("authority"), "authority"))
        for query in (match.get("queryParams") or {}).values():
            errors = append_errors(errors, validate_string_match(query, "queryParams"))
    for match in matches:
        errors = append_errors(errors, _validate_match_source(match))
        source_namespace = str(match.get("sourceNamespace") or "")
        if source_namespace and not is_dns1123_label(source_namespace):
            errors = append_errors(errors, f"sourceNamespace match {source_namespace} is invalid")
    return errors


def validate_percentage(percentage: Mapping[str, Any] | None) -> Error:  # validatePercentage
    if percentage is None:
        return None
    value = float(percentage.get("value") or 0.0)
    if value < 0.0 or value > 100.0 or 0.0 < value < 0.0001:
        return f"percentage {_go_float(value)} is neither 0.0, nor in range [0.0001, 100.0]"
    return None


def validate_http_status(status: int) -> Error:  # validateHTTPStatus
    if status < 200 or status > 600:
        return f"HTTP status {status} is not in range 200-599"
    return None


def validate_http_fault_injection(fault: Mapping[str, Any] | None) -> Error:  # validateHTTPFaultInjection
    if fault is None:
        return None
    errors: Error = None
    abort, delay = fault.get("abort"), fault.get("delay")
    if abort is None and delay is None:
        errors = multierror_append(errors, "HTTP fault injection must have an abort and/or a delay")
    if abort is not None:  # validateHTTPFaultInjectionAbort
        errors = append_errors(errors, validate_percentage(abort.get("percentage")))
        if abort.get("grpcStatus") is not None:
            if abort["grpcStatus"] not in _GRPC_STATUS:
                errors = append_errors(errors, (
                    f"gRPC status {_q(abort['grpcStatus'])} is not supported. See "
                    "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, "
                    "for example 'NOT_FOUND'"))
        elif abort.get("http2Error") is not None:
            errors = append_errors(errors, "HTTP/2 abort fault injection not supported yet")
        elif abort.get("httpStatus") is not None:
            errors = append_errors(errors, validate_http_status(_int(abort["httpStatus"])))
    if delay is not None:  # validateHTTPFaultInjectionDelay
        errors = append_errors(errors, validate_percentage(delay.get("percentage")))
        if delay.get("fixedDelay") is not None:
            errors = append_errors(errors, validate_duration(delay["fixedDelay"]))
        elif delay.get("exponentialDelay") is not None:
            errors = append_errors(errors, validate_duration(delay["exponentialDelay"]))
            errors = multierror_append(errors, "exponentialDelay not supported yet")
    return errors


def validate_http_mirrors(mirrors: Sequence[Any] | None) -> Error:  # validateHTTPMirrors
    errors: Error = None
    for mirror in mirrors or []:
        if mirror is None:
            errors = append_errors(errors, "mirror cannot be null")
            continue
        if not _present(mirror, "destination"):
            errors = append_errors(errors, "destination is required for mirrors")
            continue
        errors = append_errors(errors, validate_destination(mirror["destination"]))
        if _present(mirror, "percentage"):
            errors = append_errors(errors, _validate_mirror_percentage(mirror["percentage"], "mirror percentage"))
    return errors


def _validate_mirror_percentage(percentage: Mapping[str, Any], field: str) -> Error:
    # The range check of validateHTTPRoute (mirrorPercentage) and validateHTTPMirrors (percentage).
    value = float(percentage.get("value") or 0.0)
    if value > 100:
        return f"{field} must have a max value of 100 (it has {value:f})"
    if value < 0:
        return f"{field} must have a min value of 0 (it has {value:f})"
    return None


def validate_http_redirect(redirect: Mapping[str, Any] | None) -> Error:  # validateHTTPRedirect
    if redirect is None:
        return None
    if not redirect.get("uri") and not redirect.get("authority") and redirect.get("port") is None \
            and redirect.get("derivePort") is None and not redirect.get("scheme"):
        return "redirect must specify URI, authority, scheme, or port"
    code = _int(redirect.get("redirectCode"))
    if code and not 300 <= code <= 399:
        return f"{code} is not a valid redirect code, must be 3xx"
    scheme = redirect.get("scheme") or ""
    if scheme and scheme not in ("http", "https"):
        return 'invalid redirect scheme, must be "http" or "https"'
    if _int(redirect.get("port")) > 0:
        return validate_port(_int(redirect.get("port")))
    return None


def validate_http_direct_response(direct: Mapping[str, Any] | None) -> Error:  # validateHTTPDirectResponse
    if direct is None:
        return None
    errors: Error = None
    body = direct.get("body")
    if isinstance(body, Mapping):
        size = len(str(body.get("string") or "").encode()) + len(str(body.get("bytes") or "")) * 3 // 4
        if size > 1024 * 1024:
            errors = append_errors(errors, "large direct_responses may impact control plane performance, "
                                           "must be less than 1MB")
    return append_errors(errors, validate_http_status(_int(direct.get("status"))))


def validate_http_retry(retries: Mapping[str, Any] | None) -> Error:  # validateHTTPRetry
    if retries is None:
        return None
    errors: Error = None
    attempts = _int(retries.get("attempts"))
    if attempts < 0:
        errors = multierror_append(errors, "attempts cannot be negative")
    if attempts == 0 and (retries.get("perTryTimeout") is not None or retries.get("retryOn")
                          or retries.get("retryRemoteLocalities") is not None):
        errors = append_errors(errors, "http retry policy configured when attempts are set to 0 (disabled)")
    if retries.get("perTryTimeout") is not None:
        errors = append_errors(errors, validate_duration(retries["perTryTimeout"]))
    if retries.get("retryOn"):
        for policy in str(retries["retryOn"]).split(","):
            code = int(policy) if policy.isdigit() else 0
            if code not in _HTTP_STATUS_TEXT and policy not in _RETRY_ON:
                errors = append_errors(errors, f"{_q(policy)} is not a valid retryOn policy")
    if retries.get("backoff") is not None:
        errors = append_errors(errors, validate_duration(retries["backoff"]))
    return errors


def validate_http_rewrite(rewrite: Mapping[str, Any] | None) -> Error:  # validateHTTPRewrite
    if rewrite is None:
        return None
    regex_rewrite = rewrite.get("uriRegexRewrite")
    if rewrite.get("uri") and regex_rewrite is not None:
        return "rewrite may only contain one of URI or UriRegexRewrite"
    if not rewrite.get("uri") and regex_rewrite is None and not rewrite.get("authority"):
        return ("rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
                "Only one of URI or UriRegexRewrite may be specified")
    if regex_rewrite is not None:  # validateURIRegexRewrite
        if not regex_rewrite.get("match") or not regex_rewrite.get("rewrite"):
            problem = "UriRegexRewrite requires both Rewrite and Match fields to be specified"
        else:
            problem = validate_string_regexp(str(regex_rewrite["match"]), "HTTPRewrite.UriRegexRewrite.Match")
        if problem:
            return f"UriRegexRewrite has errors\n{problem}"  # errors.Join
    return None


def validate_authority_rewrite(rewrite: Mapping[str, Any] | None, headers: Mapping[str, Any] | None) -> Error:
    # validateAuthorityRewrite
    current = str((rewrite or {}).get("authority") or "")
    request = (headers or {}).get("request") or {}
    for operation in ("set", "add"):
        for name, value in (request.get(operation) or {}).items():
            if not _is_authority_header(str(name)):
                continue
            if current:
                return (f"authority header cannot be set multiple times: have {_q(current)}, "
                        f"attempting to set {_q(value)}")
            current = str(value)
    return None


def validate_http_route(route: Mapping[str, Any], delegate: bool, gateway_semantics: bool = False) -> Error:
    # validateHTTPRoute
    errors = validate_http_route_conflict(route, http_route_type(route, delegate))
    errors = append_errors(errors, validate_http_route_match_request(route),
                           _validate_header_operations(route.get("headers")),
                           validate_http_fault_injection(route.get("fault")))
    if route.get("mirrorPercent") is not None and _int(route["mirrorPercent"]) > 100:
        percent = _int(route["mirrorPercent"])
        errors = append_errors(errors, f"mirror_percent must have a max value of 100 (it has {percent})")
    if _present(route, "mirrorPercentage"):
        errors = append_errors(errors, _validate_mirror_percentage(route["mirrorPercentage"], "mirror_percentage"))
    errors = append_errors(errors, validate_destination(route.get("mirror")),
                           validate_http_mirrors(route.get("mirrors")),
                           validate_http_redirect(route.get("redirect")),
                           validate_http_direct_response(route.get("directResponse")),
                           validate_http_retry(route.get("retries")),
                           validate_http_rewrite(route.get("rewrite")),
                           validate_authority_rewrite(route.get("rewrite"), route.get("headers")),
                           validate_http_route_destinations(route.get("route") or [], gateway_semantics))
    if route.get("timeout") is not None:
        errors = append_errors(errors, validate_duration(route["timeout"]))
    return errors


# --------------------------------------------------------------------------- TCP and TLS routes


def validate_tcp_route(route: Mapping[str, Any] | None) -> Error:  # validateTCPRoute
    if route is None:
        return None
    errors: Error = None
    for match in route.get("match") or []:
        if match is None:  # validateTCPMatch
            errors = append_errors(errors, multierror_append(None, "tcp match may not be nil"))
            continue
        errors = append_errors(errors, _validate_l4_match(match))
    return append_errors(errors, _validate_l4_route_destinations(route, "TCP"))


def validate_tls_route(route: Mapping[str, Any] | None, spec: Mapping[str, Any]) -> Error:  # validateTLSRoute
    if route is None:
        return None
    errors: Error = None
    if not route.get("match"):
        errors = append_errors(errors, "TLS route must have at least one match condition")
    for match in route.get("match") or []:  # validateTLSMatch
        if match is None:
            errors = append_errors(errors, "TLS match may not be null")
            continue
        if not match.get("sniHosts"):
            errors = append_errors(errors, "TLS match must have at least one SNI host")
        for sni_host in match.get("sniHosts") or []:
            errors = append_errors(errors, _validate_sni_host(str(sni_host), spec))
        errors = append_errors(errors, _validate_l4_match(match))
    return append_errors(errors, _validate_l4_route_destinations(route, "TLS"))


def _validate_match_source(match: Mapping[str, Any]) -> Error:
    # The port, sourceLabels and gateways checks that HTTP, TCP and TLS matches share.
    port = _int(match.get("port"))
    return append_errors(validate_port(port) if port else None,
                         validate_label_instance(match.get("sourceLabels")),
                         validate_gateway_names(match.get("gateways") or []))


def _validate_l4_match(match: Mapping[str, Any]) -> Error:
    # What validateTCPMatch and validateTLSMatch share (after the TLS match's SNI hosts).
    errors: Error = None
    for subnet in match.get("destinationSubnets") or []:
        errors = append_errors(errors, validate_ip_subnet(str(subnet)))
    return append_errors(errors, _validate_match_source(match))


def _validate_l4_route_destinations(route: Mapping[str, Any], protocol: str) -> Error:
    # The end of validateTCPRoute and validateTLSRoute.
    errors: Error = None if route.get("route") else f"{protocol} route is required"
    return append_errors(errors, validate_route_destinations(route.get("route") or []))


def _validate_sni_host(sni_host: str, spec: Mapping[str, Any]) -> Error:  # validateSniHost
    if _is_gateway(spec.get("gateways") or []):
        error = validate_wildcard_domain_for_gateway_vs(True, sni_host)
    else:
        error = validate_wildcard_domain(sni_host)
    if error:
        return None if is_valid_ip_address(sni_host) else error  # an IP only warns
    hosts = [str(h) for h in spec.get("hosts") or []]
    if any(host_name_subset_of(sni_host, h) for h in hosts):
        return None
    return (f"SNI host {_q(sni_host)} is not a compatible subset of any of the virtual service hosts: "
            f"[{', '.join(hosts)}]")


def _is_gateway(gateways: Sequence[Any]) -> bool:  # isGateway
    return MESH_GATEWAY not in [str(g) for g in gateways]


def _is_sni_host(spec: Mapping[str, Any]) -> bool:  # isSniHost
    return any((match or {}).get("sniHosts")
               for route in spec.get("tls") or [] for match in (route or {}).get("match") or [])


# --------------------------------------------------------------------------- the three kinds


def validate_virtual_service(name: str, namespace: str, spec: Mapping[str, Any]) -> Error:
    # ValidateVirtualService
    errors: Error = None
    hosts = [str(h) for h in spec.get("hosts") or []]
    gateways = [str(g) for g in spec.get("gateways") or []]
    http, tls, tcp = spec.get("http") or [], spec.get("tls") or [], spec.get("tcp") or []
    if not hosts:
        # No hosts: a delegate VirtualService.
        if gateways:
            errors = append_errors(errors, "delegate virtual service must have no gateways specified")
        if tls:
            errors = append_errors(errors, "delegate virtual service must have no tls route specified")
        if tcp:
            errors = append_errors(errors, "delegate virtual service must have no tcp route specified")
    if not gateways:
        applies_to_gateway = False
    else:
        errors = append_errors(errors, validate_gateway_names(gateways))
        applies_to_gateway = _is_gateway(gateways)
    applies_to_mesh = not applies_to_gateway
    if not applies_to_gateway:
        for route in http:
            for match in (route or {}).get("match") or []:
                for key in list((match or {}).get("headers") or {}) + list((match or {}).get("withoutHeaders") or {}):
                    if _is_jwt_claim(str(key)):
                        errors = append_errors(errors, (
                            f"JWT claim based routing (key: {key}) is only supported for gateway, "
                            f"found no gateways: {_go_list(gateways)}"))
    all_hosts_valid = True
    for host in hosts:
        if applies_to_gateway:
            error = validate_wildcard_domain_for_gateway_vs(_is_sni_host(spec), host)
        else:
            error = validate_wildcard_domain(host)
        if error:
            if not is_valid_ip_address(host):
                errors = append_errors(errors, error)
                all_hosts_valid = False
        elif applies_to_mesh and host == "*":
            errors = append_errors(errors,
                                   "wildcard host * is not allowed for virtual services bound to the mesh gateway")
            all_hosts_valid = False
    if all_hosts_valid:
        # Duplicates include wildcards that cover each other ("*.foo.com" and "*.com").
        for i, first in enumerate(hosts):
            for second in hosts[i + 1:]:
                if host_name_matches(first, second):
                    errors = append_errors(errors, f"duplicate hosts in virtual service: {first} & {second}")
    if not http and not tcp and not tls:
        errors = append_errors(errors, "http, tcp or tls must be provided in virtual service")
    for route in http:
        if route is None:
            errors = append_errors(errors, "http route may not be null")
            continue
        errors = append_errors(errors, validate_http_route(route, delegate=not hosts))
    for route in tls:
        errors = append_errors(errors, validate_tls_route(route, spec))
    for route in tcp:
        errors = append_errors(errors, validate_tcp_route(route))
    return append_errors(errors, validate_export_to(namespace, spec.get("exportTo")))


_TRAFFIC_POLICY_FIELDS = ("outlierDetection", "connectionPool", "loadBalancer", "tls", "portLevelSettings",
                          "tunnel", "proxyProtocol", "retryBudget")


def validate_traffic_policy(policy: Mapping[str, Any] | None) -> Error:
    # validateTrafficPolicy (its top level only: the inner settings are not checked here)
    if policy is None:
        return None
    if not any(policy.get(field) is not None for field in _TRAFFIC_POLICY_FIELDS):
        return "traffic policy must have at least one field"
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        return "tunnel and proxyProtocol must not be set together"
    errors: Error = None
    for setting in policy.get("portLevelSettings") or []:  # validatePortTrafficPolicies
        if setting is None:
            errors = append_errors(errors, "traffic policy may not be null")
            continue
        if setting.get("port") is None:
            errors = append_errors(errors, "portTrafficPolicy must have valid port")
        if not any(setting.get(f) is not None for f in ("outlierDetection", "connectionPool", "loadBalancer", "tls")):
            errors = append_errors(errors, "port traffic policy must have at least one field")
    return errors


def validate_destination_rule(name: str, namespace: str, spec: Mapping[str, Any]) -> Error:
    # ValidateDestinationRule
    errors = append_errors(validate_wildcard_domain(str(spec.get("host") or "")),
                           validate_traffic_policy(spec.get("trafficPolicy")))
    seen: set[str] = set()
    for subset in spec.get("subsets") or []:
        if subset is None:
            errors = append_errors(errors, "subset may not be null")
            continue
        subset_name = str(subset.get("name") or "")
        if subset_name in seen:
            errors = append_errors(errors, f"duplicate subset names: {subset_name}")
        seen.add(subset_name)
        # validateSubset
        errors = append_errors(errors, append_errors(validate_subset_name(subset_name),
                                                     validate_label_instance(subset.get("labels")),
                                                     validate_traffic_policy(subset.get("trafficPolicy"))))
    # (With a workloadSelector Istio also limits exportTo to the rule's own namespace; not checked here.)
    return append_errors(errors, validate_export_to(namespace, spec.get("exportTo")))


def _validate_gateway_host(hostname: str) -> Error:
    # agent.ValidateNamespaceSlashWildcardHostname(hostname, isGateway=true, gatewaySemantics=false)
    namespace, slash, dns_name = hostname.partition("/")
    errors: Error = None
    if not slash:
        dns_name = hostname  # the old style, without a namespace
    else:
        if not namespace or not dns_name:
            errors = append_errors(errors, "config namespace and dnsName in host entry cannot be empty")
        if namespace not in ("*", ".") and not is_dns1123_label(namespace):
            errors = append_errors(errors, f"invalid namespace value {_q(namespace)} in gateway")
    # validateSidecarOrGatewayHostnamePart
    if dns_name != "*" and "." not in dns_name:
        errors = append_errors(errors, "short names (non FQDN) are not allowed")
    error = validate_wildcard_domain(dns_name)
    if error and not is_valid_ip_address(dns_name):
        errors = append_errors(errors, error)
    if "*" in dns_name and len(dns_name) != 1 and not dns_name.startswith("*."):  # ValidatePartialWildCard
        errors = append_errors(errors, f"partial wildcard {_q(dns_name)} not allowed")
    return errors


def _port_text(port: Mapping[str, Any]) -> str:
    """Go's ``%v`` of a Port message, roughly (its text form)."""
    parts = [f"{key}:{json.dumps(port[key])}" for key in ("number", "protocol", "name", "targetPort") if port.get(key)]
    return " ".join(parts)


def validate_gateway(name: str, namespace: str, spec: Mapping[str, Any]) -> Error:  # ValidateGateway
    errors: Error = None
    if not is_dns1123_label(name):
        errors = append_errors(errors, f"invalid gateway name: {_q(name)}")
    servers = spec.get("servers") or []
    if not servers:
        errors = append_errors(errors, "gateway must have at least one server")
    for server in servers:  # validateServer
        if server is None:
            errors = append_errors(errors, "cannot have nil server")
            continue
        if not server.get("hosts"):
            errors = append_errors(errors, "server config must contain at least one host")
        for hostname in server.get("hosts") or []:
            errors = append_errors(errors, _validate_gateway_host(str(hostname)))
        port = server.get("port")
        bind = str(server.get("bind") or "")
        port_errors: Error = None  # validateServerPort
        if port is None:
            port_errors = "port is required"
        else:
            protocol = _PROTOCOLS.get(str(port.get("protocol") or "").lower())
            if protocol is None:
                port_errors = append_errors(port_errors, (
                    f"invalid protocol {_q(port.get('protocol') or '')}, supported protocols are HTTP, HTTP2, GRPC, "
                    "GRPC-WEB, MONGO, REDIS, MYSQL, TCP"))
            if _int(port.get("number")) > 0 or not bind.startswith("unix://"):
                port_errors = append_errors(port_errors, validate_port(_int(port.get("number"))))
            if _int(port.get("targetPort")) > 0:
                port_errors = append_errors(port_errors, "targetPort has no impact on Gateways")
            if not port.get("name"):
                port_errors = append_errors(port_errors, f"port name must be set: {_port_text(port)}")
        errors = append_errors(errors, port_errors)
        if bind and not bind.startswith("unix://") and not is_valid_ip_address(bind):  # validateServerBind
            errors = append_errors(errors, f"{bind} is not a valid IP")
        if not port_errors:
            protocol = _PROTOCOLS[str(port.get("protocol") or "").lower()]  # type: ignore[union-attr]
            tls = server.get("tls")
            if protocol in ("HTTPS", "TLS") and tls is None:
                errors = append_errors(errors, "server must have TLS settings for HTTPS/TLS protocols")
            elif protocol not in ("HTTPS", "TLS") and tls is not None:
                if protocol in ("HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"):
                    passthrough = tls.get("mode") in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
                    if not passthrough or tls.get("caCertificates") or tls.get("privateKey") \
                            or tls.get("serverCertificate"):
                        errors = append_errors(errors, "server cannot have TLS settings for plain text HTTP ports")
                else:
                    errors = append_errors(errors, "server cannot have TLS settings for non HTTPS/TLS ports")
    port_names: set[str] = set()
    for server in servers:
        if server is None:
            errors = append_errors(errors, "server may not be nil")
            continue
        if server.get("port") is not None:
            port_name = str(server["port"].get("name") or "")
            if port_name in port_names:
                errors = append_errors(errors, f"port names in servers must be unique: duplicate name {port_name}")
            port_names.add(port_name)
    return errors


_VALIDATORS = {"VirtualService": validate_virtual_service, "DestinationRule": validate_destination_rule,
               "Gateway": validate_gateway}


def validate_metadata(obj: Mapping[str, Any], namespace: str) -> Error:  # validateMetadata
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if DRY_RUN_ANNOTATION in annotations:
        return (f"{namespace}/{meta.get('name', '')} has unsupported annotation {DRY_RUN_ANNOTATION}, "
                "please remove the annotation")
    if ALWAYS_REJECT in annotations:
        return f"{_q(ALWAYS_REJECT)} annotation found, rejecting"
    for internal in (INTERNAL_PARENT_NAMESPACE, INTERNAL_PARENT_NAMES):
        if internal in annotations:
            return f"{_q(internal)} annotation found, this may not be set by users"
    return None


def validate_object(obj: Mapping[str, Any], namespace: str = "") -> str | None:
    """istiod's answer for one object: None when accepted, else the webhook's message.

    Follows ``Webhook.validate`` in pkg/webhooks/validation/server/server.go.
    """
    kind = str(obj.get("kind") or "")
    validator = _VALIDATORS.get(kind)
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    if validator is None or group not in ("", ISTIO_NETWORKING_GROUP):  # Gateway API's Gateway is not Istio's
        return None
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or namespace)
    spec = obj.get("spec")
    error = validate_metadata(obj, namespace) or validator(str(meta.get("name") or ""), namespace,
                                                           spec if isinstance(spec, Mapping) else {})
    if error:
        return f"configuration is invalid: {message(error)}"
    for key in obj:  # checkFields
        if key not in VALID_TOP_LEVEL_FIELDS:
            return f"unknown field {_q(key)} on {kind} resource {namespace}/{meta.get('name', '')}"
    return None


def review(request: Mapping[str, Any]) -> dict[str, Any]:
    """An AdmissionReview request in, its response out (``admission.k8s.io/v1``)."""
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    if request.get("operation") not in ("CREATE", "UPDATE"):
        return response
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        refusal = "cannot decode configuration: no object"
    else:
        # The CRD's own CEL rules first: a newer apiserver checks them with the schema, before any
        # admission webhook (1.20 dropped them; lab.webhook.crd_rules evaluates them as published).
        old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
        refusal = crd_rules.refusal(obj, old if isinstance(old, Mapping) else None)
        refusal = refusal or validate_object(obj, str(request.get("namespace") or ""))
    if refusal:
        # istiod's toAdmissionResponse: a Status with only the message; the API server adds
        # 'admission webhook "..." denied the request: ' and code 400.
        response.update(allowed=False, status={"message": refusal})
    return response
