"""A small JSON client for the lab's own use (CRD install, data plane, tests).

The lab stands in for Kubernetes and Istio and must judge the collection independently,
so it never imports ``plugins/``; this client is deliberately separate from the
collection's own.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from typing import Any


class KubeError(Exception):
    """An HTTP error from the API server, with its status and Status message."""

    def __init__(self, status: int, reason: str, body: Any):
        self.status = status
        self.reason = reason
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{status} {reason}: {message}")


class KubeClient:
    """Talks to one API server with one bearer token over a verified TLS connection."""

    def __init__(self, server: str, token: str, ca_file: str, timeout: float = 30.0,
                 user_agent: str = "canary-istio-lab"):
        parsed = urllib.parse.urlsplit(server)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 443
        self.token = token
        self.timeout = timeout
        self.user_agent = user_agent
        self.context = ssl.create_default_context(cafile=ca_file)
        self._conn: http.client.HTTPSConnection | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any], user: str = "admin", **kwargs: Any) -> KubeClient:
        return cls(state["server"], state["tokens"][user], state["ca_file"], **kwargs)

    def _connection(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        if timeout is not None:
            return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                     timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                   "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json") -> Any:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        payload = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=self._headers(content_type if payload else None))
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                # A kept-alive connection the server closed: reconnect once.
                self.close()
                if attempt == 2:
                    raise
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = data.decode(errors="replace")
        if response.status >= 400:
            raise KubeError(response.status, response.reason, parsed)
        return parsed

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def replace(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def json_patch(self, path: str, ops: list[dict[str, Any]]) -> Any:
        return self.request("PATCH", path, ops, content_type="application/json-patch+json")

    def watch(self, path: str, resource_version: str | None = None,
              timeout_seconds: int = 300) -> Iterator[dict[str, Any]]:
        """Yields watch events ({"type": ..., "object": ...}) from a fresh connection."""
        query: dict[str, Any] = {"watch": "1", "timeoutSeconds": timeout_seconds,
                                 "allowWatchBookmarks": "true"}
        if resource_version:
            query["resourceVersion"] = resource_version
        conn = self._connection(timeout=timeout_seconds + 30)
        try:
            conn.request("GET", f"{path}?{urllib.parse.urlencode(query)}", headers=self._headers(None))
            response = conn.getresponse()
            if response.status >= 400:
                body = response.read()
                raise KubeError(response.status, response.reason, body.decode(errors="replace"))
            buffer = b""
            while True:
                chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            conn.close()


def create_all(server: str, token: str, ca_file: str, items: list[tuple[str, Any]], concurrency: int = 8) -> None:
    """POSTs every ``(collection path, body)`` with ``concurrency`` connections at once (bulk set-up of
    thousands of objects for tests and benchmarks); an object that already exists is left as it is."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def create(item: tuple[str, Any]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = KubeClient(server, token, ca_file)
        try:
            client.create(*item)
        except KubeError as exc:
            if exc.status != 409:
                raise

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(create, items):
            pass
