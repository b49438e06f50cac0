"""A release as AWX runs it, from a clean checkout to a promoted canary of a service that is not
Bookinfo's reviews.

The steps an administrator and AWX take: build the collection tarball, ``ansible-builder create``
with the shipped definition, the project sync (``collections/requirements.yml``) into an empty path,
then each job under ansible-runner with what AWX's bearer token credential injects (no kubeconfig
anywhere) and the answers of the workflow's survey. The service is ratings, with manifests of its own
(tests/e2e/manifests/ratings): deploy the base, release v2 at 25% and hold, then promote; the API
server's VirtualService is checked after each job. Last, the kubeconfig credential type's injection
drives a status job.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster
from tests.helpers.ansible import VENV_BIN
from tests.helpers.awx import (
    bearer_token_env,
    build_tarball,
    builder_create,
    clean_copy,
    custom_credential_env,
    install_from_requirements,
    load_credential_type,
)
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SURVEYS = REPO_ROOT / "awx" / "surveys"
RATINGS = "tests/e2e/manifests/ratings"


def survey_answers(survey_file: str, given: dict[str, Any]) -> dict[str, Any]:
    """The extra vars AWX builds from a survey: the answers, defaults for the rest, validated as AWX does."""
    answers = {}
    for question in json.loads((SURVEYS / survey_file).read_text())["spec"]:
        name = question["variable"]
        value = given.get(name, question.get("default", ""))
        if question["required"]:
            assert value not in ("", None), f"{survey_file}: {name} is required"
        if question["type"] == "integer":
            assert question["min"] <= value <= question["max"], (name, value)
        if question["type"] == "text":
            assert question.get("min", 0) <= len(value) <= question.get("max", 1024), (name, value)
        if question["type"] == "multiplechoice":
            assert value in question["choices"], (name, value)
        answers[name] = value
    unknown = set(given) - set(answers)
    assert not unknown, f"{survey_file} does not ask for {unknown}"
    return answers


class Job:
    """One AWX job: a private data dir of its own, the project checkout, injected credentials."""

    def __init__(self, root: Path, project: Path, collections: Path) -> None:
        self.root = root
        self.project = project
        self.collections = collections
        self.count = 0

    def private_data_dir(self) -> Path:
        self.count += 1
        path = self.root / f"job-{self.count}"
        (path / "inventory").mkdir(parents=True)
        (path / "inventory" / "hosts").write_text("localhost ansible_connection=local\n")
        return path

    def run(self, playbook: str, extravars: dict[str, Any], credential_env: dict[str, str],
            private_data_dir: Path) -> tuple[int, str]:
        import ansible_runner

        envvars = {"ANSIBLE_COLLECTIONS_PATH": str(self.collections), "HOME": str(self.root / "home"),
                   "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin", "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_LOCALHOST_WARNING": "false", **credential_env}
        result = ansible_runner.run(private_data_dir=str(private_data_dir), project_dir=str(self.project),
                                    playbook=playbook, extravars=extravars, envvars=envvars, quiet=True,
                                    timeout=300)
        return result.rc, result.stdout.read()


@pytest.fixture
def awx_environment(monkeypatch, tmp_path: Path):
    """Nothing of the test process's own connection or Ansible settings reaches the jobs."""
    for name in list(os.environ):
        if name.startswith(("ANSIBLE_", "K8S_AUTH_", "KUBECONFIG")):
            monkeypatch.delenv(name)
    (tmp_path / "home").mkdir()
    return tmp_path


def test_release_of_another_service_from_a_clean_checkout(lab_state, kube, awx_environment: Path):
    root = awx_environment
    project = clean_copy(root / "project")
    tarball = build_tarball(project)
    context = builder_create(project)
    assert (context / "_build" / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    collections = install_from_requirements(project, root / "requirements_collections")
    jobs = Job(root, project, collections)
    ca_cert = Path(lab_state["ca_file"]).read_text()

    def bearer_job(playbook: str, extravars: dict[str, Any]) -> str:
        private = jobs.private_data_dir()
        env = bearer_token_env(private, lab_state["server"], lab_state["tokens"]["admin"], ca_cert)
        assert set(env) == {"K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_SSL_CA_CERT", "K8S_AUTH_VERIFY_SSL"}
        rc, stdout = jobs.run(playbook, extravars, env, private)
        assert rc == 0, f"{playbook} failed:\n{stdout[-4000:]}"
        return stdout

    namespace = f"awx-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(kube, namespace)

    # Onboarding the service (job template "canary deploy base", extra variables set by the admin).
    bearer_job("playbooks/deploy_base.yml", {
        "canary_namespace": namespace,
        "base_release_manifests": [str(project / RATINGS / "ratings-v1.yaml")],
        "base_release_networking_manifests": [str(project / RATINGS / "networking.yaml")]})
    assert cluster.route_weights("ratings") == {"v1": 100}
    assert cluster.deployments() == ["ratings-v1"]

    # The workflow, launched with its survey: the canary job holds at the share asked for...
    survey = {"canary_release_service": "ratings", "canary_namespace": namespace,
              "canary_release_canary_version": "v2", "canary_manifests": f"{RATINGS}/ratings-v2.yaml",
              "canary_release_ratio": 25}
    workflow_vars = {**survey_answers("workflow.json", survey), "canary_release_decision": "hold"}
    bearer_job("playbooks/canary.yml", workflow_vars)
    assert cluster.route_weights("ratings") == {"v1": 75, "v2": 25}
    assert cluster.subsets("ratings") == ["v1", "v2"]
    assert cluster.deployments() == ["ratings-v1", "ratings-v2"]
    assert cluster.virtual_service("reviews") is None  # Bookinfo is an example, not a default

    # ...and after the approval node, the promote job (its own survey's defaults under the workflow's answers).
    promote_vars = {**survey_answers("promote.json", {k: v for k, v in survey.items()
                                                      if k not in ("canary_manifests", "canary_release_ratio")}),
                    **workflow_vars}
    bearer_job("playbooks/promote.yml", promote_vars)
    assert cluster.route_weights("ratings") == {"v2": 100}
    assert cluster.subsets("ratings") == ["v2"]
    assert cluster.deployments() == ["ratings-v2"]

    # A kubeconfig credential (awx/credential_types/kubeconfig.json) instead: AWX writes the file and
    # sets K8S_AUTH_KUBECONFIG; the status job reads the promoted release through it.
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
                  "clusters": [{"name": "prod", "cluster": {
                      "server": lab_state["server"],
                      "certificate-authority-data": base64.b64encode(ca_cert.encode()).decode()}}],
                  "users": [{"name": "deployer", "user": {"token": lab_state["tokens"]["admin"]}}],
                  "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "deployer"}}]}
    private = jobs.private_data_dir()
    env = custom_credential_env(load_credential_type("kubeconfig"), {"kubeconfig": yaml.safe_dump(kubeconfig)},
                                private)
    rc, stdout = jobs.run("playbooks/status.yml", survey_answers("status.json", {
        k: v for k, v in survey.items() if k not in ("canary_manifests", "canary_release_ratio")}), env, private)
    assert rc == 0, stdout[-4000:]
    assert "v2 100%" in stdout, stdout[-3000:]
