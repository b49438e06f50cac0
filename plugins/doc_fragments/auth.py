# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options, named as in kubernetes.core so module_defaults can be shared.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file (or a list of paths, merged like E(KUBECONFIG)), or the kubeconfig content
        as a dictionary.
      - When not given, E(KUBECONFIG) and then C(~/.kube/config) are read. A list of files
        (separated by C(:)) is merged as kubectl merges it - the first file to name a cluster,
        context or user wins it, the C(current-context) comes from the first file that sets one,
        missing files are skipped, relative paths count from the file that holds them.
      - Inside a pod with no kubeconfig file, the pod's service account is used, with the namespace
        from E(POD_NAMESPACE), else the service account's C(namespace) file, else V(default).
      - Users with an C(exec) plugin or an C(auth-provider) are loaded with the C(kubernetes) Python package.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use; the current context when not given.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - The Kubernetes API server URL. Overrides the kubeconfig's server.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - A bearer token for the API server. Overrides the kubeconfig's credentials.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  username:
    description:
      - Basic authentication user name, for API servers that still allow it.
      - Can also be set with the E(K8S_AUTH_USERNAME) environment variable.
    type: str
  password:
    description:
      - Basic authentication password.
      - Can also be set with the E(K8S_AUTH_PASSWORD) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Verification is on unless the
        kubeconfig says C(insecure-skip-tls-verify) or this is set to V(false).
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate (PEM) to verify the API server with.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate (PEM) to authenticate with.
      - Can also be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key (PEM).
      - Can also be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of a proxy to reach the API server through. When not given, the kubeconfig cluster's
        C(proxy-url) is used, else E(HTTPS_PROXY)/E(https_proxy) (E(HTTP_PROXY) for an C(http://)
        server, else E(ALL_PROXY)).
      - An C(http://) proxy tunnels with CONNECT; credentials in its URL (C(http://user:pass@proxy:3128))
        are sent as C(Proxy-Authorization), as kubectl does.
      - C(socks5://), C(socks5h://), C(socks4://) and C(https://) proxies go through the C(kubernetes)
        Python package (SOCKS also needs C(PySocks)).
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  no_proxy:
    description:
      - Comma-separated hosts, C(.domain) suffixes, C(host:port), IP addresses or CIDR ranges (or C(*))
        reached without the proxy. When not given, E(NO_PROXY)/E(no_proxy) is used.
      - Can also be set with the E(K8S_AUTH_NO_PROXY) environment variable.
    type: str
  proxy_headers:
    description:
      - Headers sent to the proxy (on the CONNECT request), as in kubernetes.core.
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for the C(Proxy-Authorization) header.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH) environment variable.
        type: str
      basic_auth:
        description:
          - C(user:password) for an C(Authorization) header sent to the proxy.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) environment variable.
        type: str
      user_agent:
        description:
          - C(User-Agent) sent to the proxy.
          - Can also be set with the E(K8S_AUTH_PROXY_HEADERS_USER_AGENT) environment variable.
        type: str
  impersonate_user:
    description:
      - User name to act as (C(Impersonate-User)); the credentials used need the C(impersonate) verb.
        Overrides the kubeconfig user's C(as).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_USER) environment variable.
    type: str
  impersonate_groups:
    description:
      - Groups to act as (one C(Impersonate-Group) header each); needs O(impersonate_user).
      - Can also be set with the E(K8S_AUTH_IMPERSONATE_GROUPS) environment variable, as C(group1,group2).
    type: list
    elements: str
  request_timeout:
    description:
      - Seconds to wait for each answer of the API server before the task fails with a clear message.
    type: float
    default: 30
notes:
  - Requests go over one kept-alive connection using Python's standard library. Kubeconfig users
    that need an exec plugin or an auth provider are loaded with the C(kubernetes) Python package,
    and requests through SOCKS or HTTPS proxies are sent with it.
  - A request that changes something is sent once. When its answer is lost, the module does not
    send it again blindly; it re-reads, or fails saying the request may or may not have been applied.
"""

    ISTIO = r"""
options:
  api_version:
    description:
      - The C(networking.istio.io) version to use.
      - V(auto) uses the best version the cluster serves (v1, then v1beta1, then v1alpha3); it makes
        no discovery request when v1 is served, and one when it is not.
    type: str
    choices: [auto, v1, v1beta1, v1alpha3]
    default: auto
"""
