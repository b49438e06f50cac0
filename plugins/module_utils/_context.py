# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What one module run needs, without Ansible: service code (``_traffic``, ``_resource``) and every
module's ``execute(ctx)`` take a :class:`Context` and raise :class:`ModuleFailure` or an input error;
the glue in ``_module`` builds the one and turns the others into ``fail_json``.

A module declares in ``USES`` which services it talks to (:data:`KUBERNETES`, :data:`ISTIO`,
:data:`PROMETHEUS`); the context opens each client on first use only, and refuses one the module did
not declare, so a module's options (taken from ``USES``) and the clients it opens cannot drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

KUBERNETES = "kubernetes"
ISTIO = "istio"
PROMETHEUS = "prometheus"
SERVICES = (KUBERNETES, ISTIO, PROMETHEUS)


class ModuleFailure(Exception):
    """A failure whose message is ready for the user; extra keys go into the result."""

    def __init__(self, msg: str, **result: Any):
        super().__init__(msg)
        self.msg = msg
        self.result = result


class Context:
    """What a module run needs: its parameters and mode, the clients it declared (each opened on first
    use), a read cache, and where warnings and progress lines go."""

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff_mode: bool = False,
                 uses: tuple[str, ...] = (KUBERNETES, ISTIO)):
        unknown = sorted(set(uses) - set(SERVICES))
        if unknown:
            raise ValueError(f"USES names unknown services {unknown}; known: {list(SERVICES)}")
        self.params = params
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.uses = tuple(uses)
        self._clients: dict[str, Any] = {}
        # Reads shared by every service of one task (DestinationRules per namespace), and by its workers.
        self.cache = ReadCache()
        # Where progress lines go on long operations (the action plugin's display), if anywhere.
        self.progress: Callable[[str], None] | None = None
        # Warnings and deprecations for the user; the glue shows them the Ansible way.
        self.warnings: list[str] = []
        self.deprecations: list[dict[str, str]] = []

    def _open(self, service: str, make: Callable[[], Any]) -> Any:
        """The client of a declared service, made on first use."""
        if self._clients.get(service) is None:
            if service not in self.uses:
                raise RuntimeError(f"the module opens a {service} client but does not declare it in USES")
            self._clients[service] = make()
        return self._clients[service]

    @property
    def client(self) -> Any:
        """The Kubernetes API client (``_client.KubeClient``), connected on first use."""
        def make() -> Any:
            from ansible_collections.canary.istio.plugins.module_utils._client import connect

            return connect(self.params)
        return self._open(KUBERNETES, make)

    @property
    def istio(self) -> Any:
        """Istio's resources (``_istio.Istio``) over the Kubernetes client, its API version negotiated once."""
        def make() -> Any:
            from ansible_collections.canary.istio.plugins.module_utils._istio import Istio

            return Istio(self.client, self.params.get("api_version") or "auto")
        return self._open(ISTIO, make)

    @property
    def prometheus(self) -> Any:
        """The Prometheus HTTP API client (``_prometheus.Prometheus``), opened on first use."""
        def make() -> Any:
            from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import connect

            return connect(self.params)
        return self._open(PROMETHEUS, make)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def deprecate(self, message: str, version: str) -> None:
        self.deprecations.append({"msg": message, "version": version, "collection_name": "canary.istio"})

    def requests_made(self, service: str) -> int:
        """Requests sent to a service so far (0 if its client was never opened)."""
        client = self._clients.get(service)
        return client.requests_made if client is not None else 0

    def close(self) -> None:
        if self._clients.get(KUBERNETES) is not None:
            self._clients[KUBERNETES].close()

    def fork(self) -> Context:
        """A context for a worker thread: its own connection, the same settings, Istio version, cache
        and progress. Its requests are counted by :meth:`join`."""
        twin = Context.__new__(Context)
        twin.__dict__.update(self.__dict__)
        client = self.client.twin()
        twin._clients = {**self._clients, KUBERNETES: client, ISTIO: self.istio.twin(client)}
        return twin

    def join(self, twin: Context) -> None:
        """Closes a worker's connection and counts its requests as this context's."""
        twin.client.close()
        self.client.requests_made += twin.client.requests_made
        twin.client.requests_made = 0

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
