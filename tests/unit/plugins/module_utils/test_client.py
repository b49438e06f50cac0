"""The HTTP side of the connection: what goes on the wire, and what is never sent twice.

Fake servers here are plain sockets on loopback that record the raw requests they receive.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils import _client, _kubeconfig
from ansible_collections.canary.istio.plugins.module_utils._client import (
    AUTH_ARG_SPEC,
    ApiError,
    ConnectionFailed,
    KubeClient,
    KubeConfigError,
    RequestOutcomeUnknown,
    describe_api_error,
    request_subject,
)
from ansible_collections.canary.istio.plugins.module_utils._module import full_argument_spec
from tests.helpers.loopback import LoopbackServer, read_request

pytestmark = pytest.mark.unit


class RawServer(LoopbackServer):
    """HTTP/1.1 on loopback, one thread per connection. ``script(method, n)`` decides each answer:
    ``"ok"`` (200 with a JSON body), ``"drop"`` (read the request, close without answering),
    ``"close-after"`` (answer, then close the kept-alive connection), or raw bytes to send."""

    def __init__(self, script=None):
        self.script = script or (lambda method, count: "ok")
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while (request := read_request(reader)) is not None:
                method = request.method
                with self.lock:
                    count = sum(1 for r in self.requests if r["method"] == method) + 1
                    self.requests.append({"method": method, "target": request.target, "headers": request.headers,
                                          "body": request.body})
                action = self.script(method, count)
                if action == "drop":
                    return
                if isinstance(action, bytes):
                    conn.sendall(action)
                    return
                payload = json.dumps({"kind": "Thing", "method": method, "n": count}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                if action == "close-after":
                    return
        except OSError:
            return
        finally:
            reader.close()
            conn.close()


@pytest.fixture
def server_factory():
    servers: list[RawServer] = []

    def make(script=None) -> RawServer:
        server = RawServer(script)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


def client_for(url: str, **params: Any) -> KubeClient:
    settings = _kubeconfig.resolve({"host": url, "api_key": "tok", **params}, environ={})
    return KubeClient(settings, timeout=5)


# --- one name, one meaning ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(AUTH_ARG_SPEC))
def test_a_module_option_may_not_reuse_a_connection_option_name(name):
    with pytest.raises(ValueError, match=rf"\['{name}'\] reuse the names of shared connection options"):
        full_argument_spec({name: {"type": "str"}, "service_host": {"type": "str"}})


def test_module_options_with_their_own_names_are_kept():
    spec = full_argument_spec({"service_host": {"type": "str"}})
    assert spec["service_host"] == {"type": "str"} and "host" in spec and "impersonate_user" in spec


def test_kubernetes_core_connection_options_exist_with_their_environment_variables():
    assert AUTH_ARG_SPEC["no_proxy"]["fallback"] == ("env", ["K8S_AUTH_NO_PROXY"])
    assert AUTH_ARG_SPEC["impersonate_user"]["fallback"] == ("env", ["K8S_AUTH_IMPERSONATE_USER"])
    assert AUTH_ARG_SPEC["impersonate_groups"]["fallback"] == ("env", ["K8S_AUTH_IMPERSONATE_GROUPS"])
    assert set(AUTH_ARG_SPEC["proxy_headers"]["options"]) == {"proxy_basic_auth", "basic_auth", "user_agent"}
    assert AUTH_ARG_SPEC["proxy_headers"]["options"]["proxy_basic_auth"]["no_log"] is True


# --- an API error carries its own context ----------------------------------------------------
# The verb of a request as Kubernetes' authorization names it ("Determine the Request Verb" in the
# Kubernetes authorization docs): POST create, GET/HEAD on one object get and on a collection list,
# PUT update, PATCH patch, DELETE on one object delete and on a collection deletecollection; the
# group is empty for /api/v1; a subresource is resource/subresource.

@pytest.mark.parametrize("method,path,created,expected", [
    ("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews", None,
     ("get", "virtualservices", "reviews", "bookinfo", "networking.istio.io")),
    ("GET", "/apis/networking.istio.io/v1/namespaces/bookinfo/destinationrules?labelSelector=app%3Dr", None,
     ("list", "destinationrules", None, "bookinfo", "networking.istio.io")),
    ("GET", "/apis/networking.istio.io/v1/virtualservices", None,
     ("list", "virtualservices", None, None, "networking.istio.io")),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/ops/leases", "release",
     ("create", "leases", "release", "ops", "coordination.k8s.io")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ops/leases/release", None,
     ("update", "leases", "release", "ops", "coordination.k8s.io")),
    ("PATCH", "/apis/apps/v1/namespaces/bookinfo/deployments/reviews-v2/status", None,
     ("patch", "deployments/status", "reviews-v2", "bookinfo", "apps")),
    ("DELETE", "/api/v1/namespaces/bookinfo/configmaps/c", None, ("delete", "configmaps", "c", "bookinfo", "")),
    ("DELETE", "/api/v1/namespaces/bookinfo/configmaps", None,
     ("deletecollection", "configmaps", None, "bookinfo", "")),
    ("GET", "/api/v1/namespaces/bookinfo", None, ("get", "namespaces", "bookinfo", None, "")),
])
def test_an_api_error_names_its_own_request(method, path, created, expected):
    assert request_subject(method, path, created) == expected


def test_the_message_of_a_forbidden_write_names_verb_resource_group_and_namespace():
    error = ApiError(403, "Forbidden", {"message": "nope"}, "PATCH",
                     "/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews")
    assert describe_api_error(error) == ("forbidden: nope. Grant verb 'patch' on resource 'virtualservices' "
                                         "(apiGroup networking.istio.io) in namespace 'bookinfo' to this user, "
                                         "e.g. in a Role bound to it")


def test_a_create_names_the_object_it_sent():
    error = ApiError(409, "Conflict", {"message": "exists"}, "POST", "/api/v1/namespaces/a/configmaps", "c")
    assert describe_api_error(error).startswith("configmaps 'c' in namespace 'a' was changed by someone else")


# --- never a blind second write -------------------------------------------------------------

def test_a_patch_whose_answer_is_lost_is_not_sent_again(server_factory):
    server = server_factory(lambda method, n: "drop" if method == "PATCH" else "ok")
    client = client_for(server.url)
    client.get("/api/v1/namespaces/default")  # the PATCH then travels on a reused connection
    with pytest.raises(RequestOutcomeUnknown, match="may or may not have been applied"):
        client.request("PATCH", "/apis/x/v1/things/a", body=[{"op": "test", "path": "/a", "value": 1}],
                       content_type="application/json-patch+json")
    client.close()
    assert [r["method"] for r in server.requests] == ["GET", "PATCH"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_writes_are_not_sent_again_either(server_factory, method):
    server = server_factory(lambda m, n: "drop" if m == method else "ok")
    client = client_for(server.url)
    client.get("/version")
    with pytest.raises(RequestOutcomeUnknown):
        client.request(method, "/apis/x/v1/things", body={"a": 1})
    assert [r["method"] for r in server.requests].count(method) == 1


def test_a_read_on_a_connection_the_server_closed_is_asked_again(server_factory):
    server = server_factory(lambda method, n: "drop" if n == 2 else "ok")
    client = client_for(server.url)
    assert client.get("/a")["n"] == 1
    assert client.get("/b")["n"] == 3  # the second GET was dropped on the kept-alive connection
    assert [r["target"] for r in server.requests] == ["/a", "/b", "/b"]


def test_a_write_after_the_server_closed_an_idle_connection_goes_on_a_fresh_one(server_factory):
    server = server_factory(lambda method, n: "close-after")
    client = client_for(server.url)
    client.get("/a")
    threading.Event().wait(0.2)  # the server's close has arrived
    assert client.request("PATCH", "/things/a", body=[])["method"] == "PATCH"
    assert [r["method"] for r in server.requests] == ["GET", "PATCH"]


# --- headers --------------------------------------------------------------------------------

def test_impersonation_headers(server_factory):
    server = server_factory()
    client = client_for(server.url, impersonate_user="jane", impersonate_groups=["devs", "qa"])
    client.get("/version")
    headers = server.requests[0]["headers"]
    assert ("Impersonate-User", "jane") in headers
    assert [v for k, v in headers if k == "Impersonate-Group"] == ["devs", "qa"]
    assert ("Authorization", "Bearer tok") in headers


def test_impersonation_from_the_environment_string_and_kubeconfig_user(tmp_path):
    settings = _kubeconfig.resolve({"host": "https://h", "impersonate_user": "u", "impersonate_groups": "a, b"},
                                   environ={})
    assert settings.impersonate_groups == ["a", "b"]
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://k"}}],
        "users": [{"name": "u", "user": {"token": "t", "as": "ops", "as-groups": ["g1"]}}]}))
    settings = _kubeconfig.resolve({"kubeconfig": str(kubeconfig)}, environ={})
    assert (settings.impersonate_user, settings.impersonate_groups) == ("ops", ["g1"])


def test_impersonating_groups_without_a_user_is_refused_by_name():
    with pytest.raises(KubeConfigError, match="impersonate_groups needs impersonate_user"):
        _kubeconfig.resolve({"host": "https://h", "impersonate_groups": ["g"]}, environ={})


def test_unknown_proxy_headers_are_refused_by_name():
    with pytest.raises(KubeConfigError, match=r"proxy_headers has unknown keys \['x_forwarded'\]"):
        _kubeconfig.resolve({"host": "https://h", "proxy": "http://p:1", "proxy_headers": {"x_forwarded": "1"}},
                            environ={})


class ProxyRecorder(LoopbackServer):
    """An HTTP proxy that records the CONNECT request and refuses it (407)."""

    def __init__(self):
        self.connects: list[tuple[str, dict[str, str]]] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            request = read_request(reader)
            if request is None:
                return
            self.connects.append((f"{request.method} {request.target} {request.version}", dict(request.headers)))
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")


def test_https_proxy_from_the_environment_with_credentials_sends_them_on_connect():
    proxy = ProxyRecorder()
    environ = {"HTTPS_PROXY": f"http://ops%40corp:pa%3Ass@127.0.0.1:{proxy.port}", "NO_PROXY": "internal.test"}
    settings = _kubeconfig.resolve({"host": "https://api.example.test:6443", "api_key": "tok"}, environ=environ)
    client = KubeClient(settings, timeout=5)
    with pytest.raises(ConnectionFailed) as failure:
        client.get("/version")
    request_line, headers = proxy.connects[0]
    assert request_line.startswith("CONNECT api.example.test:6443 HTTP/1.")
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"ops@corp:pa:ss").decode()
    assert "Authorization" not in headers  # the bearer token never goes to the proxy
    assert "407" in str(failure.value) and "pa%3Ass" not in str(failure.value)
    assert f"through the proxy http://127.0.0.1:{proxy.port}" in str(failure.value)


def test_proxy_headers_option_goes_on_connect_and_no_proxy_option_bypasses():
    proxy = ProxyRecorder()
    params = {"host": "https://api.example.test:6443", "api_key": "tok", "proxy": f"http://127.0.0.1:{proxy.port}",
              "proxy_headers": {"proxy_basic_auth": "u:p", "user_agent": "awx/24"}}
    client = KubeClient(_kubeconfig.resolve(params, environ={}), timeout=5)
    with pytest.raises(ConnectionFailed):
        client.get("/version")
    headers = proxy.connects[0][1]
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert headers["User-Agent"] == "awx/24"
    bypassed = _kubeconfig.resolve({**params, "no_proxy": "localhost,.example.test"}, environ={})
    assert bypassed.proxy is None


def test_proxy_headers_come_from_kubernetes_core_environment_variables():
    settings = _kubeconfig.resolve({"host": "https://h", "proxy": "http://p:3128"}, environ={
        "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": "a:b", "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH": "c:d",
        "K8S_AUTH_PROXY_HEADERS_USER_AGENT": "me/1"})
    assert settings.proxy_headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"a:b").decode(),
                                      "Authorization": "Basic " + base64.b64encode(b"c:d").decode(),
                                      "User-Agent": "me/1"}


def test_socks_proxies_go_to_the_kubernetes_package():
    settings = _kubeconfig.resolve({"host": "https://h", "api_key": "t", "proxy": "socks5h://127.0.0.1:1080"},
                                   environ={})
    assert settings.proxy_transport == "a socks5h proxy"
    try:
        import socks  # noqa: F401  (PySocks, which urllib3 needs for SOCKS)
    except ImportError:
        with pytest.raises(KubeConfigError, match="socks5h proxy"):
            KubeClient(settings)
    else:
        client = KubeClient(settings)
        assert client._transport is not None
        client.close()


def test_exec_plugins_are_run_by_the_kubernetes_package(tmp_path):
    plugin = tmp_path / "plugin.sh"
    plugin.write_text('#!/bin/sh\necho \'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
                      '"kind": "ExecCredential", "status": {"token": "from-exec"}}\'\n')
    plugin.chmod(0o755)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://k:6443"}}],
        "users": [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                  "command": str(plugin)}}}]}))
    settings = _client.resolve_settings({"kubeconfig": str(kubeconfig)})
    assert settings.token == "from-exec" and settings.credential_plugin is None


def test_the_fast_path_does_not_import_the_kubernetes_package(tmp_path):
    import subprocess
    import sys

    from tests.helpers.collection import COLLECTIONS_ROOT
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1", "proxy-url": "http://p:3"}}],
        "users": [{"name": "u", "user": {"token": "t", "as": "x"}}]}))
    code = ("import sys\n"
            "from ansible_collections.canary.istio.plugins.module_utils import _client, _module\n"
            f"client = _client.connect({{'kubeconfig': {str(kubeconfig)!r}, 'no_proxy': 'other'}})\n"
            "assert client.settings.proxy == 'http://p:3'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(COLLECTIONS_ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
