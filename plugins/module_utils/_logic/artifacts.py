# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a stage publishes with ``set_stats`` for the next nodes of an AWX workflow.

AWX keeps a job's ``set_stats`` data as the job's artifacts, shows them on the job's page and passes them
as extra vars to the workflow's later nodes - the approval's approver reads them on the canary job, the
promote job gets them. Kept small and plain: the service and versions, the share, each verdict with its
bounds, where the report is.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError


def _verdict(record: dict[str, Any]) -> dict[str, Any]:
    checks = []
    for check in record.get("checks") or []:
        checks.append({"name": check.get("name"), "verdict": check.get("verdict"),
                       "canary": (check.get("canary") or {}).get("value"),
                       "base": (check.get("base") or {}).get("value"),
                       "min": check.get("min"), "max": check.get("max"), "bounds": check.get("bounds")})
    verdict = {"share": record.get("step"), "look": record.get("look"), "verdict": record.get("verdict"),
               "summary": record.get("summary"), "checks": checks}
    if record.get("msg"):
        verdict["msg"] = record["msg"]
    return verdict


def release_artifacts(stage: str, service: str, namespace: str, base: str, canary: str,
                      weights: dict[str, Any] | None, decision: str | None = None, reason: str | None = None,
                      analyses: list[dict[str, Any]] | None = None, report: dict[str, Any] | None = None,
                      ) -> dict[str, Any]:
    """One stage's artifacts (what ``canary_release_artifacts`` holds for one host)."""
    if stage not in ("release", "set_ratio", "promote", "rollback", "status"):
        raise CanaryInputError(f"stage {stage!r} must be release, set_ratio, promote, rollback or status")
    weights = {str(k): int(v) for k, v in (weights or {}).items()}
    return {
        "stage": stage, "service": service, "namespace": namespace, "base": base, "canary": canary,
        "weights": weights, "share": weights.get(canary, 0),
        "decision": decision or "", "reason": reason or "",
        "verdicts": [_verdict(record) for record in analyses or []],
        "report": {k: v for k, v in (report or {}).items() if v not in (None, "")},
    }


def approved_mismatch(artifacts: dict[str, Any] | None, service: str, namespace: str, canary: str) -> str:
    """Why artifacts from the canary job do not describe the release this job acts on ("" when they do,
    or when there are none)."""
    if not artifacts:
        return ""
    wanted = {"service": service, "namespace": namespace, "canary": canary}
    differs = [f"{key} {artifacts.get(key)!r} (this job: {value!r})" for key, value in wanted.items()
               if artifacts.get(key) != value]
    if not differs:
        return ""
    return ("the canary job's artifacts (canary_release_artifacts) describe another release: " + ", ".join(differs)
            + ". The approval was given for that one; launch this job with the same service, namespace and canary.")
