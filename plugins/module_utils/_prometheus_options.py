# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Prometheus connection options of the modules that read Istio's metrics (those whose ``USES``
names ``prometheus``: canary_analysis, mesh_topology, release_report).

The options are documented once in plugins/doc_fragments/prometheus.py; ``_module.full_argument_spec``
adds ``PROMETHEUS_ARG_SPEC`` to such a module's options and ``Context.prometheus`` opens the client
with ``connect`` on first use, so the options mean the same thing, with the same checks and messages,
in every module.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.canary.istio.plugins.module_utils._prometheus import (
    PROMETHEUS_TOKEN_ENV,
    PROMETHEUS_URL_ENV,
    Prometheus,
    PrometheusError,
)

# The rest of the connection from the environment too, as AWX's Prometheus credential type
# (awx/credential_types/prometheus.json) injects it: the CA certificate as a file's path.
PROMETHEUS_USERNAME_ENV = "CANARY_ISTIO_PROMETHEUS_USERNAME"
PROMETHEUS_PASSWORD_ENV = "CANARY_ISTIO_PROMETHEUS_PASSWORD"
PROMETHEUS_CA_CERT_ENV = "CANARY_ISTIO_PROMETHEUS_CA_CERT"
PROMETHEUS_VALIDATE_CERTS_ENV = "CANARY_ISTIO_PROMETHEUS_VALIDATE_CERTS"

PROMETHEUS_ARG_SPEC: dict[str, dict[str, Any]] = {
    "prometheus_url": {"type": "str", "fallback": (env_fallback, [PROMETHEUS_URL_ENV])},
    "prometheus_token": {"type": "str", "no_log": True, "fallback": (env_fallback, [PROMETHEUS_TOKEN_ENV])},
    "prometheus_username": {"type": "str", "fallback": (env_fallback, [PROMETHEUS_USERNAME_ENV])},
    "prometheus_password": {"type": "str", "no_log": True, "fallback": (env_fallback, [PROMETHEUS_PASSWORD_ENV])},
    "prometheus_ca_cert": {"type": "path", "fallback": (env_fallback, [PROMETHEUS_CA_CERT_ENV])},
    "prometheus_validate_certs": {"type": "bool", "default": True,
                                  "fallback": (env_fallback, [PROMETHEUS_VALIDATE_CERTS_ENV])},
    "prometheus_headers": {"type": "dict"},
    "prometheus_timeout": {"type": "float", "default": 10.0},
}


def connect(params: dict[str, Any]) -> Prometheus:
    """A client for the Prometheus the options name; PrometheusError says what is missing or wrong."""
    if not params.get("prometheus_url"):
        raise PrometheusError(f"no Prometheus URL: set prometheus_url or the {PROMETHEUS_URL_ENV} environment "
                              "variable")
    if params["prometheus_timeout"] <= 0:
        raise PrometheusError(f"prometheus_timeout must be above 0 seconds, got {params['prometheus_timeout']}")
    return Prometheus(params["prometheus_url"], token=params.get("prometheus_token"),
                      username=params.get("prometheus_username"), password=params.get("prometheus_password"),
                      ca_cert=params.get("prometheus_ca_cert"), validate_certs=params["prometheus_validate_certs"],
                      headers=params.get("prometheus_headers"), timeout=params["prometheus_timeout"])


# The namespace option of the Prometheus modules: the service's namespace, as in every module of the
# collection. It once defaulted to "default" here, while the Kubernetes modules take the kubeconfig
# context's namespace; these modules read no kubeconfig, so from 2.0.0 they require it.
NAMESPACE_REQUIRED_FROM = "2.0.0"


def service_namespace(params: dict[str, Any], deprecate: Any) -> str:
    """The namespace option, or the old default ``default`` with a deprecation when it is not given."""
    if params.get("namespace") is not None:
        return params["namespace"]
    deprecate("namespace is not set, so the metrics of namespace 'default' are read, as before. canary.istio "
              f"{NAMESPACE_REQUIRED_FROM} requires namespace in the modules that read Prometheus (they have no "
              "kubeconfig context to take it from, as the Kubernetes modules do); set it", NAMESPACE_REQUIRED_FROM)
    return "default"
