"""Bookinfo versions that misbehave on purpose: SERVICE_VERSION=v-faulty / v-delayed, as upstream's ratings,
and v-refusing (ours): a server that stops accepting connections once it has answered its first health check."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookinfo._http import Faults

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_upstream_defaults_half_of_the_answers():
    faulty = Faults({"SERVICE_VERSION": "v-faulty"})
    assert (faulty.error_share, faulty.status, faulty.delay_share) == (0.5, 503, 0.0)
    delayed = Faults({"SERVICE_VERSION": "v-delayed"})
    assert (delayed.delay_share, delayed.delay_seconds, delayed.error_share) == (0.5, 7.0, 0.0)
    assert not Faults({"SERVICE_VERSION": "v2"}).fail()


def test_share_of_failures_follows_fault_percent():
    faults = Faults({"SERVICE_VERSION": "v-faulty", "FAULT_PERCENT": "20"})
    share = sum(faults.fail() for _ in range(20000)) / 20000
    assert 0.18 < share < 0.22


@pytest.mark.parametrize("name,value", [("FAULT_PERCENT", "abc"), ("FAULT_PERCENT", "120"), ("FAULT_STATUS", "404"),
                                        ("DELAY_MS", "-1")])
def test_bad_settings_stop_the_process_with_a_message(name, value):
    with pytest.raises(SystemExit, match=f"{name} must be a number"):
        Faults({"SERVICE_VERSION": "v-faulty", name: value})


def start(tmp_path: Path, service: str, **env_extra: str) -> tuple[subprocess.Popen[bytes], int]:
    ready = tmp_path / "port"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env_extra)
    process = subprocess.Popen([sys.executable, "-m", "bookinfo", "serve", service, "--port", "0",
                                "--ready-file", str(ready)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return process, int(ready.read_text())


def test_a_faulty_and_slow_service_still_answers_health(tmp_path: Path):
    process, port = start(tmp_path, "ratings", SERVICE_VERSION="v-faulty", FAULT_PERCENT="100", FAULT_STATUS="500")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for path, status in (("/health", 200), ("/ratings/0", 500), ("/ratings/0", 500)):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == status, path
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_a_refusing_service_answers_its_first_health_check_then_refuses_every_connection(tmp_path: Path):
    process, port = start(tmp_path, "reviews", SERVICE_VERSION="v-refusing")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and b"reviews is healthy" in response.read()
        conn.close()
        refused_since = None
        deadline = time.monotonic() + 5
        # The listener closes right after that answer; from then on, every connection is refused.
        while time.monotonic() < deadline:
            try:
                probe = socket.create_connection(("127.0.0.1", port), timeout=1)
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: a connection caught in the backlog as the listener closed - not accepted either.
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > 0.5:
                    break
                continue
            probe.close()
            refused_since = None
            time.sleep(0.01)
        assert refused_since is not None and time.monotonic() - refused_since > 0.5, "connections still accepted"
        assert process.poll() is None, "the process must keep running: its pod stays Ready"
        # Nothing else may take the port while it runs (it would get the canary's traffic).
        intruder = socket.socket()
        with pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        intruder.close()
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
