# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Prometheus connection options shared by the modules that read Istio's metrics.

The options are documented once in plugins/doc_fragments/prometheus.py; every module that queries
Prometheus takes ``PROMETHEUS_ARG_SPEC`` into its argument spec and opens its client with ``connect``,
so the options mean the same thing, with the same checks and messages, in every module.
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

PROMETHEUS_ARG_SPEC: dict[str, dict[str, Any]] = {
    "prometheus_url": {"type": "str", "fallback": (env_fallback, [PROMETHEUS_URL_ENV])},
    "prometheus_token": {"type": "str", "no_log": True, "fallback": (env_fallback, [PROMETHEUS_TOKEN_ENV])},
    "prometheus_username": {"type": "str"},
    "prometheus_password": {"type": "str", "no_log": True},
    "prometheus_ca_cert": {"type": "path"},
    "prometheus_validate_certs": {"type": "bool", "default": True},
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
