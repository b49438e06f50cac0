"""`make demo` as a new user runs it: base, then a progressive canary judged by Prometheus.

The default run promotes a healthy v2 through 10 -> 25 -> 50 % with every analysis passing;
``DEMO_CANARY=faulty`` deploys a v2 that answers 20 % of its requests with 503, and the role rolls
back on its own at the first step. In both, users routed to the base see no failure (the demo's load
generator sorts every page by the reviews version that served or failed it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab import demo
from lab.controlplane import Lab
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_demo(lab_dir: Path, **env_extra: str) -> str:
    env = {**os.environ, "LAB_DIR": str(lab_dir), **env_extra}
    env.pop("DEMO_INTERACTIVE", None)
    proc = subprocess.run([sys.executable, "-m", "lab.demo"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def users(out: str) -> dict[str, tuple[int, int]]:
    return {version: (int(ok), int(failed))
            for version, ok, failed in re.findall(r"users on (\S+)\s+(\d+) pages ok, (\d+) failed", out)}


def test_demo_promotes_a_healthy_canary_through_analysed_steps_and_leaves_the_lab_up(tmp_path: Path):
    lab_dir = tmp_path / "demo-lab"
    try:
        out = run_demo(lab_dir)
        assert re.search(r"Open the product page: http://127\.0\.0\.1:\d+/productpage", out)
        assert re.search(r"base release\s+200 answers, 0 errors: .*v1 100\.0%", out), out[-3000:]
        assert re.search(r"after\s+200 answers, 0 errors: .*v2 100\.0%", out), out[-3000:]
        verdicts = re.findall(r"analysis \d at (\d+)%: (\w+)", out)
        assert verdicts == [("10", "pass"), ("25", "pass"), ("50", "pass")], out[-3000:]
        assert "Analysis of v2: promote - every step passed its analysis (10%, 25%, 50%)" in out
        rate = float(re.search(r"load\s+([\d.]+) pages/s through the gateway", out).group(1))
        seen = users(out)
        assert rate >= 50 and seen["v1"][1] == 0 and seen["v2"][1] == 0 and "unknown" not in seen, (rate, seen)
        report = Path(re.search(r"Release report: (\S+\.html)", out).group(1))
        assert report.is_file() and f"release report: {report}" in out
        # The tutorial's three looks: no ratings node; half and half with reviews-v2 -> ratings-v1; no reviews-v1.
        pictures = {m: demo.OUT / f"topology-{m}" for m in ("1-base", "2-half", "3-after")}
        for path in pictures.values():
            assert path.with_suffix(".svg").is_file() and f"topology: {path.with_suffix('.svg')}" in out
        base, half, after = (path.with_suffix(".txt").read_text() for path in pictures.values())
        assert "ratings" not in base and re.search(r"productpage-v1\s+->\s+reviews-v1", base)
        assert re.search(r"productpage-v1\s+->\s+reviews-v2", half) and re.search(r"reviews-v2\s+->\s+ratings-v1",
                                                                                     half)
        assert re.search(r"Left out, no traffic.*\n\s+productpage-v1 -> reviews-v1", after), after
        assert "total time:" in out and "The lab stays up" in out
        assert Lab(lab_dir).status()["up"] is True
    finally:
        Lab(lab_dir).down(quiet=True)


def test_demo_faulty_canary_is_rolled_back_at_the_first_step(tmp_path: Path):
    lab_dir = tmp_path / "demo-lab"
    try:
        out = run_demo(lab_dir, DEMO_CANARY="faulty")
        assert re.findall(r"analysis \d at (\d+)%: (\w+)", out) == [("10", "fail")], out[-3000:]
        assert "Analysis of v2: rollback - analysis 1 at 10% failed" in out
        assert "Rolled back: default/reviews sends v1 100%" in out
        assert re.search(r"after\s+200 answers, 0 errors: .*v1 100\.0%", out), out[-3000:]
        seen = users(out)
        assert seen["v1"][1] == 0 and "unknown" not in seen, seen
        assert seen["v2"][1] > 0, seen
        assert re.search(r"Release report: \S+release-report-faulty\.html", out)
        print(f"\nfaulty canary: {seen['v2'][1]} of {sum(seen['v2'])} canary pages failed before the rollback; "
              f"base pages: {seen['v1'][0]} ok, 0 failed")
    finally:
        Lab(lab_dir).down(quiet=True)
