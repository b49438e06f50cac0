# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one action plugin of every canary.istio module: runs the module inside the controller on local
connections, and lets a module show its result to the person watching (a table, a verdict line).

A module run the usual way costs a new Python process, Ansible's module wrapper and the import of
``ansible.module_utils.basic`` - about 0.3 s per task, more than the API requests themselves.
When the task would run on the controller anyway (a local connection, no become, no task
``environment``, not async), the module's own ``execute(ctx)`` is called in the worker process
Ansible already has, with the arguments validated against the module's own argument spec. In
every other case - or with ``CANARY_ISTIO_IN_PROCESS=0`` on the controller - the module is executed
as usual. Both paths run the same code and return the same result.

Hooks for subclasses: ``MODULE`` (the module's short name), ``PROGRESS`` (show its progress lines),
``CONTROLLER_ONLY`` (always run in the controller, whatever the connection: traffic_probe measures
from where Ansible runs), and ``show(result)`` (print something once the result is in).

Options of the action group that a module does not take (the Kubernetes connection options, for a
module that talks only to Prometheus) are dropped before the module sees them, so ``module_defaults``
for the group can set them once for every module (doc fragment ``attributes``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.canary.istio.plugins.module_utils._module import GROUP_OPTIONS, call, module_argument_spec

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local", "ansible.legacy.local")
display = Display()


def show_progress(line: str) -> None:
    """A progress line for the person watching: on stdout with the usual text callbacks, on stderr
    when stdout is a machine-readable document (the json/jsonl callbacks), which a line would break."""
    from ansible import constants

    callback = str(getattr(constants, "DEFAULT_STDOUT_CALLBACK", "") or "")
    display.display(line, stderr=callback.rsplit(".", 1)[-1] in ("json", "jsonl"))


def _module_name(short: str) -> str:
    return f"ansible_collections.canary.istio.plugins.modules.{short}"


class InProcessModuleAction(ActionBase):
    """Subclasses set MODULE to the module's short name."""

    MODULE = ""
    TRANSFERS_FILES = False
    # Whether the module's progress lines are shown (as traffic_probe's are) while it runs.
    PROGRESS = False
    # Whether the module always runs in the controller, whatever the task's connection.
    CONTROLLER_ONLY = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.MODULE:
            return
        # The module's code is imported with its action plugin. ansible-playbook loads the action
        # plugin's class itself before it forks a task's worker, so every worker inherits the code
        # compiled once; imported in the worker, Ansible's collection loader compiles every file of
        # it from source again for every task (no bytecode cache), about 40 ms of traffic_split's.
        try:
            importlib.import_module(_module_name(cls.MODULE))
        except ImportError:
            pass  # run() imports it again, where the error is reported as the task's

    def show(self, result: dict[str, Any]) -> None:
        """Hook: show something of a finished task's result to the person watching (both paths)."""

    def _in_process(self) -> bool:
        if self.CONTROLLER_ONLY:
            return True
        if os.environ.get("CANARY_ISTIO_IN_PROCESS", "1") == "0":
            return False
        transport = getattr(self._connection, "transport", "") or ""
        return (transport in LOCAL_TRANSPORTS and not self._play_context.become
                and not any(self._task.environment or []) and not self._task.async_val)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        module = importlib.import_module(_module_name(self.MODULE))
        argument_spec = module_argument_spec(module)
        args = {name: value for name, value in self._task.args.items()
                if name in argument_spec or name not in GROUP_OPTIONS}
        if not self._in_process():
            result.update(self._execute_module(module_name=f"canary.istio.{self.MODULE}",
                                               module_args=args, task_vars=task_vars))
        else:
            validation, params = self._validated(args, argument_spec)
            progress = show_progress if self.PROGRESS else None
            outcome = call(module, params, bool(self._task.check_mode), bool(self._task.diff), progress)
            for warning in outcome.pop("warnings", []):
                self._display.warning(warning)
            for deprecation in outcome.pop("deprecations", []):
                self._display.deprecated(deprecation["msg"], version=deprecation["version"],
                                         collection_name=deprecation["collection_name"])
            result.update(hide_secrets(outcome, validation._no_log_values))
        self.show(result)
        return result

    def _validated(self, task_args: dict[str, Any], argument_spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The task's arguments checked against the module's spec, as ActionBase.validate_argument_spec
        does, but on a plain copy of them: the task's values carry Ansible's data tags, which every deep
        copy (the validator makes one) and every hand-over to the controller's main process pickle again
        (a second or more for a lockstep task of thousands of services). The module needs the values
        only."""
        args = plain(task_args)
        validation = ArgumentSpecValidator(argument_spec).validate(args)
        if validation.error_messages:
            error, msg = validation.errors[0], validation.errors.msg
            if isinstance(error, UnsupportedError):
                msg = f"Unsupported parameters for (canary.istio.{self.MODULE}) module: {msg}"
            raise AnsibleActionFail(msg, obj=self._task.args)
        return validation, {**args, **validation.validated_parameters}


def plain(value: Any) -> Any:
    """A copy of task arguments in Python's own types: strings, numbers, dicts and lists without
    Ansible's data tags (or unsafe markers), the values unchanged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain(item) for item in value)
    return value


def hide_secrets(outcome: Any, secrets: Iterable[str]) -> Any:
    """The result with every no_log value masked, as AnsibleModule.exit_json does. remove_values copies
    the whole result, every string with its tags (tens of milliseconds per hundred services in a
    lockstep result), so it runs only when it could change something."""
    secrets = [str(secret) for secret in secrets if secret not in (None, "")]
    return remove_values(outcome, set(secrets)) if _may_hold(outcome, secrets) else outcome


def _may_hold(outcome: Any, secrets: list[str]) -> bool:
    """Whether remove_values could change anything: a string, or a number written out, that contains
    a secret (remove_values masks values, not mapping keys), or a value of another type than those
    JSON has (remove_values turns a tuple into a list, for one)."""
    pending = [outcome]
    while pending:
        value = pending.pop()
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            text = value if isinstance(value, str) else str(value)
            if any(secret in text for secret in secrets):
                return True
        elif isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif value is not None and not isinstance(value, bool):
            return True
    return False
