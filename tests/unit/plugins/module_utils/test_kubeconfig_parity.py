"""Our kubeconfig resolution, judged by the ``kubernetes`` package.

Every shape in the table is resolved twice: by ``_kubeconfig.resolve`` and by the ``kubernetes``
package's own loaders (``load_kube_config`` with its ``KubeConfigMerger`` for lists,
``list_kube_config_contexts`` for the namespace, ``InClusterConfigLoader`` for pods). Expected
values are read from the package's ``Configuration``, never from our resolver.

Where the package and kubectl (client-go) disagree, the table says so in ``differs`` and we
follow one of them on purpose:

- ``current-context`` of a merged list: kubectl takes the first file that sets one, the package
  the last. We follow kubectl (it defines KUBECONFIG merging, and the files were written for it):
  the package is then asked for the context kubectl would pick, and a separate assertion keeps the
  package's own choice on record.
- Token files: the package keeps the file's trailing newline in the header; client-go trims white
  space (a newline in a header is refused by every HTTP stack). We trim.
- In-cluster namespace: the package has none. client-go's rule (``POD_NAMESPACE``, else the
  service account's ``namespace`` file, else ``default``) gives the expected value.
- Proxy credentials in ``proxy-url``: the package passes the URL to urllib3, which does not turn
  ``user:pass@`` into a ``Proxy-Authorization`` header; kubectl (Go's net/http) does. We send it;
  the expected header is what urllib3's ``make_headers(proxy_basic_auth=...)`` makes of the
  package's proxy URL, i.e. what a kubernetes.core user would have to pass as ``proxy_headers``.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

# The judge: the kubernetes package (in the project's venv; tests only, never on the module path).
from kubernetes.client import Configuration
from kubernetes.client.rest import should_bypass_proxies
from kubernetes.config import kube_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from ansible_collections.canary.istio.plugins.module_utils import _kubeconfig

pytestmark = pytest.mark.unit

CA = "-----BEGIN CERTIFICATE-----\nQ0EgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
OTHER_CA = "-----BEGIN CERTIFICATE-----\nb3RoZXIgQ0E=\n-----END CERTIFICATE-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nY2xpZW50IGNlcnQ=\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nY2xpZW50IGtleQ==\n-----END PRIVATE KEY-----\n"
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
             "NO_PROXY", "no_proxy", "KUBECONFIG", "POD_NAMESPACE")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(clusters: dict[str, dict], users: dict[str, dict], contexts: dict[str, dict],
           current: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        result["current-context"] = current
    return result


def single(cluster: dict, user: dict, namespace: str | None = "team-a") -> dict[str, Any]:
    context = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    return config({"c": cluster}, {"u": user}, {"main": context}, current="main")


SERVER = "https://api.example.test:6443"


@dataclass
class Shape:
    id: str
    # Files to write, relative to the test directory: kubeconfigs as dicts, anything else as text.
    files: dict[str, Any]
    # The kubeconfig files, in KUBECONFIG order (joined with os.pathsep).
    kubeconfig: list[str] = field(default_factory=list)
    context: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    in_cluster: bool = False
    # How the package differs from kubectl here, and which we follow (see the module docstring).
    differs: str = ""
    via_option: bool = False


SHAPES = [
    Shape("token-current-context-namespace",
          {"a.yaml": single({"server": SERVER, "certificate-authority-data": b64(CA)}, {"token": "tok-a"})},
          ["a.yaml"]),
    Shape("explicit-context-other-namespace-relative-token-file",
          {"a.yaml": config({"c": {"server": SERVER}},
                            {"u": {"token": "tok-a"}, "f": {"tokenFile": "secrets/token"}},
                            {"main": {"cluster": "c", "user": "u", "namespace": "ns-main"},
                             "other": {"cluster": "c", "user": "f", "namespace": "ns-other"}}, current="main"),
           "secrets/token": "tok-from-file"},
          ["a.yaml"], context="other", via_option=True),
    Shape("token-file-with-trailing-newline",
          {"a.yaml": single({"server": SERVER}, {"tokenFile": "token"}), "token": "tok-newline\n"},
          ["a.yaml"], differs="token-file-trim"),
    Shape("client-cert-and-key-inline-data",
          {"a.yaml": single({"server": SERVER, "certificate-authority-data": b64(CA)},
                            {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)})},
          ["a.yaml"]),
    Shape("client-cert-key-and-ca-as-relative-files",
          {"conf/a.yaml": single({"server": SERVER, "certificate-authority": "pki/ca.crt"},
                                 {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}),
           "conf/pki/ca.crt": CA, "conf/pki/client.crt": CERT, "conf/pki/client.key": KEY},
          ["conf/a.yaml"]),
    Shape("insecure-skip-tls-verify",
          {"a.yaml": single({"server": SERVER, "insecure-skip-tls-verify": True}, {"token": "tok"})},
          ["a.yaml"]),
    Shape("tls-server-name",
          {"a.yaml": single({"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(CA),
                             "tls-server-name": "kubernetes.default.svc"}, {"token": "tok"})},
          ["a.yaml"]),
    Shape("proxy-url-with-credentials",
          {"a.yaml": single({"server": SERVER, "proxy-url": "http://proxy%20user:p%40ss@proxy.test:3128"},
                            {"token": "tok"})},
          ["a.yaml"], differs="proxy-credentials"),
    Shape("basic-auth",
          {"a.yaml": single({"server": SERVER}, {"username": "admin", "password": "s3cret:x"})},
          ["a.yaml"]),
    Shape("token-and-client-cert-together",
          {"a.yaml": single({"server": SERVER}, {"token": "tok", "client-certificate-data": b64(CERT),
                                                 "client-key-data": b64(KEY)})},
          ["a.yaml"]),
    Shape("context-without-namespace-and-trailing-slash-server",
          {"a.yaml": single({"server": SERVER + "/"}, {"token": "tok"}, namespace=None)},
          ["a.yaml"]),
    Shape("merged-list-entries-split-across-directories",
          {"one/a.yaml": config({}, {}, {"main": {"cluster": "c", "user": "u", "namespace": "split"}},
                                current="main"),
           "two/b.yaml": config({"c": {"server": SERVER, "certificate-authority": "ca.crt"}},
                                {"u": {"tokenFile": "token"}}, {}),
           "two/ca.crt": CA, "two/token": "tok-two"},
          ["one/a.yaml", "two/b.yaml"]),
    Shape("merged-list-first-file-wins-a-user-whole",
          {"a.yaml": config({"c": {"server": SERVER}}, {"u": {"token": "first"}},
                            {"main": {"cluster": "c", "user": "u"}}, current="main"),
           "b.yaml": config({"c": {"server": "https://second.test"}},
                            {"u": {"token": "second", "client-certificate-data": b64(CERT),
                                   "client-key-data": b64(KEY)}}, {})},
          ["a.yaml", "b.yaml"]),
    Shape("merged-list-current-context-from-the-only-file-that-sets-it",
          {"a.yaml": config({"c": {"server": SERVER}}, {"u": {"token": "tok"}},
                            {"main": {"cluster": "c", "user": "u", "namespace": "from-a"}}),
           "b.yaml": config({}, {}, {"other": {"cluster": "c", "user": "u", "namespace": "from-b"}},
                            current="other")},
          ["a.yaml", "b.yaml"]),
    Shape("merged-list-two-current-contexts",
          {"a.yaml": config({"c": {"server": SERVER}}, {"u": {"token": "tok"}},
                            {"main": {"cluster": "c", "user": "u", "namespace": "from-a"}}, current="main"),
           "b.yaml": config({"c2": {"server": "https://second.test"}}, {"u2": {"token": "tok2"}},
                            {"other": {"cluster": "c2", "user": "u2", "namespace": "from-b"}}, current="other")},
          ["a.yaml", "b.yaml"], differs="current-context"),
    Shape("merged-list-with-a-missing-file",
          {"a.yaml": single({"server": SERVER}, {"token": "tok"})},
          ["missing.yaml", "a.yaml"]),
    Shape("https-proxy-from-environment",
          {"a.yaml": single({"server": SERVER}, {"token": "tok"})},
          ["a.yaml"], env={"HTTPS_PROXY": "http://envproxy.test:8080", "NO_PROXY": "internal.test,10.0.0.0/8"}),
    Shape("no-proxy-domain-suffix-skips-the-environment-proxy",
          {"a.yaml": single({"server": SERVER}, {"token": "tok"})},
          ["a.yaml"], env={"https_proxy": "http://envproxy.test:8080", "no_proxy": ".example.test"}),
    Shape("no-proxy-cidr-skips-the-environment-proxy",
          {"a.yaml": single({"server": "https://10.1.2.3:6443"}, {"token": "tok"})},
          ["a.yaml"], env={"HTTPS_PROXY": "http://envproxy.test:8080", "NO_PROXY": "10.0.0.0/8"}),
    Shape("in-cluster-service-account",
          {"sa/token": "sa-token", "sa/ca.crt": CA, "sa/namespace": "pods-here\n"},
          in_cluster=True, env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}),
    Shape("in-cluster-ipv6-pod-namespace-env",
          {"sa/token": "sa-token", "sa/ca.crt": CA, "sa/namespace": "from-file"},
          in_cluster=True, env={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443",
                                "POD_NAMESPACE": "from-env"}),
    Shape("in-cluster-without-namespace-file",
          {"sa/token": "sa-token", "sa/ca.crt": OTHER_CA},
          in_cluster=True, env={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}),
]


def _write(root: Path, shape: Shape) -> None:
    for name, content in shape.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content) if isinstance(content, dict) else content)


def _read(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


def _authorization(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _sep, value = header.partition(" ")
    return scheme.lower(), value


def ours(settings: _kubeconfig.Settings) -> dict[str, Any]:
    if settings.token:
        authorization = ("bearer", settings.token)
    elif settings.basic:
        authorization = ("basic", b64(f"{settings.basic[0]}:{settings.basic[1]}"))
    else:
        authorization = None
    return {
        "server": settings.server,
        "authorization": authorization,
        "cert": settings.cert_data.decode() if settings.cert_data is not None else _read(settings.cert_file),
        "key": settings.key_data.decode() if settings.key_data is not None else _read(settings.key_file),
        "verify": settings.verify,
        "ca": settings.ca_pem(),
        "tls_server_name": settings.tls_server_name,
        "proxy": settings.proxy,
        "namespace": settings.namespace,
    }


def package_proxy(configuration: Configuration) -> str | None:
    """The proxy the package's REST client would really use (its own bypass rule)."""
    if configuration.proxy and not should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
        return configuration.proxy
    return None


def package(configuration: Configuration, namespace: str) -> dict[str, Any]:
    return {
        "server": configuration.host,
        "authorization": _authorization((configuration.api_key or {}).get("BearerToken")),
        "cert": _read(configuration.cert_file),
        "key": _read(configuration.key_file),
        "verify": configuration.verify_ssl,
        "ca": _read(configuration.ssl_ca_cert),
        "tls_server_name": configuration.tls_server_name,
        "proxy": package_proxy(configuration),
        "namespace": namespace,
    }


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*PROXY_ENV, "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def resolve_both(shape: Shape, root: Path, monkeypatch) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(ours, the package's, facts about the package's own choices)."""
    _write(root, shape)
    home = root / "home"
    home.mkdir(exist_ok=True)
    for name, value in shape.env.items():
        monkeypatch.setenv(name, value)
    facts: dict[str, Any] = {}
    if shape.in_cluster:
        sa = root / "sa"
        settings = _kubeconfig.resolve({}, environ=dict(os.environ), home=str(home), service_account_dir=str(sa))
        configuration = Configuration()
        InClusterConfigLoader(token_filename=str(sa / "token"), cert_filename=str(sa / "ca.crt"),
                              environ=dict(os.environ)).load_and_set(configuration)
        # client-go's in-cluster namespace rule (the package has none).
        namespace_file = sa / "namespace"
        namespace = (os.environ.get("POD_NAMESPACE")
                     or (namespace_file.read_text().strip() if namespace_file.exists() else "")
                     or "default")
        return ours(settings), package(configuration, namespace), facts
    files = os.pathsep.join(str(root / name) for name in shape.kubeconfig)
    params: dict[str, Any] = {"context": shape.context}
    environ = dict(os.environ)
    if shape.via_option:
        params["kubeconfig"] = files
    else:
        environ["KUBECONFIG"] = files
    settings = _kubeconfig.resolve(params, environ=environ, home=str(home))
    contexts, current = kube_config.list_kube_config_contexts(config_file=files)
    facts["package_current_context"] = current["name"]
    context_name = shape.context or current["name"]
    if shape.differs == "current-context":
        # kubectl: the first file that sets current-context wins; ask the package for that context.
        first = yaml.safe_load((root / shape.kubeconfig[0]).read_text())
        context_name = shape.context or first["current-context"]
    configuration = Configuration()
    kube_config.load_kube_config(config_file=files, context=context_name, client_configuration=configuration,
                                 persist_config=False)
    chosen = next(c for c in contexts if c["name"] == context_name)
    expected = package(configuration, chosen["context"].get("namespace") or "default")
    if shape.differs == "token-file-trim":
        scheme, token = expected["authorization"]
        facts["package_token"] = token
        expected["authorization"] = (scheme, token.strip())
    if shape.differs == "proxy-credentials":
        import urllib3
        userinfo = urllib.parse.urlsplit(configuration.proxy)
        facts["package_proxy_headers"] = configuration.proxy_headers
        facts["expected_proxy_headers"] = {"Proxy-Authorization": urllib3.make_headers(
            proxy_basic_auth=f"{urllib.parse.unquote(userinfo.username)}:"
                             f"{urllib.parse.unquote(userinfo.password)}")["proxy-authorization"]}
        facts["our_proxy_headers"] = settings.proxy_headers
    return ours(settings), expected, facts


@pytest.mark.parametrize("shape", SHAPES, ids=[s.id for s in SHAPES])
def test_kubeconfig_shape_resolves_as_the_kubernetes_package_does(shape: Shape, tmp_path: Path, clean_env):
    mine, expected, facts = resolve_both(shape, tmp_path, clean_env)
    assert mine == expected
    if shape.differs == "current-context":
        # On record: the package itself would have taken the last file's current-context.
        assert facts["package_current_context"] == "other" and mine["namespace"] == "from-a"
    if shape.differs == "token-file-trim":
        assert facts["package_token"] == "tok-newline\n" and mine["authorization"] == ("bearer", "tok-newline")
    if shape.differs == "proxy-credentials":
        assert facts["package_proxy_headers"] is None  # the package would send no credentials
        assert facts["our_proxy_headers"] == facts["expected_proxy_headers"]


def test_the_table_covers_the_required_shapes():
    ids = " ".join(s.id for s in SHAPES)
    assert len(SHAPES) >= 15
    for needed in ("merged-list", "explicit-context", "namespace", "token-file", "inline-data",
                   "relative-files", "tls-server-name", "insecure-skip-tls-verify", "proxy-url-with-credentials",
                   "in-cluster"):
        assert needed in ids, needed
