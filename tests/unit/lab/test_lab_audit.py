"""The lab's audit window reads only what the API server logged after it opened, also when the server
rotated its log meanwhile (kube-apiserver rotates at 100 MB with --audit-log-maxsize=0)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.audit import AuditWindow, _position

pytestmark = pytest.mark.unit


def event(audit_id: str, uri: str) -> str:
    return json.dumps({"auditID": audit_id, "stage": "ResponseComplete", "requestURI": uri, "verb": "get"}) + "\n"


def window_on(path: Path) -> AuditWindow:
    window = AuditWindow.__new__(AuditWindow)
    window.path = path
    window.origin = _position(path)
    window.events = None
    return window


def test_a_window_reads_past_a_rotation_and_nothing_from_before_it_opened(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text(event("old", "/before"))
    window = window_on(log)
    with open(log, "a") as handle:
        handle.write(event("a", "/start-marker") + event("b", "/in-window-1"))
    os.rename(log, tmp_path / "audit-2026-11-27T13-46-46.957.log")
    log.write_text(event("c", "/in-window-2") + event("d", "/end-marker"))
    uris = [e["requestURI"] for e in window._read()]
    assert uris == ["/start-marker", "/in-window-1", "/in-window-2", "/end-marker"]


def test_a_window_opened_before_the_log_existed_reads_the_whole_log(tmp_path):
    log = tmp_path / "audit.log"
    window = window_on(log)
    log.write_text(event("a", "/first"))
    assert [e["requestURI"] for e in window._read()] == ["/first"]
