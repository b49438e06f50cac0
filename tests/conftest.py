"""Shared fixtures: the collection path, one lab for the session, audit windows, namespaces."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.collection import COLLECTIONS_ROOT, REPO_ROOT, ensure_collection_path

ensure_collection_path()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lab.audit import AuditWindow
from lab.controlplane import Lab, load_state, process_alive
from lab.kube import KubeClient


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/unit are unit tests whether or not they say so.
    for item in items:
        if "/tests/unit/" in str(item.fspath) and not any(m.name == "unit" for m in item.iter_markers()):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def lab_state() -> Any:
    """One lab for the whole session: reuses ``LAB_DIR`` when a lab is up there, else starts one in
    ``CANARY_TEST_LAB`` (``build/test-lab`` unless set; ``make test`` gives each of its runs its own)."""
    reuse = os.environ.get("LAB_DIR")
    if reuse:
        state = load_state(reuse)
        if all(process_alive(state["processes"][k]) for k in ("etcd", "apiserver")):
            yield state
            return
    lab = Lab(Path(os.environ.get("CANARY_TEST_LAB") or REPO_ROOT / "build" / "test-lab"))
    state = lab.up()
    try:
        yield state
    finally:
        lab.down(quiet=True)


@pytest.fixture(scope="session")
def kube(lab_state: dict[str, Any]) -> KubeClient:
    return KubeClient.from_state(lab_state, user="admin")


@pytest.fixture
def namespace(kube: KubeClient) -> str:
    """A fresh namespace per test (the lab runs no namespace controller, so it is never deleted)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def audit(lab_state: dict[str, Any]):
    """``with_audit = audit()`` opens a window; ``with_audit.requests(user=...)`` closes and reads it."""
    def open_window() -> AuditWindow:
        return AuditWindow(lab_state)
    return open_window


@pytest.fixture(scope="session")
def collections_root() -> Path:
    return ensure_collection_path()
