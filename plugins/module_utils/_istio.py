# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Istio networking resources over the API: version negotiation, reads and guarded writes.

Version negotiation costs no request in the common case: the best version (v1) is tried first,
and only when the server says it does not serve that resource type (a 404 that names no object)
is the group discovered, with one request, and the best served version used from then on.
Twins (one per worker thread) share what was negotiated: when several requests miss at once, one of
them discovers and the others try again at the version it found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, KubeClient

GROUP = "networking.istio.io"
PREFERRED_VERSIONS = ("v1", "v1beta1", "v1alpha3")
KINDS = {
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "Gateway": "gateways",
}
FIELD_MANAGER = "canary.istio"
# A LIST answered as a Table (the columns kubectl prints) rather than as objects.
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

ISTIO_ARG_SPEC: dict[str, dict[str, Any]] = {
    "api_version": {"type": "str", "choices": ["auto", "v1", "v1beta1", "v1alpha3"], "default": "auto"},
}


class IstioMissing(Exception):
    """The cluster does not serve Istio's networking API."""


class Istio:
    """Access to networking.istio.io resources with the best API version the cluster serves."""

    def __init__(self, client: KubeClient, api_version: str = "auto"):
        self.client = client
        self.forced = api_version not in (None, "", "auto")
        self._negotiated = _Negotiated(api_version if self.forced else PREFERRED_VERSIONS[0], self.forced)
        self.discovery_requests = 0

    @property
    def version(self) -> str:
        """The version requests use: the preferred one, or the one discovered (by this or a twin)."""
        return self._negotiated.version

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{self.version}"

    def twin(self, client: KubeClient) -> Istio:
        """The same access over another client; the version negotiated is shared with the twin."""
        other = Istio.__new__(Istio)
        other.__dict__.update(self.__dict__)
        other.client = client
        other.discovery_requests = 0
        return other

    def discover(self) -> str:
        """One discovery request for the group; picks the best served version."""
        self.discovery_requests += 1
        self._negotiated.discovered = True
        try:
            group = self.client.get(f"/apis/{GROUP}")
        except ApiError as exc:
            if exc.status == 404:
                raise IstioMissing(
                    f"the cluster at {self.client.settings.server} does not serve {GROUP}: Istio's CRDs "
                    "(VirtualService, DestinationRule) are missing. Install Istio (or its CRDs) first") from None
            raise
        served = [v.get("version") for v in (group or {}).get("versions", [])]
        for version in PREFERRED_VERSIONS:
            if version in served:
                self._negotiated.version = version
                return version
        raise IstioMissing(f"{GROUP} is served only at {', '.join(map(str, served)) or 'no version'}; "
                           f"this collection needs one of {', '.join(PREFERRED_VERSIONS)}")

    def discover_kind(self, kind: str) -> str:
        """The best version serving ``kind`` (one request per version asked); only after a miss."""
        resource = KINDS[kind]
        for version in PREFERRED_VERSIONS:
            self.discovery_requests += 1
            try:
                listing = self.client.get(f"/apis/{GROUP}/{version}")
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise
            if any(r.get("name") == resource for r in (listing or {}).get("resources") or []):
                self._negotiated.version = version
                return version
        raise IstioMissing(
            f"the cluster at {self.client.settings.server} serves {GROUP} but not {kind} ({resource}) at "
            f"{', '.join(PREFERRED_VERSIONS)}: Istio's {kind} CRD is missing. Install Istio (or its CRDs) first")

    def path(self, kind: str, namespace: str | None, name: str | None = None, version: str | None = None) -> str:
        """The object's path, or its collection's; all namespaces when ``namespace`` is None."""
        scope = f"namespaces/{namespace}/" if namespace else ""
        base = f"/apis/{GROUP}/{version or self.version}/{scope}{KINDS[kind]}"
        return f"{base}/{name}" if name else base

    def call(self, method: str, kind: str, namespace: str | None, name: str | None = None, **kwargs: Any) -> Any:
        """A request, tried again at the discovered version when the first guess is not served.

        The group is discovered after the first miss; when the group's version does not serve
        ``kind`` either, the versions are asked for that kind (once per kind). A request that misses
        while a twin is discovering waits for it and tries the version found."""
        while True:
            tried = self.version
            try:
                return self.client.request(method, self.path(kind, namespace, name, tried), **kwargs)
            except ApiError as exc:
                if not _type_not_served(exc):
                    raise
                if self.forced:
                    raise IstioMissing(f"the cluster does not serve {KINDS[kind]} at {self.api_version} "
                                       "(api_version); use api_version: auto or a version the cluster "
                                       "serves") from None
                with self._negotiated.lock:
                    if self.version != tried:
                        continue  # a twin found the version meanwhile
                    if not self._negotiated.discovered:
                        self.discover()
                        continue
                    if kind not in self._negotiated.kinds_asked:
                        # The group is served but not this kind at the version picked for the group (a
                        # cluster with only some of Istio's CRDs, or older versions for some kinds).
                        self._negotiated.kinds_asked.add(kind)
                        self.discover_kind(kind)
                        continue
                raise

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (a missing namespace also reads as None)."""
        try:
            return self.call("GET", kind, namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, label_selector: str | None = None,
             page_size: int | None = None, each: Callable[[dict[str, Any]], Any] | None = None,
             cached: bool = False) -> list[Any]:
        """Every object (all namespaces when ``namespace`` is None). With ``page_size``, read in pages of
        that many (``limit``/``continue``), and ``each`` turns every object into what is kept, so only
        one page is held whole at a time. ``cached`` reads from the API server's watch cache
        (``resourceVersion=0``): no etcd read, but objects may lag behind by a moment, so only for
        reads whose writes are guarded by the resourceVersion read (and a server that does not page
        its cache answers with everything at once)."""
        items: list[Any] = []
        token = None
        while True:
            query = {"labelSelector": label_selector, "limit": page_size, "continue": token,
                     "resourceVersion": "0" if cached and not token else None}
            result = self.call("GET", kind, namespace, query={k: v for k, v in query.items() if v} or None)
            for item in (result or {}).get("items") or []:
                # List items carry no kind/apiVersion; fill them so results look like single reads.
                item.setdefault("apiVersion", self.api_version)
                item.setdefault("kind", kind)
                items.append(each(item) if each else item)
            token = ((result or {}).get("metadata") or {}).get("continue")
            if not page_size or not token:
                return items

    def cached_column(self, kind: str, namespace: str, column: str) -> list[tuple[str, Any]] | None:
        """Each object's name and the value of one of its printer columns (Istio's CRDs give
        DestinationRules a ``Host`` column), from the API server's watch cache: one small request
        however many objects, but it may lag behind etcd, so it only tells where to look. None when
        the server answers without that column."""
        try:
            table = self.call("GET", kind, namespace, query={"resourceVersion": "0", "includeObject": "None"},
                              accept=TABLE)
        except ApiError as exc:
            if exc.status in (406, 415):
                return None
            raise
        if not isinstance(table, dict) or table.get("kind") != "Table":
            return None
        names = [definition.get("name") for definition in table.get("columnDefinitions") or []
                 if isinstance(definition, dict)]
        if "Name" not in names or column not in names:
            return None
        at_name, at_column = names.index("Name"), names.index(column)
        pairs = []
        for row in table.get("rows") or []:
            cells = row.get("cells") if isinstance(row, dict) else None
            if not isinstance(cells, list) or len(cells) != len(names) or not isinstance(cells[at_name], str):
                return None
            pairs.append((cells[at_name], cells[at_column]))
        return pairs

    def create(self, kind: str, namespace: str, body: dict[str, Any], dry_run: bool = False) -> Any:
        body = dict(body, apiVersion=self.api_version, kind=kind)
        return self.call("POST", kind, namespace, body=body, query=_write_query(dry_run))

    def replace(self, kind: str, namespace: str, name: str, body: dict[str, Any], dry_run: bool = False) -> Any:
        body = dict(body, apiVersion=self.api_version, kind=kind)
        return self.call("PUT", kind, namespace, name, body=body, query=_write_query(dry_run))

    def json_patch(self, kind: str, namespace: str, name: str, ops: list[dict[str, Any]],
                   dry_run: bool = False) -> Any:
        return self.call("PATCH", kind, namespace, name, body=ops, query=_write_query(dry_run),
                         content_type="application/json-patch+json")

    def delete(self, kind: str, namespace: str, name: str, dry_run: bool = False,
               resource_version: str | None = None) -> Any:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if dry_run:
            body["dryRun"] = ["All"]
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        return self.call("DELETE", kind, namespace, name, body=body)


class _Negotiated:
    """The API version in use and whether it was discovered, shared by an Istio and its twins."""

    def __init__(self, version: str, discovered: bool):
        self.version = version
        self.discovered = discovered
        self.kinds_asked: set[str] = set()
        self.lock = threading.Lock()


def _type_not_served(exc: ApiError) -> bool:
    """A 404 about the resource type (the URL's version does not serve it), not about an object."""
    return exc.status == 404 and not exc.object_missing and "namespaces" not in exc.message


def _write_query(dry_run: bool) -> dict[str, Any]:
    query: dict[str, Any] = {"fieldManager": FIELD_MANAGER}
    if dry_run:
        query["dryRun"] = "All"
    return query
