"""`make demo` refuses a bad DEMO_CANARY or DEMO_RATE before it starts anything, naming the value and the rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import demo

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name,value,message", [
    ("DEMO_CANARY", "broken", "DEMO_CANARY must be one of healthy, faulty, slow, crashing, got 'broken'"),
    ("DEMO_RATE", "fast", "DEMO_RATE must be a number of pages per second from 1 to 1000, got 'fast'"),
    ("DEMO_RATE", "0", "DEMO_RATE must be a number of pages per second from 1 to 1000, got '0'"),
    ("DEMO_RATE", "nan", "DEMO_RATE must be a number of pages per second from 1 to 1000, got 'nan'"),
])
def test_bad_setting_is_refused_before_the_lab_starts(tmp_path: Path, name: str, value: str, message: str):
    lab_dir = tmp_path / "lab"
    env = {**os.environ, "LAB_DIR": str(lab_dir), name: value}
    proc = subprocess.run([sys.executable, "-m", "lab.demo"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not lab_dir.exists()


def test_the_first_step_can_see_the_requests_a_pass_needs_before_its_deadline():
    # The first step has the smallest share: its looks must cover PASS_REQUESTS canary requests, with two to spare,
    # and the role refuses an interval shorter than the window.
    for rate in (20, 60, 100, 400):
        settings = demo.analysis_settings(rate)
        per_look = rate * demo.STEPS[0] / 100 * settings["interval"]
        assert (settings["looks_per_step"] - 2) * per_look >= demo.PASS_REQUESTS, (rate, settings)
        assert settings["interval"] >= int(settings["window"].rstrip("s"))
