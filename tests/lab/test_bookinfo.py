"""Bookinfo's services on their own (no lab): pages, stars, sign-in and honest errors."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookinfo.productpage import render_page, render_stars
from bookinfo.reviews import RATINGS_UNAVAILABLE

REPO_ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def service() -> Iterator[Callable[..., int]]:
    """Starts ``python -m bookinfo serve NAME`` on a free loopback port; stops it at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    directory = tempfile.mkdtemp(prefix="bookinfo-test-")

    def start(name: str, version: str = "v1", mesh_url: str = "") -> int:
        ready = Path(directory) / f"{name}-{version}-{len(started)}.port"
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), BOOKINFO_MESH_URL=mesh_url)
        process = subprocess.Popen([sys.executable, "-m", "bookinfo", "serve", name, "--port", "0",
                                    "--version", version, "--ready-file", str(ready)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.02)
        return int(ready.read_text())

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=5)


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


def test_each_service_answers_health(service: Callable[..., int]) -> None:
    for name in ("productpage", "details", "reviews", "ratings"):
        status, _, text = get(service(name), "/health")
        assert status == 200 and name in text


def test_reviews_versions_show_their_stars(service: Callable[..., int]) -> None:
    ratings = service("ratings")
    mesh = f"http://127.0.0.1:{ratings}"  # ratings ignores the Host header, so it can stand in for the mesh
    import json
    v1 = json.loads(get(service("reviews", "v1", mesh), "/reviews/0")[2])
    v2 = json.loads(get(service("reviews", "v2", mesh), "/reviews/0")[2])
    v3 = json.loads(get(service("reviews", "v3", mesh), "/reviews/0")[2])
    assert all("rating" not in r for r in v1["reviews"])
    assert [r["rating"] for r in v2["reviews"]] == [{"stars": 5, "color": "black"}, {"stars": 4, "color": "black"}]
    assert {r["rating"]["color"] for r in v3["reviews"]} == {"red"}


def test_reviews_without_ratings_says_so(service: Callable[..., int]) -> None:
    import json
    payload = json.loads(get(service("reviews", "v2", f"http://127.0.0.1:{closed_port()}"), "/reviews/0")[2])
    assert {r["rating"]["error"] for r in payload["reviews"]} == {RATINGS_UNAVAILABLE}


def test_productpage_shows_errors_when_downstream_fails(service: Callable[..., int]) -> None:
    status, _, page = get(service("productpage", "v1", f"http://127.0.0.1:{closed_port()}"), "/productpage")
    assert status == 200
    assert "Sorry, product details are currently unavailable for this book." in page
    assert "Sorry, product reviews are currently unavailable for this book." in page


def test_productpage_login_sets_cookie_and_logout_clears_it(service: Callable[..., int]) -> None:
    port = service("productpage", "v1", f"http://127.0.0.1:{closed_port()}")
    status, headers, _ = get(port, "/login", {"Content-Type": "application/x-www-form-urlencoded"}, "POST",
                             b"username=jason&passwd=secret")
    assert status == 302 and headers["location"] == "/productpage"
    assert headers["set-cookie"].startswith("user=jason")
    page = get(port, "/productpage", {"Cookie": "user=jason"})[2]
    assert "User: jason" in page and "Sign out" in page
    status, headers, _ = get(port, "/logout")
    assert status == 302 and "Max-Age=0" in headers["set-cookie"]


def test_productpage_propagates_end_user_and_request_id(service: Callable[..., int]) -> None:
    # A fake "mesh" that records the headers productpage sends downstream.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    seen: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"reviews": [], "podname": "x"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = service("productpage", "v1", f"http://127.0.0.1:{server.server_address[1]}")
        get(port, "/productpage", {"Cookie": "user=jason", "x-request-id": "abc-123"})
    finally:
        server.shutdown()
        server.server_close()
    assert {h["host"] for h in seen} == {"details:9080", "reviews:9080"}
    assert all(h["end-user"] == "jason" and h["x-request-id"] == "abc-123" for h in seen)
    assert all(h["x-source-workload"] == "productpage-v1" for h in seen)


def test_render_marks_star_colors() -> None:
    assert render_stars({"stars": 4, "color": "red"}).count('glyphicon-star" style="color:red"') == 4
    page = render_page({"title": "T", "descriptionHtml": ""}, "", {"type": "paperback"},
                       {"podname": "reviews-v2-x", "reviews": [{"reviewer": "R", "text": "t",
                                                                "rating": {"stars": 5, "color": "black"}}]})
    assert page.count('class="glyphicon glyphicon-star" style="color:black"') == 5
    assert "Reviews served by: <span class=\"podname\">reviews-v2-x</span>" in page
