"""`make demo` as a new user runs it: base → canary at 50% → promote, with the split measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.canary.istio.plugins.module_utils._probe import wilson_interval
from lab import demo
from lab.controlplane import Lab
from tests.helpers.collection import REPO_ROOT
from tests.helpers.split_checks import MAX_FALSE_FAILURE, false_failure_rate

RATIO = 50

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_measures_the_split_and_leaves_the_lab_up(tmp_path: Path):
    lab_dir = tmp_path / "demo-lab"
    env = {**os.environ, "LAB_DIR": str(lab_dir), "DEMO_RATIO": str(RATIO)}
    env.pop("DEMO_INTERACTIVE", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "lab.demo"], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        out = proc.stdout
        assert re.search(r"Open the product page: http://127\.0\.0\.1:\d+/productpage", out)
        base = re.search(r"base release\s+200 answers, 0 errors: .*v1 100\.0%", out)
        canary = re.search(rf"canary at {RATIO}%\s+{demo.SPLIT_REQUESTS} answers, 0 errors: .*v2 ([\d.]+)%.*"
                           r"\(v2 99\.99% interval ([\d.]+)-([\d.]+)%\)", out)
        after = re.search(r"after\s+200 answers, 0 errors: .*v2 100\.0%", out)
        assert base and canary and after, out[-3000:]
        assert float(canary.group(2)) <= RATIO <= float(canary.group(3))
        assert "total time:" in out and "The lab stays up" in out
        # The lab is still up for browsing.
        assert Lab(lab_dir).status()["up"] is True
    finally:
        Lab(lab_dir).down(quiet=True)


def test_demo_split_check_fails_a_correct_router_at_most_once_in_10000_runs():
    # The demo's probe of the canary fails the task when RATIO lies outside the interval; a fair
    # router makes that a random event, whose probability must stay below MAX_FALSE_FAILURE.
    assert demo.CONFIDENCE == 0.9999
    rate = false_failure_rate(demo.SPLIT_REQUESTS, {"v2": RATIO / 100, "other": 1 - RATIO / 100},
                              lambda k, n: wilson_interval(k, n, demo.CONFIDENCE), {"v2": RATIO})
    assert rate <= MAX_FALSE_FAILURE, rate
