#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_history
short_description: Record an event of a canary release, such as an analysis verdict, in the VirtualService's history
version_added: 0.1.0
description:
  - Appends one entry to the C(canary.istio/history) annotation of a VirtualService, beside the traffic
    steps that M(canary.istio.traffic_split) records there - for example the verdict of a
    M(canary.istio.canary_analysis) with its numbers, so the history says why a canary was rolled back.
  - The write is one JSON Patch guarded by a C(test) of the resourceVersion it read, so a concurrent step is
    never lost; on a conflict the object is read again and the entry appended to what is there.
  - Only the annotation changes; routes, weights and other annotations stay as they are. Entries carry
    no C(from)/C(to), so readers of the traffic steps pass them by.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.auth.ISTIO
  - canary.istio.attributes
  - canary.istio.attributes.WRITE
options:
  name:
    description: Name of the VirtualService (or of the HTTPRoute, with O(kind=HTTPRoute)).
    type: str
    required: true
  kind:
    description: The object holding the history, as in M(canary.istio.traffic_split).
    type: str
    choices: [VirtualService, HTTPRoute]
    default: VirtualService
    version_added: 0.3.0
  namespace:
    description: Namespace. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  entry:
    description:
      - What to record, a mapping without the keys C(time), C(from), C(to) and C(actor) (the module adds
        the time and the actor), for example an C(analysis) mapping with the step, the verdict and its numbers.
    type: dict
    required: true
  actor:
    description: Who records it (roles fill it from AWX job data or the local user).
    type: str
  history_limit:
    description: Number of entries kept in the annotation (the newest), as in M(canary.istio.traffic_split).
    type: int
    default: 20
seealso:
  - module: canary.istio.traffic_split
  - module: canary.istio.canary_analysis
"""

EXAMPLES = r"""
- name: Record why the canary was rolled back
  canary.istio.release_history:
    name: reviews
    namespace: bookinfo
    entry:
      analysis: "{{ analysis_result }}"
      decision: rollback
"""

RETURN = r"""
entries:
  description: How many entries the history holds now.
  returned: success
  type: int
  sample: 5
"""

import getpass
import json
from datetime import datetime, timezone

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import ISTIO, KUBERNETES, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._httproute import gateway_api
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.patches import build_annotation_ops
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._logic.state import HISTORY_ANNOTATION, append_history_entry
from ansible_collections.canary.istio.plugins.module_utils._module import run

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "entry": {"type": "dict", "required": True},
    "actor": {"type": "str"},
    "history_limit": {"type": "int", "default": 20},
    "kind": {"type": "str", "choices": ["VirtualService", "HTTPRoute"], "default": "VirtualService"},
}
USES = (KUBERNETES, ISTIO)
ATTEMPTS = 5


def execute(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    if not 1 <= params["history_limit"] <= 1000:
        raise CanaryInputError(f"history_limit {params['history_limit']} must be between 1 and 1000")
    actor = params.get("actor") or _local_user()
    kind = params.get("kind") or "VirtualService"
    routes = gateway_api(ctx) if kind == "HTTPRoute" else None

    def read():
        if routes is not None:
            return routes.get(ctx.client, namespace, name)
        return ctx.istio.get(kind, namespace, name)

    def patch(ops):
        if routes is not None:
            return routes.json_patch(ctx.client, namespace, name, ops, ctx.check_mode)
        return ctx.istio.json_patch(kind, namespace, name, ops, dry_run=ctx.check_mode)
    for _attempt in range(ATTEMPTS):
        vs = read()
        if vs is None:
            raise ModuleFailure(f"{kind} {namespace}/{name} not found; nothing to record the entry on")
        text = append_history_entry(vs, params["entry"], actor, datetime.now(timezone.utc),
                                    limit=params["history_limit"])
        # Guarded by the resourceVersion read: a `test` of the annotation's text itself is refused by the
        # API server's JSON Patch once the text holds characters Go's encoder escapes (such as '<').
        guard = [{"op": "test", "path": "/metadata/resourceVersion", "value": vs["metadata"]["resourceVersion"]}]
        ops = guard + build_annotation_ops(vs, {HISTORY_ANNOTATION: text})
        try:
            patch(ops)
        except ApiError as exc:
            if exc.status in (409, 422):  # the test op failed: someone wrote in between; read again
                continue
            raise
        return {"changed": True, "entries": len(json.loads(text))}
    raise ModuleFailure(f"{kind} {namespace}/{name} kept changing; the entry was not recorded after "
                        f"{ATTEMPTS} attempts")


def _local_user():
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
