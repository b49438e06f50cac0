"""The stage playbooks describe no release of their own: what they need comes from variables, and a
missing one stops the run at its first task, with every missing name. No lab: the connection points
at a kubeconfig that does not exist, so any task that reached the cluster would fail differently."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PLAYBOOKS
from tests.helpers.ansible import BOOKINFO_VARS, run_playbook, task_results

pytestmark = pytest.mark.slow

NOWHERE = {"canary_kubeconfig": "/nonexistent/kubeconfig"}


@pytest.mark.parametrize("playbook,missing", [
    ("canary.yml", ["canary_release_service", "canary_release_canary_version",
                    "canary_manifests or canary_release_manifests"]),
    ("deploy_base.yml", ["base_release_manifests"]),
    ("status.yml", ["canary_release_service", "canary_release_canary_version"]),
])
def test_missing_variables_are_named_before_anything_else(playbook, missing):
    proc = run_playbook(PLAYBOOKS / playbook, extra_vars=NOWHERE)
    results = task_results(proc)
    assert proc.returncode != 0
    assert [r["status"] for r in results] == ["failed"], [r["task"] for r in results]
    message = results[0]["msg"]
    for name in missing:
        assert name in message, message
    assert "Nothing was changed" in message and "-e @playbooks/vars/bookinfo.yml" in message


def test_a_partial_release_names_only_what_is_missing():
    proc = run_playbook(PLAYBOOKS / "canary.yml", extra_vars={**NOWHERE, "canary_release_service": "ratings",
                                                              "canary_release_canary_version": "v2"})
    message = task_results(proc)[0]["msg"]
    assert "missing canary_manifests or canary_release_manifests (" in message
    assert "canary_release_service" not in message and "canary_release_canary_version" not in message


def test_survey_answers_become_the_roles_variables():
    proc = run_playbook(PLAYBOOKS / "canary.yml", extra_vars={
        **NOWHERE, "canary_release_service": "ratings", "canary_release_canary_version": "v2",
        "canary_namespace": "shop", "canary_manifests": " deploy/ratings/v2 , /srv/extra.yaml,"})
    facts = {}
    for result in task_results(proc):
        facts.update(result.get("ansible_facts") or {})
    project_root = PLAYBOOKS.parent
    assert facts["canary_release_manifests"] == [f"{project_root}/deploy/ratings/v2", "/srv/extra.yaml"]
    assert facts["canary_release_namespace"] == facts["base_release_namespace"] == "shop"
    # The first task that needs the cluster is what fails, after the inputs were accepted.
    assert "/nonexistent/kubeconfig" in proc.stdout


def test_the_example_vars_file_is_a_whole_release():
    proc = run_playbook(PLAYBOOKS / "canary.yml", vars_file=BOOKINFO_VARS, extra_vars=NOWHERE)
    first = task_results(proc)[0]
    assert first["status"] == "ok", first
    assert "/nonexistent/kubeconfig" in proc.stdout
