# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # How the modules that read Istio's metrics reach Prometheus (plugins/module_utils/_prometheus_options.py).
    DOCUMENTATION = r"""
options:
  prometheus_url:
    description:
      - Prometheus' base URL, for example V(http://prometheus.istio-system:9090).
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_URL) environment variable.
    type: str
  prometheus_token:
    description:
      - Bearer token for Prometheus (or a proxy in front of it).
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_TOKEN) environment variable.
    type: str
  prometheus_username:
    description:
      - User name for basic authentication to Prometheus.
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_USERNAME) environment variable.
    type: str
  prometheus_password:
    description:
      - Password for basic authentication to Prometheus.
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_PASSWORD) environment variable.
    type: str
  prometheus_ca_cert:
    description:
      - CA certificate file (PEM) to verify an https Prometheus URL with.
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_CA_CERT) environment variable (the AWX Prometheus
        credential type sets it to the file it writes).
    type: path
  prometheus_validate_certs:
    description:
      - Whether to verify Prometheus' TLS certificate.
      - Can also be set with the E(CANARY_ISTIO_PROMETHEUS_VALIDATE_CERTS) environment variable.
    type: bool
    default: true
  prometheus_headers:
    description: Extra HTTP headers for every request to Prometheus (for example a tenant header).
    type: dict
  prometheus_timeout:
    description: Seconds to wait for each answer of Prometheus.
    type: float
    default: 10
"""

    # The modules that read a base and a canary (canary_analysis, release_report): how their metrics name them.
    PER_VERSION_SERVICES = r"""
options:
  per_version_services:
    description:
      - Each version is a Service of its own, C(<service>-<version>) (Istio's C(bookinfo-versions.yaml)), as the
        backends of a Gateway API HTTPRoute are; Istio's metrics then name that Service as the destination service,
        so the base's requests are read for C(<service>-<base>) and the canary's for C(<service>-<canary>).
    type: bool
    default: false
    version_added: 0.3.0
"""
