"""The workload runner: stands in for the scheduler and kubelet for Bookinfo Deployments.

For each Deployment whose container image is a Bookinfo image, it runs our Python service of that
name and version on a free loopback port, and writes the Deployment's status the way the
deployment controller would, so that waiting for a rollout behaves as on a cluster.  A template
change starts the new process first and switches to it once it answers ``/health`` (a rolling
update with surge); a deleted or scaled-to-zero Deployment leaves the router before its process
is stopped.  A container's ``readinessProbe`` is run as the kubelet runs it (``_probe_readiness``);
without one a process stays Ready while it runs, as a container without a probe does.  The
processes, seen as pods, feed the endpoints controller (lab/dataplane/endpoints.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import http.client
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.dataplane.endpoints import LabPod
from lab.dataplane.routing import Endpoint
from lab.kube import KubeClient, KubeError

log = logging.getLogger("lab.dataplane.runner")

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOKINFO_SERVICES = ("productpage", "details", "reviews", "ratings")
# Any registry or mirror of the public images: docker.io/istio/examples-bookinfo-reviews-v2:1.16.2
IMAGE_PATTERN = re.compile(
    r"(?:^|/)examples-bookinfo-(?P<service>productpage|details|reviews|ratings)-(?P<version>v\d+)"
    r"(?::[\w.\-]+)?(?:@sha256:[0-9a-f]+)?$")
SUPPORTED_VERSIONS = {"productpage": {"v1"}, "details": {"v1", "v2"}, "reviews": {"v1", "v2", "v3"},
                      "ratings": {"v1", "v2"}}
START_TIMEOUT_SECONDS = 30.0
DRAIN_SECONDS = 0.5
STOP_GRACE_SECONDS = 3.0
# Variables of the container that must not reach our Python process.
ENV_DENYLIST = {"PATH", "PYTHONPATH", "PYTHONHOME", "HOME", "LD_PRELOAD", "LD_LIBRARY_PATH"}

_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the data plane dies, so does the workload.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def parse_image(image: str) -> tuple[str, str] | None:
    """``(service, version)`` for a Bookinfo image we can run, else None."""
    match = IMAGE_PATTERN.search(image.strip())
    if not match:
        return None
    service, version = match.group("service"), match.group("version")
    if version not in SUPPORTED_VERSIONS[service]:
        return None
    return service, version


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    fingerprint: str
    labels: dict[str, str]
    pod_name: str
    ready_file: Path
    started: float = field(default_factory=time.monotonic)
    port: int | None = None
    ready: bool = False
    readiness_probe: dict[str, Any] | None = None  # the container's, as the kubelet would run it
    probe_successes: int = 0
    probe_failures: int = 0
    next_probe: float = 0.0


@dataclass
class Workload:
    namespace: str
    name: str
    generation: int = 0
    replicas: int = 1
    fingerprint: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    service: str | None = None
    version: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    readiness_probe: dict[str, Any] | None = None
    error: str | None = None
    current: Process | None = None
    pending: Process | None = None
    restarts: int = 0
    last_exit: str | None = None
    next_start: float = 0.0
    last_status: str | None = None


class Runner:
    """Reconciles Deployments (from an informer) into processes; reports endpoints to the router."""

    def __init__(self, list_deployments: Callable[[], list[dict[str, Any]]],
                 client_factory: Callable[[], KubeClient], mesh_url: str, state_dir: Path,
                 on_endpoints_changed: Callable[[], None]):
        self.list_deployments = list_deployments
        self.client_factory = client_factory
        self.mesh_url = mesh_url
        self.log_dir = state_dir / "dataplane" / "workloads"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.on_endpoints_changed = on_endpoints_changed
        self.workloads: dict[tuple[str, str], Workload] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopping_processes: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._loop, name="runner", daemon=True)
        self._client: KubeClient | None = None
        self.reconciled = threading.Event()  # set after the first pass over the Deployments

    # ---- lifecycle

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stops the loop and every process, waiting for each to exit."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=5)
        with self._lock:
            processes = [p.popen for w in self.workloads.values() for p in (w.current, w.pending) if p]
            processes += self._stopping_processes
            self.workloads.clear()
        for popen in processes:
            if popen.poll() is None:
                popen.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for popen in processes:
            try:
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)

    # ---- what the router needs

    def endpoints(self) -> list[Endpoint]:
        with self._lock:
            return [Endpoint(w.namespace, w.name, dict(w.current.labels), w.current.port, max(1, w.replicas))
                    for w in self.workloads.values()
                    if w.current is not None and w.current.ready and w.current.port and w.replicas > 0]

    def pods(self) -> list[LabPod]:
        """What stands for pods in the lab, for the endpoints controller (lab/dataplane/endpoints.py)."""
        containers = {(d["metadata"].get("namespace", ""), d["metadata"]["name"]):
                      tuple(((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [])
                      for d in self.list_deployments()}
        result = []
        with self._lock:
            for key, w in self.workloads.items():
                if w.replicas <= 0:
                    continue
                template = containers.get(key, ())
                processes = [p for p in (w.current, w.pending) if p is not None]
                for process in processes:
                    result.append(LabPod(w.namespace, w.name, dict(process.labels), process is w.current and
                                         process.ready, process.pod_name, template))
                if not processes:
                    result.append(LabPod(w.namespace, w.name, dict(w.labels), False, containers=template,
                                         identity=f"{w.name}-{w.fingerprint[:10]}"))
        return result

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            result = []
            for w in sorted(self.workloads.values(), key=lambda w: (w.namespace, w.name)):
                entry: dict[str, Any] = {
                    "namespace": w.namespace, "name": w.name, "image": w.image, "service": w.service,
                    "version": w.version, "replicas": w.replicas, "error": w.error, "restarts": w.restarts,
                    "last_exit": w.last_exit}
                for role in ("current", "pending"):
                    process = getattr(w, role)
                    entry[role] = None if process is None else {
                        "pid": process.popen.pid, "port": process.port, "ready": process.ready,
                        "pod_name": process.pod_name, "labels": process.labels}
                result.append(entry)
            return result

    # ---- the loop

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.1 if self._starting() else 1.0)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                changed = self._reconcile()
                self.reconciled.set()
                changed |= self._tick()
                if changed:
                    self.on_endpoints_changed()
                self._write_statuses()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("runner pass failed")

    def _starting(self) -> bool:
        with self._lock:
            return any(w.pending is not None or (w.current is None and w.replicas > 0 and not w.error)
                       for w in self.workloads.values())

    def _reconcile(self) -> bool:
        deployments = {(d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
                       for d in self.list_deployments()}
        changed = False
        with self._lock:
            for key in list(self.workloads):
                if key not in deployments:
                    workload = self.workloads.pop(key)
                    changed |= self._stop_workload(workload)
            for key, deployment in deployments.items():
                workload = self.workloads.get(key)
                if workload is None:
                    workload = Workload(namespace=key[0], name=key[1])
                    self.workloads[key] = workload
                changed |= self._update(workload, deployment)
        return changed

    def _update(self, workload: Workload, deployment: dict[str, Any]) -> bool:
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        replicas = spec.get("replicas")
        workload.replicas = 1 if replicas is None else int(replicas)
        workload.generation = int(deployment["metadata"].get("generation") or 1)
        workload.labels = dict((template.get("metadata") or {}).get("labels") or {})
        fingerprint = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        containers = (template.get("spec") or {}).get("containers") or []
        images = [str(c.get("image", "")) for c in containers]
        runnable = None
        for container in containers:
            parsed = parse_image(str(container.get("image", "")))
            if parsed:
                runnable = (container, parsed)
                break
        changed = False
        if runnable is None:
            workload.image = ", ".join(images) or "<none>"
            workload.service = workload.version = None
            workload.error = (f"the lab's data plane cannot run image {workload.image!r}: it runs only the "
                              "Bookinfo images (…/examples-bookinfo-<productpage|details|reviews|ratings>-"
                              "<version>)")
            changed |= self._stop_workload(workload)
            workload.fingerprint = fingerprint
            return changed
        container, (service, version) = runnable
        workload.error = None
        workload.image = str(container.get("image"))
        workload.service, workload.version = service, version
        probe = container.get("readinessProbe")
        workload.readiness_probe = dict(probe) if isinstance(probe, dict) else None
        workload.env = {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or []
                        if isinstance(e, dict) and "name" in e and "valueFrom" not in e
                        and str(e["name"]) not in ENV_DENYLIST}
        if fingerprint != workload.fingerprint:
            workload.fingerprint = fingerprint
            workload.restarts = 0
            workload.next_start = 0.0
            if workload.pending is not None:
                self._retire(workload.pending.popen)
                workload.pending = None
        if workload.replicas == 0:
            return self._stop_workload(workload)
        if workload.current is not None and workload.current.fingerprint == fingerprint:
            if workload.pending is not None:
                self._retire(workload.pending.popen)
                workload.pending = None
            return changed
        if workload.pending is None and time.monotonic() >= workload.next_start:
            workload.pending = self._spawn(workload)
        return changed

    def _spawn(self, workload: Workload) -> Process | None:
        assert workload.service and workload.version
        pod_name = f"{workload.name}-{workload.fingerprint[:10]}-{secrets.token_hex(3)[:5]}"
        ready_file = self.log_dir / f"{workload.namespace}_{pod_name}.port"
        ready_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(workload.env)
        env.update({
            "PYTHONPATH": str(REPO_ROOT),
            "BOOKINFO_MESH_URL": self.mesh_url,
            "BOOKINFO_WORKLOAD": workload.name,
            "BOOKINFO_NAMESPACE": workload.namespace,
            "BOOKINFO_POD_NAME": pod_name,
            "BOOKINFO_VERSION": workload.version,
        })
        command = [sys.executable, "-m", "bookinfo", "serve", workload.service, "--host", "127.0.0.1",
                   "--port", "0", "--version", workload.version, "--ready-file", str(ready_file)]
        log_path = self.log_dir / f"{workload.namespace}_{workload.name}.log"
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {now_iso()} starting {pod_name}: {' '.join(command)}\n".encode())
            log_file.flush()
            popen = subprocess.Popen(command, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                                     stdout=log_file, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)  # noqa: PLW1509 - only a prctl call
        log.info("started %s/%s as pid %s (%s)", workload.namespace, pod_name, popen.pid, workload.image)
        return Process(popen=popen, fingerprint=workload.fingerprint, labels=dict(workload.labels),
                       pod_name=pod_name, ready_file=ready_file, readiness_probe=workload.readiness_probe)

    def _stop_workload(self, workload: Workload) -> bool:
        changed = workload.current is not None and workload.current.ready
        for process in (workload.current, workload.pending):
            if process is not None:
                self._retire(process.popen, drain=process.ready)
        workload.current = workload.pending = None
        return changed

    def _retire(self, popen: subprocess.Popen[bytes], drain: bool = False) -> None:
        """Stops a process in the background, after a pause for requests already routed to it."""
        self._stopping_processes.append(popen)

        def stop() -> None:
            if drain:
                time.sleep(DRAIN_SECONDS)
            if popen.poll() is None:
                popen.terminate()
                try:
                    popen.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait(timeout=5)
            with self._lock:
                if popen in self._stopping_processes:
                    self._stopping_processes.remove(popen)

        threading.Thread(target=stop, name=f"stop-{popen.pid}", daemon=True).start()

    def _tick(self) -> bool:
        changed = False
        with self._lock:
            for workload in self.workloads.values():
                current = workload.current
                if current is not None and current.popen.poll() is not None:
                    workload.last_exit = f"process exited with code {current.popen.returncode}"
                    log.warning("%s/%s: %s", workload.namespace, workload.name, workload.last_exit)
                    workload.current = None
                    changed = True
                    self._schedule_restart(workload)
                elif current is not None and current.readiness_probe and current.port:
                    changed |= self._probe_readiness(current)
                pending = workload.pending
                if pending is None:
                    if (workload.current is None and workload.replicas > 0 and workload.error is None
                            and workload.service and time.monotonic() >= workload.next_start):
                        workload.pending = self._spawn(workload)
                    continue
                if pending.popen.poll() is not None:
                    workload.last_exit = f"process exited with code {pending.popen.returncode} while starting"
                    workload.pending = None
                    self._schedule_restart(workload)
                    continue
                if not self._check_ready(pending):
                    if time.monotonic() - pending.started > START_TIMEOUT_SECONDS:
                        workload.last_exit = "process did not answer /health in time"
                        self._retire(pending.popen)
                        workload.pending = None
                        self._schedule_restart(workload)
                    continue
                # Make before break: the new process serves before the old one leaves.
                previous = workload.current
                workload.current, workload.pending = pending, None
                workload.last_exit = None
                changed = True
                if previous is not None:
                    self._retire(previous.popen, drain=True)
        return changed

    @staticmethod
    def _schedule_restart(workload: Workload) -> None:
        workload.restarts += 1
        workload.next_start = time.monotonic() + min(10.0, 0.5 * 2 ** min(workload.restarts, 5))

    @staticmethod
    def _probe_readiness(process: Process) -> bool:
        """Runs the container's readinessProbe as the kubelet does; True when the process's readiness changed.

        Kubernetes' probe fields and defaults (Pod API reference, "Probe"; docs "Configure Liveness,
        Readiness and Startup Probes"): every ``periodSeconds`` (10), within ``timeoutSeconds`` (1); an
        ``httpGet`` succeeds on a status from 200 to 399, a ``tcpSocket`` when the connection opens; Ready
        after ``successThreshold`` (1) successes in a row, not Ready after ``failureThreshold`` (3)
        failures in a row.  The lab maps every container port to the port the process listens on, so the
        probe's ``port`` is not read; its first success is the ``/health`` answer that made the process
        current (``initialDelaySeconds`` is not waited for).  ``exec`` and ``grpc`` probes are not run.
        """
        probe = process.readiness_probe or {}
        now = time.monotonic()
        if now < process.next_probe:
            return False
        process.next_probe = now + max(1.0, float(probe.get("periodSeconds") or 10))
        timeout = max(0.1, float(probe.get("timeoutSeconds") or 1))
        if isinstance(probe.get("httpGet"), dict):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=timeout)
                conn.request("GET", str(probe["httpGet"].get("path") or "/"))
                ok = 200 <= conn.getresponse().status < 400
                conn.close()
            except OSError:
                ok = False
        elif isinstance(probe.get("tcpSocket"), dict):
            try:
                socket.create_connection(("127.0.0.1", process.port), timeout=timeout).close()
                ok = True
            except OSError:
                ok = False
        else:
            return False
        if ok:
            process.probe_successes, process.probe_failures = process.probe_successes + 1, 0
            if not process.ready and process.probe_successes >= int(probe.get("successThreshold") or 1):
                process.ready = True
                return True
        else:
            process.probe_failures, process.probe_successes = process.probe_failures + 1, 0
            if process.ready and process.probe_failures >= int(probe.get("failureThreshold") or 3):
                process.ready = False
                log.warning("pod %s: readiness probe failed %d times: not ready", process.pod_name,
                            process.probe_failures)
                return True
        return False

    @staticmethod
    def _check_ready(process: Process) -> bool:
        if process.port is None:
            try:
                process.port = int(process.ready_file.read_text().strip())
            except (OSError, ValueError):
                return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=0.5)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            return False
        process.ready = ok
        return ok

    # ---- status

    def _write_statuses(self) -> None:
        deployments = {(d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
                       for d in self.list_deployments()}
        with self._lock:
            pending = []
            for key, workload in self.workloads.items():
                deployment = deployments.get(key)
                if deployment is None:
                    continue
                status = self.desired_status(workload, deployment.get("status") or {})
                signature = json.dumps(_without_times(status), sort_keys=True)
                if signature == workload.last_status and _same_status(status, deployment.get("status") or {}):
                    continue
                pending.append((workload, status, signature))
        for workload, status, signature in pending:
            path = f"/apis/apps/v1/namespaces/{workload.namespace}/deployments/{workload.name}/status"
            try:
                if self._client is None:
                    self._client = self.client_factory()
                self._client.merge_patch(path, {"status": status})
                workload.last_status = signature
            except KubeError as exc:
                if exc.status != 404:
                    log.warning("status of %s/%s: %s", workload.namespace, workload.name, exc)
            except OSError as exc:
                log.warning("status of %s/%s: %s", workload.namespace, workload.name, exc)
                if self._client is not None:
                    self._client.close()
                self._client = None

    @staticmethod
    def desired_status(workload: Workload, current: dict[str, Any]) -> dict[str, Any]:
        """The status the deployment controller would write for what we run."""
        replicas = workload.replicas
        serving = workload.current is not None and workload.current.ready
        updated = serving and workload.current is not None and workload.current.fingerprint == workload.fingerprint
        previous = {c.get("type"): c for c in current.get("conditions") or []}

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
            stamp = now_iso()
            before = previous.get(kind) or {}
            same = before.get("status") == status
            unchanged = same and before.get("reason") == reason and before.get("message") == message
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": before.get("lastUpdateTime", stamp) if unchanged else stamp,
                    "lastTransitionTime": before.get("lastTransitionTime", stamp) if same else stamp}

        replica_set = f"{workload.name}-{workload.fingerprint[:10]}"
        if replicas == 0:
            counts = {"replicas": None, "updatedReplicas": None, "readyReplicas": None,
                      "availableReplicas": None, "unavailableReplicas": None}
            conditions = [
                condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                condition("Progressing", "True", "NewReplicaSetAvailable",
                          f'ReplicaSet "{replica_set}" has successfully progressed.'),
            ]
        elif workload.error:
            counts = {"replicas": replicas, "updatedReplicas": replicas, "readyReplicas": None,
                      "availableReplicas": None, "unavailableReplicas": replicas}
            conditions = [
                condition("Available", "False", "UnsupportedImage", workload.error),
                condition("Progressing", "False", "ProgressDeadlineExceeded",
                          f'ReplicaSet "{replica_set}" has timed out progressing: {workload.error}'),
            ]
        elif serving:
            counts = {"replicas": replicas, "updatedReplicas": replicas if updated else None,
                      "readyReplicas": replicas, "availableReplicas": replicas, "unavailableReplicas": None}
            if updated:
                progressing = condition("Progressing", "True", "NewReplicaSetAvailable",
                                        f'ReplicaSet "{replica_set}" has successfully progressed.')
            else:
                progressing = condition("Progressing", "True", "ReplicaSetUpdated",
                                        f'ReplicaSet "{replica_set}" is progressing.')
            conditions = [condition("Available", "True", "MinimumReplicasAvailable",
                                    "Deployment has minimum availability."), progressing]
        else:
            detail = f" ({workload.last_exit}; restarts: {workload.restarts})" if workload.last_exit else ""
            counts = {"replicas": replicas, "updatedReplicas": replicas, "readyReplicas": None,
                      "availableReplicas": None, "unavailableReplicas": replicas}
            conditions = [
                condition("Available", "False", "MinimumReplicasUnavailable",
                          f"Deployment does not have minimum availability.{detail}"),
                condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.'),
            ]
        return {"observedGeneration": workload.generation, **counts, "conditions": conditions}


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    copy = dict(status)
    copy["conditions"] = [{k: v for k, v in c.items() if not k.startswith("last")}
                          for c in status.get("conditions") or []]
    return copy


def _same_status(desired: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the stored status already says what we would write (ignoring timestamps)."""
    stored = {k: v for k, v in current.items() if k != "conditions"}
    for key, value in desired.items():
        if key == "conditions":
            continue
        if stored.get(key) != value:
            return False
    mine = _without_times(desired)["conditions"]
    theirs = sorted(_without_times(current).get("conditions") or [], key=lambda c: c.get("type", ""))
    return sorted(mine, key=lambda c: c.get("type", "")) == theirs
