"""traffic_probe through ansible-playbook against a small loopback server with a known split."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.ansible import run_playbook, task_results

pytestmark = pytest.mark.lab


class _Split(BaseHTTPRequestHandler):
    counter = itertools.count()
    lock = threading.Lock()

    def do_GET(self):
        with self.lock:
            n = next(self.counter)
        if self.headers.get("Cookie") == "user=jason":
            body, status = b'<p class="reviews"><span style="color:red">*</span></p>', 200
        elif n % 50 == 49:
            body, status = b"upstream connect error", 503
        elif n % 10 < 3:
            body, status = b'<p class="reviews"><span style="color:black">*</span></p>', 200
        else:
            body, status = b'<p class="reviews"></p>', 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def split_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Split)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/productpage"
    server.shutdown()


LABELS = {"v3": "color:red", "v2": "color:black", "v1": 'class="reviews"'}


def _probe(url, **extra):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "probe", "canary.istio.traffic_probe": {"url": url, "requests": 500, "concurrency": 8,
                                                         "labels": LABELS, "progress_interval": 0.01, **extra}}]}]


def test_probe_measures_the_split_and_counts_errors_apart(split_server):
    proc = run_playbook(_probe(split_server, expect={"v2": 30}))
    result = task_results(proc)[0]
    assert proc.returncode == 0, result
    # Every 50th request fails: 10 errors, 490 answers of which 3 in 10 are v2.
    assert result["errors"] == 10 and result["error_kinds"] == {"503": 10}
    assert result["ok"] == 490
    assert result["counts"]["v2"] + result["counts"]["v1"] == 490 and result["counts"]["v3"] == 0
    low, high = result["intervals"]["v2"]
    assert low <= 30 <= high and high - low < 10
    assert result["confidence"] == 95.0  # a percent, as the option takes it


def test_expectation_outside_the_interval_fails_the_task(split_server):
    proc = run_playbook(_probe(split_server, expect={"v2": 50}))
    assert proc.returncode != 0
    result = task_results(proc)[0]
    assert result["failed"] is True
    assert "v2 share" in result["msg"] and "does not include the expected 50%" in result["msg"]
    assert "(95% interval " in result["msg"]


def test_confidence_sets_the_interval_and_is_stated(split_server):
    # 150 of 490 answers are v2 (30.6%): 36% lies outside the 95% interval, inside the 99.99% one.
    loose = run_playbook(_probe(split_server, expect={"v2": 36}))
    assert loose.returncode != 0
    assert "(95% interval " in task_results(loose)[0]["msg"]
    strict = run_playbook(_probe(split_server, expect={"v2": 36}, confidence=99.99), args=["-v"])
    result = task_results(strict)[0]
    assert strict.returncode == 0, result.get("msg")
    assert result["confidence"] == 99.99
    low, high = result["intervals"]["v2"]
    assert low <= 36 <= high and high - low > 14
    # Progress lines and the verdict name the level and the expected share.
    assert "99.99% intervals: v2 " in strict.stdout and "(expected 36%)" in strict.stdout
    assert "every expected share inside" in strict.stdout
    assert "DEPRECATION" not in strict.stdout + strict.stderr
    # The old fraction form still works, the same way, with a deprecation warning; the result states
    # the level in percent whichever form the option was written in.
    old = run_playbook(_probe(split_server, expect={"v2": 36}, confidence=0.9999))
    assert old.returncode == 0 and task_results(old)[0]["confidence"] == 99.99
    assert "confidence 0.9999 is read as a fraction (99.99%)" in old.stdout + old.stderr
    wrong = run_playbook(_probe(split_server, expect={"v2": 36}, confidence=100))
    assert wrong.returncode != 0 and "percentage from 50 up to, not including, 100" in task_results(wrong)[0]["msg"]


def test_cookies_and_max_errors(split_server):
    proc = run_playbook(_probe(split_server, cookies={"user": "jason"}, expect={"v3": 100}, max_errors=0))
    result = task_results(proc)[0]
    assert proc.returncode == 0, result
    assert result["shares"]["v3"] == 100.0
    strict = run_playbook(_probe(split_server, max_errors=0))
    assert strict.returncode != 0 and "more than max_errors 0" in task_results(strict)[0]["msg"]


def test_progress_lines_are_printed_on_long_probes(split_server):
    proc = run_playbook(_probe(split_server), args=["-v"])
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "traffic_probe: " in proc.stdout and "/500 requests" in proc.stdout
