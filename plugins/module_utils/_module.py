# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible glue shared by every module: the argument spec a module's ``USES`` implies, and the one
way a module's ``execute(ctx)`` is run (typed errors in, one failure message out), whether by the
module's own ``main`` or in the controller by the action plugin (plugin_utils/_in_process.py)."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.canary.istio.plugins.module_utils._client import (
    AUTH_ARG_SPEC,
    ApiError,
    ConnectionFailed,
    KubeConfigError,
    describe_api_error,
)
from ansible_collections.canary.istio.plugins.module_utils._context import (
    ISTIO,
    KUBERNETES,
    PROMETHEUS,
    Context,
    ModuleFailure,
)
from ansible_collections.canary.istio.plugins.module_utils._istio import ISTIO_ARG_SPEC, IstioMissing
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

KUBERNETES_AND_ISTIO = (KUBERNETES, ISTIO)
# The options of the action group (module_defaults for group/canary.istio.istio): a module that does not
# take one of them gets it dropped by its action plugin (documented once, in attributes.GROUP).
GROUP_OPTIONS = frozenset(AUTH_ARG_SPEC) | frozenset(ISTIO_ARG_SPEC)


def full_argument_spec(argument_spec: dict[str, Any], uses: tuple[str, ...] = KUBERNETES_AND_ISTIO
                       ) -> dict[str, Any]:
    """The module's own options plus the connection options of the services it uses."""
    spec: dict[str, Any] = {}
    if KUBERNETES in uses:
        # _client stays free of Ansible imports; its fallbacks name the environment as ("env", [...]).
        spec.update({name: dict(option, fallback=(env_fallback, option["fallback"][1])) if "fallback" in option
                     else option for name, option in AUTH_ARG_SPEC.items()})
    if ISTIO in uses:
        spec.update(ISTIO_ARG_SPEC)
    if PROMETHEUS in uses:
        from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import PROMETHEUS_ARG_SPEC

        spec.update(PROMETHEUS_ARG_SPEC)
    # One name, one meaning: a module option that reused a connection option's name would silently
    # replace it (``host`` once meant both the API server and the service host).
    clashes = sorted(set(spec) & set(argument_spec))
    if clashes:
        raise ValueError(f"module options {clashes} reuse the names of shared connection options; rename them")
    spec.update(argument_spec)
    return spec


def _reported_errors() -> tuple[type[Exception], ...]:
    """Errors whose message is complete for the user. The Prometheus and analysis ones are imported
    here, on the failure path only, so a Kubernetes module does not import the Prometheus client."""
    from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import AnalysisQueryError
    from ansible_collections.canary.istio.plugins.module_utils._prometheus import PrometheusError
    from ansible_collections.canary.istio.plugins.module_utils._topology import TopologyError

    return (CanaryInputError, KubeConfigError, ConnectionFailed, IstioMissing, AnalysisQueryError,
            PrometheusError, TopologyError)


def execute(params: dict[str, Any], check_mode: bool, diff_mode: bool,
            body: Callable[[Context], dict[str, Any]],
            progress: Callable[[str], None] | None = None,
            uses: tuple[str, ...] = KUBERNETES_AND_ISTIO) -> dict[str, Any]:
    """Runs a module body; every expected failure becomes ``failed: true`` with one clear ``msg``.
    ``progress`` receives progress lines of long operations (only an action plugin can show them).
    The result counts the requests made to each service the module uses (``api_requests``,
    ``prometheus_requests``) and carries the body's ``warnings`` and ``deprecations``."""
    context = Context(params, check_mode, diff_mode, uses)
    context.progress = progress
    try:
        result = body(context)
    except ModuleFailure as exc:
        result = {**exc.result, "failed": True, "msg": exc.msg}
    except ApiError as exc:
        result = {"failed": True, "msg": describe_api_error(exc),
                  "status": exc.status, "reason": exc.reason}
    except Exception as exc:
        if isinstance(exc, _reported_errors()):
            result = {"failed": True, "msg": str(exc)}
        else:  # a bug of ours: say so plainly, keep the traceback for -vvv
            result = {"failed": True, "msg": f"unexpected error in canary.istio: {type(exc).__name__}: {exc}",
                      "exception": traceback.format_exc()}
    finally:
        context.close()
    result.setdefault("changed", False)
    if KUBERNETES in uses:
        result.setdefault("api_requests", context.requests_made(KUBERNETES))
    if PROMETHEUS in uses:
        result["prometheus_requests"] = context.requests_made(PROMETHEUS)
    if context.warnings:
        result["warnings"] = [*result.get("warnings", []), *context.warnings]
    if context.deprecations:
        result["deprecations"] = [*result.get("deprecations", []), *context.deprecations]
    return result


def run(argument_spec: dict[str, Any], uses: tuple[str, ...], body: Callable[[Context], dict[str, Any]]) -> None:
    """A module's ``main``: validates its options, runs the body, and exits through the one
    fail_json/exit_json path with the body's warnings and deprecations."""
    module = AnsibleModule(argument_spec=full_argument_spec(argument_spec, uses), supports_check_mode=True)
    result = execute(module.params, module.check_mode, module._diff, body, uses=uses)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    for deprecation in result.pop("deprecations", []):
        module.deprecate(deprecation["msg"], version=deprecation["version"],
                         collection_name=deprecation["collection_name"])
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


def module_argument_spec(module: Any) -> dict[str, Any]:
    """The full argument spec of a module (its file imported as a Python module)."""
    return full_argument_spec(module.ARGUMENT_SPEC, module.USES)


def call(module: Any, params: dict[str, Any], check_mode: bool = False, diff_mode: bool = False,
         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs a module's ``execute`` on validated parameters, as its action plugin does in the controller."""
    return execute(params, check_mode, diff_mode, module.execute, progress, module.USES)
