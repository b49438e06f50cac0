"""The event filters on their own: bodies in the senders' documented shapes in, events out.

Shapes: the CNCF distribution notification envelope (distribution.github.io "Work with notifications"),
Harbor's default webhook payload (goharbor.io "Configure Webhook Notifications"), Alertmanager's webhook
body version 4 (prometheus.io "Configuration", webhook_config). The filters are loaded the way
ansible-rulebook loads them (runpy on the file; ``main`` is the entry point).
"""

from __future__ import annotations

import runpy
from typing import Any

import pytest
import yaml
from ansible_rulebook.validators import Validate
from jsonschema.exceptions import ValidationError

from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.unit

FILTERS = REPO_ROOT / "extensions" / "eda" / "plugins" / "event_filter"
RULEBOOKS = REPO_ROOT / "extensions" / "eda" / "rulebooks"


def load(name: str) -> dict[str, Any]:
    return runpy.run_path(str(FILTERS / f"{name}.py"))


def webhook(payload: Any) -> dict[str, Any]:
    """An event as eda.builtin.webhook queues it."""
    return {"payload": payload, "meta": {"endpoint": "push", "headers": {"Content-Type": "application/json"}}}


def test_a_docker_envelope_gives_one_push_per_tagged_manifest():
    registry = load("registry_push")
    digest = "sha256:" + "c" * 64
    events = registry["main"](webhook({"events": [
        {"id": "e1", "action": "push", "actor": {"name": "ci"},
         "target": {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "repository": "team/app",
                    "digest": "sha256:" + "d" * 64}},
        {"id": "e2", "action": "pull",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "team/app", "tag": "1.0"}},
        {"id": "e3", "action": "push", "actor": {"name": "ci"},
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "team/app",
                    "tag": "1.0", "digest": digest}},
    ]}))
    assert [sorted(set(event) - {"meta"}) for event in events] == [
        ["canary_push_ignored"], ["canary_push_ignored"], ["canary_push"]]
    assert events[2]["canary_push"] == {"repository": "team/app", "tag": "1.0", "digest": digest,
                                        "format": "docker-distribution", "id": "e3", "pushed_by": "ci"}
    assert events[2]["meta"]["endpoint"] == "push"


def test_a_harbor_push_gives_its_tags_and_other_harbor_events_are_ignored():
    registry = load("registry_push")
    body = {"type": "PUSH_ARTIFACT", "occur_at": 1700000000, "operator": "admin",
            "event_data": {"resources": [{"digest": "sha256:" + "e" * 64, "tag": "v2",
                                          "resource_url": "harbor.example.com/library/reviews:v2"}],
                           "repository": {"date_created": 1690000000, "name": "reviews", "namespace": "library",
                                          "repo_full_name": "library/reviews", "repo_type": "public"}}}
    [event] = registry["main"](webhook(body))
    assert event["canary_push"]["repository"] == "library/reviews" and event["canary_push"]["tag"] == "v2"
    assert event["canary_push"]["id"] == "harbor:1700000000:library/reviews:v2"
    [ignored] = registry["main"](webhook({**body, "type": "PULL_ARTIFACT"}))
    assert "PULL_ARTIFACT" in ignored["canary_push_ignored"]


@pytest.mark.parametrize(("payload", "said"), [
    ([1, 2], "must be a JSON object, got list"),
    ({"repository": "team/app"}, "the tag must be a non-empty string, got null"),
    ({"repository": "team/app", "tag": "v" * 129}, "is not a valid image tag"),
    ({"repository": "team//app", "tag": "v1"}, "is not a valid registry repository name"),
    ({"repository": "team/app", "tag": "v1", "digest": "md5"}, "is not a content digest"),
    ({"events": []}, "needs a non-empty list 'events'"),
])
def test_bad_push_bodies_become_errors_naming_the_value(payload: Any, said: str):
    [event] = load("registry_push")["main"](webhook(payload))
    assert said in event["canary_push_error"]


def alertmanager_body(status: str, fingerprint: str = "5b2e1a6c9d3f0e47", **labels: str) -> dict[str, Any]:
    labels = {"alertname": "CanaryErrorRateAboveBase", "canary_istio_action": "rollback", "severity": "critical",
              "destination_service_namespace": "bookinfo", "destination_service_name": "reviews",
              "destination_version": "v2", **labels}
    return {"version": "4", "groupKey": '{}:{alertname="CanaryErrorRateAboveBase"}', "truncatedAlerts": 0,
            "status": status, "receiver": "canary-istio-eda", "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "alerts": [{"status": status, "labels": labels, "annotations": {"summary": "s"},
                        "startsAt": "2026-12-06T20:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]}


def test_repeated_notifications_of_one_alert_pass_once_per_change_of_status():
    alerts = load("alertmanager_alerts")
    seen = [[event["canary_alert"]["status"] for event in alerts["main"](webhook(alertmanager_body(status)))]
            for status in ("resolved", "firing", "firing", "firing", "resolved", "resolved", "firing")]
    # A resolve never seen firing, repeats of firing and of resolved: nothing passes.
    assert seen == [[], ["firing"], [], [], ["resolved"], [], ["firing"]]
    [other] = alerts["main"](webhook(alertmanager_body("firing", fingerprint="0f0f0f0f0f0f0f0f")))
    assert other["canary_alert"]["name"] == "CanaryErrorRateAboveBase"
    assert other["canary_alert"]["service"] == "reviews" and other["canary_alert"]["version"] == "v2"


def test_alerts_of_other_rules_are_dropped_and_bad_bodies_refused():
    alerts = load("alertmanager_alerts")
    body = alertmanager_body("firing", fingerprint="1111", canary_istio_action="page")
    assert alerts["main"](webhook(body)) == []
    [refused] = alerts["main"](webhook({"version": "4", "alerts": [{"status": "firing"}]}))
    assert refused["canary_alert_error"] == "alerts[0] has no 'labels' object"
    [refused] = alerts["main"](webhook({**alertmanager_body("firing"), "version": "3"}))
    assert "version \"3\" is not 4" in refused["canary_alert_error"]
    [refused] = alerts["main"](webhook(alertmanager_body("firing", fingerprint="2222",
                                                         destination_service_name="")))
    assert refused["canary_alert_error"] == "alerts[0] lacks the label destination_service_name"


def test_events_without_a_webhook_payload_pass_unchanged():
    event = {"i": 1, "meta": {}}
    assert load("registry_push")["main"](event) == [event]
    assert load("alertmanager_alerts")["main"](event) == [event]


@pytest.mark.parametrize("rulebook", sorted(path.name for path in RULEBOOKS.glob("*.yml")))
def test_every_shipped_rulebook_follows_ansible_rulebooks_schema(rulebook: str):
    """ansible-rulebook's own schema (the one it checks at start), also for the AWX rulebook no test can start."""
    Validate.rulebook(yaml.safe_load((RULEBOOKS / rulebook).read_text()))
    broken = yaml.safe_load((RULEBOOKS / rulebook).read_text())
    broken[0]["rules"][0]["action"] = {"run_playbook": {"name": "x", "extravars": {}}}
    with pytest.raises(ValidationError):
        Validate.rulebook(broken)
