"""The lab's endpoints controller: core/v1 Endpoints for every Service with a selector.

The lab runs no kube-controller-manager, so nothing else writes Endpoints, and a client that
checks a Service for ready endpoints (as canary.istio's make-before-break does before routing to
a backend Service of an HTTPRoute) would always find none.  This module writes them as
Kubernetes' endpoints controller does (kubernetes/kubernetes ``pkg/controller/endpoint/
endpoints_controller.go``, ``syncService`` and ``addEndpointSubset``; ``pkg/api/v1/endpoints/
util.go``, ``RepackSubsets``; ``pkg/api/v1/pod/util.go``, ``FindPort``; ``pkg/controller/util/
endpointslice``, ``ShouldPodBeInEndpoints``).  The rules, restated:

- A Service of type ExternalName, or with no ``selector``, gets nothing from the controller (its
  Endpoints are the user's); a Service that is deleted loses its Endpoints of the same name.
- Every pod of the Service's namespace whose labels include the selector is listed once per
  Service port: in ``addresses`` when the pod is Ready (or the Service sets
  ``publishNotReadyAddresses``), else in ``notReadyAddresses``.  Pods without an IP yet, and pods
  being deleted, are left out.
- The port of a Service port on a pod is its ``targetPort``: a number is taken as it is, a name is
  the pod's container port of that name and the Service port's protocol; a pod without that name
  is left out for that port.  The EndpointPort carries the Service port's ``name``, ``protocol``
  and ``appProtocol``.
- A headless Service (``clusterIP: None``) with no ports lists its pods without ports; another
  Service with no ports lists nothing.
- Subsets are repacked: addresses with the same set of ports share one subset; an address both
  ready and not ready for the same ports counts as ready; addresses are sorted.
- The Endpoints carry the Service's labels (plus ``service.kubernetes.io/headless`` for a
  headless Service), and nothing is written when the stored subsets and labels already say that.

What stands for a pod in the lab: each process the workload runner runs for a Deployment (its
``current`` process, and during a rolling update its ``pending`` one), with the labels of the
template it was started from, ready once it answered ``/health`` (like a container without a
readiness probe: it stays Ready while the process runs, whatever it answers later).  A Deployment
with replicas whose process is not running (an image the lab cannot run, a process that exited
and waits to restart) stands for one pod that is not ready, as a pod in ImagePullBackOff or
CrashLoopBackOff is.  The lab runs one process per Deployment whatever its replica count, so it
lists one address per process.

Addresses: the API server refuses loopback addresses in Endpoints ("may not be in the loopback
range (127.0.0.0/8)", ``validateNonSpecialIP`` in pkg/apis/core/validation), so the lab cannot
list the ``127.0.0.1`` its processes listen on.  Each lab pod gets a stable pod IP instead, from
``10.244.0.0/16`` (kubeadm's and kind's default pod network, apart from the lab's Service range
10.96.0.0/24), and ports are what ``FindPort`` gives (the Service's ``targetPort``), exactly as on
a cluster.  The router does not read Endpoints (it follows the runner's processes), so these
addresses only tell clients what is ready.  The ``endpoints.kubernetes.io/last-change-trigger-time``
annotation is not written (it is optional) and EndpointSlices are not written.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.kube import KubeClient, KubeError

log = logging.getLogger("lab.dataplane.endpoints")

POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
HEADLESS_LABEL = "service.kubernetes.io/headless"  # v1.IsHeadlessService
# Endpoints kept by a leader election are never a Service's (checkLeftoverEndpoints skips them).
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
Key = tuple[str, str]


@dataclass(frozen=True)
class LabPod:
    """One process of a Deployment (or the process it should have), seen as a pod."""

    namespace: str
    deployment: str
    labels: Mapping[str, str]
    ready: bool
    name: str = ""  # the process's pod name; "" while no process runs
    containers: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    identity: str = ""  # what the pod IP is derived from (the pod name, else the ReplicaSet's)

    @property
    def ip(self) -> str:
        """A stable address in the pod network (never .0 or the broadcast address)."""
        digest = hashlib.sha256(f"{self.namespace}/{self.identity or self.name or self.deployment}".encode())
        host = int.from_bytes(digest.digest()[:4], "big") % (POD_NETWORK.num_addresses - 2) + 1
        return str(POD_NETWORK.network_address + host)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def find_port(pod: LabPod, service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for one Service port, as ``FindPort`` resolves ``targetPort`` (None: no such port)."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, str) and not target.isdigit():
        for container in pod.containers:
            for container_port in container.get("ports") or []:
                if container_port.get("name") == target and (container_port.get("protocol") or "TCP") == protocol:
                    return int(container_port["containerPort"])
        return None
    return int(target)


def _address(pod: LabPod) -> dict[str, Any]:
    address: dict[str, Any] = {"ip": pod.ip}
    if pod.name:
        address["targetRef"] = {"kind": "Pod", "namespace": pod.namespace, "name": pod.name}
    return address


def _endpoint_port(service_port: Mapping[str, Any], number: int) -> dict[str, Any]:
    port: dict[str, Any] = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def repack(entries: Iterable[tuple[dict[str, Any], list[dict[str, Any]], bool]]) -> list[dict[str, Any]]:
    """``RepackSubsets``: one subset per set of ports; ready wins over not ready; sorted."""
    groups: dict[str, tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {}
    for address, ports, ready in entries:
        ports_key = _canonical(sorted(ports, key=_canonical))
        group = groups.setdefault(ports_key, (sorted(ports, key=_canonical), {}, {}))
        address_key = _canonical(address)
        if ready:
            group[1][address_key] = address
            group[2].pop(address_key, None)
        elif address_key not in group[1]:
            group[2][address_key] = address
    subsets = []
    for ports_key in sorted(groups):
        ports, ready, not_ready = groups[ports_key]
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = [ready[k] for k in sorted(ready)]
        if not_ready:
            subset["notReadyAddresses"] = [not_ready[k] for k in sorted(not_ready)]
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def desired_endpoints(service: Mapping[str, Any], pods: Iterable[LabPod]) -> dict[str, Any] | None:
    """The Endpoints the controller would hold for ``service`` (None: the controller leaves it alone)."""
    spec = service.get("spec") or {}
    meta = service.get("metadata") or {}
    # An empty selector is no selector: the API server stores none (the map is omitted when empty).
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return None
    selector = spec["selector"]
    namespace = meta.get("namespace", "default")
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    entries: list[tuple[dict[str, Any], list[dict[str, Any]], bool]] = []
    for pod in pods:
        if pod.namespace != namespace or not selects(selector, pod.labels):
            continue
        ready = publish_not_ready or pod.ready
        service_ports = spec.get("ports") or []
        if not service_ports:
            if headless:
                entries.append((_address(pod), [], ready))
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is not None:
                entries.append((_address(pod), [_endpoint_port(service_port, number)], ready))
    labels = dict(meta.get("labels") or {})
    if headless:
        labels[HEADLESS_LABEL] = ""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": meta["name"], "namespace": namespace}, "subsets": repack(entries)}
    if labels:
        body["metadata"]["labels"] = labels
    return body


def same_endpoints(desired: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether the stored object already holds the desired subsets and labels (the controller's no-op test)."""
    return (_canonical(desired.get("subsets") or []) == _canonical(stored.get("subsets") or [])
            and (desired["metadata"].get("labels") or {}) == ((stored.get("metadata") or {}).get("labels") or {}))


def _version(obj: Mapping[str, Any] | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class EndpointsController:
    """Keeps Endpoints in step with Services and the runner's processes; writes only differences.

    ``services`` and ``stored_endpoints`` list what the informers hold; ``pods`` lists the lab pods.
    A pass runs on ``wake()`` and at least every ``period`` seconds (a process may exit or become
    ready without any event from the API server).  What we wrote is remembered until the informer
    catches up, so a pass right after a write neither writes again nor runs into a conflict.
    """

    def __init__(self, services: Callable[[], list[dict[str, Any]]],
                 stored_endpoints: Callable[[], list[dict[str, Any]]], pods: Callable[[], list[LabPod]],
                 client_factory: Callable[[], KubeClient], ready: Callable[[], bool], period: float = 0.25):
        self.services = services
        self.stored_endpoints = stored_endpoints
        self.pods = pods
        self.client_factory = client_factory
        self.ready = ready
        self.period = period
        self.writes = 0
        self._written: dict[Key, dict[str, Any] | None] = {}
        # A write the API server refused is not tried again until what we would write changes (the
        # controller retries with a rate limit; a refused body would be refused again).
        self._refused: dict[Key, str] = {}
        self._services_seen: set[Key] | None = None  # None until the first pass
        self._client: KubeClient | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="endpoints", daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the loop after its current pass."""
        self._stopping.set()
        self.wake()
        self._thread.join(timeout=5)
        self._reset_client()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=self.period)
            self._wake.clear()
            if self._stopping.is_set() or not self.ready():
                continue
            try:
                self.sync()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("endpoints pass failed")

    def _current(self) -> dict[Key, dict[str, Any]]:
        """What the API server holds, with our own writes the informer has not seen yet."""
        current = {((o.get("metadata") or {}).get("namespace", ""), o["metadata"]["name"]): o
                   for o in self.stored_endpoints()}
        for key, written in list(self._written.items()):
            seen = current.get(key)
            if written is None:  # we deleted it
                if seen is None:
                    del self._written[key]
                else:
                    current.pop(key)
            elif seen is not None and _version(seen) >= _version(written):
                del self._written[key]
            else:
                current[key] = written
        return current

    def sync(self) -> None:
        pods = self.pods()
        current = self._current()
        services = {((s.get("metadata") or {}).get("namespace", ""), s["metadata"]["name"]): s
                    for s in self.services()}
        for key, service in services.items():
            desired = desired_endpoints(service, pods)
            if desired is None:
                continue
            stored = current.get(key)
            if stored is not None and same_endpoints(desired, stored):
                continue
            if self._refused.get(key) == _canonical(desired):
                continue
            self._write(key, desired, stored)
        # syncService deletes the Endpoints of a Service that was deleted; at start-up,
        # checkLeftoverEndpoints deletes every Endpoints with no Service (except a leader election's).
        # Endpoints written by hand later for a name with no Service are left alone, as there.
        for key, stored in current.items():
            annotations = (stored.get("metadata") or {}).get("annotations") or {}
            gone = key in self._services_seen if self._services_seen is not None else True
            if key not in services and gone and LEADER_ANNOTATION not in annotations:
                self._delete(key)
        self._services_seen = set(services)

    def _client_for_write(self) -> KubeClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def _write(self, key: Key, desired: dict[str, Any], stored: dict[str, Any] | None) -> None:
        namespace, name = key
        collection = f"/api/v1/namespaces/{namespace}/endpoints"
        try:
            if stored is None:
                result = self._client_for_write().create(collection, desired)
            else:
                body = json.loads(json.dumps(desired))
                body["metadata"] = {**(stored.get("metadata") or {}), "labels": desired["metadata"].get("labels")}
                body["metadata"].pop("managedFields", None)
                result = self._client_for_write().replace(f"{collection}/{name}", body)
            self.writes += 1
            self._written[key] = result
            self._refused.pop(key, None)
        except KubeError as exc:
            # 409: someone wrote first (the informer will bring it, and the next pass compares again);
            # 422 and others: remembered, so the same body is not sent again and again.
            log.info("endpoints %s/%s: %s", namespace, name, exc)
            self._written.pop(key, None)
            if exc.status != 409:
                self._refused[key] = _canonical(desired)
        except OSError as exc:
            log.warning("endpoints %s/%s: %s", namespace, name, exc)
            self._reset_client()

    def _delete(self, key: Key) -> None:
        namespace, name = key
        try:
            self._client_for_write().delete(f"/api/v1/namespaces/{namespace}/endpoints/{name}")
            self.writes += 1
        except KubeError as exc:
            if exc.status != 404:
                log.info("endpoints %s/%s: %s", namespace, name, exc)
                return
        except OSError as exc:
            log.warning("endpoints %s/%s: %s", namespace, name, exc)
            self._reset_client()
            return
        self._written[key] = None

    def _reset_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
