"""An API server that answers slowly: modules end with a clear message within their timeout."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

import pytest

from tests.helpers.ansible import run_module
from tests.helpers.loopback import LoopbackServer, pipe

pytestmark = pytest.mark.lab


class SlowProxy(LoopbackServer):
    """TCP proxy on loopback that holds every answer of the real apiserver back for ``delay`` seconds."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target = target
        self.delay = delay
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=pipe, args=(conn, upstream, 0.0, self.closed), daemon=True).start()
        pipe(upstream, conn, self.delay, self.closed)


def test_slow_apiserver_ends_the_task_with_a_clear_message(lab_state, namespace):
    server = urllib.parse.urlsplit(lab_state["server"])
    proxy = SlowProxy((server.hostname, server.port), delay=4.0)
    try:
        args = {"host": f"https://127.0.0.1:{proxy.port}", "api_key": lab_state["tokens"]["admin"],
                "ca_cert": lab_state["ca_file"], "namespace": namespace, "request_timeout": 1.5}
        started = time.monotonic()
        result = run_module("traffic_split", {**args, "name": "reviews", "weights": {"v1": 100}})
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert result.get("failed") is True
    assert f"the API server at https://127.0.0.1:{proxy.port} did not answer" in result["msg"]
    assert "within 1.5s (request_timeout)" in result["msg"]
    assert elapsed < 10
