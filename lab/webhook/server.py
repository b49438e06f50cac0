"""An HTTPS server that answers AdmissionReview requests as istiod's ``/validate`` does."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab.webhook.validation import review

log = logging.getLogger("lab.webhook")


class AdmissionHandler(BaseHTTPRequestHandler):
    # Keep-alive: the API server reuses its connection, so each write costs no new TLS handshake.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment, at once: unbuffered writes of a small body behind the
    # headers meet Nagle's algorithm and the peer's delayed ACK (about 40 ms per review).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "lab-webhook"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def _reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/ready", "/healthz"):
            self._reply(200, {"ready": True})
        else:
            self._reply(404, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/validate":
            self._reply(404, {"error": f"no such path {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            admission = json.loads(self.rfile.read(length))
            request = admission["request"]
        except (ValueError, KeyError, TypeError) as exc:
            # istiod: "could not decode body"; the API server then fails closed.
            self._reply(400, {"error": f"could not decode body: {exc}"})
            return
        response = review(request)
        if not response["allowed"]:
            meta = (request.get("object") or {}).get("metadata") or {}
            log.info("refused %s %s/%s: %s", request.get("kind", {}).get("kind"), request.get("namespace"),
                     meta.get("name"), response["status"]["message"])
        self._reply(200, {"apiVersion": admission.get("apiVersion", "admission.k8s.io/v1"),
                          "kind": "AdmissionReview", "response": response})


def make_server(cert_file: str, key_file: str, port: int = 0) -> ThreadingHTTPServer:
    """Binds 127.0.0.1:port (0: any free port) with TLS; serve_forever() starts answering."""
    server = ThreadingHTTPServer(("127.0.0.1", port), AdmissionHandler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="lab-webhook", daemon=True)
    thread.start()
    return thread
