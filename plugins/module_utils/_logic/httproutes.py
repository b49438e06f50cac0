# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Gateway API HTTPRoutes: how one rule's backends are read, how a split moves their weights, and the
per-version Service a canary needs.

Rules followed (Gateway API v1.6.1, ``gateway.networking.k8s.io_httproutes.yaml`` and the Go types it
is generated from):

- ``spec.rules[].backendRefs[].weight`` is an integer 0..1,000,000 (default 1). A backend receives
  ``weight / sum`` of the rule's requests; weights are not percentages and need not sum to 100; a
  weight of 0 sends nothing; a lone backend with a weight above 0 takes everything. When every
  weight of a rule is 0 no backend receives anything (implementations answer 500).
- A backendRef names its referent by ``group`` (default ``""``, the core API group), ``kind``
  (default ``Service``), ``name`` and ``namespace`` (default: the route's); a Service reference
  needs a ``port``. At most 16 backendRefs per rule.
- ``spec.rules[].name`` names a rule (unique within a route when set). A rule without ``matches``
  matches every request (the API server stores the default ``PathPrefix /``).

Which weights this collection writes: the backends a split moves are Services in the route's
namespace, named by their Service name (the Istio Bookinfo sample's ``reviews-v1`` / ``reviews-v2``,
``samples/bookinfo/gateway-api/route-reviews-90-10.yaml``). Backends of other kinds or namespaces keep
their entries exactly and, with them, their share of the rule.

The per-version Service follows Istio's ``samples/bookinfo/platform/kube/bookinfo-versions.yaml``:
``<service>-<version>``, the service's ports, and its selector plus the version label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from math import gcd
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryInputError,
    is_int,
    json_copy,
    require_mapping,
    show,
)

MAX_BACKEND_WEIGHT = 1_000_000
MAX_BACKEND_REFS = 16
TOTAL_WEIGHT = 100
DEFAULT_WEIGHT = 1
# Kubernetes Service names are DNS-1035 labels (apimachinery validation.IsDNS1035Label).
SERVICE_NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
SERVICE_NAME_RULE = ("a Kubernetes Service name is a DNS-1035 label: 1 to 63 lower-case letters, digits or '-', "
                     "starting with a letter and ending with a letter or digit")
_CATCH_ALL = {"path": {"type": "PathPrefix", "value": "/"}}


def validate_service_name(name: Any, what: str = "backend Service") -> str:
    """``name`` when it is a valid Service name, else a :class:`CanaryInputError` naming the value and the rule."""
    if not isinstance(name, str) or not SERVICE_NAME_RE.fullmatch(name):
        raise CanaryInputError(f"{what} {show(name)} is not a valid Service name: {SERVICE_NAME_RULE}")
    return name


def _route_parts(route: Any) -> tuple[Mapping, list]:
    hint = "pass the HTTPRoute object as read from the API server"
    require_mapping(route, "HTTPRoute", hint)
    metadata = route.get("metadata") or {}
    require_mapping(metadata, "HTTPRoute metadata", hint)
    spec = route.get("spec")
    require_mapping(spec, "HTTPRoute spec", hint)
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        raise CanaryInputError(f"HTTPRoute spec.rules {show(rules)} is not a list; {hint}")
    for index, rule in enumerate(rules):
        require_mapping(rule, f"HTTPRoute spec.rules[{index}]", hint)
    return metadata, rules


def rule_label(index: int, rule: Mapping) -> str:
    """``rules[1] ('canary')`` - how errors and notes name a rule."""
    name = rule.get("name")
    return f"rules[{index}] ({name!r})" if name else f"rules[{index}]"


def is_catch_all(rule: Mapping) -> bool:
    """True when the rule matches every request: no matches, or only the default ``PathPrefix /``."""
    matches = rule.get("matches")
    if not matches:
        return True
    return all(isinstance(match, Mapping) and _without_defaults(match) == _CATCH_ALL for match in matches)


def _without_defaults(match: Mapping) -> dict:
    # The API server may store the match with its defaults spelled out; an empty match is the default one.
    plain = {key: value for key, value in match.items() if value not in (None, [], {})}
    return plain or json_copy(_CATCH_ALL)


def find_rule(route: Any, route_name: Any = None) -> int:
    """The index of the rule a split moves.

    ``route_name`` selects the rule whose ``name`` it is. Without it: the only rule, else the one rule
    that matches every request. Anything else is refused with the rules listed.
    """
    _metadata, rules = _route_parts(route)
    labels = [rule_label(i, rule) for i, rule in enumerate(rules)]
    if not rules:
        raise CanaryInputError("the HTTPRoute has no rules; add a rule with backendRefs first")
    if route_name is not None:
        if not isinstance(route_name, str) or not route_name:
            raise CanaryInputError(f"route_name {show(route_name)} is not a rule name; the rules are {labels}")
        found = [i for i, rule in enumerate(rules) if rule.get("name") == route_name]
        if not found:
            raise CanaryInputError(f"the HTTPRoute has no rule named {route_name!r}; its rules are {labels}")
        return found[0]
    if len(rules) == 1:
        return 0
    catch_all = [i for i, rule in enumerate(rules) if is_catch_all(rule)]
    if len(catch_all) == 1:
        return catch_all[0]
    what = "no rule matches every request" if not catch_all else f"{len(catch_all)} rules match every request"
    raise CanaryInputError(f"the HTTPRoute has {len(rules)} rules and {what}; name the rule to move with "
                           f"route_name (rules: {labels}; give a rule a name to select it)")


def backend_refs(rule: Mapping, where: str) -> list[Mapping]:
    """The rule's backendRefs, checked to be a list of mappings with valid weights."""
    refs = rule.get("backendRefs") or []
    if not isinstance(refs, list):
        raise CanaryInputError(f"{where}.backendRefs {show(refs)} is not a list")
    for index, ref in enumerate(refs):
        require_mapping(ref, f"{where}.backendRefs[{index}]", "each backendRef is a mapping with a name")
        weight = ref.get("weight", DEFAULT_WEIGHT)
        if not is_int(weight) or not 0 <= weight <= MAX_BACKEND_WEIGHT:
            raise CanaryInputError(f"{where}.backendRefs[{index}].weight {show(weight)} is not an integer "
                                   f"from 0 to {MAX_BACKEND_WEIGHT} (Gateway API's rule for weights)")
    return refs


def backend_key(ref: Mapping, namespace: str | None) -> str:
    """How readings and weights name a backend.

    A Service in the route's namespace is its name (``reviews-v2``); a Service elsewhere is
    ``namespace/name``; another kind is ``group/kind/namespace/name`` with the empty core group kept.
    """
    group = ref.get("group") or ""
    kind = ref.get("kind") or "Service"
    ref_namespace = ref.get("namespace") or namespace
    name = ref.get("name")
    if group == "" and kind == "Service":
        return name if ref_namespace == namespace else f"{ref_namespace}/{name}"
    return f"{group}/{kind}/{ref_namespace}/{name}"


def _local_service(ref: Mapping, namespace: str | None) -> bool:
    return ((ref.get("group") or "") == "" and (ref.get("kind") or "Service") == "Service"
            and (ref.get("namespace") or namespace) == namespace)


def rule_shares(rule: Any, namespace: str | None, where: str = "rule") -> dict[str, int | float]:
    """The percent of the rule's requests each backend receives (entries for one backend add up).

    Whole numbers when exact, else rounded to two decimals; every backend is listed, 0 included.
    """
    require_mapping(rule, where, "pass one rule of spec.rules")
    refs = backend_refs(rule, where)
    raw: dict[str, int] = {}
    for ref in refs:
        key = backend_key(ref, namespace)
        raw[key] = raw.get(key, 0) + ref.get("weight", DEFAULT_WEIGHT)
    total = sum(raw.values())
    shares: dict[str, int | float] = {}
    for key, weight in raw.items():
        share = Fraction(0) if total == 0 else Fraction(weight * 100, total)
        shares[key] = int(share) if share.denominator == 1 else round(float(share), 2)
    return shares


def _wanted(weights: Any) -> dict[str, int]:
    require_mapping(weights, "weights", "give a mapping of backend Service name to percent, e.g. "
                    "{'reviews-v1': 90, 'reviews-v2': 10}")
    if not weights:
        raise CanaryInputError("weights {} name no backend Service; name at least one")
    for name, weight in weights.items():
        validate_service_name(name, "weights key")
        if not is_int(weight) or not 0 <= weight <= TOTAL_WEIGHT:
            raise CanaryInputError(f"weight {show(weight)} for {name!r} is not an integer from 0 to {TOTAL_WEIGHT}")
    total = sum(weights.values())
    if total != TOTAL_WEIGHT:
        raise CanaryInputError(f"weights {show(weights)} sum to {total}; they must sum to {TOTAL_WEIGHT}")
    return dict(weights)


def _merge_duplicates(refs: list[Mapping], namespace: str | None, where: str) -> list[dict]:
    """One entry per backend: later entries for the same backend are merged into the first when they
    differ only in weight, and refused otherwise (which of their filters would the split keep?)."""
    first: dict[str, dict] = {}
    kept: list[dict] = []
    for index, ref in enumerate(refs):
        key = backend_key(ref, namespace)
        entry = json_copy(ref)
        if key not in first:
            first[key] = entry
            kept.append(entry)
            continue
        earlier = first[key]
        if {k: v for k, v in entry.items() if k != "weight"} != {k: v for k, v in earlier.items() if k != "weight"}:
            raise CanaryInputError(f"{where}.backendRefs[{index}] names backend {key!r} again with other fields; "
                                   "merge the entries by hand first, a split would not know which to keep")
        earlier["weight"] = earlier.get("weight", DEFAULT_WEIGHT) + entry.get("weight", DEFAULT_WEIGHT)
    return kept


def plan_rule_backends(route: Any, rule_index: int, weights: Any, remove_unnamed: bool = False) -> tuple[list, list]:
    """The rule's new backendRefs with the local Services of ``weights`` weighted as asked, and notes.

    - Backends of other kinds or namespaces keep their entries; the moved Services keep their share of
      the rule between them (weights are scaled up, every entry alike, when that share cannot be split
      in whole numbers).
    - A Service named but not yet a backend is appended with the port of the first moved Service
      (the per-version Services of Istio's sample share the service's port).
    - A local Service backend that ``weights`` does not name is refused unless ``remove_unnamed``.
    - Every other field of the rule and of each entry stays.
    """
    metadata, rules = _route_parts(route)
    namespace = metadata.get("namespace")
    if not is_int(rule_index) or not 0 <= rule_index < len(rules):
        raise CanaryInputError(f"rule index {show(rule_index)} is not an index of spec.rules (0..{len(rules) - 1})")
    wanted = _wanted(weights)
    rule = rules[rule_index]
    where = rule_label(rule_index, rule)
    if any(isinstance(f, Mapping) and f.get("type") == "RequestRedirect" for f in rule.get("filters") or []):
        raise CanaryInputError(f"{where} redirects (filter RequestRedirect) and sends to no backend; choose a rule "
                               "with backendRefs")
    stored = backend_refs(rule, where)
    refs = _merge_duplicates(stored, namespace, where)
    notes: list[str] = []
    if len(refs) != len(stored):
        notes.append(f"{where}: entries naming one backend twice were merged into the first")
    mine = [ref for ref in refs if _local_service(ref, namespace)]
    others = [ref for ref in refs if not _local_service(ref, namespace)]
    unnamed = [ref["name"] for ref in mine if ref.get("name") not in wanted]
    if unnamed and not remove_unnamed:
        raise CanaryInputError(f"{where} also sends to Service(s) {unnamed}, which weights {show(weights)} do not "
                               "name; name them (weight 0 keeps them in the rule) or set remove_unnamed to drop them")
    mine = [ref for ref in mine if ref.get("name") in wanted]
    template = mine[0] if mine else next((ref for ref in refs if _local_service(ref, namespace)), None)
    present = {ref["name"] for ref in mine}
    for name in wanted:
        if name not in present:
            added: dict[str, Any] = {"name": name}
            if template is not None and "port" in template:
                added["port"] = template["port"]
            mine.append(added)
    if any(ref.get("port") is None for ref in mine):
        missing = [ref["name"] for ref in mine if ref.get("port") is None]
        raise CanaryInputError(f"{where}: no port is known for Service(s) {missing} (Gateway API requires a port "
                               "on a Service backendRef); add the base Service to the rule with its port first")

    other_weight = sum(ref.get("weight", DEFAULT_WEIGHT) for ref in others)
    scale = 1
    if other_weight == 0:
        share = TOTAL_WEIGHT
        new = {name: wanted[name] for name in wanted}
    else:
        share = sum(ref.get("weight", DEFAULT_WEIGHT) for ref in refs if _local_service(ref, namespace))
        if share == 0:
            taken = [backend_key(ref, namespace) for ref in others]
            raise CanaryInputError(f"{where} sends nothing to its Services (their weights are 0) and the rest to "
                                   f"other backends; a split would take traffic from {taken}. Nothing was changed")
        scale = TOTAL_WEIGHT // gcd(share, TOTAL_WEIGHT)
        new = {name: wanted[name] * share * scale // TOTAL_WEIGHT for name in wanted}
        if scale != 1:
            notes.append(f"{where}: every weight was multiplied by {scale} so that the Services' share of the rule "
                         "splits in whole numbers; every backend's share is unchanged")
    result = []
    for ref in others:
        entry = json_copy(ref)
        if scale != 1:
            entry["weight"] = entry.get("weight", DEFAULT_WEIGHT) * scale
        result.append(entry)
    for ref in mine:
        entry = json_copy(ref)
        entry["weight"] = new[ref["name"]]
        result.append(entry)
    # Keep the stored order: entries that were there stay where they were, new ones go last.
    order = {backend_key(ref, namespace): i for i, ref in enumerate(refs)}
    result.sort(key=lambda ref: order.get(backend_key(ref, namespace), len(order)))
    if len(result) > MAX_BACKEND_REFS:
        raise CanaryInputError(f"{where} would have {len(result)} backendRefs; Gateway API allows at most "
                               f"{MAX_BACKEND_REFS}")
    too_big = [ref for ref in result if ref.get("weight", DEFAULT_WEIGHT) > MAX_BACKEND_WEIGHT]
    if too_big:
        raise CanaryInputError(f"{where}: scaling the weights would pass Gateway API's maximum of "
                               f"{MAX_BACKEND_WEIGHT}; lower the other backends' weights first")
    return result, notes


def build_rule_patch(route: Any, rule_index: int, new_refs: list) -> list[dict]:
    """JSON Patch (RFC 6902) replacing only ``/spec/rules/<i>/backendRefs``, guarded by ``test`` ops of
    the resourceVersion, the rule's current backendRefs and its name. ``[]`` when nothing changes."""
    metadata, rules = _route_parts(route)
    if not is_int(rule_index) or not 0 <= rule_index < len(rules):
        raise CanaryInputError(f"rule index {show(rule_index)} is not an index of spec.rules (0..{len(rules) - 1})")
    rule = rules[rule_index]
    if rule.get("backendRefs") == new_refs:
        return []
    path = f"/spec/rules/{rule_index}"
    ops: list[dict] = []
    version = metadata.get("resourceVersion")
    if isinstance(version, str) and version:
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
    if "backendRefs" in rule:
        ops.append({"op": "test", "path": path + "/backendRefs", "value": json_copy(rule["backendRefs"])})
        if "name" in rule:
            ops.append({"op": "test", "path": path + "/name", "value": rule["name"]})
        ops.append({"op": "replace", "path": path + "/backendRefs", "value": json_copy(new_refs)})
    else:
        ops.append({"op": "test", "path": path, "value": json_copy(rule)})
        ops.append({"op": "add", "path": path + "/backendRefs", "value": json_copy(new_refs)})
    return ops


def per_version_service(service: Any, version: Any, version_label: str = "version") -> dict:
    """The Service that selects one version of ``service``, as Istio's ``bookinfo-versions.yaml`` has it.

    Named ``<service>-<version>`` in the service's namespace, with the service's ports (name, port,
    protocol, targetPort, appProtocol) and its selector plus ``version_label: version``. A Service
    without a selector (ExternalName, or endpoints managed by hand) is refused: nothing would select
    the version's pods.
    """
    hint = "pass the Service object as read from the API server"
    require_mapping(service, "Service", hint)
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    require_mapping(metadata, "Service metadata", hint)
    require_mapping(spec, "Service spec", hint)
    name = validate_service_name(metadata.get("name"), "Service")
    if not isinstance(version, str) or not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", version):
        raise CanaryInputError(f"version {show(version)} is not a valid label value: up to 63 letters, digits, "
                               "'-', '_' or '.', starting and ending with a letter or digit")
    selector = spec.get("selector")
    if not isinstance(selector, Mapping) or not selector:
        raise CanaryInputError(f"Service {name!r} has no selector (type {spec.get('type', 'ClusterIP')}); a "
                               "per-version Service selects the version's pods by the service's own selector")
    ports = spec.get("ports") or []
    if not ports:
        raise CanaryInputError(f"Service {name!r} has no ports; a backendRef to a Service needs a port")
    wanted_name = validate_service_name(f"{name}-{version.lower()}", "per-version Service name")
    new_ports = [{key: json_copy(port[key]) for key in ("name", "port", "protocol", "targetPort", "appProtocol")
                  if key in port} for port in ports]
    new_metadata: dict[str, Any] = {"name": wanted_name}
    if metadata.get("namespace"):
        new_metadata["namespace"] = metadata["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": new_metadata,
        "spec": {"ports": new_ports, "selector": {**json_copy(dict(selector)), version_label: version}},
    }


# ---------------------------------------------------------------------------------------------- header rules
#
# A header rule sends the requests that carry given headers (testers) to one backend Service. Gateway API
# does not give a request to the first rule that matches, as Istio does with http routes: among the rules
# whose matches fit a request, the most specific match wins - an Exact path, then the longest PathPrefix,
# then a method, then the most header matches, then the most query parameter matches; the rule's position
# in the list breaks ties only after that (HTTPRouteRule's documentation). A header rule matches under the
# catch-all path ``PathPrefix /`` and so wins over the catch-all rule, but a rule with a longer path takes
# the testers' requests to that path: :func:`plan_header_rule` names such rules in a note.

HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}")
RULE_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_HEADER_MATCHES = 16
MAX_MATCHES = 64
MAX_RULES = 16
_HEADER_TYPES = {"exact": "Exact", "regex": "RegularExpression"}


def validate_rule_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > 253 or not RULE_NAME_RE.fullmatch(name):
        raise CanaryInputError(f"rule name {show(name)} is not valid for an HTTPRoute rule: lower-case letters, "
                               "digits, '-' and '.', starting and ending with a letter or digit, at most 253 "
                               "characters (Gateway API's SectionName)")
    return name


def header_matches(headers: Any) -> list[dict]:
    """One Gateway API match (under ``PathPrefix /``) from ``{name: value}``: a string is an Exact match,
    ``{exact: v}`` or ``{regex: v}`` (RegularExpression) the other forms Gateway API has."""
    hint = "give header names and values, e.g. {'end-user': 'jason'} or {'cookie': {'regex': '.*user=jason.*'}}"
    require_mapping(headers, "headers", hint)
    if not headers or len(headers) > MAX_HEADER_MATCHES:
        raise CanaryInputError(f"headers {show(headers)} must name 1 to {MAX_HEADER_MATCHES} headers (Gateway API's "
                               "limit per match)")
    found = []
    for name, given in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            raise CanaryInputError(f"header name {show(name)} is not an HTTP header name (RFC 7230 token, at most "
                                   "256 characters)")
        kind, value = "Exact", given
        if isinstance(given, Mapping):
            if len(given) != 1 or next(iter(given)) not in _HEADER_TYPES:
                raise CanaryInputError(f"header {name!r} match {show(given)} must be one of {{exact: ...}} or "
                                       "{regex: ...}; Gateway API has no prefix match for headers (use a regex)")
            key, value = next(iter(given.items()))
            kind = _HEADER_TYPES[key]
        if not isinstance(value, str) or not 1 <= len(value) <= 4096:
            raise CanaryInputError(f"header {name!r} value {show(value)} must be a string of 1 to 4096 characters")
        found.append({"type": kind, "name": name, "value": value})
    lowered = [entry["name"].lower() for entry in found]
    if len(set(lowered)) != len(lowered):
        raise CanaryInputError(f"headers {show(headers)} name one header twice (names are case-insensitive)")
    return [{"path": json_copy(_CATCH_ALL["path"]), "headers": found}]


def _plain_match(match: Any) -> Any:
    """A match with Gateway API's defaults filled in (what the API server stores)."""
    if not isinstance(match, Mapping):
        return match
    plain = {key: value for key, value in match.items() if value not in (None, [], {})}
    plain.setdefault("path", json_copy(_CATCH_ALL["path"]))
    if isinstance(plain.get("headers"), list):
        plain["headers"] = [dict({"type": "Exact"}, **h) if isinstance(h, Mapping) else h for h in plain["headers"]]
    return plain


def _plain_ref(ref: Any, namespace: str | None) -> Any:
    if not isinstance(ref, Mapping):
        return ref
    plain = dict(ref)
    plain["group"] = plain.get("group") or ""
    plain["kind"] = plain.get("kind") or "Service"
    plain["namespace"] = plain.get("namespace") or namespace
    plain.setdefault("weight", DEFAULT_WEIGHT)
    return plain


def same_rule(one: Any, other: Any, namespace: str | None) -> bool:
    """Whether two rules mean the same to Gateway API (defaults the API server fills in do not count)."""
    def plain(rule: Any) -> Any:
        if not isinstance(rule, Mapping):
            return rule
        copy = {key: value for key, value in rule.items() if value not in (None, [], {})}
        copy["matches"] = [_plain_match(m) for m in rule.get("matches") or [json_copy(_CATCH_ALL)]]
        copy["backendRefs"] = [_plain_ref(r, namespace) for r in rule.get("backendRefs") or []]
        return copy
    return plain(one) == plain(other)


def _path_rank(match: Any) -> tuple[int, int]:
    path = _plain_match(match).get("path") if isinstance(match, Mapping) else None
    if not isinstance(path, Mapping):
        return (0, 0)
    kind = path.get("type") or "PathPrefix"
    value = path.get("value") or "/"
    return (2, len(value)) if kind == "Exact" else (1, len(value)) if kind == "PathPrefix" else (1, 0)


def header_rule_port(route: Any) -> int | None:
    """The port of the first local Service backend of the rule a split moves (or of any rule): the port a
    new backendRef to a per-version Service takes, as the Bookinfo samples' per-version Services share it."""
    metadata, rules = _route_parts(route)
    namespace = metadata.get("namespace")
    try:
        order = [find_rule(route)]
    except CanaryInputError:
        order = []
    order += [i for i in range(len(rules)) if i not in order]
    for index in order:
        for ref in rules[index].get("backendRefs") or []:
            if isinstance(ref, Mapping) and _local_service(ref, namespace) and ref.get("port") is not None:
                return ref["port"]
    return None


def plan_header_rule(route: Any, rule_name: Any, matches: Any, service: Any, port: Any) -> tuple[list, list]:
    """The route's new ``spec.rules`` in which rule ``rule_name`` sends ``matches``-ing requests to
    ``service`` (port ``port``), and notes.

    An existing rule of that name gets the matches and the one backendRef and keeps its other fields
    (filters, timeouts) and its place; a new rule goes just before the first catch-all rule (order only
    breaks ties in Gateway API, but a reader expects testers before everyone else), else last. Other rules
    stay as they are.
    """
    metadata, rules = _route_parts(route)
    namespace = metadata.get("namespace")
    name = validate_rule_name(rule_name)
    validate_service_name(service, "backend Service")
    if not is_int(port) or not 1 <= port <= 65535:
        raise CanaryInputError(f"port {show(port)} for backend Service {service!r} is not a port number 1..65535")
    if not isinstance(matches, list) or not matches or len(matches) > MAX_MATCHES:
        raise CanaryInputError(f"matches {show(matches)} must be a list of 1 to {MAX_MATCHES} Gateway API "
                               "HTTPRouteMatch mappings")
    for index, match in enumerate(matches):
        require_mapping(match, f"matches[{index}]", "an HTTPRouteMatch has path, headers, queryParams or method")
    new_rules = [json_copy(rule) for rule in rules]
    found = [i for i, rule in enumerate(rules) if rule.get("name") == name]
    ref = {"name": service, "port": port}
    if found:
        rule = new_rules[found[0]]
        if same_rule({**rule, "matches": matches, "backendRefs": [ref]}, rules[found[0]], namespace):
            return [json_copy(r) for r in rules], []
        if any(isinstance(f, Mapping) and f.get("type") == "RequestRedirect" for f in rule.get("filters") or []):
            raise CanaryInputError(f"{rule_label(found[0], rule)} redirects (filter RequestRedirect); it is not a "
                                   "header rule that sends to a backend. Choose another rule name")
        rule["matches"] = json_copy(matches)
        rule["backendRefs"] = [ref]
    else:
        if len(rules) >= MAX_RULES:
            raise CanaryInputError(f"the HTTPRoute has {len(rules)} rules, Gateway API's maximum; a header rule "
                                   f"{name!r} would be one more")
        at = next((i for i, rule in enumerate(rules) if is_catch_all(rule)), len(rules))
        new_rules.insert(at, {"name": name, "matches": json_copy(matches), "backendRefs": [ref]})
    ours = min(_path_rank(m) for m in matches)
    taking = [rule_label(i, rule) for i, rule in enumerate(rules) if rule.get("name") != name
              and any(_path_rank(m) > ours for m in rule.get("matches") or [])]
    notes = []
    if taking:
        notes.append(f"rule {name!r} matches under a shorter path than {', '.join(taking)}; Gateway API gives the "
                     "more specific path precedence, so matching requests to those paths follow those rules")
    return new_rules, notes


def remove_header_rule(route: Any, rule_name: Any) -> list:
    """The route's ``spec.rules`` without rule ``rule_name`` (unchanged when it has none). The last rule is
    never removed: a route needs one, and it is not a header rule this collection added."""
    _metadata, rules = _route_parts(route)
    name = validate_rule_name(rule_name)
    kept = [json_copy(rule) for rule in rules if rule.get("name") != name]
    if not kept and rules:
        raise CanaryInputError(f"rule {name!r} is the HTTPRoute's only rule; removing it would leave the route "
                               "empty. Delete the route instead")
    return kept


def build_rules_patch(route: Any, new_rules: list) -> list[dict]:
    """JSON Patch replacing ``/spec/rules``, guarded by ``test`` ops of the resourceVersion and the rules as
    read; ``[]`` when nothing changes."""
    metadata, rules = _route_parts(route)
    if new_rules == rules:
        return []
    ops: list[dict] = []
    version = metadata.get("resourceVersion")
    if isinstance(version, str) and version:
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
    ops.append({"op": "test", "path": "/spec/rules", "value": json_copy(rules)})
    ops.append({"op": "replace", "path": "/spec/rules", "value": json_copy(new_rules)})
    return ops
