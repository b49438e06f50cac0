"""`make demo` as a new user runs it: base, then a progressive canary judged by Prometheus.

The default run promotes a healthy v2 through 10 -> 25 -> 50 %, each step passing once its looks
have seen enough requests;
``DEMO_CANARY=faulty`` deploys a v2 that answers 20 % of its requests with 503, and the role rolls
back on its own at the first step; ``DEMO_CANARY=crashing`` deploys a v2 that refuses every
connection (503s that only the callers' proxies report), rolled back the same way;
``DEMO_CANARY=slow`` deploys a v2 500 ms slower, rolled back by the latency check. The three rollback
runs go side by side, each on its own lab: most of a run is waiting for windows of traffic. In all,
users routed to the base see no failure (the demo's load generator sorts every page by the reviews
version that served or failed it).
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


def start_demo(lab_dir: Path, **env_extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LAB_DIR": str(lab_dir), **env_extra}
    env.pop("DEMO_INTERACTIVE", None)
    return subprocess.Popen([sys.executable, "-m", "lab.demo"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def finish_demo(proc: subprocess.Popen[str]) -> str:
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout[-5000:] + stderr[-2000:]
    return stdout


def run_demo(lab_dir: Path, **env_extra: str) -> str:
    return finish_demo(start_demo(lab_dir, **env_extra))


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
        # Each step is looked at until the evidence shows a pass: looks before it are inconclusive, none fails.
        verdicts = re.findall(r"analysis \d+ at (\d+)%: (\w+)", out)
        assert [step for step, verdict in verdicts if verdict == "pass"] == ["10", "25", "50"], out[-3000:]
        assert {verdict for _step, verdict in verdicts} <= {"inconclusive", "pass"}, out[-3000:]
        steps = [step for step, _verdict in verdicts]
        assert steps == sorted(steps, key=int), out[-3000:]
        assert "Analysis of v2: promote - every step passed its analysis (10%, 25%, 50%)" in out
        rate = float(re.search(r"load\s+([\d.]+) pages/s through the gateway", out).group(1))
        seen = users(out)
        assert rate >= 0.8 * demo.DEFAULT_RATE, rate
        assert seen["v1"][1] == 0 and seen["v2"][1] == 0 and "unknown" not in seen, seen
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


def test_demo_faulty_crashing_and_slow_canaries_are_rolled_back_by_the_analysis_at_the_first_step(tmp_path: Path):
    labs = {kind: tmp_path / f"demo-lab-{kind}" for kind in ("faulty", "crashing", "slow")}
    try:
        running = {kind: start_demo(lab_dir, DEMO_CANARY=kind) for kind, lab_dir in labs.items()}
        outputs = {kind: finish_demo(proc) for kind, proc in running.items()}
        for kind, out in outputs.items():
            # At 10 %: looks that were only short of evidence (a loaded machine), then the failing one.
            verdicts = re.findall(r"analysis \d+ at (\d+)%: (\w+)", out)
            assert verdicts and verdicts[-1] == ("10", "fail"), (kind, out[-3000:])
            assert set(verdicts[:-1]) <= {("10", "inconclusive")}, (kind, out[-3000:])
            assert re.search(r"Analysis of v2: rollback - analysis \d+ at 10% failed", out), (kind, out[-3000:])
            assert re.search(r"Rolled back: default/reviews sends v1 100%.* rolled back by the analysis", out), (
                kind, out[-3000:])
            assert re.search(r"after\s+200 answers, 0 errors: .*v1 100\.0%", out), (kind, out[-3000:])
            assert re.search(rf"Release report: \S+release-report-{kind}\.html", out), kind
        # The slow canary answers every request, 500 ms late: the latency check fails it, not the errors.
        assert re.search(r"analysis \d+ at 10%: fail - canary v2 failed: request-duration$", outputs["slow"], re.M), (
            outputs["slow"][-3000:])
        slow = users(outputs["slow"])
        assert slow["v1"][1] == 0 and slow["v2"] == (slow["v2"][0], 0) and slow["v2"][0] > 0, slow
        faulty, crashing = users(outputs["faulty"]), users(outputs["crashing"])
        # The faulty v2 answers (pages come from it); users on v1 see no failure. Istio's productpage calls reviews
        # again after a failure, so few of v2's errors reach a page: the analysis' fail above judged them.
        assert faulty["v1"][1] == 0 and "unknown" not in faulty and faulty["v2"][0] > 0, faulty
        # The crashing v2 never answers: no page comes from it, and its failures cannot name a version.
        assert crashing["v1"][1] == 0 and crashing.get("v2", (0, 0)) == (0, 0), crashing
        assert crashing["unknown"] == (0, crashing["unknown"][1]) and crashing["unknown"][1] > 0, crashing
        print(f"\nfaulty canary: {faulty['v2'][1]} of {sum(faulty['v2'])} canary pages failed before the rollback; "
              f"crashing canary: {crashing['unknown'][1]} pages failed before the rollback; "
              f"base pages: {faulty['v1'][0]} and {crashing['v1'][0]} ok, 0 failed")
    finally:
        for lab_dir in labs.values():
            Lab(lab_dir).down(quiet=True)
