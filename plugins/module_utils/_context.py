# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What one module run needs, without Ansible: service code (``_traffic``, ``_resource``) takes a
:class:`Context` and raises :class:`ModuleFailure`; the Ansible glue in ``_module`` builds the one
and turns the other into ``fail_json``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import KubeClient, connect
from ansible_collections.canary.istio.plugins.module_utils._istio import Istio


class ModuleFailure(Exception):
    """A failure whose message is ready for the user; extra keys go into the result."""

    def __init__(self, msg: str, **result: Any):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Context:
    """What a module run needs: its parameters, the client, Istio access, and where an error happened."""

    def __init__(self, params: dict[str, Any], check_mode: bool, diff_mode: bool):
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.client: KubeClient = connect(params)
        self.istio = Istio(self.client, params.get("api_version") or "auto")
        # What the module was doing, for the error message of an API failure.
        self.doing: tuple[str, str, str | None, str | None, str] = ("access", "virtualservices", None, None,
                                                                    "networking.istio.io")
        # Reads shared by every service of one task (DestinationRules per namespace), and by its workers.
        self.cache = ReadCache()
        # Where progress lines go on long operations (the action plugin's display), if anywhere.
        self.progress: Callable[[str], None] | None = None

    def fork(self) -> Context:
        """A context for a worker thread: its own connection, the same settings, Istio version, cache
        and progress. Its requests are counted by :meth:`join`."""
        twin = Context.__new__(Context)
        twin.__dict__.update(self.__dict__)
        twin.client = self.client.twin()
        twin.istio = self.istio.twin(twin.client)
        return twin

    def join(self, twin: Context) -> None:
        """Closes a worker's connection and counts its requests as this context's."""
        twin.client.close()
        self.client.requests_made += twin.client.requests_made
        twin.client.requests_made = 0

    def at(self, verb: str, resource: str, name: str | None, namespace: str | None,
           api_group: str = "networking.istio.io") -> Context:
        self.doing = (verb, resource, name, namespace, api_group)
        return self

    @property
    def default_namespace(self) -> str:
        return self.client.namespace


class ReadCache:
    """Values read once per task, whichever worker asks first; the others wait for that read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Any, Any] = {}
        self._pending: dict[Any, threading.Lock] = {}

    def holds(self, key: Any) -> bool:
        """Whether ``key`` has been read already in this task."""
        with self._lock:
            return key in self._values

    def get(self, key: Any, read: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = read()  # an error is not cached: the next asker reads again
            with self._lock:
                self._values[key] = value
                self._pending.pop(key, None)
            return value
