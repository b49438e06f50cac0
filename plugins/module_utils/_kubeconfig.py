# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where the API server is and who we are to it: module options, kubeconfig files, the pod's
service account and the proxy environment, resolved into one ``Settings``.

Pure: no network, no Ansible, no ``kubernetes`` package (importing its kubeconfig loader alone
costs 0.2 s per module run). The environment, the home directory and the service-account
directory are parameters so unit tests resolve any shape without touching the real ones.

Rules, and whose they are (tests compare every shape with the ``kubernetes`` package):

- A ``KUBECONFIG`` list (``os.pathsep``-separated; missing files skipped) is merged as kubectl
  merges it: the first file to name a cluster, context or user wins that name, whole; the
  ``current-context`` comes from the first file that sets one. (The ``kubernetes`` package takes
  the *last* file's ``current-context``; we follow kubectl, which wrote the rule and which the
  user's kubeconfig files were made for.) Relative paths resolve against the file that holds
  the entry. An empty file adds nothing (kubectl; the package refuses the whole list).
- A user authenticates with, in this order: an auth provider, ``token`` then ``tokenFile``, an
  exec plugin, ``username``/``password`` (the order of the ``kubernetes`` package). Client
  certificates are used alongside. Token files are stripped of surrounding white space, as
  client-go does (the ``kubernetes`` package keeps a trailing newline, which no server accepts).
- Exec plugins and auth providers, and proxies other than ``http://``, are beyond this module:
  ``Settings.credential_plugin`` and ``Settings.proxy_transport`` say which, and the client hands
  those to the ``kubernetes`` package.
- In a pod with no kubeconfig file: ``https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT``,
  the service account's token and CA, and the namespace from ``POD_NAMESPACE``, else the service
  account's ``namespace`` file, else ``default`` (client-go's order; the ``kubernetes`` package
  has no namespace for in-cluster runs).
- The proxy is the ``proxy`` option, else the cluster's ``proxy-url``, else the environment
  (``https_proxy``/``HTTPS_PROXY`` for an https server, lower case first, then ``all_proxy``),
  and is skipped when the server matches ``no_proxy`` (the option, else ``NO_PROXY``/
  ``no_proxy``): the ``kubernetes`` package's rules. Credentials in the proxy URL
  (``http://user:pass@proxy:3128``) become a ``Proxy-Authorization`` header on CONNECT, as kubectl
  sends them; the ``kubernetes`` package drops them.
- ``impersonate_user``/``impersonate_groups`` (and a kubeconfig user's ``as``/``as-groups``, which
  kubectl honours and the ``kubernetes`` package ignores) become ``Impersonate-User`` and
  ``Impersonate-Group`` headers.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SOCKS_SCHEMES = ("socks5", "socks5h", "socks4", "socks4a")
PROXY_HEADER_ENV = {
    "proxy_basic_auth": "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH",
    "basic_auth": "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH",
    "user_agent": "K8S_AUTH_PROXY_HEADERS_USER_AGENT",
}


class KubeConfigError(Exception):
    """The connection settings cannot be used; the message says which and why."""


class Settings:
    """Everything needed to talk to one API server."""

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
        # The proxy actually used (None: connect directly), and the headers of its CONNECT request.
        self.proxy: str | None = None
        self.proxy_headers: dict[str, str] = {}
        self.impersonate_user: str | None = None
        self.impersonate_groups: list[str] = []
        self.namespace = "default"
        self.source = "module options"
        # What the kubernetes package must do for us, or None: produce the credentials ("an exec
        # plugin", "an auth provider"), or carry the requests ("a socks5 proxy", "an https proxy").
        self.credential_plugin: str | None = None
        self.proxy_transport: str | None = None
        self.kubeconfig_files: list[str] = []
        self.kubeconfig_dict: dict[str, Any] | None = None
        self.context: str | None = None

    def ca_pem(self) -> str | None:
        """The CA certificate(s) as text, from the data or the file."""
        if self.ca_data is not None:
            return self.ca_data
        if self.ca_file:
            return read_file(self.ca_file, "CA certificate").decode()
        return None


def read_file(path: str, what: str) -> bytes:
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


class MergedKubeconfig:
    """Clusters, contexts and users by name, each with the directory its relative paths start from."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[dict[str, Any], str, str]]] = {
            "clusters": {}, "contexts": {}, "users": {}}
        self.current_context: str | None = None
        self.files: list[str] = []

    def add(self, config: Any, source: str, base: str) -> None:
        if config is None:
            return  # an empty file adds nothing (kubectl)
        if not isinstance(config, dict):
            raise KubeConfigError(f"kubeconfig {source} is not a kubeconfig (expected a mapping)")
        for kind in ("clusters", "contexts", "users"):
            entries = config.get(kind) or []
            if not isinstance(entries, list):
                raise KubeConfigError(f"kubeconfig {source}: {kind} must be a list")
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    raise KubeConfigError(f"kubeconfig {source}: every entry of {kind} needs a name")
                # The first file to name an entry wins it, whole: later files never add fields to it.
                self.entries[kind].setdefault(entry["name"], (entry, base, source))
        if not self.current_context and config.get("current-context"):
            self.current_context = str(config["current-context"])

    def get(self, kind: str, name: str) -> tuple[dict[str, Any], str, str]:
        """The named entry's body (``cluster``, ``context`` or ``user``), its base directory and file."""
        singular = kind[:-1]
        try:
            entry, base, source = self.entries[kind][name]
        except KeyError:
            where = ", ".join(repr(f) for f in self.files) or "given as a dict"
            raise KubeConfigError(f"kubeconfig {where} has no {singular} named {name!r}") from None
        value = entry.get(singular)
        return (value if isinstance(value, dict) else {}), base, source


def kubeconfig_paths(option: Any, environ: Mapping[str, str], home: str) -> tuple[list[str], bool]:
    """The kubeconfig files to merge, and whether they were named explicitly (then all must exist)."""
    def expand(path: str) -> str:
        return os.path.join(home, path[2:]) if path.startswith("~/") else os.path.expanduser(path)

    if option:
        # kubernetes.core hands the option to the kubernetes package, which splits it like KUBECONFIG.
        listed = option if isinstance(option, (list, tuple)) else str(option).split(os.pathsep)
        return [expand(str(p)) for p in listed if p], True
    listed = environ.get("KUBECONFIG")
    if listed:
        return [expand(p) for p in listed.split(os.pathsep) if p], False
    return [os.path.join(home, ".kube", "config")], False


def load_kubeconfig(option: Any, environ: Mapping[str, str], home: str, cwd: str) -> MergedKubeconfig:
    merged = MergedKubeconfig()
    if isinstance(option, dict):
        merged.add(option, "given as a dict", cwd)
        return merged
    paths, explicit = kubeconfig_paths(option, environ, home)
    for given in paths:
        if not os.path.exists(given):
            if explicit and len(paths) == 1:
                raise KubeConfigError(f"kubeconfig {given!r} does not exist")
            continue  # missing files in a list are skipped, as kubectl and the kubernetes package do
        path = os.path.abspath(given)
        merged.files.append(path)
        merged.add(_load_yaml(read_file(path, "kubeconfig"), repr(path)), repr(path), os.path.dirname(path))
    return merged


def _decode(value: Any, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError:
        raise KubeConfigError(f"kubeconfig {source}: {what} is not base64") from None


def _apply_kubeconfig(settings: Settings, merged: MergedKubeconfig, context: str | None) -> None:
    where = ", ".join(repr(f) for f in merged.files) or "given as a dict"
    context_name = context or merged.current_context
    if not context_name:
        raise KubeConfigError(f"kubeconfig {where} has no current-context; pass context")
    ctx, _base, _source = merged.get("contexts", context_name)
    cluster, cluster_base, cluster_source = merged.get("clusters", str(ctx.get("cluster", "")))
    user: dict[str, Any] = {}
    user_base, user_source = cluster_base, cluster_source
    if ctx.get("user"):
        user, user_base, user_source = merged.get("users", str(ctx["user"]))

    def path_in(base: str, path: str) -> str:
        path = os.path.expanduser(str(path))
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))

    settings.source = f"kubeconfig {where}, context {context_name!r}"
    settings.context = context_name
    settings.kubeconfig_files = list(merged.files)
    settings.server = str(cluster.get("server") or "")
    settings.namespace = str(ctx.get("namespace") or "default")
    if cluster.get("insecure-skip-tls-verify"):
        settings.verify = False
    if cluster.get("certificate-authority-data"):
        settings.ca_data = _decode(cluster["certificate-authority-data"], "certificate-authority-data",
                                   cluster_source).decode()
    elif cluster.get("certificate-authority"):
        settings.ca_file = path_in(cluster_base, cluster["certificate-authority"])
    settings.tls_server_name = cluster.get("tls-server-name") or None
    settings.proxy = cluster.get("proxy-url") or None
    if user.get("as"):
        settings.impersonate_user = str(user["as"])
    if isinstance(user.get("as-groups"), list):
        settings.impersonate_groups = [str(group) for group in user["as-groups"]]
    if user.get("client-certificate-data"):
        settings.cert_data = _decode(user["client-certificate-data"], "client-certificate-data", user_source)
    elif user.get("client-certificate"):
        settings.cert_file = path_in(user_base, user["client-certificate"])
    if user.get("client-key-data"):
        settings.key_data = _decode(user["client-key-data"], "client-key-data", user_source)
    elif user.get("client-key"):
        settings.key_file = path_in(user_base, user["client-key"])
    if user.get("auth-provider"):
        settings.credential_plugin = "an auth provider"
    elif user.get("token"):
        settings.token = str(user["token"])
    elif user.get("tokenFile"):
        settings.token = read_file(path_in(user_base, user["tokenFile"]), "token file").decode().strip()
    elif user.get("exec"):
        settings.credential_plugin = "an exec plugin"
    elif user.get("username") and user.get("password"):
        settings.basic = (str(user["username"]), str(user["password"]))


def _in_cluster(settings: Settings, environ: Mapping[str, str], service_account_dir: str) -> None:
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT") or "443"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    settings.server = f"https://{host}:{port}"
    settings.token = read_file(os.path.join(service_account_dir, "token"), "service account token").decode().strip()
    settings.ca_file = os.path.join(service_account_dir, "ca.crt")
    namespace = environ.get("POD_NAMESPACE", "")
    if not namespace:
        try:
            with open(os.path.join(service_account_dir, "namespace"), encoding="utf-8") as handle:
                namespace = handle.read().strip()
        except OSError:
            namespace = ""
    settings.namespace = namespace or "default"
    settings.source = f"in-cluster service account ({service_account_dir})"


def env_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``<scheme>_proxy`` variables by scheme; a lower-case name wins over its upper-case twin."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            proxies[name[:-6].lower()] = value
    for name, value in environ.items():
        if name.endswith("_proxy") and name == name.lower():
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies


def bypasses_proxy(server: str, no_proxy: str) -> bool:
    """Whether ``server`` matches a comma-separated no_proxy list: ``*``, a host or domain (a leading
    dot is optional; subdomains match), ``host:port``, an IP address or a CIDR range."""
    parsed = urllib.parse.urlsplit(server)
    host = (parsed.hostname or "").lower()
    if not host:
        return True
    host_and_port = parsed.netloc.lower().rsplit("@", 1)[-1]
    import ipaddress  # only when a proxy is in play

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for item in no_proxy.split(","):
        rule = item.strip().lower()
        if not rule:
            continue
        if rule == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(rule, strict=False):
                    return True
            except ValueError:
                pass
        entry = rule.lstrip(".")
        if host == entry or host.endswith("." + entry) or host_and_port == entry \
                or host_and_port.endswith("." + entry):
            return True
    return False


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def _proxy_settings(settings: Settings, params: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    proxies = env_proxies(environ)
    scheme = urllib.parse.urlsplit(settings.server).scheme or "https"
    proxy = params.get("proxy") or settings.proxy or proxies.get(scheme) or proxies.get("all")
    no_proxy = params.get("no_proxy")
    if no_proxy is None:
        no_proxy = proxies.get("no", "")
    if proxy and bypasses_proxy(settings.server, str(no_proxy or "")):
        proxy = None
    settings.proxy = proxy or None
    headers: dict[str, str] = {}
    option = dict(params.get("proxy_headers") or {})
    for key, variable in PROXY_HEADER_ENV.items():
        if option.get(key) is None and environ.get(variable):
            option[key] = environ[variable]
    unknown = sorted(set(option) - set(PROXY_HEADER_ENV))
    if unknown:
        raise KubeConfigError(f"proxy_headers has unknown keys {unknown}; allowed: {sorted(PROXY_HEADER_ENV)}")
    if settings.proxy:
        parsed = urllib.parse.urlsplit(settings.proxy if "://" in settings.proxy else "http://" + settings.proxy)
        if parsed.scheme in SOCKS_SCHEMES:
            settings.proxy_transport = f"a {parsed.scheme} proxy"
        elif parsed.scheme != "http":
            settings.proxy_transport = f"an {parsed.scheme} proxy"
        if parsed.username is not None:
            headers["Proxy-Authorization"] = _basic(
                f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}")
    # kubernetes.core passes these to urllib3 as headers for the proxy (sent on CONNECT).
    if option.get("proxy_basic_auth"):
        headers["Proxy-Authorization"] = _basic(str(option["proxy_basic_auth"]))
    if option.get("basic_auth"):
        headers["Authorization"] = _basic(str(option["basic_auth"]))
    if option.get("user_agent"):
        headers["User-Agent"] = str(option["user_agent"])
    settings.proxy_headers = headers


def resolve(params: Mapping[str, Any], environ: Mapping[str, str] | None = None, home: str | None = None,
            service_account_dir: str = SERVICE_ACCOUNT_DIR, cwd: str | None = None) -> Settings:
    """Module options (and their environment fallbacks) → connection settings.

    Precedence follows kubernetes.core: explicit options override what the kubeconfig says; with
    ``host`` and no ``kubeconfig`` no kubeconfig is read at all.
    """
    environ = os.environ if environ is None else environ
    home = home or environ.get("HOME") or os.path.expanduser("~")
    cwd = cwd or os.getcwd()
    settings = Settings()
    explicit_host = params.get("host")
    option = params.get("kubeconfig")
    if option or not explicit_host:
        merged = load_kubeconfig(option, environ, home, cwd)
        in_cluster = (not option and not merged.files and environ.get("KUBERNETES_SERVICE_HOST")
                      and os.path.exists(os.path.join(service_account_dir, "token")))
        if in_cluster:
            _in_cluster(settings, environ, service_account_dir)
        elif not merged.files and not isinstance(option, dict):
            looked = ", ".join(kubeconfig_paths(option, environ, home)[0])
            raise KubeConfigError(f"no kubeconfig found (looked at {looked}); pass kubeconfig, "
                                  "or host and api_key")
        else:
            if isinstance(option, dict):
                settings.kubeconfig_dict = option
            _apply_kubeconfig(settings, merged, params.get("context"))
    if explicit_host:
        settings.server = str(explicit_host)
    if params.get("api_key"):
        settings.token = str(params["api_key"])
        settings.credential_plugin = None
    if params.get("username") and params.get("password"):
        settings.basic = (str(params["username"]), str(params["password"]))
    if params.get("ca_cert"):
        settings.ca_file, settings.ca_data = str(params["ca_cert"]), None
    if params.get("client_cert"):
        settings.cert_file, settings.cert_data = str(params["client_cert"]), None
    if params.get("client_key"):
        settings.key_file, settings.key_data = str(params["client_key"]), None
    if params.get("validate_certs") is not None:
        settings.verify = bool(params["validate_certs"])
    if params.get("impersonate_user"):
        settings.impersonate_user = str(params["impersonate_user"])
    if params.get("impersonate_groups"):
        groups = params["impersonate_groups"]
        groups = groups.split(",") if isinstance(groups, str) else groups
        settings.impersonate_groups = [str(group).strip() for group in groups if str(group).strip()]
    if settings.impersonate_groups and not settings.impersonate_user:
        raise KubeConfigError("impersonate_groups needs impersonate_user: the API server impersonates groups "
                              "only together with a user")
    if not settings.server:
        raise KubeConfigError(f"no API server address in {settings.source}; pass host or a kubeconfig")
    if not settings.server.startswith(("https://", "http://")):
        settings.server = "https://" + settings.server
    settings.server = settings.server.rstrip("/")
    _proxy_settings(settings, params, environ)
    return settings
