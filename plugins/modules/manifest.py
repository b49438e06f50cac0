#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: manifest
short_description: Apply or delete Kubernetes manifests with server-side apply, and wait for Deployments
version_added: 0.1.0
description:
  - Applies the objects of YAML files, directories of them, or inline definitions (multi-document
    YAML included) with server-side apply under the field manager C(canary.istio).
  - Kinds are resolved by asking only about the group-versions the manifests use (one request
    each), never by discovering the whole cluster.
  - With O(wait=true), waits until every applied Deployment is rolled out and available
    (observedGeneration caught up, updated, ready and available replicas equal to spec, condition
    C(Available)), and names what is not ready when O(wait_timeout) runs out.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.attributes
  - canary.istio.attributes.WRITE
options:
  src:
    description:
      - Manifest files, or directories whose C(.yaml), C(.yml) and C(.json) files are applied in name order.
      - Paths are read on the host the module runs on.
    type: list
    elements: path
    default: []
  definition:
    description:
      - Objects to apply inline; a dictionary, a list of them, or YAML text (multi-document allowed).
    type: raw
  namespace:
    description:
      - Namespace for namespaced objects; overrides the manifests' own C(metadata.namespace).
      - Defaults to the manifests' namespace, then the kubeconfig context's namespace, then V(default).
    type: str
  state:
    description:
      - V(present) applies the objects; V(absent) deletes them (in reverse order).
    type: str
    choices: [present, absent]
    default: present
  force_conflicts:
    description:
      - Take over fields another field manager owns (server-side apply C(force)). When V(false),
        such a conflict fails the task and names the fields.
    type: bool
    default: true
  wait:
    description:
      - Wait for the applied Deployments to be available (not in check mode).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for Deployments before failing.
    type: int
    default: 120
  version_of:
    description:
      - "Also create the per-version Service of one version of a service when it is missing, as Istio's
        C(bookinfo-versions.yaml) has them - C(<service>-<version>) with the service's ports and its selector plus
        the label O(version_of.label) set to O(version_of.version) - read from the service's own Service in
        O(namespace). The backend of a Gateway API HTTPRoute is such a Service."
      - A per-version Service that exists already is left as it is. A service without a selector is refused.
      - Not with O(state=absent).
    type: dict
    version_added: 0.3.0
    suboptions:
      service: {description: The service's own Service., type: str, required: true}
      version: {description: The version (a label value)., type: str, required: true}
      label: {description: The pods' version label., type: str, default: version}
seealso:
  - module: canary.istio.destination_rule
  - module: canary.istio.virtual_service
"""

EXAMPLES = r"""
- name: Deploy Bookinfo v1 and wait for it
  canary.istio.manifest:
    src:
      - bookinfo/platform/kube/bookinfo-reviews-v1.yaml
    namespace: bookinfo
    wait: true

- name: Deploy the canary workload
  canary.istio.manifest:
    src: [bookinfo/platform/kube/bookinfo-reviews-v2.yaml]
    namespace: bookinfo
    wait: true
    wait_timeout: 300

- name: The Service reviews-v2 that an HTTPRoute weighs, from the Service reviews (Istio's bookinfo-versions.yaml)
  canary.istio.manifest:
    namespace: bookinfo
    version_of: {service: reviews, version: v2}

- name: Remove the old version's Deployment
  canary.istio.manifest:
    definition:
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: reviews-v1}
    namespace: bookinfo
    state: absent
"""

RETURN = r"""
objects:
  description: One entry per object, in the order handled.
  returned: always
  type: list
  elements: dict
  contains:
    kind: {description: Kind of the object., type: str, returned: always, sample: Deployment}
    api_version: {description: apiVersion of the object., type: str, returned: always, sample: apps/v1}
    name: {description: Name., type: str, returned: always, sample: reviews-v2}
    namespace: {description: Namespace (empty for cluster-scoped kinds)., type: str, returned: always, sample: bookinfo}
    source: {description: File or definition the object came from., type: str, returned: always}
    changed: {description: Whether this object changed., type: bool, returned: always}
    method: {description: 'What was done: created, updated, unchanged or deleted.', type: str, returned: always, sample: created}
    diff: {description: Before and after of this object., type: dict, returned: in diff mode}
not_ready:
  description: Deployments that were not ready when waiting ended, with what is missing.
  returned: when O(wait=true)
  type: dict
  sample: {"bookinfo/reviews-v2": ["availableReplicas 0/1"]}
discovery_requests:
  description: Discovery requests made (one per group-version the manifests use).
  returned: always
  type: int
  sample: 2
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
  sample: 9
"""

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import KUBERNETES, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.httproutes import per_version_service
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import comparable, validate_name
from ansible_collections.canary.istio.plugins.module_utils._manifest import (
    Discovery,
    load_documents,
    object_path,
    ordered,
    server_side_apply,
    wait_for_deployments,
    with_protocol_defaults,
)
from ansible_collections.canary.istio.plugins.module_utils._module import run

ARGUMENT_SPEC = {
    "src": {"type": "list", "elements": "path", "default": []},
    "definition": {"type": "raw"},
    "namespace": {"type": "str"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "force_conflicts": {"type": "bool", "default": True},
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 120},
    "version_of": {"type": "dict", "options": {"service": {"type": "str", "required": True},
                                               "version": {"type": "str", "required": True},
                                               "label": {"type": "str", "default": "version"}}},
}
USES = (KUBERNETES,)


def _get(client, path):
    try:
        return client.get(path)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


def missing_version_service(ctx, version_of, namespace):
    """The per-version Service of ``version_of`` as a document to apply, or none when it exists."""
    service = validate_name(version_of["service"], "version_of.service")
    base = f"/api/v1/namespaces/{namespace}/services"
    own = _get(ctx.client, f"{base}/{service}")
    if own is None:
        raise CanaryInputError(f"version_of: Service {namespace}/{service} not found; the per-version Service is "
                               "made from the service's own Service")
    wanted = per_version_service(own, version_of["version"], version_of["label"])
    if _get(ctx.client, f"{base}/{wanted['metadata']['name']}") is not None:
        return []
    wanted["metadata"]["namespace"] = namespace
    return [("version_of", wanted)]


def execute(ctx):
    params = ctx.params
    client = ctx.client
    given = params["src"] or params["definition"] is not None or not params.get("version_of")
    docs = load_documents(params["src"], params["definition"]) if given else []
    override = validate_name(params["namespace"], "namespace") if params["namespace"] else None
    if params.get("version_of"):
        if params["state"] == "absent":
            raise CanaryInputError("version_of creates a missing per-version Service; it cannot be used with "
                                   "state absent (name the Service in definition to delete it)")
        docs = [*docs, *missing_version_service(ctx, params["version_of"], override or ctx.default_namespace)]
    discovery = Discovery(client)
    absent = params["state"] == "absent"
    results = []
    deployments = []
    for source, doc in ordered(docs, reverse=absent):
        api_version, kind, name = doc["apiVersion"], doc["kind"], doc["metadata"]["name"]
        group = api_version.split("/")[0] if "/" in api_version else ""
        resource = discovery.resource(api_version, kind)
        namespace = None
        if resource.get("namespaced"):
            namespace = override or doc["metadata"].get("namespace") or ctx.default_namespace
        path = object_path(api_version, resource, namespace, name)
        try:
            before = client.get(path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            before = None
        entry = {"kind": kind, "api_version": api_version, "name": name, "namespace": namespace or "",
                 "source": source}
        after = None
        if absent:
            if before is not None:
                query = {"dryRun": "All"} if ctx.check_mode else None
                client.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                     "propagationPolicy": "Background"}, query=query)
            entry.update(changed=before is not None, method="deleted" if before is not None else "unchanged")
        else:
            body_doc = with_protocol_defaults(doc)
            if namespace:
                body_doc["metadata"]["namespace"] = namespace
            else:
                body_doc["metadata"].pop("namespace", None)
            try:
                after = server_side_apply(client, path, body_doc, ctx.check_mode, force=params["force_conflicts"])
            except ApiError as exc:
                if exc.status == 409:
                    fields = ", ".join(c.get("field", "") for c in exc.causes) or exc.message
                    raise ModuleFailure(f"{kind} {namespace + '/' if namespace else ''}{name}: fields owned by "
                                        f"another manager: {fields}; set force_conflicts: true to take them "
                                        "over") from None
                raise
            changed = before is None or comparable(before) != comparable(after)
            entry.update(changed=changed, method="created" if before is None else
                         ("updated" if changed else "unchanged"))
            if kind == "Deployment" and group == "apps":
                deployments.append((namespace, name, resource, api_version))
        if ctx.diff_mode:
            entry["diff"] = {"before": comparable(before), "after": comparable(after)}
        results.append(entry)
    result = {"changed": any(r["changed"] for r in results), "objects": results,
              "discovery_requests": discovery.requests}
    if params["wait"] and deployments and not ctx.check_mode and not absent:
        paths = {(ns, name): object_path(api_version, resource, ns, name)
                 for ns, name, resource, api_version in deployments}
        not_ready = wait_for_deployments(lambda ns, name: client.get(paths[(ns, name)]),
                                         list(paths), float(params["wait_timeout"]))
        result["not_ready"] = not_ready
        if not_ready:
            detail = "; ".join(f"{key}: {', '.join(problems)}" for key, problems in sorted(not_ready.items()))
            raise ModuleFailure(f"Deployments not ready after {params['wait_timeout']}s: {detail}", **result)
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
