# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Event filter canary.istio.registry_push: one registry push notification in, one event per pushed tag out.

Reads the body that ``eda.builtin.webhook`` puts under ``payload`` in any of three shapes:

- the Docker Registry (CNCF distribution) notification envelope: ``{"events": [{"id", "timestamp",
  "action": "push", "target": {"mediaType", "digest", "repository", "tag", "url"}, "actor": {"name"},
  "request": {...}, "source": {...}}]}``. Pulls, blob pushes and manifest pushes without a tag are
  ignored (the registry reports every layer too);
- Harbor's default webhook payload: ``{"type": "PUSH_ARTIFACT", "occur_at", "operator", "event_data":
  {"resources": [{"digest", "tag", "resource_url"}], "repository": {"name", "namespace", "repo_full_name"}}}``;
- the generic shape for anything else (a CI job's curl): ``{"repository": "bookinfo/reviews", "tag": "v2",
  "digest": "sha256:..." (optional), "source": "who pushed" (optional), "id": "event id" (optional)}``.

Each pushed tag becomes ``{"canary_push": {"repository", "tag", "digest", "format", "id", "pushed_by"}}``;
a body that none of the shapes fits, or whose repository or tag breaks the registry's naming rules,
becomes ``{"canary_push_error": "<why, naming the value>"}``; what is not a push of a tag becomes
``{"canary_push_ignored": "<why>"}``. The webhook's ``meta`` is kept on every event. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# The distribution spec's grammar: path components of lower-case letters and digits joined by
# '.', '_', '__' or runs of '-', separated by '/'; a tag is up to 128 word characters, '.' and '-'.
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$")
# Manifest media types; a push whose target is a layer or a config blob is not an image push.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
GENERIC_KEYS = {"repository", "tag", "digest", "source", "id"}


class PushError(ValueError):
    """The body is not a push notification this filter can read."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PushError(f"{what} must be a non-empty string, got {json.dumps(value)[:80]}")
    return value.strip()


def _push(repository: Any, tag: Any, digest: Any, fmt: str, event_id: Any, pushed_by: Any) -> dict[str, Any]:
    repository = _text(repository, "the repository")
    tag = _text(tag, "the tag")
    if not REPOSITORY.match(repository):
        raise PushError(f"repository {repository!r} is not a valid registry repository name "
                        "(lower-case letters and digits, separated by '.', '_', '-' and '/')")
    if not TAG.match(tag):
        raise PushError(f"tag {tag!r} is not a valid image tag (up to 128 letters, digits, '_', '.', '-', "
                        "not starting with '.' or '-')")
    if digest not in (None, "") and (not isinstance(digest, str) or not DIGEST.match(digest)):
        raise PushError(f"digest {json.dumps(digest)[:80]} is not a content digest like sha256:<hex>")
    if event_id in (None, ""):
        event_id = hashlib.sha256(f"{fmt}\0{repository}\0{tag}\0{digest or ''}".encode()).hexdigest()[:16]
    return {"repository": repository, "tag": tag, "digest": digest or "", "format": fmt,
            "id": str(event_id), "pushed_by": str(pushed_by or "")}


def _docker(payload: dict[str, Any]) -> list[dict[str, Any]]:
    events = payload["events"]
    if not isinstance(events, list) or not events:
        raise PushError("a Docker Registry notification needs a non-empty list 'events'")
    out: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("target"), dict):
            raise PushError(f"events[{index}] of the Docker Registry notification has no 'target' object")
        target = event["target"]
        if event.get("action") != "push":
            out.append({"canary_push_ignored": f"events[{index}]: action {event.get('action')!r} is not a push"})
        elif target.get("mediaType") not in MANIFEST_TYPES or not target.get("tag"):
            out.append({"canary_push_ignored": f"events[{index}]: not a tagged manifest "
                                               f"({target.get('mediaType')}, tag {target.get('tag')!r})"})
        else:
            actor = event.get("actor") if isinstance(event.get("actor"), dict) else {}
            out.append({"canary_push": _push(target.get("repository"), target.get("tag"), target.get("digest"),
                                             "docker-distribution", event.get("id"), actor.get("name"))})
    return out


def _harbor(payload: dict[str, Any]) -> list[dict[str, Any]]:
    if payload.get("type") != "PUSH_ARTIFACT":
        return [{"canary_push_ignored": f"Harbor event type {payload.get('type')!r} is not PUSH_ARTIFACT"}]
    data = payload["event_data"]
    if not isinstance(data, dict) or not isinstance(data.get("repository"), dict):
        raise PushError("a Harbor PUSH_ARTIFACT event needs event_data.repository")
    repository = data["repository"]
    name = repository.get("repo_full_name") or "/".join(
        part for part in (repository.get("namespace"), repository.get("name")) if part)
    resources = data.get("resources")
    if not isinstance(resources, list) or not resources:
        raise PushError("a Harbor PUSH_ARTIFACT event needs a non-empty list event_data.resources")
    out: list[dict[str, Any]] = []
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict):
            raise PushError(f"event_data.resources[{index}] of the Harbor event is not an object")
        if not resource.get("tag"):
            out.append({"canary_push_ignored": f"event_data.resources[{index}]: pushed by digest, no tag"})
            continue
        event_id = f"harbor:{payload.get('occur_at', '')}:{name}:{resource.get('tag')}"
        out.append({"canary_push": _push(name, resource.get("tag"), resource.get("digest"), "harbor",
                                         event_id, payload.get("operator"))})
    return out


def _generic(payload: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(payload) - GENERIC_KEYS)
    if unknown:
        raise PushError(f"unknown key(s) {', '.join(unknown)} in a generic push "
                        f"(allowed: {', '.join(sorted(GENERIC_KEYS))})")
    return [{"canary_push": _push(payload.get("repository"), payload.get("tag"), payload.get("digest"), "generic",
                                  payload.get("id"), payload.get("source"))}]


def read(payload: Any) -> list[dict[str, Any]]:
    """The events one webhook body stands for (see the module's docstring)."""
    try:
        if not isinstance(payload, dict):
            raise PushError(f"the body must be a JSON object, got {type(payload).__name__}")
        if "events" in payload:
            return _docker(payload)
        if "event_data" in payload and "type" in payload:
            return _harbor(payload)
        if "repository" in payload or "tag" in payload:
            return _generic(payload)
        raise PushError("the body is neither a Docker Registry notification ('events'), a Harbor event "
                        "('type', 'event_data') nor a generic push ('repository', 'tag'); keys: "
                        + ", ".join(sorted(map(str, payload)))[:200])
    except PushError as exc:
        return [{"canary_push_error": str(exc)}]


def main(event: dict[str, Any]) -> list[dict[str, Any]]:
    """ansible-rulebook's entry point: events without a webhook ``payload`` pass unchanged."""
    if not isinstance(event, dict) or "payload" not in event:
        return [event]
    meta = event.get("meta", {})
    return [{**out, "meta": dict(meta)} for out in read(event["payload"])]
