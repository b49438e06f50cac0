# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Desired-state handling of one Istio object (present/absent), shared by the resource modules.

``present`` makes the stored spec equal to the given one, merges the given labels and
annotations into the object's own, and writes with the read resourceVersion, so a concurrent
change is never overwritten blindly: on a conflict the object is re-read and the desired state
applied again to what is now stored.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._canary import (
    CanaryInputError,
    check_invariant,
    merge_subsets,
    referenced_subsets,
)
from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._istio import comparable, strip_server_fields
from ansible_collections.canary.istio.plugins.module_utils._module import Context, ModuleFailure

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFLICT_RETRIES = 3


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
    """The checks Istio's validation applies to the fields we rely on."""
    if not isinstance(spec, dict):
        raise CanaryInputError(f"spec {spec!r} must be a mapping (the VirtualService spec as in Istio's docs)")
    _string_list(spec.get("hosts"), "spec.hosts", required=True)
    _string_list(spec.get("gateways"), "spec.gateways", required=False)
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


def diff_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": comparable(before), "after": comparable(after)}


def ensure(ctx: Context, kind: str, resource: str, namespace: str, name: str, state: str,
           desired: Callable[[dict[str, Any] | None], dict[str, Any]] | None,
           before_delete: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Brings one object to ``state``; ``desired(existing)`` returns the wanted object.

    ``before_delete(existing)`` may refuse a deletion by raising.
    """
    istio = ctx.istio
    dry_run = ctx.check_mode
    for attempt in range(1, CONFLICT_RETRIES + 1):
        ctx.at("get", resource, name, namespace)
        existing = istio.get(kind, namespace, name)
        if state == "absent":
            if existing is None:
                return _result(ctx, False, "unchanged", None, None)
            if before_delete is not None:
                before_delete(existing)
            ctx.at("delete", resource, name, namespace)
            try:
                istio.delete(kind, namespace, name, dry_run=dry_run,
                             resource_version=existing["metadata"].get("resourceVersion"))
            except ApiError as exc:
                if exc.status == 409 and attempt < CONFLICT_RETRIES:
                    continue
                if exc.status == 404:
                    return _result(ctx, False, "unchanged", None, None)
                raise
            return _result(ctx, True, "deleted", existing, None)
        if desired is None:
            raise ValueError("state=present needs a desired object")
        wanted = desired(copy.deepcopy(existing) if existing else None)
        if existing is not None and comparable(existing) == comparable(wanted):
            return _result(ctx, False, "unchanged", existing, existing)
        try:
            if existing is None:
                ctx.at("create", resource, name, namespace)
                after = istio.create(kind, namespace, wanted, dry_run=dry_run)
                return _result(ctx, True, "created", None, after)
            ctx.at("update", resource, name, namespace)
            after = istio.replace(kind, namespace, name, wanted, dry_run=dry_run)
            return _result(ctx, True, "updated", existing, after)
        except ApiError as exc:
            # 409 on update: someone wrote meanwhile; on create: someone created it meanwhile.
            if exc.status == 409 and attempt < CONFLICT_RETRIES:
                continue
            if exc.status == 404 and exc.object_missing and "namespaces" in exc.message:
                raise ModuleFailure(f"namespace {namespace!r} does not exist; create it first") from None
            raise
    raise ModuleFailure(f"{kind} {namespace}/{name} kept changing under us ({CONFLICT_RETRIES} conflicts); "
                        "nothing was overwritten. Re-run when the other writer is done")


def _result(ctx: Context, changed: bool, method: str, before: dict[str, Any] | None,
            after: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"changed": changed, "method": method, "result": strip_server_fields(after) or {},
                              "api_version": ctx.istio.api_version}
    if ctx.diff_mode:
        result["diff"] = diff_of(before, after)
    return result


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


def plan_destination_rule_spec(existing_spec: dict[str, Any] | None, given_spec: dict[str, Any] | None,
                               upsert: list[Any], remove: list[str], keep_subsets: bool) -> dict[str, Any]:
    """The DestinationRule spec to store.

    A given spec sets every field; its subsets are merged with the stored ones, so a subset the
    task did not name (Bookinfo's v3) survives, unless ``keep_subsets`` is false. ``upsert``
    subsets are added or replaced by name, ``remove`` names are dropped.
    """
    stored_subsets = list((existing_spec or {}).get("subsets") or [])
    if given_spec is not None:
        spec = copy.deepcopy(given_spec)
        given_subsets = list(spec.get("subsets") or [])
        base = merge_subsets(stored_subsets, given_subsets, []) if keep_subsets else given_subsets
    else:
        spec = copy.deepcopy(existing_spec or {})
        base = stored_subsets
    merged = merge_subsets(base, upsert, remove)
    if merged or "subsets" in spec or stored_subsets:
        spec["subsets"] = merged
    return spec


def removed_subsets(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    old = [s.get("name") for s in (before or {}).get("subsets") or [] if isinstance(s, dict)]
    new = {s.get("name") for s in after.get("subsets") or [] if isinstance(s, dict)}
    return [name for name in old if name not in new]


def routes_to_subsets(ctx: Context, namespace: str, host: str, subsets: list[str]) -> dict[str, list[str]]:
    """VirtualServices in the namespace still routing to any of ``subsets`` of ``host`` (one list request)."""
    if not subsets:
        return {}
    ctx.at("list", "virtualservices", None, namespace)
    users: dict[str, list[str]] = {}
    for vs in ctx.istio.list("VirtualService", namespace):
        routed = referenced_subsets(vs.get("spec") or {}, host)
        for subset in subsets:
            if subset in routed:
                users.setdefault(subset, []).append(vs["metadata"]["name"])
    return users


INFO_ARG_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "all_namespaces": {"type": "bool", "default": False},
    "label_selectors": {"type": "list", "elements": "str", "default": []},
}


def read_info(ctx: Context, kind: str, resource: str, params: dict[str, Any]) -> dict[str, Any]:
    """One object by name, or a list by namespace (or all) and label selectors."""
    name = params.get("name")
    if params.get("all_namespaces") and name:
        raise CanaryInputError("name and all_namespaces exclude each other: a name is looked up in one namespace")
    namespace = None if params.get("all_namespaces") else validate_name(
        params.get("namespace") or ctx.default_namespace, "namespace")
    if name:
        validate_name(name, "name")

        ctx.at("get", resource, name, namespace)
        found = ctx.istio.get(kind, namespace, name)
        items = [found] if found else []
    else:
        selector = ",".join(s.strip() for s in params.get("label_selectors") or [] if s and s.strip()) or None
        ctx.at("list", resource, None, namespace)
        items = ctx.istio.list(kind, namespace, selector)
    return {"changed": False, "resources": [strip_server_fields(i) for i in items],
            "api_version": ctx.istio.api_version}
