"""The connection against the lab's real apiserver: how modules find it, and how they behave when
the network loses an answer.

Two small loopback proxies stand between a module and the apiserver: a CONNECT proxy (what a
corporate HTTPS proxy does), and a TLS-terminating one that forwards every request but can drop
the answer to a PATCH after the apiserver applied it, or refuse one PATCH, so the module meets
exactly the failure it must survive.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import socket
import ssl
import tempfile
import threading
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.kube import KubeClient
from tests.helpers.ansible import run_module
from tests.helpers.collection import REPO_ROOT
from tests.helpers.loopback import LoopbackServer, pipe, read_request
from tests.integration.test_traffic_modules import reviews_dr, reviews_vs

pytestmark = pytest.mark.lab

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"


def connecting_modules() -> set[str]:
    """The modules that talk to Kubernetes: those whose USES names it."""
    package = "ansible_collections.canary.istio.plugins.modules"
    return {p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")
            if p.stem != "__init__" and "kubernetes" in importlib.import_module(f"{package}.{p.stem}").USES}


def module_cases(namespace: str, tag: str) -> dict[str, tuple[dict[str, Any], Any]]:
    """Per module: arguments that make it read or act, and a check of its result."""
    def created(result: dict[str, Any]) -> bool:
        return result.get("changed") is True

    def lists_reviews(result: dict[str, Any]) -> bool:
        return [r["metadata"]["name"] for r in result.get("resources", [])] == ["reviews"]

    return {
        "virtual_service_info": ({}, lists_reviews),
        "destination_rule_info": ({}, lists_reviews),
        "canary_info": ({"name": "reviews"},
                        lambda r: r.get("exists") is True and r.get("destination_rule") == "reviews"),
        "virtual_service": ({"name": f"vs-{tag}", "spec": {"hosts": [f"vs-{tag}"], "http": [
            {"route": [{"destination": {"host": f"vs-{tag}"}}]}]}}, created),
        "destination_rule": ({"name": f"dr-{tag}", "spec": {"host": f"dr-{tag}", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}}]}}, created),
        "traffic_split": ({"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 10}, created),
        "header_route": ({"name": "reviews", "route": f"testers-{tag}", "headers": {"end-user": f"qa-{tag}"},
                          "subset": "v2"}, created),
        "manifest": ({"definition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{tag}"},
                                     "data": {"a": "b"}}}, created),
        "release_lock": ({"name": f"lock-{tag}", "holder": "awx-job-1"}, created),
        "release_history": ({"name": "reviews", "entry": {"note": f"recorded through {tag}"}}, created),
        "resilience": ({"name": "reviews", "subset": "v2", "circuit_breaker": {"connection_pool": {
            "tcp": {"max_connections": 1}}}}, created),
        # Kubernetes only for the report's ConfigMap (no Prometheus here: a page without charts).
        "release_report": ({"service": "reviews", "base": "v1", "canary": "v2", "prometheus_url": "",
                            "dest": str(Path(tempfile.gettempdir()) / f"report-{namespace}-{tag}.html"),
                            "configmap": f"report-{tag}"}, lambda r: (r.get("configmap") or {}).get("kept") is True),
    }


def bookinfo_namespace(kube: KubeClient) -> str:
    namespace = f"conn-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    kube.create(VS.format(ns=namespace), reviews_vs())
    kube.create(DR.format(ns=namespace), reviews_dr())
    return namespace


def test_every_module_takes_the_api_server_from_host_and_from_awx_credential_variables(lab_state, kube,
                                                                                       tmp_path: Path):
    cases = module_cases("x", "x")
    assert set(cases) == connecting_modules(), "a module connects to Kubernetes: add it to module_cases"
    home = tmp_path / "home"  # no ~/.kube/config anywhere: only what the run is given counts
    home.mkdir()
    token = lab_state["tokens"]["admin"]
    # What AWX's built-in "Kubernetes or OpenShift API Bearer Token" credential injects.
    awx_env = {"K8S_AUTH_HOST": lab_state["server"], "K8S_AUTH_API_KEY": token,
               "K8S_AUTH_SSL_CA_CERT": lab_state["ca_file"], "K8S_AUTH_VERIFY_SSL": "True", "HOME": str(home)}
    for mode in ("host-option", "awx-environment"):
        namespace = bookinfo_namespace(kube)
        for module, (own_args, check) in module_cases(namespace, mode).items():
            args = {**own_args, "namespace": namespace}
            if mode == "host-option":
                result = run_module(module, {**args, "host": lab_state["server"], "api_key": token,
                                             "ca_cert": lab_state["ca_file"]}, env={"HOME": str(home)})
            else:
                result = run_module(module, args, env=awx_env)
            assert result.get("failed") is not True and check(result), (mode, module, result)
        stored = kube.get(f"{VS.format(ns=namespace)}/reviews")
        primary = next(r for r in stored["spec"]["http"] if r.get("name") == "primary")
        assert {d["destination"]["subset"]: d["weight"] for d in primary["route"]} == {"v1": 90, "v2": 10}
        assert kube.get(f"/api/v1/namespaces/{namespace}/configmaps/cm-{mode}")["data"] == {"a": "b"}


def test_a_kubeconfig_list_is_merged_as_kubectl_merges_it(lab_state, kube, tmp_path: Path):
    namespace = bookinfo_namespace(kube)
    # The first file holds only a context (and the current-context) pointing at the cluster and
    # user of the lab's kubeconfig, which comes second: today's teams keep one file per concern.
    first = tmp_path / "contexts.yaml"
    first.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "mine",
                                     "contexts": [{"name": "mine", "context": {
                                         "cluster": "lab", "user": "lab-admin", "namespace": namespace}}]}))
    env = {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{lab_state['kubeconfig']}", "HOME": str(tmp_path)}
    result = run_module("virtual_service_info", {}, env=env)
    assert result.get("failed") is not True, result
    assert [r["metadata"]["namespace"] for r in result["resources"]] == [namespace]


class ConnectProxy(LoopbackServer):
    """An HTTP proxy on loopback that tunnels CONNECT after checking Proxy-Authorization; with
    ``tls`` (certificate and key files) clients speak TLS to the proxy itself (an HTTPS proxy)."""

    def __init__(self, credentials: str, tls: tuple[Path, Path] | None = None):
        self.context = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.connects: list[tuple[str, str | None]] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        if self.context is not None:
            try:
                conn = self.context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                return
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        target = lines[0].split(" ")[1]
        self.connects.append((target, headers.get("Proxy-Authorization")))
        if headers.get("Proxy-Authorization") != self.expected:
            conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=pipe, args=(source, sink), daemon=True).start()


def test_https_proxy_with_credentials_from_the_environment(lab_state, kube):
    namespace = bookinfo_namespace(kube)
    proxy = ConnectProxy("ops@corp:s3cret")
    try:
        env = {"HTTPS_PROXY": f"http://ops%40corp:s3cret@127.0.0.1:{proxy.port}"}
        args = {"kubeconfig": lab_state["kubeconfig"], "context": "lab", "namespace": namespace}
        result = run_module("virtual_service_info", args, env=env)
        assert result.get("failed") is not True, result
        assert result["resources"][0]["metadata"]["name"] == "reviews"
        server = urllib.parse.urlsplit(lab_state["server"])
        assert proxy.connects == [(f"{server.hostname}:{server.port}", proxy.expected)]
        # NO_PROXY covering the server: no tunnel at all.
        bypassed = run_module("virtual_service_info", args, env={**env, "NO_PROXY": "127.0.0.0/8"})
        assert bypassed.get("failed") is not True and len(proxy.connects) == 1
        # Wrong credentials: the proxy's refusal is the message, without the password.
        refused = run_module("virtual_service_info", {**args, "proxy": f"http://ops:wrong@127.0.0.1:{proxy.port}"})
        assert refused.get("failed") is True and "407" in refused["msg"] and "wrong" not in refused["msg"]
    finally:
        proxy.close()


def test_an_https_proxy_goes_through_the_kubernetes_package(lab_state, kube):
    namespace = bookinfo_namespace(kube)
    pki = Path(lab_state["ca_file"]).parent
    proxy = ConnectProxy("ops:s3cret", tls=(pki / "apiserver.crt", pki / "apiserver.key"))
    try:
        args = {"kubeconfig": lab_state["kubeconfig"], "context": "lab", "namespace": namespace,
                "proxy": f"https://ops:s3cret@127.0.0.1:{proxy.port}", "impersonate_user": "someone",
                "impersonate_groups": ["system:masters", "team-a"]}
        result = run_module("traffic_split", {**args, "name": "reviews", "base": "v1", "canary": "v2",
                                              "canary_weight": 20})
        assert result.get("failed") is not True, result
        assert result["changed"] is True and result["api_requests"] == 3
    finally:
        proxy.close()
    assert proxy.connects and all(auth == proxy.expected for _target, auth in proxy.connects)
    stored = kube.get(f"{VS.format(ns=namespace)}/reviews")
    assert _weights(stored) == {"v1": 80, "v2": 20}


def test_impersonation_acts_as_the_named_user(lab_state, kube):
    namespace = bookinfo_namespace(kube)
    args = {"kubeconfig": lab_state["kubeconfig"], "context": "lab", "namespace": namespace}
    spec = {"hosts": ["x"], "http": [{"route": [{"destination": {"host": "x"}}]}]}
    denied = run_module("virtual_service", {**args, "name": "x", "spec": spec, "impersonate_user": "lab:viewer"})
    assert denied.get("failed") is True and 'User "lab:viewer" cannot create' in denied["msg"], denied
    as_group = run_module("virtual_service", {**args, "name": "x", "spec": spec}, env={
        "K8S_AUTH_IMPERSONATE_USER": "someone", "K8S_AUTH_IMPERSONATE_GROUPS": "system:masters"})
    assert as_group.get("failed") is not True and as_group["changed"] is True, as_group


class LostReplyProxy(LoopbackServer):
    """TLS on loopback in front of the apiserver (with the apiserver's own certificate, so clients
    verify it with the lab CA). Forwards every request. The first PATCH is forwarded and applied,
    and then its answer is dropped: the client connection is closed before relaying it. A PATCH
    whose path ends with ``refuse`` is answered 500 without being forwarded."""

    def __init__(self, lab_state: dict[str, Any], refuse: str | None = None):
        server = urllib.parse.urlsplit(lab_state["server"])
        self.upstream = (server.hostname, server.port)
        pki = Path(lab_state["ca_file"]).parent
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        self.client_context = ssl.create_default_context(cafile=lab_state["ca_file"])
        self.refuse = refuse
        self.patches_dropped = 0
        self.log: list[tuple[str, str, int | str]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        try:
            client = self.server_context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        upstream = http.client.HTTPSConnection(*self.upstream, context=self.client_context, timeout=30)
        reader = client.makefile("rb")
        try:
            while (request := read_request(reader)) is not None:
                method, target = request.method, request.target
                if method == "PATCH" and self.refuse and target.split("?")[0].endswith(self.refuse):
                    status = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                         "message": "injected failure", "reason": "InternalError",
                                         "code": 500}).encode()
                    self.log.append((method, target, 500))
                    client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (len(status), status))
                    continue
                forward = {k: v for k, v in request.headers
                           if k.lower() not in ("host", "connection", "content-length")}
                # No body is None, not b"": http.client would otherwise send Content-Length: 0 on a GET.
                upstream.request(method, target, body=request.body or None, headers=forward)
                response = upstream.getresponse()
                data = response.read()
                if method == "PATCH" and self.patches_dropped == 0:
                    self.patches_dropped += 1
                    self.log.append((method, target, f"{response.status}, answer dropped"))
                    return  # applied upstream; the client never hears of it
                self.log.append((method, target, response.status))
                client.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
                    response.status, response.reason.encode(),
                    (response.getheader("Content-Type") or "application/json").encode(), len(data), data))
        except OSError:
            return
        finally:
            upstream.close()
            reader.close()
            client.close()


def _weights(vs: dict[str, Any], route: str = "primary") -> dict[str, int]:
    found = next(r for r in vs["spec"]["http"] if r.get("name", "") == route)
    return {d["destination"]["subset"]: d.get("weight", 100) for d in found["route"]}


def _history(vs: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads((vs["metadata"].get("annotations") or {}).get("canary.istio/history") or "[]")


def test_a_patch_applied_but_unanswered_is_recognised_not_repeated(lab_state, kube):
    namespace = bookinfo_namespace(kube)
    proxy = LostReplyProxy(lab_state)
    try:
        result = run_module("traffic_split", {
            "host": proxy.url, "api_key": lab_state["tokens"]["admin"], "ca_cert": lab_state["ca_file"],
            "namespace": namespace, "name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 30,
            "actor": "lost-reply-test"})
    finally:
        proxy.close()
    assert proxy.patches_dropped == 1
    assert result.get("failed") is not True, result
    assert result["changed"] is True and result["after"] == {"v1": 70, "v2": 30}
    assert result["services"][0]["moved"] is True
    stored = kube.get(f"{VS.format(ns=namespace)}/reviews")
    assert _weights(stored) == {"v1": 70, "v2": 30}
    history = _history(stored)
    assert len(history) == 1 and history[0]["to"] == {"v1": 70, "v2": 30}
    assert history[0]["actor"] == "lost-reply-test"
    assert [entry[0] for entry in proxy.log].count("PATCH") == 1  # never sent a second time


def test_a_lockstep_failure_puts_back_a_service_whose_patch_answer_was_lost(lab_state, kube):
    namespace = bookinfo_namespace(kube)
    ratings_vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                  "metadata": {"name": "ratings"},
                  "spec": {"hosts": ["ratings"], "http": [{"name": "primary", "route": [
                      {"destination": {"host": "ratings", "subset": "v1"}, "weight": 100}]}]}}
    kube.create(VS.format(ns=namespace), ratings_vs)
    rule = reviews_dr(("v1", "v2"))
    rule["metadata"]["name"] = "ratings"
    rule["spec"]["host"] = "ratings"
    kube.create(DR.format(ns=namespace), rule)
    before = kube.get(f"{VS.format(ns=namespace)}/reviews")
    proxy = LostReplyProxy(lab_state, refuse="/virtualservices/ratings")
    try:
        result = run_module("traffic_split", {
            "host": proxy.url, "api_key": lab_state["tokens"]["admin"], "ca_cert": lab_state["ca_file"],
            "namespace": namespace, "services": [{"name": "reviews"}, {"name": "ratings"}],
            "base": "v1", "canary": "v2", "canary_weight": 40})
    finally:
        proxy.close()
    assert proxy.patches_dropped == 1
    assert result.get("failed") is True, result
    assert f"put back the services already moved: {namespace}/reviews" in result["msg"], result["msg"]
    reviews = kube.get(f"{VS.format(ns=namespace)}/reviews")
    assert _weights(reviews) == _weights(before) == {"v1": 100}
    assert _history(reviews) == []
    assert _weights(kube.get(f"{VS.format(ns=namespace)}/ratings")) == {"v1": 100}
    report = {s["name"]: s for s in result["services"]}
    assert report["reviews"]["rolled_back"] is True
