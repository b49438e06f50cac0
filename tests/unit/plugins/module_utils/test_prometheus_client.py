"""The Prometheus client's answers to what is not a clean query result: every case a clear message.

A stand-in HTTP server on loopback answers as a proxy, a wrong URL or an overloaded Prometheus
would; real Prometheus' own answers are tested in tests/traffic/test_canary_analysis.py.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.canary.istio.plugins.module_utils._prometheus import (
    Prometheus,
    PrometheusError,
    single_value,
)

pytestmark = pytest.mark.unit


class Stub(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {}
    seen: list[dict[str, str]] = []

    def log_message(self, format, *args):  # quiet
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = dict(urllib.parse.parse_qsl(body))
        self.seen.append({"authorization": self.headers.get("Authorization", ""),
                          "tenant": self.headers.get("X-Scope-OrgID", ""), **form})
        status, payload = self.answers.get(form.get("query", ""), (404, b"404 page not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.answers, Stub.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def vector(*values: str) -> bytes:
    result = [{"metric": {"destination_version": f"v{i}"}, "value": [1.0, value]} for i, value in enumerate(values)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def test_values_time_and_credentials_are_sent(stub):
    Stub.answers["up"] = (200, vector("12.5"))
    client = Prometheus(stub, token="abc", headers={"X-Scope-OrgID": "team-a"})
    assert single_value(client.query("up", at=1700000000.25), "up") == 12.5
    assert Stub.seen[-1] == {"authorization": "Bearer abc", "tenant": "team-a", "query": "up", "time": "1700000000.250"}
    Prometheus(stub, username="me", password="pw").query("up")
    assert Stub.seen[-1]["authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()


def test_no_series_is_none_and_nan_stays_nan(stub):
    Stub.answers["empty"] = (200, vector())
    Stub.answers["nan"] = (200, vector("NaN"))
    client = Prometheus(stub)
    assert single_value(client.query("empty"), "empty") is None
    assert math.isnan(single_value(client.query("nan"), "nan"))


@pytest.mark.parametrize("answer,message", [
    ((401, b"Unauthorized"), "refused access (HTTP 401); check prometheus_token"),
    ((200, b"<html>Grafana</html>"), "is not Prometheus' API"),
    ((404, b"404 page not found"), "is not Prometheus' API"),
    ((422, json.dumps({"status": "error", "errorType": "execution", "error": "query timed out in query execution"})
      .encode()), "Prometheus refused the query (execution, HTTP 422): query timed out in query execution; query: q"),
])
def test_error_answers_are_named(stub, answer, message):
    Stub.answers["q"] = answer
    with pytest.raises(PrometheusError) as caught:
        Prometheus(stub).query("q")
    assert message in str(caught.value)


def test_many_series_must_be_aggregated(stub):
    Stub.answers["by"] = (200, vector("1", "2"))
    with pytest.raises(PrometheusError, match=r"returned 2 series, expected one .*sum"):
        single_value(Prometheus(stub).query("by"), "by")


@pytest.mark.parametrize("kwargs,message", [
    ({"url": "prometheus:9090"}, "must be an http(s) URL"),
    ({"url": "http://p:9090", "token": "t", "username": "u"}, "either a bearer token or a username"),
    ({"url": "https://p:9090", "ca_cert": "/nonexistent.pem"}, "cannot read the CA certificate"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(PrometheusError) as caught:
        Prometheus(**kwargs)
    assert message in str(caught.value)


class Flaky(Stub):
    """Answers 503 (as Prometheus does when overloaded) for the first ``failures`` requests."""

    failures = 0

    def do_POST(self):
        if Flaky.failures > 0:
            Flaky.failures -= 1
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = json.dumps({"status": "error", "errorType": "unavailable", "error": "too many queries"}).encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        super().do_POST()


@pytest.fixture
def flaky() -> Iterator[str]:
    Stub.answers, Stub.seen = {"up": (200, vector("1"))}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_transient_error_is_retried_before_it_is_reported(flaky):
    Flaky.failures = 2
    client = Prometheus(flaky)
    client.retry_delay = 0.01
    assert single_value(client.query("up"), "up") == 1.0
    assert (client.requests_made, client.retried) == (3, 2)
    Flaky.failures = 3
    with pytest.raises(PrometheusError, match=r"HTTP 503\): too many queries; query: up \(tried 3 times\)"):
        client.query("up")


def test_an_unreachable_prometheus_is_tried_three_times():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Prometheus(f"http://127.0.0.1:{port}")
    client.retry_delay = 0.01
    with pytest.raises(PrometheusError, match=r"cannot reach Prometheus at .* \(tried 3 times\)"):
        client.query("up")
    assert client.requests_made == 3


def test_a_refused_query_is_not_retried(stub):
    Stub.answers["bad"] = (400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})
                           .encode())
    client = Prometheus(stub)
    with pytest.raises(PrometheusError, match="bad_data, HTTP 400"):
        client.query("bad")
    assert client.requests_made == 1 and client.retried == 0
