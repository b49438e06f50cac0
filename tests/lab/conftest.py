"""A lab of its own for the data plane tests: apiserver + etcd + data plane, torn down at the end.

Set ``DATAPLANE_TEST_LAB=DIR`` to run against a lab (with its data plane) that is already up
there; it is then left running.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import dataplane
from lab.kube import KubeClient, KubeError

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOKINFO = REPO_ROOT / "bookinfo"
ISTIO = "/apis/networking.istio.io/v1beta1"
PLURALS = {
    "Service": ("/api/v1", "services"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "VirtualService": (ISTIO, "virtualservices"),
    "DestinationRule": (ISTIO, "destinationrules"),
    "Gateway": (ISTIO, "gateways"),
}


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = PLURALS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class DataPlaneLab:
    """The running lab and data plane, with helpers to configure them and send traffic."""

    dir: Path
    state: dict[str, Any]
    info: dict[str, Any]
    kube: KubeClient
    _connections: dict[tuple[int, str], http.client.HTTPConnection] = field(default_factory=dict)

    # ---- API objects

    def apply(self, obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        """Creates or replaces ``obj`` in ``namespace``; returns what the API server stored."""
        body = json.loads(json.dumps(obj))
        body.setdefault("metadata", {})["namespace"] = namespace
        path = object_path(body["kind"], namespace, body["metadata"]["name"])
        try:
            current = self.kube.get(path)
        except KubeError as exc:
            if exc.status != 404:
                raise
            return self.kube.create(object_path(body["kind"], namespace), body)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.kube.replace(path, body)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.kube.delete(object_path(kind, namespace, name))
        except KubeError as exc:
            if exc.status != 404:
                raise

    def create_namespace(self, prefix: str = "dp") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def apply_file(self, relative: str, namespace: str) -> list[dict[str, Any]]:
        stored = []
        for doc in yaml.safe_load_all((BOOKINFO / relative).read_text()):
            if doc:
                stored.append(self.apply(doc, namespace))
        return stored

    # ---- waiting for the data plane

    def debug(self, what: str) -> Any:
        return self.admin_get(f"/debug/{what}").json()

    def wait_seen(self, stored: Mapping[str, Any] | None = None, *, kind: str = "", namespace: str = "",
                  name: str = "", timeout: float = 5.0) -> float:
        """Waits until the router holds ``stored`` (or, given kind/namespace/name only, its absence)."""
        if stored is not None:
            kind, namespace, name = stored["kind"], stored["metadata"]["namespace"], stored["metadata"]["name"]
            wanted: str | None = stored["metadata"]["resourceVersion"]
        else:
            wanted = None
        started = time.monotonic()
        while True:
            versions = self.debug("config")["resourceVersions"].get(kind, {})
            if versions.get(f"{namespace}/{name}") == wanted:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"router did not see {kind} {namespace}/{name} at {wanted} in {timeout}s")
            time.sleep(0.02)

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.kube.get(object_path("Deployment", namespace, name))

    def wait_condition(self, namespace: str, name: str, kind: str, status: str,
                       timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.deployment(namespace, name)
            observed = deployment.get("status", {}).get("observedGeneration")
            for condition in deployment.get("status", {}).get("conditions") or []:
                if (condition["type"] == kind and condition["status"] == status
                        and observed == deployment["metadata"].get("generation")):
                    return deployment
            if time.monotonic() > deadline:
                raise AssertionError(f"{namespace}/{name} never had {kind}={status}: {deployment.get('status')}")
            time.sleep(0.05)

    def wait_available(self, namespace: str, names: list[str], timeout: float = 30.0) -> None:
        for name in names:
            self.wait_condition(namespace, name, "Available", "True", timeout)
        # The router learns of new endpoints right after the status is written; make sure.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ready = {(e["namespace"], e["workload"]) for e in self.debug("config")["endpoints"]}
            if all((namespace, n) in ready for n in names):
                return
            time.sleep(0.02)
        raise AssertionError(f"router has no endpoints for {names} in {namespace}")

    def workload(self, namespace: str, name: str) -> dict[str, Any] | None:
        for entry in self.debug("workloads"):
            if entry["namespace"] == namespace and entry["name"] == name:
                return entry
        return None

    # ---- traffic (loopback only)

    def _request(self, base_url: str, method: str, path: str, headers: Mapping[str, str] | None,
                 body: bytes | None, timeout: float) -> Reply:
        parts = urllib.parse.urlsplit(base_url)
        assert parts.hostname == "127.0.0.1", "test traffic stays on loopback"
        key = (parts.port or 80, str(timeout))
        for attempt in (1, 2):
            conn = self._connections.get(key)
            if conn is None:
                conn = self._connections[key] = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=timeout)
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                self._connections.pop(key, None)
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            if response.will_close:
                conn.close()
                self._connections.pop(key, None)
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data, elapsed)
        raise AssertionError("unreachable")

    def mesh(self, host: str, path: str, headers: Mapping[str, str] | None = None, method: str = "GET",
             namespace: str = "default", source: str = "test-client", body: bytes | None = None,
             timeout: float = 15.0) -> Reply:
        """A request as workload ``source`` in ``namespace`` would send it to ``host`` through its sidecar."""
        all_headers = {"Host": host, "x-source-workload": source, "x-source-namespace": namespace}
        all_headers.update(headers or {})
        return self._request(self.info["mesh_url"], method, path, all_headers, body, timeout)

    def gateway(self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET",
                body: bytes | None = None, timeout: float = 15.0) -> Reply:
        return self._request(self.info["gateway_url"], method, path, headers, body, timeout)

    def admin_get(self, path: str) -> Reply:
        return self._request(self.info["admin_url"], "GET", path, None, None, 10.0)

    def metrics(self) -> str:
        return self.admin_get("/metrics").text


def _lab_command(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "--dir", str(directory), *args], cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=180, check=False)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.fixture(scope="session")
def dp_lab() -> Iterator[DataPlaneLab]:
    reuse = os.environ.get("DATAPLANE_TEST_LAB")
    if reuse:
        directory = Path(reuse)
        state = json.loads((directory / "lab.json").read_text())
        info = dataplane.start(directory)
        yield DataPlaneLab(directory, state, info, KubeClient.from_state(state, user="admin"))
        return
    directory = Path(tempfile.mkdtemp(prefix="dataplane-test-lab-"))
    started = _lab_command(directory, "up")
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"python -m lab up failed:\n{started.stdout}\n{started.stderr}")
    pgid = None
    try:
        state = json.loads((directory / "lab.json").read_text())
        info = dataplane.start(directory)
        pgid = info["pgid"]
        lab = DataPlaneLab(directory, state, info, KubeClient.from_state(state, user="admin"))
        yield lab
    finally:
        dataplane.stop(directory)
        _lab_command(directory, "down")
        leftovers = _group_members(pgid) if pgid else []
        shutil.rmtree(directory, ignore_errors=True)
        assert not leftovers, f"processes left behind by the data plane: {leftovers}"


@pytest.fixture(scope="session")
def bookinfo_namespace(dp_lab: DataPlaneLab) -> str:
    """Bookinfo (all four services at v1, plus reviews v2 and v3) with its gateway, in one namespace."""
    namespace = dp_lab.create_namespace("bookinfo")
    for manifest in ("platform/kube/bookinfo-reviews-v1.yaml", "platform/kube/bookinfo-reviews-v2.yaml",
                     "platform/kube/bookinfo-reviews-v3.yaml"):
        dp_lab.apply_file(manifest, namespace)
    for stored in dp_lab.apply_file("networking/bookinfo-gateway.yaml", namespace):
        dp_lab.wait_seen(stored)
    dp_lab.wait_available(namespace, ["productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2",
                                      "reviews-v3"])
    return namespace
