"""The HTTP side of the mesh router: the ingress gateway port, the mesh port and the admin port."""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab.dataplane.metrics import Metrics
from lab.dataplane.resilience import (
    OVERFLOW_BODY,
    RATE_LIMITED_BODY,
    TIMEOUT_BODY,
    ConnectionPools,
    OutlierDetector,
    RetryPolicy,
    TokenBuckets,
    join_flags,
    local_rate_limits,
)
from lab.dataplane.routing import (
    MESH_ROOT_NAMESPACE,
    NO_HEALTHY_UPSTREAM,
    Decision,
    Request,
    ServiceEntry,
    Snapshot,
    Target,
)

log = logging.getLogger("lab.dataplane.proxy")

GATEWAY_WORKLOAD = "istio-ingressgateway"
GATEWAY_NAMESPACE = "istio-system"
SOURCE_WORKLOAD_HEADER = "x-source-workload"
SOURCE_NAMESPACE_HEADER = "x-source-namespace"
DEFAULT_UPSTREAM_TIMEOUT = 60.0
# Not forwarded: hop-by-hop headers, and those the proxy writes itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length", "server", "date"}


class UpstreamPool:
    """Idle keep-alive connections to workloads, per port."""

    def __init__(self, per_port: int = 64):
        self.per_port = per_port
        self._idle: dict[int, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def acquire(self, port: int, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(port)
            conn = idle.pop() if idle else None
        if conn is None:
            return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout), False
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def release(self, port: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(port, [])
            if len(idle) < self.per_port:
                idle.append(conn)
                return
        conn.close()


class _NoAnswer(Exception):
    """One attempt got no answer: ``kind`` is "timeout" or "connect"."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class UpstreamError(Exception):
    """No answer from upstream; ``target`` is the workload last tried (None when none could be chosen)."""

    def __init__(self, status: int, body: str, flags: str, target: Target | None = None):
        super().__init__(body)
        self.status, self.body, self.flags, self.target = status, body, flags, target


def canonical_service(labels: Mapping[str, str], workload: str) -> str:
    """Istio's canonical service of a workload: its canonical-name label, app.kubernetes.io/name, app, or its name."""
    for key in ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"):
        if key in labels:
            return labels[key]
    return workload


def canonical_revision(labels: Mapping[str, str]) -> str:
    """Istio's canonical revision: its canonical-revision label, app.kubernetes.io/version, version, or "latest"."""
    for key in ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"):
        if key in labels:
            return labels[key]
    return "latest"


class Router:
    """Holds the current snapshot; turns requests into upstream calls and metrics."""

    def __init__(self, metrics: Metrics, gateway_port: int = 80):
        self.metrics = metrics
        self.snapshot = Snapshot()
        self.generation = 0
        self.pool = UpstreamPool()
        self.gateway_port = gateway_port
        self.mirrors = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mirror")
        self.connection_pools = ConnectionPools()
        self.outliers = OutlierDetector()
        self.buckets = TokenBuckets()
        self._rng = threading.local()

    def rng(self) -> random.Random:
        rng = getattr(self._rng, "value", None)
        if rng is None:
            rng = self._rng.value = random.Random()
        return rng

    def install(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.generation += 1

    # ---- forwarding

    def _send_once(self, target: Target, method: str, path: str, headers: Mapping[str, str], body: bytes,
                   timeout: float) -> tuple[int, list[tuple[str, str]], bytes]:
        """One attempt on one workload; raises _NoAnswer on a connection failure or a timeout."""
        port = target.endpoint.port
        last = "connection failure"
        for fresh_try in (False, True):
            conn, reused = self.pool.acquire(port, max(0.001, timeout))
            try:
                conn.request(method, path, body=body or None, headers=dict(headers))
                response = conn.getresponse()
                payload = response.read()
            except TimeoutError:
                conn.close()
                raise _NoAnswer("timeout", "upstream request timeout") from None
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, OSError) as exc:
                conn.close()
                last = f"{exc.__class__.__name__}"
                if reused and not fresh_try:
                    continue  # a stale kept-alive connection: try once on a new one
                break
            if response.will_close:
                conn.close()
            else:
                self.pool.release(port, conn)
            return response.status, response.getheaders(), payload
        raise _NoAnswer("connect", last)

    def _inbound_rate_limited(self, snapshot: Snapshot, target: Target) -> bool:
        """The destination sidecar's local rate limit (EnvoyFilter), checked before its application."""
        endpoint = target.endpoint
        for namespace, selector, key, bucket in local_rate_limits(snapshot.envoy_filters):
            if namespace not in (endpoint.namespace, MESH_ROOT_NAMESPACE):
                continue
            if not all(endpoint.labels.get(k) == v for k, v in selector.items()):
                continue
            if not self.buckets.take((key, endpoint.namespace, endpoint.workload), bucket):
                return True
        return False

    def send(self, target: Target, method: str, path: str, headers: Mapping[str, str], body: bytes,
             timeout: float | None, snapshot: Snapshot, retries: Mapping[str, Any] | None = None,
             client: tuple[str, str] = ("", ""), use_policy: bool = True,
             on_attempt: Callable[[Target, int, str], None] | None = None,
             ) -> tuple[int, list[tuple[str, str]], bytes, Target, str]:
        """Sends with the route's retry policy, timeouts and the destination's traffic policy.

        ``timeout``: the route timeout (None: none); returns (status, headers, body, target, flags)
        or raises UpstreamError. ``on_attempt`` hears every attempt that reached the destination's
        proxy (its status and the destination-side flags) - what reporter="destination" counts.
        """
        policy = RetryPolicy.from_route(retries) if use_policy else RetryPolicy(0, frozenset(), frozenset(), None)
        rng = self.rng()
        deadline = time.monotonic() + (timeout if timeout else DEFAULT_UPSTREAM_TIMEOUT)
        tried: set[str] = set()
        outcome: tuple[int, list[tuple[str, str]], bytes] | None = None
        failure: UpstreamError | None = None
        for attempt in range(1 + policy.attempts):
            if attempt:
                time.sleep(min(policy.backoff_seconds(attempt, rng), max(0.0, deadline - time.monotonic())))
                snapshot = self.snapshot  # the workload may have just been replaced: choose again
            traffic_policy = snapshot.traffic_policy(target) if use_policy else {}
            cluster = (client, target.service.fqdn, target.subset or "")
            outlier = traffic_policy.get("outlierDetection")
            members = snapshot.cluster_endpoints(target.service, target.subset, target.client_namespace)
            names = [e.workload for e in members] if not isinstance(members, str) else []
            avoid = self.outliers.ejected(cluster, names) if outlier is not None else set()
            if attempt and policy.ignore_previous_hosts and set(names) - avoid - tried:
                avoid = avoid | tried
            if attempt or target.endpoint.workload in avoid:
                found = snapshot.resolve(target.service, target.subset, rng, target.client_namespace, avoid)
                if not isinstance(found, Target):
                    raise UpstreamError(503, NO_HEALTHY_UPSTREAM, found, target)
                target = found
            tried.add(target.endpoint.workload)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamError(504, TIMEOUT_BODY, "UT", target)
            per_try = min(policy.per_try_timeout or remaining, remaining)
            limits = ConnectionPools.limits(traffic_policy)
            if limits is not None and not self.connection_pools.acquire(cluster, limits, remaining):
                raise UpstreamError(503, OVERFLOW_BODY, "UO", target)
            try:
                if self._inbound_rate_limited(snapshot, target):
                    if on_attempt:
                        on_attempt(target, 429, "RL")
                    outcome = (429, [("content-type", "text/plain"), ("x-local-rate-limit", "true")],
                               RATE_LIMITED_BODY.encode())
                else:
                    outcome = self._send_once(target, method, path, headers, body, per_try)
                    if on_attempt:
                        on_attempt(target, outcome[0], "-")
                failure = None
            except _NoAnswer as missing:
                outcome = None
                route_timeout = missing.kind == "timeout" and per_try >= remaining - 0.001
                if missing.kind == "timeout":
                    failure = UpstreamError(504, TIMEOUT_BODY, "UT", target)
                else:
                    failure = UpstreamError(503, "upstream connect error or disconnect/reset before headers. "
                                                 f"reset reason: connection failure ({missing.detail})", "UF", target)
                if outlier is not None:
                    self.outliers.record(cluster, target.endpoint.workload, names, 0, outlier)
                if route_timeout:
                    raise failure from None  # the route's own timeout ends the request: never retried
                retry = policy.retries_timeout() if missing.kind == "timeout" else policy.retries_connect_failure()
                if not retry:
                    raise failure from None
                continue
            finally:
                if limits is not None:
                    self.connection_pools.release(cluster)
            if outlier is not None:
                self.outliers.record(cluster, target.endpoint.workload, names, outcome[0], outlier)
            if not policy.retries_answer(outcome[0]):
                return (*outcome, target, "-")
        # Every attempt used: Envoy answers with the last outcome and adds URX (retry limit exceeded).
        if failure is not None:
            failure.flags = join_flags([failure.flags, "URX"] if policy.attempts else [failure.flags])
            raise failure
        assert outcome is not None
        return (*outcome, target, "URX" if policy.attempts else "-")

    def mirror(self, target: Target, method: str, path: str, headers: dict[str, str], body: bytes,
               record: Callable[[Target, int, float], None]) -> None:
        def run() -> None:
            started = time.perf_counter()
            try:
                status, _, _, _, _ = self.send(target, method, path, headers, body, 10.0, self.snapshot,
                                               use_policy=False)
            except UpstreamError as exc:
                status = exc.status
            record(target, status, (time.perf_counter() - started) * 1000)
        try:
            self.mirrors.submit(run)
        except RuntimeError:  # shutting down
            pass


def _apply_header_ops(headers: dict[str, str], ops: Mapping[str, Any]) -> None:
    for name, value in (ops.get("set") or {}).items():
        headers[str(name).lower()] = str(value)
    for name, value in (ops.get("add") or {}).items():
        key = str(name).lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else str(value)
    for name in ops.get("remove") or []:
        headers.pop(str(name).lower(), None)


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "istio-envoy"
    sys_version = ""
    router: Router
    gateway: bool = False

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add 40 ms per keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: thousands of requests a second
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.command != "HEAD" and body:
            # One write for head and body: one packet for small answers.
            self._headers_buffer.append(b"\r\n" + body)
            self.flush_headers()
        else:
            self.end_headers()

    def handle_any(self) -> None:
        started = time.perf_counter()
        router = self.router
        snapshot = router.snapshot
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        if "x-request-id" not in headers:
            headers["x-request-id"] = str(uuid.uuid4())
        authority = headers.get("host", "")
        if self.gateway:
            source, source_namespace = GATEWAY_WORKLOAD, GATEWAY_NAMESPACE
        else:
            source = headers.get(SOURCE_WORKLOAD_HEADER, "unknown")
            source_namespace = headers.get(SOURCE_NAMESPACE_HEADER, "default")
        source_labels = snapshot.workload_labels.get((source_namespace, source))
        request = Request(method=self.command, path=self.path, authority=authority, headers=headers,
                          source_workload=source, source_namespace=source_namespace,
                          source_labels=source_labels)
        rng = router.rng()
        if self.gateway:
            decision = snapshot.route_gateway(request, rng, router.gateway_port)
        else:
            decision = snapshot.route_mesh(request, rng)
        if decision.delay_seconds > 0:
            time.sleep(decision.delay_seconds)

        source_info = {"source_workload": source, "source_workload_namespace": source_namespace,
                       "source_app": (source_labels or {}).get("app", GATEWAY_WORKLOAD if self.gateway else "unknown"),
                       "source_version": (source_labels or {}).get("version", "unknown"),
                       "source_canonical_service": canonical_service(source_labels or {}, source),
                       "source_canonical_revision": canonical_revision(source_labels or {})}
        known_source = self.gateway or source_labels is not None

        if decision.target is None:
            status = decision.status or 503
            response_headers: list[tuple[str, str]] = [("content-type", "text/plain")]
            if decision.redirect:
                response_headers.append(("location", decision.redirect))
            # Recorded before answering, so that whoever got the answer also finds it counted.
            if known_source:
                self._record("source", source_info, decision.service, None, status, decision.flags, started)
            self._respond(status, response_headers, decision.body.encode())
            return

        target = decision.target
        upstream_headers = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
        upstream_headers["host"] = decision.authority or authority
        upstream_headers.setdefault("x-forwarded-proto", "http")
        _apply_header_ops(upstream_headers, decision.request_headers)
        path = decision.path or self.path
        for mirror_target in decision.mirrors:
            shadow = dict(upstream_headers)
            # Envoy marks mirrored requests by appending -shadow to the authority.
            shadow["host"] = f"{shadow['host']}-shadow"
            mirror_started = time.perf_counter()

            def record_mirror(target_: Target, status: int, _elapsed: float, begun: float = mirror_started) -> None:
                self._record("destination", source_info, target_.service, target_, status, "-", begun)
            router.mirror(mirror_target, self.command, path, shadow, body, record_mirror)
        upstream_started = time.perf_counter()

        def record_attempt(target_: Target, status_: int, flags_: str) -> None:
            self._record("destination", source_info, target_.service, target_, status_, flags_, started)
        try:
            status, upstream_response_headers, payload, target, flags = router.send(
                target, self.command, path, upstream_headers, body, decision.timeout_seconds, snapshot,
                retries=decision.retries, client=(source_namespace, source), on_attempt=record_attempt)
        except UpstreamError as exc:
            # Only the caller's proxy reports these: the destination's never answered (or never saw them).
            if known_source:
                self._record("source", source_info, target.service, exc.target, exc.status,
                             join_flags([exc.flags, decision.flags]), started, answered=False)
            self._respond(exc.status, [("content-type", "text/plain")], exc.body.encode())
            return
        service_ms = int((time.perf_counter() - upstream_started) * 1000)
        out = [(k, v) for k, v in upstream_response_headers if k.lower() not in HOP_BY_HOP]
        out.append(("x-envoy-upstream-service-time", str(service_ms)))
        if decision.response_headers:
            as_dict = {k.lower(): v for k, v in out}
            _apply_header_ops(as_dict, decision.response_headers)
            out = list(as_dict.items())
        if known_source:
            self._record("source", source_info, target.service, target, status, join_flags([flags, decision.flags]),
                         started)
        self._respond(status, out, payload)

    def _record(self, reporter: str, source_info: Mapping[str, str], service: ServiceEntry | None,
                target: Target | None, status: int, flags: str, started: float, answered: bool = True) -> None:
        """Counts one request as Istio's stats filter does on the ``reporter`` side.

        The destination's proxy labels the destination from its own pod. The source's proxy learns
        the destination's app and version from the answer (Istio's metadata exchange); with no
        answer (``answered`` False: connection failure, timeout) it falls back to the endpoint's
        metadata, which holds the workload, namespace and canonical service and revision but no app
        or version, so those read "unknown" (istio/proxy, istio_stats ``populatePeerInfo``).
        """
        labels = dict(source_info)
        endpoint = target.endpoint if target else None
        peer_labels = endpoint.labels if endpoint and (answered or reporter == "destination") else {}
        labels.update({
            "reporter": reporter,
            "destination_service": service.fqdn if service else "unknown",
            "destination_service_name": service.name if service else "unknown",
            "destination_service_namespace": service.namespace if service else "unknown",
            "destination_workload": endpoint.workload if endpoint else "unknown",
            "destination_workload_namespace": endpoint.namespace if endpoint else "unknown",
            "destination_app": peer_labels.get("app", "unknown"),
            "destination_version": peer_labels.get("version", "unknown"),
            "destination_canonical_service": (canonical_service(endpoint.labels, endpoint.workload) if endpoint
                                              else "unknown"),
            "destination_canonical_revision": canonical_revision(endpoint.labels) if endpoint else "latest",
            "request_protocol": "http",
            "response_code": str(status),
            "response_flags": flags,
        })
        self.router.metrics.record(labels, (time.perf_counter() - started) * 1000)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class AdminHandler(BaseHTTPRequestHandler):
    """``/metrics`` for Prometheus, ``/debug/*`` for tests and people, ``/healthz``."""

    protocol_version = "HTTP/1.1"
    server_version = "lab-dataplane"
    sys_version = ""
    describe: Callable[[str], Any]
    metrics: Metrics

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            body, kind = self.metrics.render().encode(), "text/plain; version=0.0.4"
        elif path == "/healthz":
            body, kind = b"ok\n", "text/plain"
        elif path.startswith("/debug/"):
            answer = self.describe(path[len("/debug/"):])
            if answer is None:
                self.send_error(404)
                return
            body, kind = json.dumps(answer, indent=1, sort_keys=True).encode(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


def serve(handler: type[BaseHTTPRequestHandler], port: int, **attributes: Any) -> Server:
    bound = type(handler.__name__, (handler,), attributes)
    server = Server(("127.0.0.1", port), bound)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     name=f"serve-{handler.__name__}", daemon=True).start()
    return server


def describe_decision(decision: Decision) -> dict[str, Any]:
    """A JSON view of a routing decision (for ``/debug/route``)."""
    return {"status": decision.status, "flags": decision.flags,
            "target": None if decision.target is None else decision.target.endpoint.workload,
            "virtual_service": decision.virtual_service}
