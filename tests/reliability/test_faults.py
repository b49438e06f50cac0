"""Faults in the middle of a canary: the run fails clearly, the cluster stays valid, a re-run finishes.

Invariant 1 of DESIGN.md is checked on what the API server holds: every route goes only to
subsets the DestinationRule defines, with integer weights 0..100 summing to 100.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.reliability.conftest import FaultLab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/reviews"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules/reviews"


def weights(vs: dict[str, Any] | None) -> dict[str, int]:
    if not vs:
        return {}
    route = vs["spec"]["http"][-1]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route}


def invariant_problems(vs: dict[str, Any], dr: dict[str, Any]) -> list[str]:
    subsets = {s["name"] for s in dr["spec"].get("subsets", [])}
    problems = []
    for route in vs["spec"].get("http", []):
        destinations = route.get("route", [])
        for d in destinations:
            if d["destination"].get("subset") not in subsets:
                problems.append(f"routes to missing subset {d['destination'].get('subset')}")
        if len(destinations) > 1:
            values = [d.get("weight", 0) for d in destinations]
            if sum(values) != 100 or any(not 0 <= v <= 100 for v in values):
                problems.append(f"weights {values}")
    return problems


CANARY = {"canary_release_steps": [10, 50], "canary_release_step_interval": 4, "canary_release_decision": "promote"}


@pytest.mark.parametrize("component,down_seconds", [("apiserver", 3), ("etcd", 8)])
def test_crash_in_the_middle_then_rerun_finishes(fault_lab: FaultLab, base_namespace: str, component: str,
                                                down_seconds: float, capsys):
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
    assert invariant_problems(vs, dr) == []
    # Re-running the same playbook finishes the job.
    rc, out, _ = fault_lab.run("canary.yml", extra)
    assert rc == 0, out[-4000:]
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v2": 100}
    assert [s["name"] for s in fault_lab.get(DR.format(ns=ns))["spec"]["subsets"]] == ["v2"]


def test_two_runs_at_once_one_wins_the_other_stops_clearly(fault_lab: FaultLab, base_namespace: str):
    ns = base_namespace
    first = fault_lab.start_playbook("canary.yml", {"canary_namespace": ns, **CANARY,
                                                    "canary_release_lock_holder": "alice"})
    fault_lab.wait_for(lambda: weights(fault_lab.get(VS.format(ns=ns))).get("v2") == 10, 120, "the 10% step")
    rc, out, _ = fault_lab.run("set_ratio.yml", {"canary_namespace": ns, "canary_release_ratio": 90,
                                                 "canary_release_lock_holder": "bob"})
    assert rc != 0
    assert "another canary run holds the lock" in out and "'alice'" in out, out[-3000:]
    rc, out, _ = fault_lab.finish(first)
    assert rc == 0, out[-4000:]
    # Nothing of the first run was lost to the second: it promoted as asked.
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v2": 100}
    leases = fault_lab.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")["items"]
    assert leases == []


def test_secrets_never_appear_in_output_at_any_verbosity(fault_lab: FaultLab, base_namespace: str):
    tokens = list(fault_lab.state["tokens"].values())
    rc, out, results = fault_lab.run("canary.yml", {"canary_namespace": base_namespace, "canary_release_ratio": 20,
                                                    "canary_release_decision": "hold"}, verbosity="-vvvv")
    assert rc == 0, out[-3000:]
    text = out + repr(results)
    assert not any(token in text for token in tokens)
    vs = fault_lab.get(VS.format(ns=base_namespace))
    assert not any(token in repr(vs) for token in tokens)
