"""The collection as users get it: ansible-doc, galaxy build/install, FQCN, module_defaults, auth options."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers.ansible import VENV_BIN, ansible_env, lab_auth, run_module, run_playbook, task_results
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.lab

MODULES = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (REPO_ROOT / "plugins" / "filter").glob("*.py"))


def ansible_doc(kind: str, names: list[str], *options: str) -> str:
    """One ansible-doc naming every plugin of ``kind`` (it renders each one named); its stdout."""
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", kind, *options,
                           *(f"canary.istio.{name}" for name in names)],
                          capture_output=True, text=True, env=ansible_env(), check=False)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr and "[WARNING]" not in proc.stderr, proc.stderr
    return proc.stdout


def test_ansible_doc_renders_every_module_and_filter():
    assert {"virtual_service", "destination_rule", "traffic_split", "manifest", "canary_info"} <= set(MODULES)
    docs = json.loads(ansible_doc("module", MODULES, "--json"))
    for name in MODULES:
        doc = docs[f"canary.istio.{name}"]
        assert doc["doc"]["short_description"] and doc["examples"] and doc["return"], name
        assert f"canary.istio.{name}" in doc["examples"]
    docs = json.loads(ansible_doc("filter", FILTERS, "--json"))
    for name in FILTERS:
        assert docs[f"canary.istio.{name}"]["doc"]["short_description"], name
    # And as a person reads them: the text a terminal shows.
    for kind, names in (("module", MODULES), ("filter", FILTERS)):
        text = ansible_doc(kind, names)
        for name in names:
            assert f"canary.istio.{name}" in text, (kind, name)


def test_every_kubernetes_module_joins_the_action_group():
    import yaml
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())
    group = set(runtime["action_groups"]["istio"])
    assert group == set(MODULES) - {"traffic_probe"}


@pytest.mark.slow
def test_built_collection_installs_and_its_modules_run(lab_state, namespace, tmp_path: Path):
    env = ansible_env()
    dist = tmp_path / "dist"
    build = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist),
                            str(REPO_ROOT)], capture_output=True, text=True, env=env, check=False)
    assert build.returncode == 0, build.stderr
    tarball = next(dist.glob("canary-istio-*.tar.gz"))
    names = tarfile.open(tarball).getnames()
    assert "plugins/modules/traffic_split.py" in names and "meta/runtime.yml" in names
    # What a built collection must not carry.
    for unwanted in ("lab/", ".venv/", "build/", "tests/lab/", "bookinfo/productpage.py", ".lab/"):
        assert not any(n.startswith(unwanted) or n == unwanted.rstrip("/") for n in names), unwanted
    assert "bookinfo/platform/kube/bookinfo-reviews-v1.yaml" in names
    installed = tmp_path / "collections"
    install = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-p", str(installed),
                              str(tarball)], capture_output=True, text=True, env=env, check=False)
    assert install.returncode == 0, install.stderr
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "create", "canary.istio.virtual_service": {
            "name": "from-tarball", "namespace": namespace,
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}}]}]
    proc = run_playbook(playbook, lab_state, env={"ANSIBLE_COLLECTIONS_PATH": str(installed)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert task_results(proc)[0]["changed"] is True


def test_module_defaults_group_sets_the_connection_once(lab_state, namespace):
    playbook = [{"hosts": "localhost", "gather_facts": False,
                 "module_defaults": {"group/canary.istio.istio": {"kubeconfig": lab_state["kubeconfig"],
                                                                  "context": "lab", "namespace": namespace}},
                 "tasks": [
                     {"name": "vs", "canary.istio.virtual_service": {"name": "reviews", "spec": {
                         "hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}},
                     {"name": "info", "canary.istio.virtual_service_info": {"name": "reviews"}}]}]
    proc = run_playbook(playbook, None, env={"K8S_AUTH_KUBECONFIG": "/nonexistent"})
    results = task_results(proc)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert results[1]["resources"][0]["metadata"]["namespace"] == namespace


def test_environment_fallbacks_like_kubernetes_core(lab_state, namespace):
    env = {"K8S_AUTH_HOST": lab_state["server"], "K8S_AUTH_API_KEY": lab_state["tokens"]["viewer"],
           "K8S_AUTH_SSL_CA_CERT": lab_state["ca_file"]}
    result = run_module("virtual_service_info", {"namespace": namespace}, env=env)
    assert result.get("failed") is not True, result
    denied = run_module("virtual_service", {"name": "x", "namespace": namespace, "spec": {
        "hosts": ["x"], "http": [{"route": [{"destination": {"host": "x"}}]}]}}, env=env)
    assert denied.get("failed") is True and 'User "lab:viewer" cannot create' in denied["msg"]


def test_client_certificate_authentication(lab_state, namespace):
    result = run_module("virtual_service_info", {"kubeconfig": lab_state["kubeconfig"], "context": "lab-cert",
                                                 "namespace": namespace})
    assert result.get("failed") is not True, result
    explicit = run_module("virtual_service_info", {
        "host": lab_state["server"], "ca_cert": lab_state["ca_file"], "client_cert": lab_state["client_cert"],
        "client_key": lab_state["client_key"], "namespace": namespace})
    assert explicit.get("failed") is not True, explicit


def test_tls_is_verified_and_a_wrong_ca_says_so(lab_state, namespace, tmp_path: Path):
    other_ca = tmp_path / "ca.crt"
    other_ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    result = run_module("virtual_service_info", {**lab_auth(lab_state), "ca_cert": str(other_ca),
                                                 "namespace": namespace})
    assert result.get("failed") is True
    assert "TLS verification of https://127.0.0.1:" in result["msg"] and "ca_cert" in result["msg"]
    unverified = run_module("virtual_service_info", {**lab_auth(lab_state), "validate_certs": False,
                                                     "namespace": namespace})
    assert unverified.get("failed") is not True


def test_secrets_are_not_logged(lab_state, namespace):
    token = lab_state["tokens"]["admin"]
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "info", "canary.istio.virtual_service_info": {
            "host": lab_state["server"], "api_key": token, "ca_cert": lab_state["ca_file"],
            "namespace": namespace}},
        {"name": "fail", "canary.istio.virtual_service": {
            "host": lab_state["server"], "api_key": token, "ca_cert": lab_state["ca_file"],
            "namespace": "No_Such", "name": "x", "spec": {"hosts": ["x"], "http": [
                {"route": [{"destination": {"host": "x"}}]}]}}, "ignore_errors": True}]}]
    proc = run_playbook(playbook, None, args=["-vvvv", "--diff"])
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert token not in proc.stdout and token not in proc.stderr
    assert token not in json.dumps(proc.results)  # type: ignore[attr-defined]
    assert os.environ.get("K8S_AUTH_API_KEY") is None


def test_kubeconfig_tls_server_name_is_used_for_verification(lab_state, namespace, tmp_path: Path):
    import yaml
    config = yaml.safe_load(Path(lab_state["kubeconfig"]).read_text())
    for name, ok in (("localhost", True), ("wrong.example", False)):
        config["clusters"][0]["cluster"]["tls-server-name"] = name
        path = tmp_path / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(config))
        result = run_module("virtual_service_info", {"kubeconfig": str(path), "context": "lab", "namespace": namespace})
        if ok:
            assert not result.get("failed"), result
        else:
            assert result.get("failed") is True and "TLS verification" in result["msg"], result
