# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Connection to the Kubernetes API shared by every module of the collection.

The options and their ``K8S_AUTH_*`` environment fallbacks are named as in kubernetes.core, so
``module_defaults`` written for kubernetes.core work here too. Where the settings come from
(options, kubeconfig files, the pod's service account, proxy variables) is decided in
``_kubeconfig``; this module speaks HTTP.

Speed matters: a module runs once per task, and importing the ``kubernetes`` package with its
generated models costs about a quarter of a second. The common cases (a bearer token, a token
file, client certificates, basic auth, in-cluster service accounts, an HTTP proxy) are handled
here with the standard library on one kept-alive TLS connection. Exec plugins and auth providers
are run by the ``kubernetes`` package's loader, and requests through SOCKS or HTTPS proxies go
through its client, imported only then.

A request that changes something (POST, PUT, PATCH, DELETE) is never sent twice: when its answer
is lost the caller gets ``RequestOutcomeUnknown`` and re-reads to learn whether it was applied.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import ssl
import tempfile
import urllib.parse
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._kubeconfig import (
    KubeConfigError,
    Settings,
    read_file,
    resolve,
)

AUTH_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "raw", "fallback": ("env", ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": ("env", ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": ("env", ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": ("env", ["K8S_AUTH_API_KEY"])},
    "username": {"type": "str", "fallback": ("env", ["K8S_AUTH_USERNAME"])},
    "password": {"type": "str", "no_log": True, "fallback": ("env", ["K8S_AUTH_PASSWORD"])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": ("env", ["K8S_AUTH_VERIFY_SSL"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": ("env", ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": ("env", ["K8S_AUTH_CERT_FILE"])},
    "client_key": {"type": "path", "aliases": ["key_file"], "no_log": False,
                   "fallback": ("env", ["K8S_AUTH_KEY_FILE"])},
    "proxy": {"type": "str", "fallback": ("env", ["K8S_AUTH_PROXY"])},
    "no_proxy": {"type": "str", "fallback": ("env", ["K8S_AUTH_NO_PROXY"])},
    # Sub-options read their K8S_AUTH_PROXY_HEADERS_* variables in _kubeconfig: Ansible applies
    # sub-option fallbacks only when the dict itself is given.
    "proxy_headers": {"type": "dict", "options": {
        "proxy_basic_auth": {"type": "str", "no_log": True},
        "basic_auth": {"type": "str", "no_log": True},
        "user_agent": {"type": "str"},
    }},
    "impersonate_user": {"type": "str", "fallback": ("env", ["K8S_AUTH_IMPERSONATE_USER"])},
    "impersonate_groups": {"type": "list", "elements": "str",
                           "fallback": ("env", ["K8S_AUTH_IMPERSONATE_GROUPS"])},
    "request_timeout": {"type": "float", "default": 30.0},
}

USER_AGENT = "canary.istio"
# Requests that may be sent again when a kept-alive connection breaks: they change nothing.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ApiError(Exception):
    """An error answer of the API server (HTTP status >= 400). It carries its own context - the
    request's method and path, and the name of an object it created - so a message can say what
    was being done to which object without the caller keeping track (see :meth:`subject`)."""

    def __init__(self, status: int, reason: str, body: Any, method: str = "", path: str = "",
                 name: str | None = None):
        self.status = status
        self.reason = reason
        self.body = body if isinstance(body, dict) else {"message": str(body or reason)}
        self.method = method
        self.path = path
        self.name = name
        super().__init__(f"{status} {reason}: {self.message}")

    @property
    def subject(self) -> tuple[str, str, str | None, str | None, str]:
        """(verb, resource, name, namespace, API group) of the failed request, as RBAC names them."""
        return request_subject(self.method, self.path, self.name)

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.reason)

    @property
    def causes(self) -> list[dict[str, Any]]:
        return list((self.body.get("details") or {}).get("causes") or [])

    @property
    def object_missing(self) -> bool:
        """A 404 about a named object (as opposed to a resource type the server does not serve)."""
        details = self.body.get("details") or {}
        return self.status == 404 and bool(details.get("name"))


class ConnectionFailed(Exception):
    """The API server could not be reached, or TLS verification failed."""


class RequestOutcomeUnknown(ConnectionFailed):
    """A request that changes something was sent, and its answer was lost: the server may or may not
    have applied it. Never sent again blindly; the caller re-reads to find out."""

    def __init__(self, message: str, method: str, path: str):
        super().__init__(message)
        self.method = method
        self.path = path


def _delegate_to_kubernetes(settings: Settings) -> None:
    """exec plugins and auth providers: let the kubernetes package produce the credentials."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
    except ImportError:
        raise KubeConfigError(f"this kubeconfig user needs {settings.credential_plugin}, which requires "
                              "the Python package 'kubernetes' (pip install kubernetes)") from None
    configuration = k8s_client.Configuration()
    try:
        if settings.kubeconfig_dict is not None:
            k8s_config.load_kube_config_from_dict(settings.kubeconfig_dict, context=settings.context,
                                                  client_configuration=configuration, persist_config=False)
        else:
            # The context is chosen by our (kubectl's) merge rule and named explicitly, so the
            # package's own current-context rule does not matter.
            k8s_config.load_kube_config(config_file=os.pathsep.join(settings.kubeconfig_files),
                                        context=settings.context, client_configuration=configuration,
                                        persist_config=False)
    except Exception as exc:  # the kubernetes loader raises many unrelated types
        raise KubeConfigError(f"loading credentials through the kubernetes package failed: {exc}") from None
    header = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
    if header:
        settings.token = header.split(" ", 1)[1] if header.lower().startswith("bearer ") else header
    if configuration.cert_file:
        settings.cert_file, settings.key_file = configuration.cert_file, configuration.key_file
        settings.cert_data = settings.key_data = None
    settings.credential_plugin = None


def resolve_settings(params: dict[str, Any]) -> Settings:
    """Module options (and their environment fallbacks) → connection settings; exec plugins and auth
    providers are run through the kubernetes package."""
    settings = resolve(params)
    if settings.credential_plugin:
        _delegate_to_kubernetes(settings)
    return settings


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    if settings.verify and (settings.ca_file or settings.ca_data):
        # Trust only the cluster's CA, as kubectl does; also skips loading the system's CA store
        # (about 20 ms of every module run).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context()
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            if settings.ca_file:
                read_file(settings.ca_file, "CA certificate")
                context.load_verify_locations(cafile=settings.ca_file)
            elif settings.ca_data:
                context.load_verify_locations(cadata=settings.ca_data)
        except ssl.SSLError as exc:
            raise KubeConfigError(f"CA certificate from {settings.source} is not a PEM certificate: {exc}") from None
    if settings.cert_file or settings.cert_data:
        if not (settings.key_file or settings.key_data):
            raise KubeConfigError("a client certificate was given without its key (client_key)")
        with tempfile.TemporaryDirectory(prefix="canary-istio-") as tmp:
            cert = settings.cert_file
            key = settings.key_file
            if settings.cert_data is not None:
                cert = os.path.join(tmp, "client.crt")
                with open(cert, "wb") as handle:
                    handle.write(settings.cert_data)
            if settings.key_data is not None:
                key = os.path.join(tmp, "client.key")
                with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                    handle.write(settings.key_data)
            read_file(cert, "client certificate")
            read_file(key, "client key")
            try:
                context.load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise KubeConfigError(f"client certificate or key cannot be used: {exc}") from None
    return context


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection whose TLS server name (SNI and certificate check) may differ from the
    address dialled: the kubeconfig's ``tls-server-name``."""

    def __init__(self, *args: Any, server_name: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the proxy tunnel when there is one
        server_hostname = self._server_name or self._tunnel_host or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=server_hostname)


class KubeClient:
    """JSON over one kept-alive HTTPS connection to the API server."""

    def __init__(self, settings: Settings, timeout: float = 30.0):
        self.settings = settings
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(settings.server)
        self.scheme = parsed.scheme
        self.host = parsed.hostname or ""
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.base_path = parsed.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._transport: _KubernetesTransport | None = None
        self.requests_made = 0
        headers = [("Accept", "application/json"), ("User-Agent", USER_AGENT)]
        if settings.token:
            headers.append(("Authorization", f"Bearer {settings.token}"))
        elif settings.basic:
            raw = f"{settings.basic[0]}:{settings.basic[1]}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(raw).decode()))
        if settings.impersonate_user:
            headers.append(("Impersonate-User", settings.impersonate_user))
            headers.extend(("Impersonate-Group", group) for group in settings.impersonate_groups)
        self._headers = headers
        if settings.proxy_transport:
            self.context = None
            self._transport = _KubernetesTransport(settings, timeout)
        else:
            self.context = _ssl_context(settings) if self.scheme == "https" else None

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def twin(self) -> KubeClient:
        """Another client with the same settings and its own connection, for a worker thread (a
        connection carries one request at a time). The TLS context is shared: it is only read."""
        other = KubeClient.__new__(KubeClient)
        other.__dict__.update(self.__dict__)
        other._conn = None
        other.requests_made = 0
        if self._transport is not None:
            other._transport = _KubernetesTransport(self.settings, self.timeout)
        return other

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        host = self.host
        port = self.port
        proxy = None
        if self.settings.proxy:
            proxy = urllib.parse.urlsplit(self.settings.proxy if "://" in self.settings.proxy
                                          else "http://" + self.settings.proxy)
            host, port = proxy.hostname or "", proxy.port or 80
        if self.scheme == "https":
            conn: http.client.HTTPConnection = _HTTPSConnection(
                host, port, context=self.context, timeout=self.timeout, server_name=self.settings.tls_server_name)
            if proxy is not None:
                conn.set_tunnel(self.host, self.port, headers=dict(self.settings.proxy_headers))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        self._conn = conn
        return conn

    def _stale(self) -> bool:
        """A kept-alive connection the server has already closed (or that holds unasked-for bytes)
        shows as readable before we send anything: replace it rather than send into it."""
        sock = self._conn.sock if self._conn is not None else None
        if sock is None:
            return False
        try:
            readable, _w, _x = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._transport is not None:
            self._transport.close()

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str | None = None) -> Any:
        """One API request; JSON in, JSON out (``accept`` asks for another JSON form, such as a
        Table). Raises ApiError, ConnectionFailed, or, when the answer to a request that changes
        something is lost, RequestOutcomeUnknown."""
        url = self.base_path + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        payload = None
        headers = list(self._headers)
        if accept:
            headers = [("Accept", accept) if name == "Accept" else (name, value) for name, value in headers]
        if body is not None:
            payload = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
            if isinstance(payload, str):
                payload = payload.encode()
            headers.append(("Content-Type", content_type))
        if self._transport is not None:
            status, reason, data = self._transport.request(method, url, headers, payload)
        else:
            status, reason, data = self._send(method, path, url, headers, payload)
        self.requests_made += 1
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"message": data.decode(errors="replace")[:500]}
        if status >= 400:
            created = (body.get("metadata") or {}).get("name") if method == "POST" and isinstance(body, dict) else None
            raise ApiError(status, reason, parsed, method, path, created)
        return parsed

    def _send(self, method: str, path: str, url: str, headers: list[tuple[str, str]],
              payload: bytes | None) -> tuple[int, str, bytes]:
        server = self.settings.server
        for attempt in (1, 2):
            if self._stale():
                self.close()
            reused = self._conn is not None
            conn = self._connect()
            try:
                if conn.sock is None:
                    conn.connect()
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise ConnectionFailed(
                    f"TLS verification of {server} failed: {exc.verify_message or exc}; "
                    "check ca_cert (or the kubeconfig's certificate-authority), or set validate_certs: false "
                    "only for a test cluster") from None
            except TimeoutError:
                self.close()
                # Nothing was sent yet (no TCP or TLS handshake completed), so this is a plain failure.
                raise ConnectionFailed(f"the API server at {server} did not answer {method} {path} within "
                                       f"{self.timeout:g}s (request_timeout)") from None
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                via = f" through the proxy {_without_credentials(self.settings.proxy)}" if self.settings.proxy else ""
                raise ConnectionFailed(f"cannot reach the API server at {server}{via}: "
                                       f"{getattr(exc, 'strerror', None) or exc}") from None
            try:
                conn.putrequest(method, url, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if payload is not None or method not in SAFE_METHODS:
                    conn.putheader("Content-Length", str(len(payload or b"")))
                conn.endheaders(payload)
                response = conn.getresponse()
                return response.status, response.reason, response.read()
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                self.close()
                timed_out = isinstance(exc, TimeoutError)
                problem = (f"did not answer {method} {path} within {self.timeout:g}s (request_timeout)" if timed_out
                           else f"broke the connection during {method} {path}: {getattr(exc, 'strerror', None) or exc}")
                if method not in SAFE_METHODS:
                    raise RequestOutcomeUnknown(
                        f"the API server at {server} {problem}; the request may or may not have been applied "
                        "(it was not sent again)", method, path) from None
                # A kept-alive connection the server closed meanwhile: a read is simply asked again.
                if attempt == 1 and reused and not timed_out:
                    continue
                raise ConnectionFailed(f"the API server at {server} {problem}" if timed_out else
                                       f"cannot reach the API server at {server}: {problem}") from None
        raise AssertionError("unreachable")

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)


def _without_credentials(url: str | None) -> str:
    parsed = urllib.parse.urlsplit(url or "")
    if parsed.username is None:
        return url or ""
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, parsed.fragment))


class _KubernetesTransport:
    """Requests through the kubernetes package's connection pool (urllib3, configured by the package
    for the proxy and TLS), for what the standard library cannot do here: SOCKS and HTTPS proxies.
    Our bytes and headers go out unchanged; a write is sent once, as on the fast path."""

    def __init__(self, settings: Settings, timeout: float):
        try:
            from kubernetes.client import Configuration
            from kubernetes.client.rest import RESTClientObject
        except ImportError:
            raise KubeConfigError(f"connecting through {settings.proxy_transport} requires the Python package "
                                  "'kubernetes' (pip install kubernetes)") from None
        configuration = Configuration()
        configuration.host = settings.server
        configuration.verify_ssl = settings.verify
        configuration.ssl_ca_cert = settings.ca_file
        configuration.ca_cert_data = settings.ca_data
        configuration.tls_server_name = settings.tls_server_name
        configuration.proxy = settings.proxy
        configuration.no_proxy = ""  # already decided by _kubeconfig
        configuration.proxy_headers = dict(settings.proxy_headers) or None
        self._tmp = tempfile.TemporaryDirectory(prefix="canary-istio-")
        for attribute, data, name in (("cert_file", settings.cert_data, "client.crt"),
                                      ("key_file", settings.key_data, "client.key")):
            path = getattr(settings, attribute)
            if data is not None:
                path = os.path.join(self._tmp.name, name)
                with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                    handle.write(data)
            setattr(configuration, attribute, path)
        try:
            self._pool = RESTClientObject(configuration).pool_manager
        except Exception as exc:  # e.g. urllib3 without PySocks for a SOCKS proxy
            self._tmp.cleanup()
            raise KubeConfigError(f"connecting through {settings.proxy_transport} failed to set up: {exc}") from None
        self._server = settings.server
        self._timeout = timeout

    def request(self, method: str, url: str, headers: list[tuple[str, str]],
                payload: bytes | None) -> tuple[int, str, bytes]:
        import urllib3  # comes with kubernetes

        header_dict = urllib3.HTTPHeaderDict()
        for name, value in headers:
            header_dict.add(name, value)  # Impersonate-Group may repeat
        try:
            response = self._pool.request(method, self._server + url, body=payload, headers=header_dict,
                                          retries=False, timeout=urllib3.Timeout(total=self._timeout))
            return response.status, response.reason or "", response.data or b""
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            not_sent = isinstance(exc, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                                        urllib3.exceptions.ProxyError, urllib3.exceptions.SSLError))
            if method not in SAFE_METHODS and not not_sent:
                raise RequestOutcomeUnknown(
                    f"the API server at {self._server} did not answer {method} {url}: {exc}; the request may or "
                    "may not have been applied (it was not sent again)", method, url) from None
            raise ConnectionFailed(f"cannot reach the API server at {self._server} through the proxy "
                                   f"{_without_credentials(self.proxy_url)}: {exc}") from None

    @property
    def proxy_url(self) -> str:
        return str(getattr(getattr(self._pool, "proxy", None), "url", "") or "")

    def close(self) -> None:
        self._pool.clear()
        self._tmp.cleanup()


def connect(params: dict[str, Any]) -> KubeClient:
    settings = resolve_settings(params)
    return KubeClient(settings, timeout=float(params.get("request_timeout") or 30.0))


# --- turning API errors into messages a person can act on -------------------------------------

# RBAC's verbs for the HTTP methods of a resource request (Kubernetes' RequestInfoFactory).
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_subject(method: str, path: str, created: str | None = None
                    ) -> tuple[str, str, str | None, str | None, str]:
    """(verb, resource, name, namespace, API group) of a request, read from its method and path as the
    API server reads them: ``/api/v1/...`` is the core group, ``/apis/GROUP/VERSION/...`` another;
    ``namespaces/NS/`` scopes a resource; a trailing name (and subresource) names one object. A path
    that names no resource (discovery) is described by the path itself."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        rest, group = [], parts[1] if parts[:1] == ["apis"] and len(parts) > 1 else ""
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ("get" if method in ("GET", "") else method.lower(), f"the API {path.split('?', 1)[0] or '/'}",
                None, None, group)
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    name = rest[1] if len(rest) > 1 else created
    if method == "DELETE":
        verb = "delete" if len(rest) > 1 else "deletecollection"
    elif method in _VERBS:
        verb = _VERBS[method]
    else:
        verb = "get" if len(rest) > 1 else "list"
    return verb, resource, name, namespace, group


def describe_api_error(error: ApiError) -> str:
    """The message for an API error, from the error's own context."""
    return describe_error(error, *error.subject)


def describe_error(error: ApiError, verb: str, resource: str, name: str | None, namespace: str | None,
                   api_group: str = "networking.istio.io") -> str:
    where = f" in namespace {namespace!r}" if namespace else ""
    what = f"{resource} {name!r}" if name else resource
    if error.status == 401:
        return f"the API server refused our credentials (401 Unauthorized) while trying to {verb} {what}{where}"
    if error.status == 403:
        group = api_group or '""'
        return (f"forbidden: {error.message}. Grant verb {verb!r} on resource {resource!r} (apiGroup {group})"
                f"{where} to this user, e.g. in a Role bound to it")
    if error.status == 404:
        if "namespaces" in error.message and namespace and f'"{namespace}" not found' in error.message:
            return f"namespace {namespace!r} does not exist"
        return f"{what} not found{where}"
    if error.status == 409:
        return f"{what}{where} was changed by someone else meanwhile (409 Conflict): {error.message}"
    if error.status == 422:
        fields = [f"{c.get('field')}: {c.get('message')}" for c in error.causes if c.get("field")]
        detail = "; ".join(fields) if fields else error.message
        return f"the API server rejected {what}{where} as invalid (422): {detail}"
    if error.status >= 500:
        return (f"the API server could not {verb} {what}{where}: {error.status} {error.reason}: {error.message}. "
                "It may be restarting or overloaded; re-run when it answers again")
    return f"{verb} {what}{where} failed: {error.status} {error.reason}: {error.message}"
