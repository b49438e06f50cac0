# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible glue shared by the modules: argument specs and the one failure path."""

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
    describe_error,
)
from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._istio import ISTIO_ARG_SPEC, IstioMissing
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError


def full_argument_spec(argument_spec: dict[str, Any], istio: bool = True) -> dict[str, Any]:
    """The module's own options plus the connection options (and api_version for Istio modules)."""
    # _client stays free of Ansible imports; its fallbacks name the environment as ("env", [...]).
    spec = {name: dict(option, fallback=(env_fallback, option["fallback"][1])) if "fallback" in option else option
            for name, option in AUTH_ARG_SPEC.items()}
    if istio:
        spec.update(ISTIO_ARG_SPEC)
    # One name, one meaning: a module option that reused a connection option's name would silently
    # replace it (``host`` once meant both the API server and the service host).
    clashes = sorted(set(spec) & set(argument_spec))
    if clashes:
        raise ValueError(f"module options {clashes} reuse the names of shared connection options; rename them")
    spec.update(argument_spec)
    return spec


def build_module(argument_spec: dict[str, Any], istio: bool = True, **kwargs: Any) -> AnsibleModule:
    kwargs.setdefault("supports_check_mode", True)
    return AnsibleModule(argument_spec=full_argument_spec(argument_spec, istio), **kwargs)


def execute(params: dict[str, Any], check_mode: bool, diff_mode: bool,
            body: Callable[[Context], dict[str, Any]],
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs a module body; every expected failure becomes ``failed: true`` with one clear ``msg``.
    ``progress`` receives progress lines of long operations (only an action plugin can show them)."""
    context: Context | None = None
    try:
        context = Context(params, check_mode, diff_mode)
        context.progress = progress
        result = body(context)
    except ModuleFailure as exc:
        result = {**exc.result, "failed": True, "msg": exc.msg}
    except (CanaryInputError, KubeConfigError, ConnectionFailed, IstioMissing) as exc:
        result = {"failed": True, "msg": str(exc)}
    except ApiError as exc:
        verb, resource, name, namespace, group = context.doing if context else ("access", "resource", None, None, "")
        result = {"failed": True, "msg": describe_error(exc, verb, resource, name, namespace, group),
                  "status": exc.status, "reason": exc.reason}
    except Exception as exc:  # a bug of ours: say so plainly, keep the traceback for -vvv
        result = {"failed": True, "msg": f"unexpected error in canary.istio: {type(exc).__name__}: {exc}",
                  "exception": traceback.format_exc()}
    finally:
        if context is not None:
            context.client.close()
    result.setdefault("changed", False)
    if context is not None:
        result.setdefault("api_requests", context.client.requests_made)
    return result


def run(module: AnsibleModule, body: Callable[[Context], dict[str, Any]]) -> None:
    """Module entry point: runs the body and exits through the one fail_json/exit_json path."""
    result = execute(module.params, module.check_mode, module._diff, body)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
