# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Applying Kubernetes manifests: loading, least discovery, server-side apply, waiting.

Kinds are resolved by asking only about the group-versions the manifests use (one request
each), never by a discovery of the whole cluster.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, KubeClient
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

FIELD_MANAGER = "canary.istio"
YAML_SUFFIXES = (".yaml", ".yml", ".json")
# Objects others depend on go first (and last when deleting).
KIND_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "ConfigMap": 3, "Secret": 3}


def server_side_apply(client: Any, path: str, doc: dict[str, Any], dry_run: bool, force: bool = False) -> Any:
    """Applies ``doc`` at ``path`` as canary.istio's field manager; the object as stored (or as the dry run
    would store it)."""
    return client.request("PATCH", path, body=json.dumps(doc), content_type="application/apply-patch+yaml",
                          query={"fieldManager": FIELD_MANAGER, "force": "true" if force else None,
                                 "dryRun": "All" if dry_run else None})


def _parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        raise CanaryInputError(f"{source} is not valid YAML: {exc}") from None
    result = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            result.extend(doc["items"])
        else:
            result.append(doc)
    return result


def load_documents(src: list[str], definition: Any) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) for every document of the given files, directories and inline definitions."""
    loaded: list[tuple[str, Any]] = []
    for path in src:
        if os.path.isdir(path):
            files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(YAML_SUFFIXES))
            if not files:
                raise CanaryInputError(f"directory {path!r} holds no .yaml, .yml or .json file")
        elif os.path.isfile(path):
            files = [path]
        else:
            raise CanaryInputError(f"src {path!r} does not exist (give a manifest file or a directory of them)")
        for file in files:
            try:
                with open(file, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise CanaryInputError(f"cannot read manifest {file!r}: {exc}") from None
            loaded.extend((file, doc) for doc in _parse_documents(text, file))
    if definition is not None:
        items = definition if isinstance(definition, list) else [definition]
        for index, item in enumerate(items):
            source = f"definition[{index}]"
            if isinstance(item, str):
                loaded.extend((source, doc) for doc in _parse_documents(item, source))
            else:
                loaded.append((source, item))
    for source, doc in loaded:
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") or \
                not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            raise CanaryInputError(f"{source}: every document needs apiVersion, kind and metadata.name "
                                   f"(got {json.dumps(doc, default=str)[:200]})")
    if not loaded:
        raise CanaryInputError("no manifest given: set src (files or directories) or definition")
    return loaded


class Discovery:
    """kind → resource for the group-versions used, one request per group-version."""

    def __init__(self, client: KubeClient):
        self.client = client
        self.cache: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests = 0

    def resource(self, api_version: str, kind: str) -> dict[str, Any]:
        if api_version not in self.cache:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            self.requests += 1
            try:
                listing = self.client.get(path)
            except ApiError as exc:
                if exc.status == 404:
                    raise CanaryInputError(f"the cluster does not serve apiVersion {api_version!r} "
                                           f"(needed for kind {kind}); is its CRD installed?") from None
                raise
            self.cache[api_version] = {r["kind"]: r for r in listing.get("resources", []) if "/" not in r["name"]}
        found = self.cache[api_version].get(kind)
        if not found:
            raise CanaryInputError(f"the cluster serves no kind {kind!r} in {api_version!r}")
        return found


def object_path(api_version: str, resource: dict[str, Any], namespace: str | None, name: str | None = None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{resource['name']}" if resource.get("namespaced") \
        else f"{prefix}/{resource['name']}"
    return f"{path}/{name}" if name else path


def with_protocol_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """Service and container ports with ``protocol`` filled in (the API's own default, TCP).

    Server-side apply on Kubernetes before 1.21 rejects a port list whose elements omit the
    ``protocol`` key of the list's merge key (a 500 error naming the missing key);
    filling in the default the API server would store anyway keeps the apply idempotent everywhere.
    """
    doc = copy.deepcopy(doc)
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return doc
    if doc.get("kind") == "Service":
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
    pod_spec = ((spec.get("template") or {}).get("spec")) if isinstance(spec.get("template"), dict) else None
    if doc.get("kind") == "Pod":
        pod_spec = spec
    if isinstance(pod_spec, dict):
        for key in ("containers", "initContainers"):
            for container in pod_spec.get(key) or []:
                for port in (container or {}).get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
    return doc


def ordered(docs: list[tuple[str, dict[str, Any]]], reverse: bool = False) -> list[tuple[str, dict[str, Any]]]:
    result = sorted(docs, key=lambda item: KIND_ORDER.get(item[1]["kind"], 10))
    return list(reversed(result)) if reverse else result


def deployment_problems(deployment: dict[str, Any]) -> list[str]:
    """What keeps a Deployment from being rolled out and available; [] when it is."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    want = spec.get("replicas", 1)
    problems = []
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        problems.append(f"observedGeneration {status.get('observedGeneration', 0)} < generation {generation}")
    for field in ("updatedReplicas", "availableReplicas", "readyReplicas"):
        if status.get(field, 0) != want:
            problems.append(f"{field} {status.get(field, 0)}/{want}")
    available = [c for c in status.get("conditions") or [] if c.get("type") == "Available"]
    if want and (not available or available[0].get("status") != "True"):
        reason = f": {available[0].get('reason')} {available[0].get('message', '')}".rstrip() if available else ""
        problems.append(f"condition Available is not True{reason}")
    return problems


def wait_for_deployments(get: Callable[[str, str], dict[str, Any]], targets: list[tuple[str, str]],
                         timeout: float, interval: float = 0.25) -> dict[str, list[str]]:
    """Polls until every (namespace, name) Deployment is ready; returns the problems left (empty when ready)."""
    deadline = time.monotonic() + timeout
    pending = list(targets)
    problems: dict[str, list[str]] = {}
    while True:
        still = []
        for namespace, name in pending:
            try:
                found = deployment_problems(get(namespace, name))
            except ApiError as exc:
                found = [f"cannot read it: {exc.status} {exc.message}"]
            if found:
                problems[f"{namespace}/{name}"] = found
                still.append((namespace, name))
            else:
                problems.pop(f"{namespace}/{name}", None)
        pending = still
        if not pending or time.monotonic() >= deadline:
            return problems
        time.sleep(interval)
