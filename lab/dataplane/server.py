"""The data plane process: informers, the workload runner, the router's three ports."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from lab.dataplane.endpoints import EndpointsController
from lab.dataplane.metrics import Metrics
from lab.dataplane.proxy import AdminHandler, ProxyHandler, Router, serve
from lab.dataplane.routing import ServiceEntry, Snapshot
from lab.dataplane.runner import Runner
from lab.dataplane.watch import GATEWAY_API_WATCHED, Informer, gateway_api_inputs
from lab.kube import KubeClient

log = logging.getLogger("lab.dataplane")

ISTIO_NETWORKING = "/apis/networking.istio.io/v1beta1"
WATCHED = {
    "Deployment": "/apis/apps/v1/deployments",
    "Service": "/api/v1/services",
    "VirtualService": f"{ISTIO_NETWORKING}/virtualservices",
    "DestinationRule": f"{ISTIO_NETWORKING}/destinationrules",
    "Gateway": f"{ISTIO_NETWORKING}/gateways",
    # EnvoyFilters are served at v1alpha3 only; the router reads their local rate limits (resilience.py).
    "EnvoyFilter": "/apis/networking.istio.io/v1alpha3/envoyfilters",
    **GATEWAY_API_WATCHED,  # HTTPRoutes and Kubernetes Gateways (routing.py follows both)
}
# Read by the endpoints controller only (the router follows the runner's processes directly).
ENDPOINTS_PATH = "/api/v1/endpoints"
INFO_FILE = "dataplane.json"
SYNC_TIMEOUT_SECONDS = 15.0


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


class DataPlane:
    def __init__(self, state_file: Path, gateway_port: int = 0, mesh_port: int = 0, admin_port: int = 0):
        self.state_file = state_file
        self.state_dir = state_file.parent
        self.state = json.loads(state_file.read_text(encoding="utf-8"))
        self.user = "dataplane" if "dataplane" in self.state.get("tokens", {}) else "admin"
        self.ports = {"gateway": gateway_port, "mesh": mesh_port, "admin": admin_port}
        self.metrics = Metrics()
        self.router = Router(self.metrics)
        self._rebuild_lock = threading.Lock()
        self._stop = threading.Event()
        self.informers = {kind: Informer(kind, path, self.client, self._changed) for kind, path in WATCHED.items()}
        self.servers: dict[str, Any] = {}
        self.runner: Runner | None = None
        self.endpoints_informer = Informer("Endpoints", ENDPOINTS_PATH, self.client, self._endpoints_changed)
        self.endpoints: EndpointsController | None = None

    def client(self) -> KubeClient:
        return KubeClient.from_state(self.state, user=self.user, user_agent="lab-dataplane")

    # ---- configuration

    def _changed(self, kind: str) -> None:
        if kind == "Deployment" and self.runner is not None:
            self.runner.wake()
        if kind in ("Deployment", "Service"):
            self._endpoints_changed(kind)
        self.rebuild()

    def _endpoints_changed(self, kind: str) -> None:
        if self.endpoints is not None:
            self.endpoints.wake()

    def _workloads_changed(self) -> None:
        self._endpoints_changed("workloads")
        self.rebuild()

    def _endpoints_ready(self) -> bool:
        return (self.runner is not None and self.runner.reconciled.is_set()
                and self.informers["Service"].synced.is_set() and self.endpoints_informer.synced.is_set())

    def rebuild(self) -> None:
        """Builds a fresh routing snapshot from the informers and the runner, and installs it."""
        with self._rebuild_lock:
            deployments = self.informers["Deployment"].items()
            services: list[ServiceEntry] = []
            named: set[tuple[str, str]] = set()
            for service in self.informers["Service"].items():
                meta = service["metadata"]
                selector = (service.get("spec") or {}).get("selector") or {}
                services.append(ServiceEntry(meta.get("namespace", "default"), meta["name"], dict(selector)))
                named.add((meta.get("namespace", "default"), meta["name"]))
            workload_labels = {}
            for deployment in deployments:
                meta = deployment["metadata"]
                namespace = meta.get("namespace", "default")
                labels = ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
                workload_labels[(namespace, meta["name"])] = dict(labels)
                app = labels.get("app")
                # With no Service object, the workloads' ``app`` label names the service.
                if app and (namespace, app) not in named:
                    services.append(ServiceEntry(namespace, app, {"app": app}))
                    named.add((namespace, app))
            snapshot = Snapshot(
                virtual_services=self.informers["VirtualService"].items(),
                destination_rules=self.informers["DestinationRule"].items(),
                gateways=self.informers["Gateway"].items(),
                services=services,
                endpoints=self.runner.endpoints() if self.runner else [],
                workload_labels=workload_labels,
                envoy_filters=self.informers["EnvoyFilter"].items(),
                **gateway_api_inputs(self.informers),
            )
            self.router.install(snapshot)

    def describe(self, what: str) -> Any:
        if what == "config":
            return {
                "generation": self.router.generation,
                "resourceVersions": {kind: informer.resource_versions() for kind, informer in self.informers.items()},
                "synced": {kind: informer.synced.is_set() for kind, informer in self.informers.items()},
                "errors": {kind: informer.last_error for kind, informer in self.informers.items()
                           if informer.last_error},
                "endpoints": [{"namespace": e.namespace, "workload": e.workload, "port": e.port,
                               "labels": dict(e.labels), "replicas": e.replicas}
                              for e in self.router.snapshot.endpoints],
            }
        if what == "workloads":
            return self.runner.describe() if self.runner else []
        return None

    # ---- lifecycle

    def run(self) -> None:
        gateway = serve(ProxyHandler, self.ports["gateway"], router=self.router, gateway=True)
        mesh = serve(ProxyHandler, self.ports["mesh"], router=self.router, gateway=False)
        admin = serve(AdminHandler, self.ports["admin"], describe=self.describe, metrics=self.metrics)
        self.servers = {"gateway": gateway, "mesh": mesh, "admin": admin}
        urls = {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in self.servers.items()}
        self.runner = Runner(self.informers["Deployment"].items, self.client, urls["mesh"], self.state_dir,
                             self._workloads_changed)
        self.endpoints = EndpointsController(self.informers["Service"].items, self.endpoints_informer.items,
                                             self.runner.pods, self.client, self._endpoints_ready)
        for informer in self.informers.values():
            informer.start()
        self.endpoints_informer.start()
        deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
        for informer in self.informers.values():
            informer.synced.wait(timeout=max(0.0, deadline - time.monotonic()))
        self.runner.start()
        self.endpoints.start()
        self.rebuild()
        info = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "state": str(self.state_file),
            "gateway_url": urls["gateway"],
            "mesh_url": urls["mesh"],
            "metrics_url": f"{urls['admin']}/metrics",
            "admin_url": urls["admin"],
            "log": str(self.state_dir / "dataplane.log"),
            "workload_logs": str(self.runner.log_dir),
            "synced": {kind: informer.synced.is_set() for kind, informer in self.informers.items()},
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ready": True,
        }
        write_json_atomically(self.state_dir / INFO_FILE, info)
        log.info("data plane ready: gateway %s, mesh %s, metrics %s", info["gateway_url"], info["mesh_url"],
                 info["metrics_url"])
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        log.info("data plane stopping")
        for informer in self.informers.values():
            informer.stop()
        self.endpoints_informer.stop()
        if self.endpoints is not None:
            self.endpoints.stop()
        if self.runner is not None:
            self.runner.stop()
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        self.router.mirrors.shutdown(wait=False, cancel_futures=True)
        info_file = self.state_dir / INFO_FILE
        try:
            if json.loads(info_file.read_text()).get("pid") == os.getpid():
                info_file.unlink()
        except (OSError, ValueError):
            pass
