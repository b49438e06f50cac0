# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What one module run needs, without Ansible: service code (``_traffic``, ``_resource``) takes a
:class:`Context` and raises :class:`ModuleFailure`; the Ansible glue in ``_module`` builds the one
and turns the other into ``fail_json``."""

from __future__ import annotations

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

    def at(self, verb: str, resource: str, name: str | None, namespace: str | None,
           api_group: str = "networking.istio.io") -> Context:
        self.doing = (verb, resource, name, namespace, api_group)
        return self

    @property
    def default_namespace(self) -> str:
        return self.client.namespace
