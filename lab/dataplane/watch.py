"""Keeps a local copy of one kind of object from the API server: list, then watch, re-list on 410."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lab.kube import KubeClient, KubeError

log = logging.getLogger("lab.dataplane.watch")

Key = tuple[str, str]  # (namespace, name)

# The Gateway API objects the router follows (lab/dataplane/routing.py: HTTPRoutes, and Gateway
# API's Gateways, named apart from Istio's). The data plane watches them beside Istio's objects
# (WATCHED.update(GATEWAY_API_WATCHED)) and hands them to the snapshot
# (Snapshot(..., **gateway_api_inputs(informers))). Until the CRDs are served the informers get
# 404s and retry, as they do for Istio's.
GATEWAY_API_WATCHED = {
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/httproutes",
    "KubernetesGateway": "/apis/gateway.networking.k8s.io/v1/gateways",
}


def gateway_api_inputs(informers: dict[str, Informer]) -> dict[str, list[dict[str, Any]]]:
    """The Snapshot arguments for Gateway API objects, from whichever of its informers exist."""
    def items(kind: str) -> list[dict[str, Any]]:
        informer = informers.get(kind)
        return informer.items() if informer is not None else []

    return {"http_routes": items("HTTPRoute"), "kubernetes_gateways": items("KubernetesGateway")}


class Informer:
    """One kind of object, all namespaces.  Calls ``on_change(kind)`` after every change."""

    def __init__(self, kind: str, path: str, client_factory: Callable[[], KubeClient],
                 on_change: Callable[[str], None], watch_timeout: int = 240):
        self.kind = kind
        self.path = path
        self.client_factory = client_factory
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.objects: dict[Key, dict[str, Any]] = {}
        self.synced = threading.Event()
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.objects.values())

    def resource_versions(self) -> dict[str, str]:
        with self._lock:
            return {f"{ns}/{name}": obj["metadata"].get("resourceVersion", "")
                    for (ns, name), obj in self.objects.items()}

    @staticmethod
    def key_of(obj: dict[str, Any]) -> Key:
        meta = obj.get("metadata", {})
        return meta.get("namespace", ""), meta.get("name", "")

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            client = self.client_factory()
            try:
                version = self._list(client)
                backoff = 0.2
                self._watch(client, version)
            except KubeError as exc:
                # 404 until the CRDs are installed; 410 when our resourceVersion is too old.
                self.last_error = str(exc)
                if exc.status != 410:
                    log.info("%s: %s", self.kind, exc)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
            except Exception as exc:  # connection trouble: re-list after a pause
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.info("%s watch interrupted: %s", self.kind, self.last_error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                client.close()

    def _list(self, client: KubeClient) -> str:
        answer = client.get(self.path)
        fresh = {}
        for item in answer.get("items") or []:
            fresh[self.key_of(item)] = item
        with self._lock:
            changed = fresh != self.objects
            self.objects = fresh
        self.synced.set()
        self.last_error = None
        if changed:
            self.on_change(self.kind)
        return str(answer.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, client: KubeClient, version: str) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            for event in client.watch(self.path, version, timeout_seconds=self.watch_timeout):
                if self._stopping.is_set():
                    return
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise KubeError(410, "Gone", obj)
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                key = self.key_of(obj)
                with self._lock:
                    if kind == "DELETED":
                        self.objects.pop(key, None)
                    else:
                        self.objects[key] = obj
                self.on_change(self.kind)
            # The server ended the watch (its timeout): resume from the last version seen.  A watch
            # that ends at once is suspicious, so let the caller re-list instead.
            if time.monotonic() - started < 1:
                return
