# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Connection to the Kubernetes API shared by every module of the collection.

The options and their ``K8S_AUTH_*`` environment fallbacks are named as in kubernetes.core, so
``module_defaults`` written for kubernetes.core work here too.

Speed matters: a module runs once per task, and importing the ``kubernetes`` package with its
generated models costs about a quarter of a second. The common cases (a bearer token, a token
file, client certificates, basic auth, in-cluster service accounts) are handled here with the
standard library on one kept-alive TLS connection. Kubeconfig users that need an exec plugin or
an auth provider are delegated to the ``kubernetes`` package's own loader, imported only then.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from typing import Any

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
    "request_timeout": {"type": "float", "default": 30.0},
}

USER_AGENT = "canary.istio"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeConfigError(Exception):
    """The connection settings cannot be used; the message says which and why."""


class ApiError(Exception):
    """An error answer of the API server (HTTP status >= 400)."""

    def __init__(self, status: int, reason: str, body: Any, method: str = "", path: str = ""):
        self.status = status
        self.reason = reason
        self.body = body if isinstance(body, dict) else {"message": str(body or reason)}
        self.method = method
        self.path = path
        super().__init__(f"{status} {reason}: {self.message}")

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


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise KubeConfigError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None


def _load_yaml(text: bytes, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # PyYAML comes with ansible-core
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)
    except Exception as exc:  # the YAML library's errors have no common base worth naming
        raise KubeConfigError(f"kubeconfig {source} is not valid YAML: {exc}") from None


def _named(entries: Any, name: str, kind: str, source: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(kind) or {}
    raise KubeConfigError(f"kubeconfig {source} has no {kind} named {name!r}")


class Settings:
    """Everything needed to talk to one API server, resolved from module options."""

    def __init__(self) -> None:
        self.server = ""
        self.token: str | None = None
        self.basic: tuple[str, str] | None = None
        self.verify = True
        self.ca_file: str | None = None
        self.ca_data: str | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None
        self.cert_data: bytes | None = None
        self.key_data: bytes | None = None
        self.tls_server_name: str | None = None
        self.proxy: str | None = None
        self.namespace = "default"
        self.source = "module options"


def _kubeconfig_files(option: Any) -> list[str]:
    if option:
        return [os.path.expanduser(str(option))]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


def _delegate_to_kubernetes(config_file: str | None, config_dict: dict[str, Any] | None,
                            context: str | None, settings: Settings) -> None:
    """exec plugins and auth providers: let the kubernetes package produce a token."""
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
    except ImportError:
        raise KubeConfigError("this kubeconfig user needs an exec plugin or auth provider, which requires "
                              "the Python package 'kubernetes' (pip install kubernetes)") from None
    configuration = k8s_client.Configuration()
    try:
        if config_dict is not None:
            k8s_config.load_kube_config_from_dict(config_dict, context=context,
                                                  client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=config_file, context=context,
                                        client_configuration=configuration)
    except Exception as exc:  # the kubernetes loader raises many unrelated types
        raise KubeConfigError(f"loading credentials through the kubernetes package failed: {exc}") from None
    header = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
    if header:
        settings.token = header.split(" ", 1)[1] if header.lower().startswith("bearer ") else header
    if configuration.cert_file:
        settings.cert_file, settings.key_file = configuration.cert_file, configuration.key_file


def _apply_kubeconfig(settings: Settings, option: Any, context: str | None) -> None:
    if isinstance(option, dict):
        config, source, config_file = option, "given as a dict", None
    else:
        files = _kubeconfig_files(option)
        existing = [f for f in files if os.path.exists(f)]
        if not existing:
            raise KubeConfigError(f"no kubeconfig found (looked at {', '.join(files)}); pass kubeconfig, "
                                  "or host and api_key")
        config_file = existing[0]
        source = repr(config_file)
        config = _load_yaml(_read_file(config_file, "kubeconfig"), source)
        if not isinstance(config, dict):
            raise KubeConfigError(f"kubeconfig {source} is not a kubeconfig (expected a mapping)")
    context_name = context or config.get("current-context")
    if not context_name:
        raise KubeConfigError(f"kubeconfig {source} has no current-context; pass context")
    ctx = _named(config.get("contexts"), context_name, "context", source)
    cluster = _named(config.get("clusters"), ctx.get("cluster", ""), "cluster", source)
    user = _named(config.get("users"), ctx.get("user", ""), "user", source) if ctx.get("user") else {}
    base = os.path.dirname(config_file) if config_file else os.getcwd()

    def rel(path: str) -> str:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.join(base, path)

    settings.source = f"kubeconfig {source}, context {context_name!r}"
    settings.server = cluster.get("server", "")
    settings.namespace = ctx.get("namespace") or "default"
    if cluster.get("insecure-skip-tls-verify"):
        settings.verify = False
    if cluster.get("certificate-authority-data"):
        settings.ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        settings.ca_file = rel(cluster["certificate-authority"])
    settings.tls_server_name = cluster.get("tls-server-name")
    settings.proxy = cluster.get("proxy-url")
    if user.get("exec") or user.get("auth-provider"):
        _delegate_to_kubernetes(config_file, option if isinstance(option, dict) else None, context_name, settings)
        return
    if user.get("token"):
        settings.token = user["token"]
    elif user.get("tokenFile"):
        settings.token = _read_file(rel(user["tokenFile"]), "token file").decode().strip()
    if user.get("client-certificate-data"):
        settings.cert_data = base64.b64decode(user["client-certificate-data"])
    elif user.get("client-certificate"):
        settings.cert_file = rel(user["client-certificate"])
    if user.get("client-key-data"):
        settings.key_data = base64.b64decode(user["client-key-data"])
    elif user.get("client-key"):
        settings.key_file = rel(user["client-key"])
    if user.get("username") and user.get("password"):
        settings.basic = (user["username"], user["password"])


def resolve_settings(params: dict[str, Any]) -> Settings:
    """Module options (and their environment fallbacks) → connection settings.

    Precedence follows kubernetes.core: explicit options override what the kubeconfig says.
    """
    settings = Settings()
    explicit_host = params.get("host")
    if params.get("kubeconfig") or not explicit_host:
        in_cluster = (not params.get("kubeconfig") and not os.environ.get("KUBECONFIG")
                      and not os.path.exists(os.path.expanduser("~/.kube/config"))
                      and os.path.exists(os.path.join(SERVICE_ACCOUNT_DIR, "token"))
                      and os.environ.get("KUBERNETES_SERVICE_HOST"))
        if in_cluster:
            settings.server = "https://{}:{}".format(os.environ["KUBERNETES_SERVICE_HOST"],
                                                     os.environ.get("KUBERNETES_SERVICE_PORT", "443"))
            settings.token = _read_file(os.path.join(SERVICE_ACCOUNT_DIR, "token"), "token").decode().strip()
            settings.ca_file = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
            settings.source = "in-cluster service account"
        else:
            _apply_kubeconfig(settings, params.get("kubeconfig"), params.get("context"))
    if explicit_host:
        settings.server = explicit_host
    if params.get("api_key"):
        settings.token = params["api_key"]
    if params.get("username") and params.get("password"):
        settings.basic = (params["username"], params["password"])
    if params.get("ca_cert"):
        settings.ca_file, settings.ca_data = params["ca_cert"], None
    if params.get("client_cert"):
        settings.cert_file, settings.cert_data = params["client_cert"], None
    if params.get("client_key"):
        settings.key_file, settings.key_data = params["client_key"], None
    if params.get("validate_certs") is not None:
        settings.verify = bool(params["validate_certs"])
    if params.get("proxy"):
        settings.proxy = params["proxy"]
    if not settings.server:
        raise KubeConfigError(f"no API server address in {settings.source}; pass host or a kubeconfig")
    if not settings.server.startswith(("https://", "http://")):
        settings.server = "https://" + settings.server
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
                _read_file(settings.ca_file, "CA certificate")
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
            _read_file(cert, "client certificate")
            _read_file(key, "client key")
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
        self.context = _ssl_context(settings) if self.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None
        self.requests_made = 0
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.basic:
            raw = f"{settings.basic[0]}:{settings.basic[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        self._headers = headers

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        host = self.host
        port = self.port
        tunnel = None
        if self.settings.proxy:
            proxy = urllib.parse.urlsplit(self.settings.proxy)
            tunnel = (self.host, self.port)
            host, port = proxy.hostname or "", proxy.port or 3128
        if self.scheme == "https":
            conn: http.client.HTTPConnection = _HTTPSConnection(
                host, port, context=self.context, timeout=self.timeout, server_name=self.settings.tls_server_name)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        if tunnel:
            conn.set_tunnel(*tunnel)
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json") -> Any:
        """One API request; JSON in, JSON out. Raises ApiError or ConnectionFailed."""
        url = self.base_path + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        payload = None
        headers = dict(self._headers)
        if body is not None:
            payload = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connect()
            try:
                conn.request(method, url, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise ConnectionFailed(
                    f"TLS verification of {self.settings.server} failed: {exc.verify_message or exc}; "
                    "check ca_cert (or the kubeconfig's certificate-authority), or set validate_certs: false "
                    "only for a test cluster") from None
            except TimeoutError:
                self.close()
                raise ConnectionFailed(
                    f"the API server at {self.settings.server} did not answer {method} {path} within "
                    f"{self.timeout:g}s (request_timeout)") from None
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                # A kept-alive connection the server closed meanwhile is retried once.
                if attempt == 1 and reused:
                    continue
                raise ConnectionFailed(f"cannot reach the API server at {self.settings.server}: "
                                       f"{getattr(exc, 'strerror', None) or exc}") from None
        self.requests_made += 1
        parsed: Any = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"message": data.decode(errors="replace")[:500]}
        if response.status >= 400:
            raise ApiError(response.status, response.reason, parsed, method, path)
        return parsed

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)


def connect(params: dict[str, Any]) -> KubeClient:
    settings = resolve_settings(params)
    return KubeClient(settings, timeout=float(params.get("request_timeout") or 30.0))


# --- turning API errors into messages a person can act on -------------------------------------

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
