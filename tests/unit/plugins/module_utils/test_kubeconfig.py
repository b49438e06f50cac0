"""Kubeconfig resolution: what a user is told when a kubeconfig cannot be used, and how options
and files combine. (Agreement with the kubernetes package is in test_kubeconfig_parity.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from ansible_collections.canary.istio.plugins.module_utils._kubeconfig import (
    KubeConfigError,
    bypasses_proxy,
    env_proxies,
    resolve,
)

pytestmark = pytest.mark.unit


def write(path: Path, current: str | None = "main", **user) -> Path:
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "c", "cluster": {"server": "https://k.test:6443"}}],
              "users": [{"name": "u", "user": user or {"token": "t"}}],
              "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}]}
    if current:
        config["current-context"] = current
    path.write_text(json.dumps(config))
    return path


def test_a_context_that_is_not_there_is_named_with_the_files(tmp_path):
    path = write(tmp_path / "a")
    with pytest.raises(KubeConfigError, match=rf"kubeconfig '{path}' has no context named 'prod'"):
        resolve({"kubeconfig": str(path), "context": "prod"}, environ={})


def test_no_current_context_asks_for_one(tmp_path):
    path = write(tmp_path / "a", current=None)
    with pytest.raises(KubeConfigError, match="has no current-context; pass context"):
        resolve({"kubeconfig": str(path)}, environ={})


def test_nothing_found_lists_where_it_looked(tmp_path):
    environ = {"KUBECONFIG": f"{tmp_path / 'x'}{os.pathsep}{tmp_path / 'y'}"}
    with pytest.raises(KubeConfigError, match=r"no kubeconfig found \(looked at .*/x, .*/y\)"):
        resolve({}, environ=environ, home=str(tmp_path), service_account_dir=str(tmp_path / "no-sa"))
    with pytest.raises(KubeConfigError, match=r"kubeconfig '.*/missing' does not exist"):
        resolve({"kubeconfig": str(tmp_path / "missing")}, environ={})


def test_the_default_file_is_in_the_home_directory(tmp_path):
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube" / "config")
    settings = resolve({}, environ={}, home=str(tmp_path))
    assert (settings.server, settings.token, settings.namespace) == ("https://k.test:6443", "t", "ns")


def test_an_empty_file_in_a_list_is_skipped_as_kubectl_does(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    good = write(tmp_path / "good")
    files = f"{empty}{os.pathsep}{good}"
    assert resolve({}, environ={"KUBECONFIG": files}).token == "t"
    # On record: the kubernetes package refuses the whole list instead.
    with pytest.raises(ConfigException, match="empty"):
        kube_config.load_kube_config(config_file=files, persist_config=False)


def test_options_override_the_kubeconfig(tmp_path):
    path = write(tmp_path / "a")
    settings = resolve({"kubeconfig": str(path), "host": "https://other:443", "api_key": "explicit",
                        "validate_certs": False}, environ={})
    assert (settings.server, settings.token, settings.verify, settings.namespace) == \
        ("https://other:443", "explicit", False, "ns")


def test_an_api_key_replaces_an_exec_plugin(tmp_path):
    path = write(tmp_path / "a", exec={"command": "/bin/false", "apiVersion": "client.authentication.k8s.io/v1"})
    assert resolve({"kubeconfig": str(path)}, environ={}).credential_plugin == "an exec plugin"
    settings = resolve({"kubeconfig": str(path), "api_key": "tok"}, environ={})
    assert settings.credential_plugin is None and settings.token == "tok"


def test_in_cluster_needs_the_service_host_and_token(tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    settings = resolve({}, environ=environ, home=str(tmp_path), service_account_dir=str(sa))
    assert (settings.server, settings.token, settings.namespace) == ("https://10.0.0.1:443", "sa-token", "default")
    # A kubeconfig file, when there is one, wins over the pod's service account (kubectl).
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube" / "config")
    assert resolve({}, environ=environ, home=str(tmp_path), service_account_dir=str(sa)).token == "t"


@pytest.mark.parametrize(("server", "no_proxy", "bypassed"), [
    ("https://api.example.test:6443", "example.test", True),
    ("https://api.example.test:6443", ".example.test", True),
    ("https://api.example.test:6443", "api.example.test:6443", True),
    ("https://api.example.test:6443", "xample.test", False),
    ("https://10.1.2.3:6443", "10.0.0.0/8", True),
    ("https://10.1.2.3:6443", "192.168.0.0/16,10.1.2.3", True),
    ("https://[fd00::1]:6443", "fd00::/8", True),
    ("https://api.example.test:6443", "*", True),
    ("https://api.example.test:6443", "", False),
])
def test_no_proxy_rules(server, no_proxy, bypassed):
    from kubernetes.client.rest import should_bypass_proxies
    assert bypasses_proxy(server, no_proxy) is bypassed
    assert should_bypass_proxies(server, no_proxy) is bypassed  # the package's own rule agrees


def test_lower_case_proxy_variables_win_and_empty_ones_unset():
    assert env_proxies({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}) == \
        {"https": "http://lower:1"}
    assert env_proxies({"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}) == {}


def test_an_exec_plugin_behind_a_socks_proxy_needs_both_from_the_kubernetes_package(tmp_path):
    path = write(tmp_path / "a", exec={"command": "/bin/false", "apiVersion": "client.authentication.k8s.io/v1"})
    settings = resolve({"kubeconfig": str(path), "proxy": "socks5://127.0.0.1:1080"}, environ={})
    assert (settings.credential_plugin, settings.proxy_transport) == ("an exec plugin", "a socks5 proxy")


def test_the_kubeconfig_option_may_list_files(tmp_path):
    first = tmp_path / "first"
    first.write_text(json.dumps({"current-context": "main", "contexts": [
        {"name": "main", "context": {"cluster": "c", "user": "u", "namespace": "from-first"}}]}))
    second = write(tmp_path / "second")
    for option in ([str(first), str(second)], f"{first}{os.pathsep}{second}"):
        settings = resolve({"kubeconfig": option}, environ={})
        assert (settings.server, settings.token, settings.namespace) == ("https://k.test:6443", "t", "from-first")
