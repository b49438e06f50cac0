# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""JSON Patches (RFC 6902) that change only what we own, guarded by ``test`` ops so a
concurrent edit makes the PATCH fail instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryInputError,
    is_int,
    json_copy,
    require_mapping,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import (
    http_list,
    route_destinations,
    route_label,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.weights import istio_weight_problems, weight_problems


def json_pointer_token(key: str) -> str:
    """Escape one JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _object_parts(vs_object: Any) -> tuple[Mapping, list]:
    hint = "pass the VirtualService object as read from the API server"
    require_mapping(vs_object, "VirtualService", hint)
    metadata = vs_object.get("metadata", {})
    if metadata is None:
        metadata = {}
    require_mapping(metadata, "VirtualService metadata", hint)
    spec = vs_object.get("spec")
    require_mapping(spec, "VirtualService spec", hint)
    return metadata, http_list(spec)


def _resource_version_test(metadata: Mapping) -> list[dict]:
    version = metadata.get("resourceVersion")
    if isinstance(version, str) and version:
        return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
    return []


def build_route_patch(vs_object: Any, route_index: Any, new_route: Any, *, restoring: bool = False) -> list[dict]:
    """JSON Patch (RFC 6902) that replaces only ``/spec/http/<i>/route``.

    Guards come first: ``test`` of ``metadata.resourceVersion`` (when the object has one),
    of the route's current destination list and of its name, so a concurrent edit makes
    the PATCH fail instead of being overwritten. Only the destination list of
    ``new_route`` is written; its other fields are ignored. Returns ``[]`` when the
    destinations are unchanged. Raises when ``new_route`` would break the weight rule.
    """
    metadata, http = _object_parts(vs_object)
    if not is_int(route_index) or not 0 <= route_index < len(http):
        raise CanaryInputError(
            f"route index {show(route_index)} is not an index of spec.http (0..{len(http) - 1}); "
            "use find_http_route to locate the route"
        )
    where = f"http route {route_label(route_index, http[route_index])}"
    new_destinations = route_destinations(new_route, f"new {where}")
    # Weights we choose follow our rule; a route put back as it was stored need only be valid for Istio.
    check = istio_weight_problems if restoring else weight_problems
    problems = check(new_route, f"new {where}")
    if problems:
        rule = ("Istio rejects" if restoring else
                "break the rule for weights this collection writes (integers 0..100 summing to 100)")
        raise CanaryInputError("; ".join(problems) + f"; refusing to write weights that {rule}")
    old_route = http[route_index]
    base_path = f"/spec/http/{route_index}"
    if "route" in old_route and old_route["route"] == new_destinations:
        return []
    ops = _resource_version_test(metadata)
    if "route" in old_route:
        ops.append({"op": "test", "path": base_path + "/route", "value": json_copy(old_route["route"])})
        if "name" in old_route:
            ops.append({"op": "test", "path": base_path + "/name", "value": json_copy(old_route["name"])})
        ops.append({"op": "replace", "path": base_path + "/route", "value": json_copy(new_destinations)})
    else:
        # JSON Patch cannot test that a member is absent; pinning the whole route does.
        ops.append({"op": "test", "path": base_path, "value": json_copy(old_route)})
        ops.append({"op": "add", "path": base_path + "/route", "value": json_copy(new_destinations)})
    return ops


def build_annotation_ops(vs_object: Any, annotations: Any) -> list[dict]:
    """JSON Patch ops that set (string value) or delete (``None``) annotations.

    Produces ``add``/``replace``/``remove`` under ``/metadata/annotations/<key>`` with the
    key escaped as a JSON Pointer token, or one ``add`` of the whole block when the object
    has no annotations yet. Keys already holding the value produce no op. No guard is
    included: append these ops to a guarded patch such as :func:`build_route_patch`'s.
    """
    hint = "give a mapping of annotation key to string value, or to null to delete it"
    require_mapping(annotations, "annotations", hint)
    require_mapping(
        vs_object, "VirtualService", "pass the VirtualService object as read from the API server"
    )
    metadata = vs_object.get("metadata")
    if metadata is not None:
        require_mapping(metadata, "VirtualService metadata", "pass the object as read from the API server")
    current = metadata.get("annotations") if metadata is not None else None
    if current is not None:
        require_mapping(current, "metadata.annotations", "pass the object as read from the API server")

    ops: list[dict] = []
    new_block: dict[str, str] = {}
    for key, value in annotations.items():
        require_text(key, "annotation key", hint)
        if value is not None and not isinstance(value, str):
            raise CanaryInputError(
                f"annotation {key!r} value {show(value)} is not a string; Kubernetes annotations hold "
                "strings only, so quote or serialise it"
            )
        path = "/metadata/annotations/" + json_pointer_token(key)
        if current is None:
            if value is not None:
                new_block[key] = value
        elif value is None:
            if key in current:
                ops.append({"op": "remove", "path": path})
        elif key not in current:
            ops.append({"op": "add", "path": path, "value": value})
        elif current[key] != value:
            ops.append({"op": "replace", "path": path, "value": value})
    if new_block:
        if metadata is None:
            ops.append({"op": "add", "path": "/metadata", "value": {"annotations": new_block}})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": new_block})
    return ops


def build_http_list_patch(vs_object: Any, old_http: Any, new_http: Any) -> list[dict]:
    """JSON Patch replacing ``/spec/http`` with ``new_http``, guarded by ``test`` ops.

    Tests ``metadata.resourceVersion`` (when present) and that ``/spec/http`` still equals
    ``old_http``. Returns ``[]`` when the lists are equal. Raises when a new or changed route
    of ``new_http`` breaks our weight rule, or a route kept as it was has weights Istio rejects.
    """
    metadata, _current = _object_parts(vs_object)
    if old_http is not None and not isinstance(old_http, list):
        raise CanaryInputError(f"old http list {show(old_http)} is not a list; pass spec.http as read")
    if not isinstance(new_http, list):
        raise CanaryInputError(f"new http list {show(new_http)} is not a list; pass the planned spec.http")
    problems = []
    unchanged = old_http or []
    for index, route in enumerate(new_http):
        # Routes we write follow our rule; routes stored as they were need only be valid for Istio.
        check = istio_weight_problems if route in unchanged else weight_problems
        problems.extend(check(route, f"new http route {route_label(index, route)}"))
    if problems:
        raise CanaryInputError("; ".join(problems) + "; refusing to write these routes (new routes follow this "
                               "collection's rule for weights, kept routes must be valid for Istio)")
    if old_http == new_http:
        return []
    ops = _resource_version_test(metadata)
    if old_http is None:
        ops.append({"op": "add", "path": "/spec/http", "value": json_copy(new_http)})
    else:
        ops.append({"op": "test", "path": "/spec/http", "value": json_copy(old_http)})
        ops.append({"op": "replace", "path": "/spec/http", "value": json_copy(new_http)})
    return ops
