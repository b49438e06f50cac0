"""Faults in the middle of a canary: the run fails clearly, the cluster stays valid, a re-run finishes.

Invariant 1 of DESIGN.md is checked on what the API server holds: every route goes only to
subsets the DestinationRule defines, with integer weights 0..100 summing to 100.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers.invariant import invariant_problems
from tests.reliability.conftest import FaultLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/reviews"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules/reviews"


def weights(vs: dict[str, Any] | None) -> dict[str, int]:
    if not vs:
        return {}
    route = vs["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route}


CANARY = {"canary_release_steps": [10, 50], "canary_release_step_interval": 4, "canary_release_decision": "promote"}


@pytest.mark.parametrize("component,down_seconds", [("apiserver", 3), ("etcd", 8)])
def test_crash_in_the_middle_then_rerun_finishes(
        fault_lab: FaultLab, base_namespace: str, component: str, down_seconds: float, capsys):
    ns = base_namespace
    extra = {"canary_namespace": ns, **CANARY}
    run = fault_lab.start_playbook("canary.yml", extra)
    # Crash while the canary bakes at 10%.
    fault_lab.wait_for(lambda: weights(fault_lab.get(VS.format(ns=ns))).get("v2") == 10, 120, "the 10% step")
    fault_lab.lab.kill(component)
    time.sleep(down_seconds)
    fault_lab.lab.start_again(component)
    rc, out, results = fault_lab.finish(run)
    failed = [r for r in results if r["status"] == "failed"]
    messages = " ".join(str(r["result"].get("msg", "")) for r in failed)
    with capsys.disabled():
        print(f"\n[{component} down {down_seconds}s mid-canary] first run "
              f"{'failed: ' + messages[:200] if rc else 'rode it out and finished'}")
    if component == "apiserver":
        # The API server was gone while the run needed it: the run must fail, and say why.
        assert rc != 0 and failed, out[-3000:]
    if rc != 0:
        assert "API server" in messages, messages
    assert "Traceback" not in out
    # The cluster holds a valid state.
    vs = fault_lab.wait_for(lambda: fault_lab.get(VS.format(ns=ns)), 60, "the API server")
    dr = fault_lab.get(DR.format(ns=ns))
    assert invariant_problems(vs, {s["name"] for s in dr["spec"].get("subsets", [])}) == []
    # Re-running the same playbook finishes the job.
    rc, out, _results = fault_lab.run("canary.yml", extra)
    assert rc == 0, out[-4000:]
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v2": 100}
    assert [s["name"] for s in fault_lab.get(DR.format(ns=ns))["spec"]["subsets"]] == ["v2"]
