# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Service host names as VirtualServices and DestinationRules spell them.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError


def _host_labels(host: str) -> list[str]:
    return host.strip().rstrip(".").lower().split(".")


def same_host(first: Any, second: Any) -> bool:
    """Whether two Istio host names denote the same service.

    Names compare case-insensitively. A short name matches a longer one when its DNS
    labels are the leading labels of the longer one, the way Kubernetes resolves
    namespace-relative names: ``reviews`` and ``reviews.default`` both match
    ``reviews.default.svc.cluster.local``; ``reviews.prod`` does not. Non-strings never match.
    """
    if not isinstance(first, str) or not isinstance(second, str) or not first.strip() or not second.strip():
        return False
    first_labels = _host_labels(first)
    second_labels = _host_labels(second)
    if first_labels == second_labels:
        return True
    shorter, longer = sorted((first_labels, second_labels), key=len)
    return longer[: len(shorter)] == shorter


def service_host(vs: dict[str, Any], given: str | None) -> str:
    """The service host a canary step moves: ``given``, else the VirtualService's only host,
    else the one of its hosts named like the VirtualService."""
    if given:
        return given
    hosts = (vs.get("spec") or {}).get("hosts") or []
    if len(hosts) == 1 and isinstance(hosts[0], str):
        return hosts[0]
    name = vs["metadata"]["name"]
    for host in hosts:
        if isinstance(host, str) and same_host(host, name):
            return host
    raise CanaryInputError(f"VirtualService {vs['metadata'].get('namespace')}/{name} has hosts {hosts!r}; "
                           "say which service to move with service_host")
