"""Fixtures of the Event-Driven Ansible tests: a lab with its data plane, real ansible-rulebook processes.

The rulebooks run as a user runs them (``ansible-rulebook --rulebook canary.istio.<name>``, started by
``lab.eda.start_rulebook`` with the collection from build/collections and the lab's kubeconfig); the
tests post to their webhooks on loopback and read what the rulebook printed and what the cluster holds.
The session's lab (``LAB_DIR`` reuses a running one) gets its data plane per module; the lab's own Prometheus is not
started (``LAB_PROMETHEUS_DISABLED``): the alert tests run a Prometheus and an Alertmanager of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import eda, procfs
from lab.kube import KubeClient
from tests.helpers.ansible import BOOKINFO_VARS, run_playbook
from tests.helpers.collection import REPO_ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*m")
VS_PATH = "/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}"


@pytest.fixture(scope="module")
def eda_lab(lab_state: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The session's lab (tests/conftest.py) with its data plane running Bookinfo, without Prometheus.

    Per module: the data plane runs every Deployment it sees, which the other tests of the shared
    lab do not expect, so it stops when the module ends."""
    from lab import dataplane

    directory = Path(lab_state["dir"])
    previous = os.environ.pop("LAB_PROMETHEUS_DISABLED", None)
    os.environ["LAB_PROMETHEUS_DISABLED"] = "1"
    try:
        dataplane.start(directory)
    finally:
        os.environ.pop("LAB_PROMETHEUS_DISABLED")
        if previous is not None:
            os.environ["LAB_PROMETHEUS_DISABLED"] = previous
    yield lab_state
    dataplane.stop(directory)


@pytest.fixture(scope="module")
def kube(eda_lab: dict[str, Any]) -> KubeClient:
    return KubeClient.from_state(eda_lab, user="admin")


def deploy_base(state: dict[str, Any]) -> str:
    """Bookinfo at v1 in a fresh namespace, by the collection's deploy_base playbook."""
    namespace = f"eda-{uuid.uuid4().hex[:8]}"
    proc = run_playbook(REPO_ROOT / "playbooks" / "deploy_base.yml", state, {"canary_namespace": namespace},
                        vars_file=BOOKINFO_VARS)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return namespace


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rulebook:
    """One ansible-rulebook process running a rulebook of the collection."""

    def __init__(self, name: str, variables: dict[str, Any], state: dict[str, Any], home: Path) -> None:
        self.process = eda.start_rulebook(name, home, variables, state["kubeconfig"])
        self.log = Path(self.process["log"])

    def output(self) -> str:
        return ANSI.sub("", self.log.read_text(encoding="utf-8", errors="replace"))

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.output().splitlines() if re.search(pattern, line)]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 240.0) -> list[str]:
        """The lines matching ``pattern`` once there are ``count`` of them (fails when the rulebook ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.lines(pattern)
            if len(found) >= count:
                return found
            if not procfs.runs(self.process["pid"], self.process["vars"]):
                break
            time.sleep(0.3)
        raise AssertionError(f"{count} line(s) matching {pattern!r} not seen; rulebook output:\n"
                             f"{self.output()[-6000:]}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(self.process["pid"]), signal.SIGTERM)


def post(url: str, body: Any, token: str | None, raw: bytes | None = None,
         content_type: str = "application/json", headers: dict[str, str] | None = None) -> int:
    """POSTs JSON (or raw bytes) as a registry or Alertmanager would; the HTTP status."""
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": content_type, **(headers or {})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def history(kube: KubeClient, namespace: str, name: str = "reviews") -> list[dict[str, Any]]:
    vs = kube.get(VS_PATH.format(namespace=namespace, name=name))
    return json.loads((vs["metadata"].get("annotations") or {}).get("canary.istio/history", "[]"))


def weights(kube: KubeClient, namespace: str, name: str = "reviews") -> dict[str, int]:
    vs = kube.get(VS_PATH.format(namespace=namespace, name=name))
    route = vs["spec"]["http"][-1]["route"]
    alone = 100 if len(route) == 1 else 0
    return {entry["destination"].get("subset", ""): entry.get("weight", alone) for entry in route}
