# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Event filter canary.istio.alertmanager_alerts: one Alertmanager notification in, one event per alert change out.

Alertmanager's webhook body (``version`` "4") carries a group of alerts: ``{"version", "groupKey",
"status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts":
[{"status": "firing"|"resolved", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
"fingerprint"}]}``. Each alert that canary.istio's rules raised (label ``canary_istio_action``
``rollback`` or ``protect``) becomes ``{"canary_alert": {"name", "status", "action", "fingerprint",
"service", "namespace", "version", "starts_at", "labels", "annotations"}}``.

Alertmanager sends a group again on every change of the group and every ``repeat_interval``, so one
alert arrives many times with the same status. Only a change of status is passed on: an alert seen
``firing`` is passed once, then again only after it was passed ``resolved`` (state per fingerprint,
kept while the rulebook runs; the playbooks are idempotent for what a restart forgets). A body that is
not Alertmanager's becomes ``{"canary_alert_error": "<why>"}``. Alerts of other rules are dropped.
"""

from __future__ import annotations

import json
from typing import Any

ACTIONS = ("rollback", "protect")
STATUSES = ("firing", "resolved")
# fingerprint -> the last status passed on; module state lives as long as the rulebook's source.
_PASSED: dict[str, str] = {}


class AlertError(ValueError):
    """The body is not an Alertmanager webhook notification."""


def _alert(index: int, alert: Any) -> dict[str, Any] | None:
    if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
        raise AlertError(f"alerts[{index}] has no 'labels' object")
    labels = alert["labels"]
    if labels.get("canary_istio_action") not in ACTIONS:
        return None
    status = alert.get("status")
    if status not in STATUSES:
        raise AlertError(f"alerts[{index}].status must be firing or resolved, got {json.dumps(status)[:40]}")
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise AlertError(f"alerts[{index}] has no fingerprint")
    for key in ("alertname", "destination_service_name", "destination_service_namespace"):
        if not isinstance(labels.get(key), str) or not labels[key]:
            raise AlertError(f"alerts[{index}] lacks the label {key}")
    return {
        "name": labels["alertname"], "status": status, "action": labels["canary_istio_action"],
        "fingerprint": fingerprint, "service": labels["destination_service_name"],
        "namespace": labels["destination_service_namespace"], "version": labels.get("destination_version", ""),
        "starts_at": alert.get("startsAt", ""), "labels": labels,
        "annotations": alert.get("annotations") if isinstance(alert.get("annotations"), dict) else {},
    }


def read(payload: Any, passed: dict[str, str]) -> list[dict[str, Any]]:
    """The alert changes one notification stands for; ``passed`` is updated with what goes on."""
    try:
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise AlertError("the body is not an Alertmanager webhook notification (no list 'alerts')")
        if str(payload.get("version")) != "4":
            raise AlertError(f"Alertmanager webhook version {json.dumps(payload.get('version'))} is not 4")
        alerts = [_alert(index, alert) for index, alert in enumerate(payload["alerts"])]
    except AlertError as exc:
        return [{"canary_alert_error": str(exc)}]
    out: list[dict[str, Any]] = []
    for alert in alerts:
        if alert is None:
            continue
        if passed.get(alert["fingerprint"], "resolved" if alert["status"] == "resolved" else None) == alert["status"]:
            continue
        passed[alert["fingerprint"]] = alert["status"]
        out.append({"canary_alert": alert})
    return out


def main(event: dict[str, Any]) -> list[dict[str, Any]]:
    """ansible-rulebook's entry point: events without a webhook ``payload`` pass unchanged."""
    if not isinstance(event, dict) or "payload" not in event:
        return [event]
    meta = event.get("meta", {})
    return [{**out, "meta": dict(meta)} for out in read(event["payload"], _PASSED)]
