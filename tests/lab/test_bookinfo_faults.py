"""Bookinfo versions that misbehave on purpose: SERVICE_VERSION=v-faulty / v-delayed, as upstream's ratings."""

from __future__ import annotations

import http.client
import os
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


def test_a_faulty_and_slow_service_still_answers_health(tmp_path: Path):
    ready = tmp_path / "port"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), SERVICE_VERSION="v-faulty", FAULT_PERCENT="100",
               FAULT_STATUS="500")
    process = subprocess.Popen([sys.executable, "-m", "bookinfo", "serve", "ratings", "--port", "0",
                                "--ready-file", str(ready)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        conn = http.client.HTTPConnection("127.0.0.1", int(ready.read_text()), timeout=5)
        for path, status in (("/health", 200), ("/ratings/0", 500), ("/ratings/0", 500)):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.status == status, path
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=5)
