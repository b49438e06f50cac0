# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whole Kubernetes objects: names, the specs the resource modules accept, what a user owns of an
object (to tell a change from none), and the object to write."""

from __future__ import annotations

import copy
import re
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.invariant import check_invariant
from ansible_collections.canary.istio.plugins.module_utils._logic.subsets import validate_subset_name

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Metadata the API server sets on every write; a user never owns it.
SERVER_SET_METADATA = ("resourceVersion", "generation", "uid", "creationTimestamp", "managedFields", "selfLink",
                       "deletionTimestamp", "deletionGracePeriodSeconds")
# Annotations controllers write on their own (the Deployment controller's revision counter).
SERVER_SET_ANNOTATIONS = ("deployment.kubernetes.io/revision",)


def comparable(obj: dict[str, Any] | None) -> dict[str, Any]:
    """What a user owns of an object, to tell whether a write changed anything and to show diffs.

    One rule for every kind: the whole object without ``status``, without the metadata the
    server sets (``resourceVersion``, ``generation``, ``managedFields``, ...) and without
    annotations controllers write; empty ``labels``/``annotations`` count as absent.
    """
    if not obj:
        return {}
    result = copy.deepcopy(obj)
    result.pop("status", None)
    metadata = result.get("metadata")
    if not isinstance(metadata, dict):
        return result
    for key in SERVER_SET_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        for key in SERVER_SET_ANNOTATIONS:
            annotations.pop(key, None)
    for key in ("labels", "annotations"):
        if key in metadata and not metadata[key]:
            del metadata[key]
    return result


def strip_server_fields(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object as returned to users: without managedFields (noise), everything else kept."""
    if obj is None:
        return None
    result = copy.deepcopy(obj)
    (result.get("metadata") or {}).pop("managedFields", None)
    return result


def diff_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": comparable(before), "after": comparable(after)}


def validate_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 253 or not NAME_RE.match(value):
        raise CanaryInputError(
            f"{what} {value!r} is not a valid Kubernetes name: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters")
    return value


def validate_string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise CanaryInputError(f"{what} {value!r} must be a mapping of names to strings")
    bad = {k: v for k, v in value.items() if not isinstance(v, str)}
    if bad:
        raise CanaryInputError(f"{what} values must be strings (quote them in YAML): {bad!r}")
    return dict(value)


def _string_list(value: Any, what: str, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, list) or (required and not value) or \
            not all(isinstance(v, str) and v for v in value):
        need = "a non-empty list" if required else "a list"
        raise CanaryInputError(f"{what} {value!r} must be {need} of non-empty strings")


def validate_virtual_service_spec(spec: Any) -> dict[str, Any]:
    """The checks Istio's validation applies to the fields we rely on.

    A VirtualService without ``hosts`` is a delegate (used by a root VirtualService's
    ``delegate``): istio/istio ``pkg/config/validation/validation.go`` ``ValidateVirtualService``
    accepts it when it has no ``gateways``, no ``tcp`` and no ``tls`` routes, and
    ``validateHTTPRouteConflict`` refuses a ``delegate`` inside a delegate.
    """
    if not isinstance(spec, dict):
        raise CanaryInputError(f"spec {spec!r} must be a mapping (the VirtualService spec as in Istio's docs)")
    _string_list(spec.get("hosts"), "spec.hosts", required=False)
    _string_list(spec.get("gateways"), "spec.gateways", required=False)
    if not spec.get("hosts"):
        for field in ("gateways", "tcp", "tls"):
            if spec.get(field):
                raise CanaryInputError(
                    f"spec.{field} {spec[field]!r} is set on a VirtualService without hosts: a delegate VirtualService "
                    "(no hosts) must have no gateways and no tcp or tls routes (Istio's ValidateVirtualService); "
                    "give hosts, or drop spec." + field)
        for index, route in enumerate(spec.get("http") or []):
            if isinstance(route, dict) and route.get("delegate") is not None:
                raise CanaryInputError(
                    f"spec.http[{index}] delegates again inside a delegate VirtualService (no hosts); Istio allows "
                    "one level of delegation only (validateHTTPRouteConflict)")
    for section in ("http", "tcp", "tls"):
        routes = spec.get(section)
        if routes is None:
            continue
        if not isinstance(routes, list):
            raise CanaryInputError(f"spec.{section} {routes!r} must be a list of routes")
        for index, route in enumerate(routes):
            if not isinstance(route, dict):
                raise CanaryInputError(f"spec.{section}[{index}] {route!r} must be a mapping")
            destinations = route.get("route")
            if destinations is None:
                if section != "http" or not any(k in route for k in ("redirect", "directResponse", "delegate")):
                    raise CanaryInputError(f"spec.{section}[{index}] has no route (a list of destinations)")
                continue
            if not isinstance(destinations, list) or not destinations:
                raise CanaryInputError(f"spec.{section}[{index}].route must be a non-empty list of destinations")
            for position, item in enumerate(destinations):
                target = item.get("destination") if isinstance(item, dict) else None
                if not isinstance(target, dict) or not isinstance(target.get("host"), str) or not target["host"]:
                    raise CanaryInputError(
                        f"spec.{section}[{index}].route[{position}] needs destination.host (got {item!r})")
                if target.get("subset") is not None:
                    where = f"spec.{section}[{index}].route[{position}].destination.subset"
                    validate_subset_name(target["subset"], where)
    problems = check_invariant(spec, {})
    if problems:
        raise CanaryInputError("invalid VirtualService spec: " + "; ".join(problems))
    return spec


def validate_destination_rule_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise CanaryInputError(f"spec {spec!r} must be a mapping (the DestinationRule spec as in Istio's docs)")
    if not isinstance(spec.get("host"), str) or not spec["host"]:
        raise CanaryInputError(f"spec.host {spec.get('host')!r} must be the service host the rule applies to")
    subsets = spec.get("subsets")
    if subsets is None:
        return spec
    if not isinstance(subsets, list):
        raise CanaryInputError(f"spec.subsets {subsets!r} must be a list of subsets")
    seen: set[str] = set()
    for index, subset in enumerate(subsets):
        if not isinstance(subset, dict) or not isinstance(subset.get("name"), str) or not subset["name"]:
            raise CanaryInputError(f"spec.subsets[{index}] {subset!r} needs a name")
        if subset["name"] in seen:
            raise CanaryInputError(f"spec.subsets has two subsets named {subset['name']!r}; names must be unique")
        validate_subset_name(subset["name"], f"spec.subsets[{index}].name")
        seen.add(subset["name"])
        validate_string_map(subset.get("labels"), f"spec.subsets[{index}].labels")
    return spec


def from_definition(params: dict[str, Any], kind: str) -> tuple[str | None, str | None, Any, dict, dict]:
    """name, namespace, spec, labels, annotations from ``definition`` and the options (options win)."""
    definition = params.get("definition")
    name, namespace, spec = params.get("name"), params.get("namespace"), params.get("spec")
    labels = dict(params.get("labels") or {})
    annotations = dict(params.get("annotations") or {})
    if definition is not None:
        if not isinstance(definition, dict):
            raise CanaryInputError(f"definition must be a mapping (a whole {kind}), got {definition!r}")
        if definition.get("kind") not in (None, kind):
            raise CanaryInputError(f"definition has kind {definition.get('kind')!r}; this module manages {kind}")
        api_version = str(definition.get("apiVersion") or "networking.istio.io/")
        if not api_version.startswith("networking.istio.io/"):
            raise CanaryInputError(f"definition has apiVersion {api_version!r}; expected networking.istio.io/...")
        metadata = definition.get("metadata") or {}
        name = name or metadata.get("name")
        namespace = namespace or metadata.get("namespace")
        spec = spec if spec is not None else definition.get("spec")
        labels = {**(metadata.get("labels") or {}), **labels}
        annotations = {**(metadata.get("annotations") or {}), **annotations}
    return name, namespace, spec, labels, annotations


def merged_object(existing: dict[str, Any] | None, name: str, namespace: str, spec: dict[str, Any],
                  labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    """The object to write: the stored one with this spec and these labels/annotations merged in."""
    obj = existing or {"metadata": {"name": name, "namespace": namespace}}
    metadata = obj.setdefault("metadata", {})
    metadata.pop("managedFields", None)
    if labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    if annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    obj["spec"] = copy.deepcopy(spec)
    return obj
