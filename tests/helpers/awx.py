"""What an AWX administrator does with this repository, step by step, without AWX.

A clean copy of the checkout (what a project sync or a CI job gets), the collection tarball built
from it, the execution environment's build context (``ansible-builder create``), the project sync's
``ansible-galaxy collection install -r collections/requirements.yml``, and the environment AWX's
credentials inject into a job. The injectors follow AWX's own code (awx/main/models/credential/
injectors.py ``kubernetes_bearer_token`` and the custom credential type rendering in
``CredentialType.inject_credential``), not ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from tests.helpers.ansible import VENV_BIN
from tests.helpers.collection import REPO_ROOT

# Offline: a Galaxy server that cannot answer, so any attempt to reach one fails the install.
OFFLINE_ENV = {"ANSIBLE_GALAXY_SERVER": "http://127.0.0.1:9/", "ANSIBLE_NOCOLOR": "1"}


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_", "KUBECONFIG"))}
    proc = subprocess.run(command, cwd=cwd, env={**clean, **OFFLINE_ENV, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (f"{' '.join(command)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def clean_copy(dest: Path) -> Path:
    """The checkout's files as a commit would hold them (tracked, plus new files git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    dest.mkdir(parents=True)
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if name.startswith(".venv") or not source.is_file():  # .venv is a symlink in worktrees
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return dest


def galaxy_version(project: Path) -> str:
    return yaml.safe_load((project / "galaxy.yml").read_text())["version"]


def build_tarball(project: Path) -> Path:
    """``ansible-galaxy collection build`` into build/ee, where ee/execution-environment.yml takes it."""
    out = project / "build" / "ee"
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), "."], project)
    return out / f"canary-istio-{galaxy_version(project)}.tar.gz"


def builder_create(project: Path) -> Path:
    """``ansible-builder create`` with the shipped definition, as docs/awx.md says (from the project's root)."""
    context = project / "build" / "ee" / "context"
    _run([str(VENV_BIN / "ansible-builder"), "create", "-f", "ee/execution-environment.yml", "-c", str(context)],
         project)
    return context


def install_from_requirements(project: Path, dest: Path) -> Path:
    """The project sync: ``ansible-galaxy collection install -r collections/requirements.yml`` in the
    project's root, offline, into an empty path. Returns the collections path for ANSIBLE_COLLECTIONS_PATH."""
    dest.mkdir(parents=True, exist_ok=False)
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "-r",
          "collections/requirements.yml", "-p", str(dest)], project)
    return dest


def bearer_token_env(private_data_dir: Path, host: str, token: str, ca_cert: str | None,
                     verify_ssl: bool = True) -> dict[str, str]:
    """What AWX's "OpenShift or Kubernetes API Bearer Token" credential injects into a job."""
    env = {"K8S_AUTH_HOST": host, "K8S_AUTH_API_KEY": token}
    if verify_ssl and ca_cert:
        env["K8S_AUTH_VERIFY_SSL"] = "True"
        (private_data_dir / "env").mkdir(parents=True, exist_ok=True)
        handle, path = tempfile.mkstemp(dir=private_data_dir / "env")
        with os.fdopen(handle, "w") as file:
            file.write(ca_cert)
        env["K8S_AUTH_SSL_CA_CERT"] = path
    else:
        env["K8S_AUTH_VERIFY_SSL"] = "False"
    return env


def custom_credential_env(credential_type: dict[str, Any], inputs: dict[str, Any],
                          private_data_dir: Path) -> dict[str, str]:
    """What AWX injects for a credential of a custom type: file templates rendered into private files
    (``tower.filename.<name>`` for ``template.<name>``), then the env templates, in Jinja's sandbox."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    sandbox = ImmutableSandboxedEnvironment()
    namespace: dict[str, Any] = {k: v for k, v in inputs.items() if v not in ("", None)}
    for field in credential_type["inputs"]["fields"]:
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    files: dict[str, str] = {}
    single = None
    (private_data_dir / "env").mkdir(parents=True, exist_ok=True)
    for label, template in credential_type["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=private_data_dir / "env")
        with os.fdopen(handle, "w") as file:
            file.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, 0o600)
        if "." in label:
            files[label.split(".", 1)[1]] = path
        else:
            single = path
    tower = SimpleNamespace(filename=single or SimpleNamespace(**files))
    namespace["tower"] = namespace["awx"] = tower
    return {name: sandbox.from_string(template).render(**namespace)
            for name, template in credential_type["injectors"].get("env", {}).items()}


def load_credential_type(name: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / "awx" / "credential_types" / f"{name}.json").read_text())


def survey_extra_vars(survey: dict[str, Any], answers: dict[str, Any],
                      template_extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    """The extra vars of a job launched from a template with this survey, as AWX builds them
    (awx/main/models/mixins.py, ``SurveyJobTemplateMixin._update_unified_job_kwargs``): the template's
    extra vars, then every question's default that is not None and passes the question's own validation
    (an optional text question's ``""`` does, with ``min: 0``), then the answers given at launch."""
    extra_vars = dict(template_extra_vars or {})
    for question in survey["spec"]:
        default = question.get("default")
        if default is None:
            continue
        if question["type"] in ("text", "textarea", "password"):
            if not isinstance(default, str):
                continue
            if question.get("min") not in ("", None) and len(default) < int(question["min"]):
                continue
            if question.get("max") not in ("", None) and len(default) > int(question["max"]):
                continue
        extra_vars[question["variable"]] = default
    extra_vars.update(answers)
    return extra_vars
