# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reads and guarded writes of the objects a resilience task changes: the VirtualService route (or
HTTPRoute rule), the DestinationRule's trafficPolicy and the local rate limit EnvoyFilter.

Every object is read and its change planned before the first write (``_logic.resilience`` refuses bad
values then), so a missing object or subset fails the task with nothing written. Each object gets one
guarded write: a JSON Patch whose ``test`` ops pin what was read; on a conflict it is read and planned
again (``_traffic.write``). Check mode sends the same requests as server-side dry runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._httproute import gateway_api
from ansible_collections.canary.istio.plugins.module_utils._traffic import _forget_managed_fields, read_optional, write

ENVOY_FILTERS = "/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/envoyfilters"
MANAGED_BY = {"app.kubernetes.io/managed-by": "canary.istio"}
FIELD_MANAGER = "canary.istio"


class Change:
    """One object of the task: how it is read and patched, and what was read, planned and written.

    ``plan(current)`` returns the JSON Patch for the object as read (``[]`` when it already holds the
    change); it raises on bad input, so planning every object first means nothing is written on a refusal.
    """

    def __init__(self, kind: str, namespace: str, name: str, read: Callable[[Context], Any],
                 send: Callable[[Context, list[dict[str, Any]]], Any], plan: Callable[[dict[str, Any]], list]):
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self._read = read
        self._send = send
        self._plan = plan
        self.before: dict[str, Any] | None = None
        self.patch: list[dict[str, Any]] = []
        self.written: dict[str, Any] | None = None
        self.maybe_written = False

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def send_patch(self, ctx: Context, ops: list[dict[str, Any]]) -> Any:
        return self._send(ctx, ops)

    def read_current(self, ctx: Context) -> Any:
        return self._read(ctx)

    def prepare(self, ctx: Context) -> None:
        """Reads the object and plans its patch; a missing object is refused, naming it."""
        current = self._read(ctx)
        if current is None:
            raise ModuleFailure(f"{self.kind} {self.label} not found; create it first (nothing was changed)")
        self.before = _forget_managed_fields(current)
        self.patch = self._plan(current)

    def commit(self, ctx: Context, max_retries: int) -> None:
        write(ctx, self, lambda: self.prepare(ctx), max_retries)

    @property
    def after(self) -> dict[str, Any] | None:
        return self.written if self.written is not None else self.before


def virtual_service(ctx: Context, namespace: str, name: str, plan: Callable[[dict[str, Any]], list]) -> Change:
    return Change("VirtualService", namespace, name,
                  lambda c: c.istio.get("VirtualService", namespace, name),
                  lambda c, ops: c.istio.json_patch("VirtualService", namespace, name, ops, dry_run=c.check_mode),
                  plan)


def destination_rule(ctx: Context, namespace: str, name: str, plan: Callable[[dict[str, Any]], list]) -> Change:
    return Change("DestinationRule", namespace, name,
                  lambda c: c.istio.get("DestinationRule", namespace, name),
                  lambda c, ops: c.istio.json_patch("DestinationRule", namespace, name, ops, dry_run=c.check_mode),
                  plan)


def http_route(ctx: Context, namespace: str, name: str, plan: Callable[[dict[str, Any]], list]) -> Change:
    api = gateway_api(ctx)
    return Change("HTTPRoute", namespace, name,
                  lambda c: api.get(c.client, namespace, name),
                  lambda c, ops: api.json_patch(c.client, namespace, name, ops, c.check_mode),
                  plan)


def _write_query(ctx: Context) -> dict[str, Any]:
    return {"fieldManager": FIELD_MANAGER, "dryRun": "All" if ctx.check_mode else None}


def read_envoy_filter(ctx: Context, namespace: str, name: str) -> dict[str, Any] | None:
    return read_optional(ctx, f"{ENVOY_FILTERS.format(namespace=namespace)}/{name}")


def envoy_filter(ctx: Context, namespace: str, name: str, plan: Callable[[dict[str, Any]], list]) -> Change:
    path = f"{ENVOY_FILTERS.format(namespace=namespace)}/{name}"
    return Change("EnvoyFilter", namespace, name,
                  lambda c: read_envoy_filter(c, namespace, name),
                  lambda c, ops: c.client.request("PATCH", path, body=ops, query=_write_query(c),
                                                  content_type="application/json-patch+json"),
                  plan)


def create_envoy_filter(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """Creates the EnvoyFilter (a dry run in check mode), labelled as ours so that removal can tell."""
    metadata = body["metadata"]
    metadata["labels"] = {**(metadata.get("labels") or {}), **MANAGED_BY}
    return ctx.client.request("POST", ENVOY_FILTERS.format(namespace=metadata["namespace"]), body=body,
                              query=_write_query(ctx))


def delete_envoy_filter(ctx: Context, current: dict[str, Any]) -> None:
    """Deletes the EnvoyFilter read as ``current`` (a dry run in check mode), only if it is ours and unchanged."""
    metadata = current.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if any(labels.get(key) != value for key, value in MANAGED_BY.items()):
        raise ModuleFailure(f"EnvoyFilter {metadata.get('namespace')}/{metadata.get('name')} was not created by "
                            "canary.istio (no label app.kubernetes.io/managed-by=canary.istio); refusing to delete "
                            "it. Name ours with envoy_filter, or remove that one yourself")
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                            "preconditions": {"resourceVersion": metadata.get("resourceVersion")}}
    if ctx.check_mode:
        body["dryRun"] = ["All"]
    ctx.client.request("DELETE", f"{ENVOY_FILTERS.format(namespace=metadata['namespace'])}/{metadata['name']}",
                       body=body)
