"""Counts the API requests a piece of code made, from the lab apiserver's audit log.

A window is opened and closed by marker requests (a GET of a ConfigMap with a unique name,
which 404s); the audit log is read until the closing marker shows, so nothing written late is
missed, and only events between the two markers are counted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.kube import KubeClient, KubeError


class AuditWindow:
    def __init__(self, state: dict[str, Any]):
        self.path = Path(state["audit_log"])
        self.client = KubeClient.from_state(state, user="admin")
        self.start_marker = self._mark()
        self.events: list[dict[str, Any]] | None = None

    def _mark(self) -> str:
        marker = f"audit-marker-{uuid.uuid4().hex}"
        try:
            self.client.get(f"/api/v1/namespaces/default/configmaps/{marker}")
        except KubeError:
            pass
        return marker

    def close(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        end_marker = self._mark()
        deadline = time.monotonic() + timeout
        while True:
            events = self._read()
            uris = [e.get("requestURI", "") for e in events]
            start = next((i for i, u in enumerate(uris) if self.start_marker in u), None)
            end = next((i for i, u in enumerate(uris) if end_marker in u), None)
            if start is not None and end is not None:
                self.events = events[start + 1:end]
                return self.events
            if time.monotonic() > deadline:
                raise TimeoutError(f"audit markers not found in {self.path}")
            time.sleep(0.05)

    def _read(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        seen: set[str] = set()
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("stage") not in ("ResponseComplete", "Panic"):
                    continue
                if event.get("auditID") in seen:
                    continue
                seen.add(event.get("auditID"))
                events.append(event)
        return events

    def requests(self, user: str | None = None,
                 where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """The requests in the window, optionally by user name (e.g. ``lab:admin``)."""
        if self.events is None:
            self.close()
        assert self.events is not None
        return [e for e in self.events
                if (user is None or e.get("user", {}).get("username") == user) and (where is None or where(e))]

    def writes(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.requests(user, lambda e: e.get("verb") in ("create", "update", "patch", "delete",
                                                               "deletecollection"))


def summarize(events: list[dict[str, Any]]) -> list[str]:
    return [f"{e.get('verb')} {e.get('requestURI')} -> {e.get('responseStatus', {}).get('code')}" for e in events]
