# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Prometheus connection options and the one exit path shared by the modules that read
Istio's metrics (canary_analysis, mesh_topology, release_report).

The options are documented once in plugins/doc_fragments/prometheus.py; every module that queries
Prometheus takes ``PROMETHEUS_ARG_SPEC`` into its argument spec and opens its client with ``connect``,
so the options mean the same thing, with the same checks and messages, in every module. Their bodies
run through ``run_body`` (typed errors in, one failure message out, as ``_module.execute`` does for the
Kubernetes modules) and their module entry point is ``run``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.canary.istio.plugins.module_utils._context import ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import AnalysisInputError, AnalysisQueryError
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


class Session:
    """What a Prometheus module's body needs: its parameters, and a client opened on first use."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self._client: Prometheus | None = None

    @property
    def client(self) -> Prometheus:
        if self._client is None:
            self._client = connect(self.params)
        return self._client

    @property
    def requests_made(self) -> int:
        return self._client.requests_made if self._client is not None else 0


def run_body(params: dict[str, Any], body: Callable[[Session], dict[str, Any]],
             expected: tuple[type[Exception], ...] = ()) -> dict[str, Any]:
    """Runs a module body; every expected failure (ours, or the module's own ``expected`` errors)
    becomes ``failed: true`` with one clear ``msg``.

    These modules only read, so ``changed`` is always false; ``prometheus_requests`` counts the
    HTTP requests the body made."""
    session = Session(params)
    try:
        result = body(session)
    except ModuleFailure as exc:
        result = {**exc.result, "failed": True, "msg": exc.msg}
    except (AnalysisInputError, AnalysisQueryError, PrometheusError, *expected) as exc:
        result = {"failed": True, "msg": str(exc)}
    except Exception as exc:  # a bug of ours: say so plainly, keep the traceback for -vvv
        result = {"failed": True, "msg": f"unexpected error in canary.istio: {type(exc).__name__}: {exc}",
                  "exception": traceback.format_exc()}
    result["changed"] = False
    result["prometheus_requests"] = session.requests_made
    return result


def run(argument_spec: dict[str, Any], module_execute: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Module entry point: the one fail_json/exit_json path, with the body's warnings."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = module_execute(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
