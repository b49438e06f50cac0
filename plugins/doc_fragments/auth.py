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
      - Path to a kubeconfig file, or the kubeconfig content as a dictionary.
      - When not given, C(KUBECONFIG) and then C(~/.kube/config) are read; inside a pod with no
        kubeconfig, the pod's service account is used.
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
      - URL of an HTTP proxy to reach the API server through (HTTPS is tunnelled with CONNECT).
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  request_timeout:
    description:
      - Seconds to wait for each answer of the API server before the task fails with a clear message.
    type: float
    default: 30
notes:
  - Requests go over one kept-alive connection using Python's standard library. Kubeconfig users
    that need an exec plugin or an auth provider are loaded with the C(kubernetes) Python package.
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
