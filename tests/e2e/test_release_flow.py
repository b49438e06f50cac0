"""The tutorial's flow run the way AWX runs it: ansible-runner, no one at the terminal, extra vars.

Each test deploys Bookinfo in a namespace of its own, drives the stage playbooks and checks
what the API server holds afterwards. Every playbook is run twice; the second run must report
no change (invariant 5): deploy_base.yml in a test of its own, the base of the others is deployed once.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import PLAYBOOKS, Cluster
from tests.helpers.ansible import BOOKINFO_VARS, run_playbook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASE_DEPLOYMENTS = ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1"]


def run_twice(runner, playbook, extravars):
    first = runner(playbook, extravars)
    assert first.rc == 0, f"{playbook} failed:\n{first.stdout[-4000:]}"
    second = runner(playbook, extravars)
    assert second.rc == 0, f"{playbook} (second run) failed:\n{second.stdout[-4000:]}"
    assert second.changed == 0, f"{playbook} changed something on its second run:\n{second.stdout[-4000:]}"
    return first


def deploy_base(runner, kube, namespace: str, twice: bool = False) -> Cluster:
    ns = {"canary_namespace": namespace}
    if twice:
        run_twice(runner, "deploy_base.yml", ns)
    else:
        first = runner("deploy_base.yml", ns)
        assert first.rc == 0, f"deploy_base.yml failed:\n{first.stdout[-4000:]}"
    cluster = Cluster(kube, namespace)
    assert cluster.deployments() == BASE_DEPLOYMENTS
    assert cluster.route_weights() == {"v1": 100}
    assert cluster.subsets() == ["v1"]
    return cluster


@pytest.fixture
def base(runner, kube, bookinfo_namespace):
    """Bookinfo at v1 in a fresh namespace, deployed by deploy_base.yml (its second run is
    test_deploy_base_twice_changes_nothing_the_second_time's)."""
    return deploy_base(runner, kube, bookinfo_namespace)


def test_deploy_base_twice_changes_nothing_the_second_time(runner, kube, bookinfo_namespace):
    deploy_base(runner, kube, bookinfo_namespace, twice=True)


def test_whole_flow_promote(runner, base):
    ns = {"canary_namespace": base.namespace}
    first = run_twice(runner, "canary.yml", {**ns, "canary_release_ratio": 30, "canary_release_decision": "promote"})
    assert "v2 is promoted" in first.stdout
    assert base.route_weights() == {"v2": 100}
    assert base.subsets() == ["v2"]
    assert base.deployments() == ["details-v1", "productpage-v1", "ratings-v1", "reviews-v2"]
    assert base.recorded_state() == {"base": "v2", "canary": "v2", "weight": 100, "route": None}
    # The other services were never touched.
    assert base.route_weights("ratings") == {"v1": 100}


def test_whole_flow_rollback(runner, base):
    ns = {"canary_namespace": base.namespace}
    run_twice(runner, "canary.yml", {**ns, "canary_release_ratio": 30, "canary_release_decision": "rollback"})
    assert base.route_weights() == {"v1": 100}
    assert base.subsets() == ["v1"]
    assert base.deployments() == BASE_DEPLOYMENTS


def test_stage_playbooks_hold_set_ratio_then_promote(runner, base):
    ns = {"canary_namespace": base.namespace}
    run_twice(runner, "canary.yml", {**ns, "canary_release_ratio": 30, "canary_release_decision": "hold"})
    assert base.route_weights() == {"v1": 70, "v2": 30}
    assert base.subsets() == ["v1", "v2"]
    assert "reviews-v2" in base.deployments()

    # A later run with no ratio resumes from what the cluster records: no new step, straight to the gate.
    resumed = runner("canary.yml", {**ns, "canary_release_decision": "hold"})
    assert resumed.rc == 0 and resumed.changed == 0, resumed.stdout[-3000:]
    assert "Resuming the canary of v2" in resumed.stdout

    run_twice(runner, "set_ratio.yml", {**ns, "canary_release_ratio": 50})
    assert base.route_weights() == {"v1": 50, "v2": 50}

    status = runner("status.yml", ns)
    assert status.rc == 0 and status.changed == 0
    assert "v1 50%, v2 50%" in status.stdout and "in_progress" in status.stdout

    run_twice(runner, "promote.yml", {**ns, "canary_release_after_promote": "keep"})
    assert base.route_weights() == {"v2": 100}
    assert base.subsets() == ["v1", "v2"]  # kept, as asked
    assert "reviews-v1" in base.deployments()


def test_stage_playbooks_hold_then_rollback(runner, base):
    ns = {"canary_namespace": base.namespace}
    runner("canary.yml", {**ns, "canary_release_steps": [10, 20], "canary_release_decision": "hold"})
    assert base.route_weights() == {"v1": 80, "v2": 20}
    history = base.virtual_service()["metadata"]["annotations"]["canary.istio/history"]
    assert '"to":{"v1":90,"v2":10}' in history and '"to":{"v1":80,"v2":20}' in history

    # The reason an alert (or a person) gives is recorded once, with the rollback that changed the route.
    reason = "rolled back by alert HighErrorRate"
    run_twice(runner, "rollback.yml", {**ns, "canary_release_reason": reason})
    assert base.route_weights() == {"v1": 100}
    assert base.subsets() == ["v1"]
    assert base.deployments() == BASE_DEPLOYMENTS
    entries = json.loads(base.virtual_service()["metadata"]["annotations"]["canary.istio/history"])
    assert [entry.get("action") for entry in entries if entry.get("reason") == reason] == ["rollback"]
    assert entries[-2]["to"] == {"v1": 100} and entries[-1]["reason"] == reason


def test_awx_job_data_is_recorded_as_actor(runner, base):
    ns = {"canary_namespace": base.namespace}
    result = runner("set_ratio.yml", {**ns, "canary_release_ratio": 10})
    # Before the canary stage the subset v2 does not exist: refused, nothing moved.
    assert result.rc != 0 and "subset(s) v2" in result.stdout
    assert base.route_weights() == {"v1": 100}
    runner("canary.yml", {**ns, "canary_release_ratio": 10, "canary_release_decision": "hold",
                          "awx_user_name": "alice", "awx_job_id": 42})
    history = base.virtual_service()["metadata"]["annotations"]["canary.istio/history"]
    assert '"actor":"awx:alice (job 42)"' in history


def test_no_terminal_and_no_answers_fails_at_once(runner, base):
    ns = {"canary_namespace": base.namespace}
    result = runner("canary.yml", ns)
    assert result.rc != 0
    assert result.seconds < 30
    flat = " ".join(result.stdout.split())
    assert "canary_release_ratio and canary_release_decision are not set" in flat
    assert "-e canary_release_ratio=<0..100> -e canary_release_decision=<promote|rollback|hold>" in flat
    assert "Nothing was changed" in flat
    assert base.deployments() == BASE_DEPLOYMENTS and base.route_weights() == {"v1": 100}

    # Only the decision missing: named alone, still before any change.
    result = runner("canary.yml", {**ns, "canary_release_ratio": 30})
    flat = " ".join(result.stdout.split())
    assert result.rc != 0 and "canary_release_decision is not set" in flat
    assert base.route_weights() == {"v1": 100}


def test_invalid_answers_are_refused_before_any_change(runner, base):
    ns = {"canary_namespace": base.namespace}
    for bad in ("abc", 101, -1, "50.5"):
        result = runner("canary.yml", {**ns, "canary_release_ratio": bad, "canary_release_decision": "hold"})
        assert result.rc != 0, bad
        assert "canary_release_ratio" in result.stdout, result.stdout[-2000:]
    result = runner("canary.yml", {**ns, "canary_release_ratio": 30, "canary_release_decision": "maybe"})
    assert result.rc != 0 and "canary_release_decision" in result.stdout
    assert base.route_weights() == {"v1": 100}
    assert base.deployments() == BASE_DEPLOYMENTS


def test_failure_after_traffic_moved_returns_it_to_base(lab_state, base):
    # 'always' prompts although nobody is there. With stdin not a terminal, pause returns empty
    # answers at once, the decision gate gives up after its attempts, and the rescue puts the 30%
    # back on v1. (Under ansible-runner the same setting would wait forever: that is why 'auto'
    # never prompts there.)
    extra = {"canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": base.namespace,
             "canary_release_interactive": "always", "canary_release_prompt_attempts": 2,
             "canary_release_ratio": 30}
    result = run_playbook(PLAYBOOKS / "canary.yml", vars_file=BOOKINFO_VARS, extra_vars=extra, json_output=False,
                          timeout=120)
    flat = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "No valid answer for canary_release_decision after 2 attempt(s)" in flat, flat[-3000:]
    assert "All traffic was put back on v1" in flat
    assert base.route_weights() == {"v1": 100, "v2": 0}

    result = run_playbook(PLAYBOOKS / "canary.yml", vars_file=BOOKINFO_VARS,
                          extra_vars={**extra, "canary_release_rollback_on_failure": False},
                          json_output=False, timeout=120)
    assert result.returncode != 0
    assert "Traffic was left as it was" in " ".join(result.stdout.split())
    assert base.route_weights() == {"v1": 70, "v2": 30}
