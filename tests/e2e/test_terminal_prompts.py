"""canary.yml at a real terminal (a pseudo-terminal driven by pexpect), and without one."""

from __future__ import annotations

import time

import pexpect
import pytest

from tests.e2e.conftest import PLAYBOOKS, Cluster
from tests.helpers.ansible import BOOKINFO_VARS, VENV_BIN, ansible_env, run_playbook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_prompts_reask_on_invalid_ratio_then_promote(lab_state, kube, bookinfo_namespace):
    ns = {"canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": bookinfo_namespace}
    deployed = run_playbook(PLAYBOOKS / "deploy_base.yml", vars_file=BOOKINFO_VARS, extra_vars=ns)
    assert deployed.returncode == 0, deployed.stdout[-3000:]

    env = ansible_env()
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    child = pexpect.spawn(str(VENV_BIN / "ansible-playbook"),
                          ["playbooks/canary.yml", "-e", f"@{BOOKINFO_VARS}",
                           "-e", f"canary_kubeconfig={ns['canary_kubeconfig']}",
                           "-e", f"canary_namespace={bookinfo_namespace}"],
                          cwd=str(PLAYBOOKS.parent), env=env, encoding="utf-8", timeout=90)
    try:
        child.expect(r"now sends: v1 100%")
        child.expect(r"Share of traffic for the canary v2.*\(attempt 1 of 3\):")
        child.sendline("abc")
        child.expect(r"'abc' is not a whole number from 0 to 100 \(2 attempt\(s\) left\)")
        child.expect(r"\(attempt 2 of 3\):")
        child.sendline("30")
        child.expect(r"sends v1 70%, v2 30%")
        child.expect(r"now sends: v1 70%, v2 30%")
        child.expect(r"Promote the canary v2, roll back to v1, or hold the split\?.*\(attempt 1 of 3\):")
        child.sendline("promote")
        child.expect(r"v2 is promoted")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before[-3000:]
    cluster = Cluster(kube, bookinfo_namespace)
    assert cluster.route_weights() == {"v2": 100}
    assert cluster.subsets() == ["v2"]
    assert "reviews-v1" not in cluster.deployments()


def test_no_terminal_no_variables_fails_within_seconds(lab_state, kube, bookinfo_namespace):
    ns = {"canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": bookinfo_namespace}
    assert run_playbook(PLAYBOOKS / "deploy_base.yml", vars_file=BOOKINFO_VARS, extra_vars=ns).returncode == 0
    started = time.monotonic()
    # stdin is /dev/null: what cron, CI and `ansible-playbook ... < /dev/null` give.
    result = run_playbook(PLAYBOOKS / "canary.yml", vars_file=BOOKINFO_VARS, extra_vars=ns, json_output=False,
                          timeout=60)
    elapsed = time.monotonic() - started
    flat = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert elapsed < 20, elapsed
    assert "no terminal to ask on" in flat
    assert "-e canary_release_ratio=<0..100> -e canary_release_decision=<promote|rollback|hold>" in flat
    assert "Not waiting for response to prompt" not in result.stdout + result.stderr  # never reached a pause
    assert Cluster(kube, bookinfo_namespace).route_weights() == {"v1": 100}


def test_playbooks_run_by_fqcn(lab_state, kube, bookinfo_namespace):
    ns = {"canary_kubeconfig": lab_state["kubeconfig"], "canary_namespace": bookinfo_namespace}
    assert run_playbook("canary.istio.deploy_base", vars_file=BOOKINFO_VARS, extra_vars=ns,
                        cwd=PLAYBOOKS.parent.parent).returncode == 0
    result = run_playbook("canary.istio.canary", vars_file=BOOKINFO_VARS,
                          extra_vars={**ns, "canary_release_ratio": 20, "canary_release_decision": "hold"},
                          cwd=PLAYBOOKS.parent.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    status = run_playbook("canary.istio.status", vars_file=BOOKINFO_VARS, extra_vars=ns, json_output=False,
                          cwd=PLAYBOOKS.parent.parent)
    assert "v1 80%, v2 20%" in status.stdout
