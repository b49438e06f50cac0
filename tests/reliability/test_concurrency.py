"""Two canary runs on one service at once: one wins, the other stops with a clear message."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import FaultLab
from tests.reliability.test_faults import CANARY, VS, weights

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_runs_at_once_one_wins_the_other_stops_clearly(fault_lab: FaultLab, base_namespace: str):
    ns = base_namespace
    first = fault_lab.start_playbook("canary.yml", {"canary_namespace": ns, **CANARY,
                                                    "canary_release_lock_holder": "alice"})
    fault_lab.wait_for(lambda: weights(fault_lab.get(VS.format(ns=ns))).get("v2") == 10, 120, "the 10% step")
    second = {"canary_namespace": ns, "canary_release_ratio": 90, "canary_release_lock_holder": "bob"}
    rc, out, _results = fault_lab.run("set_ratio.yml", second)
    assert rc != 0
    assert "another canary run holds the lock" in out and "'alice'" in out, out[-3000:]
    rc, out, _results = fault_lab.finish(first)
    assert rc == 0, out[-4000:]
    # Nothing of the first run was lost to the second: it promoted as asked.
    assert weights(fault_lab.get(VS.format(ns=ns))) == {"v2": 100}
    leases = fault_lab.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")["items"]
    assert leases == []
