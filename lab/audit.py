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
        # Where the log ended before the window opened: only what follows is read. The API server
        # rotates its log (every 100 MB: lumberjack's default when --audit-log-maxsize is 0), so the
        # file is remembered by inode and followed into its rotated name.
        self.origin = _position(self.path)
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
        for path, offset in self._files():
            with open(path, "rb") as handle:
                handle.seek(offset)
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

    def _files(self) -> list[tuple[Path, int]]:
        """The files to read, oldest first, each with the offset to start at: the file that was
        current when the window opened (from where it ended then), any rotated since, the current."""
        inode, offset = self.origin
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"),
                         key=lambda candidate: candidate.stat().st_mtime)
        files: list[tuple[Path, int]] = []
        for candidate in [*rotated, self.path]:
            try:
                same = candidate.stat().st_ino == inode
            except FileNotFoundError:
                continue
            if same:
                files = [(candidate, offset)]
            elif files:
                files.append((candidate, 0))
        return files or [(self.path, 0)]

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


def _position(path: Path) -> tuple[int | None, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None, 0
    return stat.st_ino, stat.st_size


def summarize(events: list[dict[str, Any]]) -> list[str]:
    return [f"{e.get('verb')} {e.get('requestURI')} -> {e.get('responseStatus', {}).get('code')}" for e in events]
