# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether the AWX job that holds a release lock is known to have finished.

A job killed in AWX never releases its lock; the lock then waits out its ttl. The lock records the
holder's AWX job id (annotation ``canary.istio/awx-job``), and a later run that can read AWX's API - a
"Red Hat Ansible Automation Platform" credential on its job template, which injects ``CONTROLLER_HOST``,
``CONTROLLER_OAUTH_TOKEN`` or ``CONTROLLER_USERNAME``/``CONTROLLER_PASSWORD`` and
``CONTROLLER_VERIFY_SSL`` (and the older ``TOWER_*`` names) - asks ``/api/v2/jobs/<id>/`` for that job's
status. Only a status AWX calls finished lets the lock be taken over: ``successful``, ``failed``,
``error``, ``canceled`` (AWX's unified job statuses; ``new``, ``pending``, ``waiting`` and ``running``
are not finished).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

JOB_ANNOTATION = "canary.istio/awx-job"
FINISHED = ("successful", "failed", "error", "canceled")
_JOB_ID = re.compile(r"^[1-9][0-9]{0,17}$")


@dataclass(frozen=True)
class Controller:
    host: str
    token: str
    username: str
    password: str
    verify: bool


def job_id(value: Any, name: str = "job") -> str:
    """An AWX job id as the lock records it ("" when none); anything but a positive integer is refused."""
    if value in (None, ""):
        return ""
    text = str(value).strip()
    if not _JOB_ID.match(text):
        raise CanaryInputError(f"{name} {value!r} must be an AWX job id, a positive whole number (awx_job_id)")
    return text


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("false", "0", "no", "off")


def controller_from_env(env: Mapping[str, str]) -> Controller | None:
    """Where AWX's API is, from what AWX's controller credential injects; None when no host is given."""
    def read(name: str) -> str:
        return (env.get(f"CONTROLLER_{name}") or env.get(f"TOWER_{name}") or "").strip()

    host = read("HOST")
    if not host:
        return None
    if not re.match(r"^https?://", host):
        host = f"https://{host}"
    verify = read("VERIFY_SSL")
    return Controller(host=host.rstrip("/"), token=read("OAUTH_TOKEN"), username=read("USERNAME"),
                      password=read("PASSWORD"), verify=_flag(verify) if verify else True)


def job_url(controller: Controller, job: str) -> str:
    return f"{controller.host}/api/v2/jobs/{job}/"


def takeover(holder: str, job: str, status: str | None) -> str | None:
    """Why the lock may be taken over from ``holder`` (a sentence), or None when it may not."""
    if job and status in FINISHED:
        return f"the holder {holder!r} is AWX job {job}, which has finished ({status})"
    return None


def refusal_detail(job: str, status: str | None, problem: str | None) -> str:
    """What the refusal adds about the holder's AWX job."""
    if not job:
        return ""
    if status:
        return f" The holder is AWX job {job}, {status}."
    if problem:
        return f" The holder is AWX job {job}; its status could not be read ({problem})."
    return (f" The holder is AWX job {job}; give this job template a Red Hat Ansible Automation Platform credential"
            " so that a run can see when that job has finished and take the lock over.")
