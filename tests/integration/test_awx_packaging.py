"""What AWX gets from this repository: the tarball, the execution environment, the project sync.

Everything starts from a clean copy of the checkout; nothing here needs the lab or a container
runtime (``ansible-builder build`` would; ``create`` writes the same build context).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers.awx import (
    OFFLINE_ENV,
    build_tarball,
    builder_create,
    clean_copy,
    custom_credential_env,
    galaxy_version,
    install_from_requirements,
    load_credential_type,
)

pytestmark = pytest.mark.slow

# What a user of the collection never needs; a tarball holding any of it fails.
NOT_FOR_USERS = ("tests/", "lab/", "bench/", "tools/", ".venv", "build/", "extensions/molecule/", "ee/", "collections/",
                 "changelogs/fragments/", ".git", ".ci/", ".lab/", "Makefile", "requirements-dev.txt", "pytest.ini",
                 "ruff.toml", ".ansible-lint", ".ansible-lint-ignore", "changelogs/.plugin-cache.yaml")
FOR_USERS = ("plugins/modules/traffic_split.py", "meta/runtime.yml", "meta/execution-environment.yml",
             "meta/ee-requirements.txt", "bindep.txt", "roles/canary_release/meta/argument_specs.yml",
             "playbooks/canary.yml", "playbooks/tasks/inputs.yml", "playbooks/vars/bookinfo.yml",
             "bookinfo/platform/kube/bookinfo-reviews-v1.yaml", "awx/surveys/workflow.json",
             "awx/credential_types/kubeconfig.json", "awx/credential_types/prometheus.json", "awx/surveys/waves.json",
             "docs/awx.md", "docs/awx.zh-CN.md", "CHANGELOG.rst",
             "changelogs/changelog.yaml", "README.md", "COPYING")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("awx") / "project")


@pytest.fixture(scope="module")
def tarball(project: Path) -> Path:
    return build_tarball(project)


def test_tarball_carries_only_what_users_need(tarball: Path):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    for wanted in FOR_USERS:
        assert wanted in names, f"{wanted} is missing from {tarball.name}"
    for unwanted in NOT_FOR_USERS:
        found = [n for n in names if n == unwanted.rstrip("/") or n.startswith(unwanted)]
        assert not found, f"{tarball.name} carries {found[:5]}"
    assert not [n for n in names if n.endswith((".pyc", "__pycache__")) or re.match(r"bookinfo/[^/]+\.py$", n)]
    info = manifest["collection_info"]
    urls = [info.get(key) for key in ("repository", "documentation", "homepage", "issues")]
    assert not [u for u in urls if u and ("example" in u or "invalid" in u)], urls
    # Where there is no public URL, documentation names a file the tarball carries.
    assert info["documentation"] in names or info["documentation"].startswith("https://"), info["documentation"]


def test_execution_environment_context(project: Path, tarball: Path, tmp_path: Path):
    context = builder_create(project)
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    [collection] = requirements["collections"]
    assert collection["type"] == "file"
    # The galaxy stage runs in /build, where the context's _build lands.
    copied = context / "_build" / collection["name"]
    assert copied.is_file(), f"{collection['name']} is not in the build context"
    assert copied.read_bytes() == tarball.read_bytes()
    assert copied.name == f"canary-istio-{galaxy_version(project)}.tar.gz"
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert re.search(r'ANSIBLE_INSTALL_REFS="ansible-core[^"]* ansible-runner', containerfile), containerfile[:800]

    # At build time ansible-builder reads meta/execution-environment.yml of each installed collection:
    # run its own introspection script over the tarball installed as the galaxy stage would.
    installed = tmp_path / "collections"
    subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "install", "--offline",
                    "-p", str(installed), str(copied)], check=True, capture_output=True, env=OFFLINE_ENV | {
                        "PATH": str(Path(sys.executable).parent)})
    found = yaml.safe_load(subprocess.run([sys.executable, str(context / "_build" / "scripts" / "introspect.py"),
                                           "introspect", str(installed)], check=True, capture_output=True,
                                          text=True).stdout)
    python = [line.split("#")[0].strip() for line in found["python"]]
    assert any(p.startswith("kubernetes") for p in python), python
    assert not [p for p in python if re.match(r"(?i)(ansible|ansible-core|jinja2|pyyaml)\b", p)], python
    assert any(s.startswith("ca-certificates") for s in found["system"]), found["system"]


def test_project_sync_installs_the_collection_offline(project: Path, tmp_path: Path):
    collections = install_from_requirements(project, tmp_path / "requirements_collections")
    installed = collections / "ansible_collections" / "canary" / "istio"
    manifest = json.loads((installed / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == galaxy_version(project)
    assert (installed / "plugins" / "modules" / "traffic_split.py").is_file()
    assert not (installed / "tests").exists() and not (installed / "lab").exists()
    # A stage playbook of the project resolves the collection's roles, modules and action group there.
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", "-i",
                           "localhost,", "playbooks/canary.yml"], cwd=project, capture_output=True, text=True,
                          check=False, env=OFFLINE_ENV | {
                              "PATH": str(Path(sys.executable).parent),
                              "ANSIBLE_COLLECTIONS_PATH": str(collections), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kubeconfig_credential_type_injects_a_file_and_its_path(tmp_path: Path):
    credential_type = load_credential_type("kubeconfig")
    assert credential_type["kind"] == "cloud"
    ids = {field["id"] for field in credential_type["inputs"]["fields"]}
    assert credential_type["inputs"]["required"] == ["kubeconfig"] and {"kubeconfig", "context"} <= ids
    secret = next(f for f in credential_type["inputs"]["fields"] if f["id"] == "kubeconfig")
    assert secret["secret"] is True and secret["multiline"] is True
    content = "apiVersion: v1\nkind: Config\ncurrent-context: prod\n"
    env = custom_credential_env(credential_type, {"kubeconfig": content}, tmp_path)
    assert Path(env["K8S_AUTH_KUBECONFIG"]).read_text() == content
    assert Path(env["K8S_AUTH_KUBECONFIG"]).stat().st_mode & 0o077 == 0
    assert env["K8S_AUTH_CONTEXT"] == ""  # empty: the kubeconfig's current-context
    env = custom_credential_env(credential_type, {"kubeconfig": content, "context": "staging"}, tmp_path)
    assert env["K8S_AUTH_CONTEXT"] == "staging"
