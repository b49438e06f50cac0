"""What the four services share: a keep-alive HTTP server, and calls to other services."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SERVICE_PORT = 9080

# Headers a service must copy from its incoming request to its outgoing ones, so that the mesh
# can route by user and tracing can join the hops (Istio's documented propagation list).
PROPAGATED_HEADERS = (
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
)

# The header that tells the mesh proxy which workload is calling (a sidecar knows this from its
# own pod; our shared proxy is told).
SOURCE_WORKLOAD_HEADER = "x-source-workload"
SOURCE_NAMESPACE_HEADER = "x-source-namespace"


class Identity:
    """Who this process is: service, version and the workload (Deployment) it runs as."""

    def __init__(self, service: str, version: str):
        self.service = service
        self.version = version
        self.workload = os.environ.get("BOOKINFO_WORKLOAD") or f"{service}-{version}"
        self.namespace = os.environ.get("BOOKINFO_NAMESPACE") or "default"
        self.pod_name = os.environ.get("BOOKINFO_POD_NAME") or f"{self.workload}-{socket.gethostname()}"


class Faults:
    """Misbehaviour asked for in the environment, as upstream Bookinfo's ratings service does.

    ``SERVICE_VERSION=v-faulty`` answers a share of requests with an error status (upstream: half of
    them, 503); ``SERVICE_VERSION=v-delayed`` answers a share late (upstream: half of them, 7 s).
    ``FAULT_PERCENT`` (0-100), ``FAULT_STATUS`` (500-599) and ``DELAY_MS`` change the share, the
    status and the delay.  ``/health`` always answers: the process is up, its answers are bad.

    ``SERVICE_VERSION=v-refusing`` is ours, not upstream's: a server that dies once started.  The
    process answers its first ``/health`` (so it is taken as ready, like a container with no
    readiness probe) and then stops accepting connections while it keeps running; every later
    connection to its port is refused.  See :func:`serve`.
    """

    def __init__(self, environ: Mapping[str, str]):
        mode = environ.get("SERVICE_VERSION", "")
        self.error_share = self.delay_share = 0.0
        self.status = self._number(environ, "FAULT_STATUS", 503, 500, 599)
        self.delay_seconds = self._number(environ, "DELAY_MS", 7000, 0, 600000) / 1000.0
        share = self._number(environ, "FAULT_PERCENT", 50, 0, 100) / 100.0
        if mode == "v-faulty":
            self.error_share = share
        elif mode == "v-delayed":
            self.delay_share = share
        self.refuse_connections = mode == "v-refusing"
        self.health_answered = threading.Event()
        self._random = random.Random()

    @staticmethod
    def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
        raw = environ.get(name)
        if raw in (None, ""):
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise SystemExit(f"bookinfo: {name} must be a number from {low:g} to {high:g}, got {raw!r}")
        return value

    def delay(self) -> None:
        if self.delay_share and self._random.random() < self.delay_share:
            time.sleep(self.delay_seconds)

    def fail(self) -> bool:
        return bool(self.error_share) and self._random.random() < self.error_share


class DownstreamError(Exception):
    """A call to another service failed (connection, timeout or an error status).

    ``version`` is the failing instance's version when its error answer said it (our own services do).
    """

    def __init__(self, message: str, version: str = ""):
        super().__init__(message)
        self.version = version


class Downstream:
    """Calls other services through the mesh URL, reusing one connection per thread."""

    def __init__(self, identity: Identity, mesh_url: str | None = None):
        self.identity = identity
        self.mesh_url = mesh_url if mesh_url is not None else os.environ.get("BOOKINFO_MESH_URL", "")
        self._local = threading.local()

    def _target(self, service: str) -> tuple[str, int]:
        if self.mesh_url:
            parts = urllib.parse.urlsplit(self.mesh_url)
            return parts.hostname or "127.0.0.1", parts.port or 80
        return service, SERVICE_PORT

    def _connection(self, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        pool: dict[tuple[str, int], http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((host, port))
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            pool[(host, port)] = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self, host: str, port: int) -> None:
        conn = self._local.__dict__.get("pool", {}).pop((host, port), None)
        if conn is not None:
            conn.close()

    def get_json(self, service: str, path: str, incoming: Mapping[str, str], timeout: float,
                 attempts: int = 1) -> Any:
        """GETs ``path`` from ``service``; raises DownstreamError on failure or a non-200 answer."""
        host, port = self._target(service)
        headers = {name: incoming[name] for name in PROPAGATED_HEADERS if name in incoming}
        headers["Host"] = f"{service}:{SERVICE_PORT}"
        headers[SOURCE_WORKLOAD_HEADER] = self.identity.workload
        headers[SOURCE_NAMESPACE_HEADER] = self.identity.namespace
        last_error = "no attempt made"
        for _ in range(max(1, attempts)):
            for fresh in (False, True):
                conn = self._connection(host, port, timeout)
                reused = conn.sock is not None
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    body = response.read()
                except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
                    # A kept-alive connection the proxy closed meanwhile: one fresh try.
                    self._drop(host, port)
                    last_error = f"{service}: {exc.__class__.__name__}: {exc}"
                    if reused and not fresh:
                        continue
                    break
                except (TimeoutError, OSError, http.client.HTTPException) as exc:
                    self._drop(host, port)
                    last_error = f"{service}: {exc.__class__.__name__}: {exc}"
                    break
                if response.will_close:
                    self._drop(host, port)
                if response.status != 200:
                    try:
                        said = json.loads(body)
                    except ValueError:
                        said = {}
                    version = str(said.get("version") or "") if isinstance(said, dict) else ""
                    raise DownstreamError(f"{service} answered {response.status}: {body[:200]!r}", version)
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise DownstreamError(f"{service} answered with invalid JSON: {exc}") from exc
        raise DownstreamError(last_error)


class Handler(BaseHTTPRequestHandler):
    """Keep-alive request handler with small helpers; services subclass it and set ``routes``."""

    protocol_version = "HTTP/1.1"
    server_version = "bookinfo"
    sys_version = ""
    identity: Identity
    downstream: Downstream
    faults: Faults

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # peer's delayed ACK add 40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("BOOKINFO_ACCESS_LOG"):
            sys.stderr.write(f"{self.identity.workload} {self.address_string()} {format % args}\n")

    def incoming_headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def send_body(self, status: int, body: bytes, content_type: str,
                  extra_headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        if self.command != "HEAD" and body:
            self._headers_buffer.append(b"\r\n" + body)  # head and body in one write
            self.flush_headers()
        else:
            self.end_headers()

    def send_json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_get(self, path: str, query: dict[str, list[str]]) -> None:
        self.send_json(404, {"error": f"no such path: {path}"})

    def handle_post(self, path: str, query: dict[str, list[str]]) -> None:
        self.read_body()
        self.send_json(405, {"error": f"POST is not allowed on {path}"})

    def _dispatch(self, method: Callable[[str, dict[str, list[str]]], None]) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if parts.path == "/health":
            self.send_json(200, {"status": f"{self.identity.service} is healthy",
                                 "version": self.identity.version})
            self.faults.health_answered.set()
            return
        if self.faults.refuse_connections:
            # Accepted in the instant before the listener closes: dropped unanswered, as by a dying server.
            self.close_connection = True
            return
        self.faults.delay()
        if self.faults.fail():
            if self.command == "POST":
                self.read_body()  # keep the connection usable for the next request
            # Which instance failed, so that a caller (and a person reading the page) can tell.
            self.send_json(self.faults.status, {"error": "Service unavailable", "version": self.identity.version,
                                                "podname": self.identity.pod_name})
            return
        method(parts.path, query)

    def do_GET(self) -> None:
        self._dispatch(self.handle_get)

    def do_HEAD(self) -> None:
        self._dispatch(self.handle_get)

    def do_POST(self) -> None:
        self._dispatch(self.handle_post)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def parse_args(service: str, argv: list[str] | None, default_version: str = "v1") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bookinfo.{service}",
                                     description=f"Bookinfo {service} service")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=SERVICE_PORT, help="port; 0 picks a free one")
    parser.add_argument("--version", default=os.environ.get("BOOKINFO_VERSION", default_version),
                        help="service version (v1, v2, v3); default from BOOKINFO_VERSION")
    parser.add_argument("--ready-file", help="write the bound port to this file once listening")
    return parser.parse_args(argv)


def serve(handler: type[Handler], identity: Identity, args: argparse.Namespace) -> None:
    """Listens, writes the ready file, serves until SIGTERM/SIGINT."""
    attributes = {"identity": identity, "downstream": Downstream(identity), "faults": Faults(os.environ)}
    bound = type(f"{identity.service.capitalize()}Handler", (handler,), attributes)
    server = Server((args.host, args.port), bound)
    port = server.server_address[1]
    if args.ready_file:
        temporary = f"{args.ready_file}.tmp"
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(str(port))
        os.replace(temporary, args.ready_file)

    if attributes["faults"].refuse_connections:
        _serve_then_refuse(server, attributes["faults"], identity, args.host, port)
        return

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return, so it must run off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"bookinfo {identity.service} {identity.version} listening on "
                     f"{args.host}:{port}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def _serve_then_refuse(server: Server, faults: Faults, identity: Identity, host: str, port: int) -> None:
    """``SERVICE_VERSION=v-refusing``: serve until ``/health`` is answered once, then refuse every connection.

    The listening socket is closed and the port stays bound by a socket that never listens, so a
    connection is refused (RST) and no other process can take the port while this one runs.
    """
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    sys.stderr.write(f"bookinfo {identity.service} {identity.version} listening on {host}:{port} "
                     "until its first health check (SERVICE_VERSION=v-refusing)\n")
    sys.stderr.flush()
    while not (faults.health_answered.wait(0.2) or stopped.is_set()):
        pass
    server.shutdown()
    server.server_close()
    placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.bind((host, port))
        if not stopped.is_set():
            sys.stderr.write(f"bookinfo {identity.service} {identity.version}: no longer accepting "
                             f"connections on {host}:{port}; the process keeps running\n")
            sys.stderr.flush()
        stopped.wait()
    finally:
        placeholder.close()
