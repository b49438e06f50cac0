"""release_lock: one canary run per service at a time, recorded as a Lease in the cluster."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab


def lock(lab, namespace, holder, **extra):
    return run_module("release_lock", {**lab_auth(lab), "name": "canary-reviews", "namespace": namespace,
                                       "holder": holder, **extra})


def test_second_run_is_refused_while_the_first_holds_the_lock(lab_state, kube, namespace, audit):
    first = lock(lab_state, namespace, "job-1")
    assert first["changed"] is True and first["holder"] == "job-1"
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/canary-reviews")
    assert lease["spec"]["holderIdentity"] == "job-1"
    window = audit()
    second = lock(lab_state, namespace, "job-2")
    assert second.get("failed") is True
    assert "another canary run holds the lock" in second["msg"] and "'job-1'" in second["msg"]
    assert window.writes() == []
    again = lock(lab_state, namespace, "job-1")
    assert again["changed"] is False and not again.get("failed")
    not_mine = lock(lab_state, namespace, "job-2", state="absent")
    assert not_mine["changed"] is False and "held by 'job-1'" in not_mine["msg"]
    released = lock(lab_state, namespace, "job-1", state="absent")
    assert released["changed"] is True
    assert lock(lab_state, namespace, "job-1", state="absent")["changed"] is False
    assert lock(lab_state, namespace, "job-2")["changed"] is True


def test_abandoned_lock_is_taken_over(lab_state, namespace):
    lock(lab_state, namespace, "crashed-job", ttl=1)
    time.sleep(2.2)
    taken = lock(lab_state, namespace, "new-job")
    assert taken["changed"] is True and taken["taken_over_from"] == "crashed-job"


def test_check_mode_takes_nothing(lab_state, kube, namespace):
    checked = run_module("release_lock", {**lab_auth(lab_state), "name": "canary-reviews", "namespace": namespace,
                                          "holder": "job-1"}, check=True)
    assert checked["changed"] is True
    leases = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")["items"]
    assert leases == []


def test_exactly_one_of_many_simultaneous_runs_wins(lab_state, namespace):
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: lock(lab_state, namespace, f"job-{i}"), range(6)))
    winners = [r for r in results if not r.get("failed")]
    assert len(winners) == 1, results
    assert all("another canary run holds the lock" in r["msg"] or "kept changing" in r["msg"]
               for r in results if r.get("failed"))
