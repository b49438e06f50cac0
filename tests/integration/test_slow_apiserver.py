"""An API server that answers slowly: modules end with a clear message within their timeout."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

import pytest

from tests.helpers.ansible import run_module

pytestmark = pytest.mark.lab


class SlowProxy:
    """TCP proxy on loopback that holds every answer of the real apiserver back for ``delay`` seconds."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target = target
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.closed.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while not self.closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if delay and self.closed.wait(delay):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


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
