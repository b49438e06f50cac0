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
from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts, visible_to
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import (
    comparable,
    diff_of,
    strip_server_fields,
    validate_name,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import referenced_subsets

CONFLICT_RETRIES = 3


def ensure(ctx: Context, kind: str, resource: str, namespace: str, name: str, state: str,
           desired: Callable[[dict[str, Any] | None], dict[str, Any]] | None,
           before_delete: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Brings one object to ``state``; ``desired(existing)`` returns the wanted object.

    ``before_delete(existing)`` may refuse a deletion by raising.
    """
    istio = ctx.istio
    dry_run = ctx.check_mode
    for attempt in range(1, CONFLICT_RETRIES + 1):
        existing = istio.get(kind, namespace, name)
        if state == "absent":
            if existing is None:
                return _result(ctx, False, "unchanged", None, None)
            if before_delete is not None:
                before_delete(existing)
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
                after = istio.create(kind, namespace, wanted, dry_run=dry_run)
                return _result(ctx, True, "created", None, after)
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


def routes_to_subsets(ctx: Context, namespace: str, rule: dict[str, Any], subsets: list[str],
                      cluster_domain: str | None = None) -> dict[str, list[str]]:
    """VirtualServices still routing to any of ``subsets`` through DestinationRule ``rule`` (in ``namespace``).

    Hosts are resolved as Istio does (the rule's host in its namespace, each destination's host in
    its VirtualService's namespace). The rule serves VirtualServices of every namespace it is
    exported to, so all namespaces are read when the client may list them (one request); with
    rights in the rule's namespace only, that namespace is read (one more request). A
    VirtualService in another namespace is named ``namespace/name``.
    """
    if not subsets:
        return {}
    fqdn = Hosts(namespace, cluster_domain).fqdn((rule.get("spec") or {}).get("host"))
    try:
        candidates = ctx.istio.list("VirtualService", None)
    except ApiError as exc:
        if exc.status != 403:
            raise
        candidates = ctx.istio.list("VirtualService", namespace)
    users: dict[str, list[str]] = {}
    for vs in candidates:
        vs_namespace = vs["metadata"].get("namespace") or namespace
        if not visible_to(rule, namespace, vs_namespace):
            continue
        routed = referenced_subsets(vs.get("spec") or {}, fqdn, Hosts(vs_namespace, cluster_domain))
        label = vs["metadata"]["name"] if vs_namespace == namespace else f"{vs_namespace}/{vs['metadata']['name']}"
        for subset in subsets:
            if subset in routed:
                users.setdefault(subset, []).append(label)
    return users


# The options of the modules that manage one object (documented in doc_fragments/resource.py).
OBJECT_ARG_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "definition": {"type": "dict"},
    "labels": {"type": "dict"},
    "annotations": {"type": "dict"},
}

# The options of the *_info modules (documented in doc_fragments/resource.py, section INFO).
# What the _info modules use: the Kubernetes API, for Istio's kinds.
INFO_USES = ("kubernetes", "istio")
INFO_ARG_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "all_namespaces": {"type": "bool", "default": False},
    "label_selectors": {"type": "list", "elements": "str", "default": []},
}


def read_info(ctx: Context, kind: str, api: Any = None) -> dict[str, Any]:
    """The whole ``execute`` of an _info module: one object of ``kind`` by name, or a list by namespace
    (or all) and label selectors. ``api`` reads them (Istio's objects by default; ``_httproute.RouteReader``
    for HTTPRoutes)."""
    params = ctx.params
    api = api if api is not None else ctx.istio
    name = params.get("name")
    if params.get("all_namespaces") and name:
        raise CanaryInputError("name and all_namespaces exclude each other: a name is looked up in one namespace")
    namespace = None if params.get("all_namespaces") else validate_name(
        params.get("namespace") or ctx.default_namespace, "namespace")
    if name:
        validate_name(name, "name")
        found = api.get(kind, namespace, name)
        items = [found] if found else []
    else:
        selector = ",".join(s.strip() for s in params.get("label_selectors") or [] if s and s.strip()) or None
        items = api.list(kind, namespace, selector)
    return {"changed": False, "resources": [strip_server_fields(i) for i in items],
            "api_version": api.api_version}
