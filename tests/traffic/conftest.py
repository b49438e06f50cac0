"""A lab with its data plane and Bookinfo at v1, for traffic seen end to end."""

from __future__ import annotations

import http.client
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab import dataplane
from lab.controlplane import Lab
from lab.kube import KubeClient
from tests.helpers.ansible import run_module
from tests.helpers.collection import REPO_ROOT

BOOKINFO = REPO_ROOT / "bookinfo"
# Regexes that tell the reviews version from the product page (first match wins).
LABELS = {"v3": 'data-star-color="red"', "v2": 'data-star-color="black"', "v1": 'class="review"'}
PAGE_ERRORS = ("reviews-error", "details-error", "ratings-error")


@dataclass
class TrafficLab:
    state: dict[str, Any]
    gateway: str
    metrics_url: str
    kube: KubeClient

    def auth(self, namespace: str) -> dict[str, Any]:
        return {"kubeconfig": self.state["kubeconfig"], "context": "lab", "namespace": namespace}

    def module(self, module_name: str, namespace: str, /, **args: Any) -> dict[str, Any]:
        result = run_module(module_name, {**self.auth(namespace), **args})
        assert not result.get("failed"), (module_name, args, result.get("msg"))
        return result

    def metrics(self) -> str:
        parsed = urllib.parse.urlsplit(self.metrics_url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        conn.request("GET", parsed.path)
        body = conn.getresponse().read().decode()
        conn.close()
        return body


def version_of(status: int, body: str) -> str:
    if status != 200 or any(marker in body for marker in PAGE_ERRORS):
        return "error"
    for label, marker in LABELS.items():
        if marker in body:
            return label
    return "unmatched"


@dataclass
class Load:
    """Steady requests through the gateway from a few keep-alive connections (loopback only)."""

    url: str
    rate: float = 80.0
    workers: int = 4
    max_seconds: float = 240.0
    records: list[tuple[float, str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        interval = self.workers / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn.request("GET", parsed.path)
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
                self.records.append((time.monotonic(), version_of(response.status, body), response.status))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
                self.records.append((time.monotonic(), "error", 0))
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for _worker in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self.stopped = time.monotonic()

    def first_after(self, moment: float, version: str) -> float | None:
        """Seconds from ``moment`` to the first answer by ``version``."""
        times = [t for t, v, _status in self.records if t >= moment and v == version]
        return min(times) - moment if times else None

    def last_of(self, version: str, after: float) -> float | None:
        times = [t for t, v, _status in self.records if t >= after and v == version]
        return max(times) - after if times else None

    @property
    def failures(self) -> list[tuple[float, str, int]]:
        return [r for r in self.records if r[1] in ("error", "unmatched")]

    @property
    def rate_achieved(self) -> float:
        return len(self.records) / max(1e-6, self.stopped - self.started)


@pytest.fixture(scope="session")
def traffic_lab() -> Iterator[TrafficLab]:
    # CANARY_TRAFFIC_LAB: a lab directory of its own, for runs beside another that uses the default.
    lab = Lab(Path(os.environ.get("CANARY_TRAFFIC_LAB") or REPO_ROOT / "build" / "traffic-lab"))
    state = lab.up()
    try:
        info = dataplane.start(Path(state["dir"]))
        yield TrafficLab(state, info["gateway_url"], info["metrics_url"], KubeClient.from_state(state))
    finally:
        lab.down(quiet=True)


def deploy_bookinfo(lab: TrafficLab, namespace: str) -> None:
    lab.kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    lab.module("manifest", namespace, wait=True, wait_timeout=60, src=[
        str(BOOKINFO / "platform/kube/bookinfo-reviews-v1.yaml"),
        str(BOOKINFO / "networking/bookinfo-gateway.yaml"),
        str(BOOKINFO / "networking/destination-rule-all-reviews-v1.yaml"),
        str(BOOKINFO / "networking/virtual-service-all-v1.yaml")])


def take_down(kube: KubeClient, namespace: str) -> None:
    """A test's Bookinfo goes: its gateway binding (when there is one) and every Deployment of the
    namespace, so the shared data plane stops serving them."""
    try:
        kube.delete(f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/bookinfo")
    except Exception:
        pass
    for item in kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]:
        kube.delete(f"/apis/apps/v1/namespaces/{namespace}/deployments/{item['metadata']['name']}")


@pytest.fixture
def bookinfo_ns(traffic_lab: TrafficLab) -> Iterator[str]:
    """Bookinfo at v1 in a fresh namespace; the gateway binding and workloads go away afterwards."""
    import uuid
    namespace = f"bookinfo-{uuid.uuid4().hex[:6]}"
    deploy_bookinfo(traffic_lab, namespace)
    try:
        yield namespace
    finally:
        take_down(traffic_lab.kube, namespace)
