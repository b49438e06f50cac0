# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where a canary stands, from objects already read: routes with their weights, and the
Deployments that back each subset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.hosts import Hosts
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import referenced_subsets
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import route_weights


def labels_match(selector: Mapping | None, labels: Mapping) -> bool:
    """Whether ``labels`` carry every key/value of ``selector`` (an empty selector matches all)."""
    return all(labels.get(key) == value for key, value in (selector or {}).items())


def routes_report(spec: Mapping, hosts: Hosts | None = None) -> list[dict[str, Any]]:
    """The http routes in order with name, match and weights, read as Istio routes them
    (:func:`weights.route_weights`). A route whose weights Istio would refuse has ``weights: None``
    and ``problem`` saying why: never an empty mapping that would read as "no route"."""
    routes = []
    for index, route in enumerate(spec.get("http") or []):
        entry = {"index": index, "name": route.get("name"), "match": route.get("match") or []}
        try:
            entry["weights"] = route_weights(route, hosts) if route.get("route") is not None else {}
        except CanaryInputError as error:
            entry["weights"] = None
            entry["problem"] = str(error)
        routes.append(entry)
    return routes


def subsets_report(spec: Mapping, host: str, rules: list[Mapping], selector: Mapping | None,
                   deployments: list[dict[str, Any]], hosts: Hosts | None = None) -> list[dict[str, Any]]:
    """Each subset of ``rules`` (the DestinationRules Istio merges for the host) with its labels, the
    Deployments backing it, and whether a route uses it.

    A Deployment backs a subset when its pod template labels match both the Service selector
    and the subset's labels. A subset name defined twice is reported once (the first, as Istio merges).
    """
    routed = referenced_subsets(spec, host, hosts)
    report = []
    seen = set()
    for subset in [s for rule in rules for s in (rule.get("spec") or {}).get("subsets") or []]:
        if not isinstance(subset, Mapping) or subset.get("name") in seen:
            continue
        seen.add(subset.get("name"))
        labels = subset.get("labels") or {}
        backing = []
        for deployment in deployments:
            template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
            pod_labels = template.get("labels") or {}
            if labels_match(selector, pod_labels) and labels_match(labels, pod_labels):
                status = deployment.get("status") or {}
                backing.append({"name": deployment["metadata"]["name"],
                                "replicas": (deployment.get("spec") or {}).get("replicas", 1),
                                "available_replicas": status.get("availableReplicas", 0)})
        report.append({"name": subset.get("name"), "labels": labels,
                       "deployments": [d["name"] for d in backing], "workloads": backing,
                       "routed": subset.get("name") in routed})
    return report
