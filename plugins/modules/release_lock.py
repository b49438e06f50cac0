#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_lock
short_description: Hold a lock in the cluster so two canary runs on one service never interleave
version_added: 0.1.0
description:
  - Takes or releases a C(coordination.k8s.io/v1) Lease that records who is releasing a service.
  - A second run that asks for a lock held by someone else fails at once with a message naming
    the holder, when the lock was taken and when it expires. Nothing else is changed.
  - A lock whose holder stopped renewing it for longer than O(ttl) seconds (a run that was killed)
    is taken over; the takeover is a guarded write, so two runs can never both win.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.attributes
  - canary.istio.attributes.WRITE
options:
  name:
    description: Name of the Lease, for example C(canary-reviews).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Lease. Defaults to the kubeconfig context's namespace, else V(default).
    type: str
  holder:
    description:
      - Who holds the lock, for example C(awx-job-42) or C(alice@laptop). Runs with the same holder
        share the lock (a re-run of the same job continues).
    type: str
    required: true
  state:
    description: V(present) takes (or renews) the lock; V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  ttl:
    description: Seconds after the last renewal when the lock counts as abandoned.
    type: int
    default: 3600
  force:
    description:
      - Take or release the lock even while someone else holds it. Use only after checking that the
        other run is gone.
    type: bool
    default: false
  job:
    description:
      - The AWX job id of this run (C(awx_job_id)), recorded in the Lease's annotation C(canary.istio/awx-job).
      - When the lock is held by another holder whose recorded AWX job has finished (V(successful), V(failed),
        V(error) or V(canceled) in AWX's C(/api/v2/jobs/<id>/)), the lock is taken over at once, the holder named
        in the message. AWX's API is read from the environment a "Red Hat Ansible Automation Platform" credential
        injects (C(CONTROLLER_HOST), C(CONTROLLER_OAUTH_TOKEN) or C(CONTROLLER_USERNAME) and C(CONTROLLER_PASSWORD),
        C(CONTROLLER_VERIFY_SSL); or the C(TOWER_*) names). Without that credential the lock waits for its ttl or
        O(force).
    type: str
"""

EXAMPLES = r"""
- name: Only one canary of reviews at a time
  canary.istio.release_lock:
    name: canary-reviews
    namespace: bookinfo
    holder: "{{ awx_job_id | default(lookup('ansible.builtin.env', 'USER')) }}"

- name: Release it at the end
  canary.istio.release_lock:
    name: canary-reviews
    namespace: bookinfo
    holder: "{{ awx_job_id | default(lookup('ansible.builtin.env', 'USER')) }}"
    state: absent
"""

RETURN = r"""
holder:
  description: Who holds the lock after the task (empty when released).
  returned: always
  type: str
  sample: awx-job-42
acquired:
  description: When the current holder took the lock.
  returned: always
  type: str
  sample: "2026-11-26T14:00:00.000000Z"
taken_over_from:
  description: The previous holder, when an abandoned lock (or one whose AWX job had finished) was taken over.
  returned: when a lock was taken over
  type: str
msg:
  description: Why a lock was taken over, naming the previous holder, or why it was left alone.
  returned: when a lock was taken over or left alone
  type: str
  sample: "took over the lock bookinfo/canary-reviews: the holder 'awx:alice@localhost' is AWX job 41, which has finished (canceled)"
api_requests:
  description: Number of API requests the task made.
  returned: always
  type: int
"""

import datetime
import json
import os

from ansible.module_utils.urls import open_url

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError
from ansible_collections.canary.istio.plugins.module_utils._context import KUBERNETES, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic import lock_holder
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._module import run

UTC = datetime.timezone.utc


def _now():
    return datetime.datetime.now(UTC)


def _format(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "holder": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "ttl": {"type": "int", "default": 3600},
    "force": {"type": "bool", "default": False},
    "job": {"type": "str"},
}
USES = (KUBERNETES,)


def _holder_job_status(job):
    """The status AWX gives the holder's job, or (None, why not)."""
    controller = lock_holder.controller_from_env(os.environ)
    if controller is None:
        return None, None
    headers = {"Accept": "application/json"}
    if controller.token:
        headers["Authorization"] = f"Bearer {controller.token}"
    try:
        response = open_url(lock_holder.job_url(controller, job), headers=headers, timeout=10,
                            validate_certs=controller.verify,
                            url_username=None if controller.token else controller.username or None,
                            url_password=None if controller.token else controller.password or None,
                            force_basic_auth=not controller.token and bool(controller.username))
        status = json.loads(response.read()).get("status")
    except Exception as exc:  # any failure to read leaves the lock as it is
        return None, f"{controller.host}: {exc}"
    return (str(status), None) if status else (None, f"{controller.host} gave no status")


def execute(ctx):
    params = ctx.params
    name = validate_name(params["name"], "name")
    namespace = validate_name(params.get("namespace") or ctx.default_namespace, "namespace")
    holder = params["holder"].strip()
    if not holder or len(holder) > 253:
        raise CanaryInputError(f"holder {params['holder']!r} must be a non-empty string of at most 253 characters")
    if not 1 <= params["ttl"] <= 7 * 24 * 3600:
        raise CanaryInputError(f"ttl {params['ttl']} must be between 1 second and 7 days")
    job = lock_holder.job_id(params.get("job"))
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    query = {"dryRun": "All"} if ctx.check_mode else None
    client = ctx.client
    for _attempt in range(3):
        try:
            lease = client.get(f"{base}/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            lease = None
        spec = (lease or {}).get("spec") or {}
        current = spec.get("holderIdentity") or ""
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = spec.get("leaseDurationSeconds") or params["ttl"]
        expires = renewed + datetime.timedelta(seconds=duration) if renewed else None
        abandoned = bool(current) and (expires is None or expires < _now())
        if params["state"] == "absent":
            if lease is None or not current:
                return {"changed": False, "holder": "", "acquired": ""}
            if current != holder and not params["force"]:
                return {"changed": False, "holder": current, "acquired": spec.get("acquireTime", ""),
                        "msg": f"lock {namespace}/{name} is held by {current!r}, not by {holder!r}; left alone"}
            try:
                client.request("DELETE", f"{base}/{name}", query=query, body={
                    "apiVersion": "v1", "kind": "DeleteOptions",
                    "preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}})
            except ApiError as exc:
                if exc.status in (404, 409):
                    continue
                raise
            return {"changed": True, "holder": "", "acquired": ""}
        moment = _format(_now())
        takeover = None
        if lease is not None and current and current != holder and not abandoned and not params["force"]:
            held_by_job = ((lease.get("metadata") or {}).get("annotations") or {}).get(lock_holder.JOB_ANNOTATION, "")
            status, problem = _holder_job_status(held_by_job) if held_by_job else (None, None)
            takeover = lock_holder.takeover(current, held_by_job, status)
            if takeover is None:
                raise ModuleFailure(
                    f"another canary run holds the lock {namespace}/{name}: holder {current!r} since "
                    f"{spec.get('acquireTime', '?')}, valid until {_format(expires) if expires else '?'}."
                    f"{lock_holder.refusal_detail(held_by_job, status, problem)} "
                    "Wait for it to finish; if it is gone, re-run with force (canary_release_force_lock=true) "
                    "after checking the service")
        wanted = {"holderIdentity": holder, "leaseDurationSeconds": params["ttl"], "renewTime": moment,
                  "acquireTime": spec.get("acquireTime") if current == holder and spec.get("acquireTime")
                  else moment}
        try:
            if lease is None:
                client.request("POST", base, query=query, body={
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "canary.istio"},
                                 "annotations": {lock_holder.JOB_ANNOTATION: job} if job else {}},
                    "spec": wanted})
            else:
                metadata = dict(lease.get("metadata") or {})
                annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                               if k != lock_holder.JOB_ANNOTATION}
                if job:
                    annotations[lock_holder.JOB_ANNOTATION] = job
                metadata["annotations"] = annotations
                client.request("PUT", f"{base}/{name}", query=query,
                               body=dict(lease, metadata=metadata, spec={**spec, **wanted}))
        except ApiError as exc:
            if exc.status == 409:  # someone else created or changed it meanwhile: look again
                continue
            raise
        result = {"changed": current != holder, "holder": holder, "acquired": wanted["acquireTime"]}
        if current and current != holder:
            result["taken_over_from"] = current
            why = takeover or ("forced" if params["force"] and not abandoned else
                               f"the holder {current!r} had not renewed it within its ttl")
            result["msg"] = f"took over the lock {namespace}/{name}: {why}"
        return result
    raise ModuleFailure(f"lock {namespace}/{name} kept changing while we tried to take it; another run is "
                        "competing for it. Try again later")


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
