"""Release on push, end to end: a real ansible-rulebook runs canary.istio.release_on_push on loopback.

Payloads follow the senders' documented shapes: the Docker Registry (CNCF distribution) notification
envelope ("Work with notifications": events with id, timestamp, action, target{mediaType, digest,
repository, url, tag}, request, actor, source; media type application/vnd.docker.distribution.events.v1+json),
Harbor's default webhook payload (type PUSH_ARTIFACT, occur_at, operator, event_data{resources[{digest,
tag, resource_url}], repository{name, namespace, repo_full_name, repo_type}}) and the collection's
generic shape. What is asserted is what a user notices: the HTTP status the sender gets, the line the
rulebook prints, and what the API server holds (the VirtualService's split and history, Deployments).

The tests run in order against one rulebook and one namespace: a push starts one release; a second
push of the tag, and a push of another tag while it is in flight, start nothing; bad bodies and
unknown repositories start nothing; a release lock held by someone else is honoured and reported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.eda import wait_listening
from lab.kube import KubeClient, KubeError
from tests.eda.conftest import Rulebook, deploy_base, free_port, history, post, weights
from tests.helpers.ansible import run_module
from tests.helpers.collection import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KUBE_MANIFESTS = REPO_ROOT / "bookinfo" / "platform" / "kube"
DOCKER_EVENTS = "application/vnd.docker.distribution.events.v1+json"
PUSHED = r"canary\.istio push {id} .*: (started|nothing started|ignored|the release failed)"


class PushLab:
    def __init__(self, rulebook: Rulebook, url: str, token: str, namespace: str) -> None:
        self.rulebook, self.url, self.token, self.namespace = rulebook, url, token, namespace

    def push(self, body: Any, **kwargs: Any) -> int:
        return post(self.url, body, self.token, **kwargs)

    def outcome(self, event_id: str) -> str:
        return self.rulebook.wait_for(PUSHED.format(id=event_id))[-1]


@pytest.fixture(scope="module")
def pushes(eda_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushLab]:
    namespace = deploy_base(eda_lab)
    port, token = free_port(), secrets.token_hex(12)
    repositories = {f"bookinfo/{service}": {"service": service, "namespace": namespace,
                                            "manifests": [str(KUBE_MANIFESTS / f"bookinfo-{service}-{{tag}}.yaml")],
                                            "ratio": 10, "decision": "hold"}
                    for service in ("reviews", "ratings")}
    variables = {"canary_eda_host": "127.0.0.1", "canary_eda_push_port": port, "canary_eda_token": token,
                 "canary_eda_repositories": repositories}
    rulebook = Rulebook("release_on_push", variables, eda_lab, tmp_path_factory.mktemp("release-on-push"))
    try:
        wait_listening(f"http://127.0.0.1:{port}/")
        yield PushLab(rulebook, f"http://127.0.0.1:{port}/push", token, namespace)
    finally:
        rulebook.stop()


def docker_notification(event_id: str, repository: str, tag: str) -> dict[str, Any]:
    """A registry's envelope for one image push: the layer it uploaded, then the tagged manifest."""
    digest = "sha256:" + "3" * 64
    request = {"id": "3bb9a4b1-7d41-4d35-bc57-c5c0d1b3a1e0", "addr": "127.0.0.1:50112", "host": "registry.lab:5000",
               "method": "PUT", "useragent": "docker/24.0.7 go/go1.20.10"}
    source = {"addr": "registry-0:5000", "instanceID": "6e9ee9e7-0d84-4ab3-a6d8-2c5f3d0c2a11"}
    return {"events": [
        {"id": f"{event_id}-layer", "timestamp": "2026-12-06T20:00:00.000000000Z", "action": "push",
         "target": {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2781,
                    "digest": "sha256:" + "a" * 64, "length": 2781, "repository": repository,
                    "url": f"http://registry.lab:5000/v2/{repository}/blobs/sha256:{'a' * 64}"},
         "request": request, "actor": {"name": "ci-bot"}, "source": source},
        {"id": event_id, "timestamp": "2026-12-06T20:00:01.000000000Z", "action": "push",
         "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 708,
                    "digest": digest, "length": 708, "repository": repository, "tag": tag,
                    "url": f"http://registry.lab:5000/v2/{repository}/manifests/{digest}"},
         "request": request, "actor": {"name": "ci-bot"}, "source": source},
    ]}


def harbor_push(repository: str, tag: str, occur_at: int) -> dict[str, Any]:
    namespace, name = repository.split("/", 1)
    return {"type": "PUSH_ARTIFACT", "occur_at": occur_at, "operator": "admin",
            "event_data": {"resources": [{"digest": "sha256:" + "b" * 64, "tag": tag,
                                          "resource_url": f"harbor.lab/{repository}:{tag}"}],
                           "repository": {"date_created": occur_at - 100, "name": name, "namespace": namespace,
                                          "repo_full_name": repository, "repo_type": "private"}}}


def deployments(kube: KubeClient, namespace: str) -> set[str]:
    listed = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
    return {item["metadata"]["name"] for item in listed["items"]}


def test_an_unauthenticated_post_is_refused(pushes: PushLab):
    body = {"repository": "bookinfo/reviews", "tag": "v2", "id": "no-token"}
    assert post(pushes.url, body, None) == 401
    assert post(pushes.url, body, "not-the-token") == 401
    assert not pushes.rulebook.lines("no-token")


def test_a_push_starts_exactly_one_release(pushes: PushLab, kube: KubeClient):
    started = time.monotonic()
    assert pushes.push(docker_notification("d-1", "bookinfo/reviews", "v2"), content_type=DOCKER_EVENTS) == 200
    line = pushes.outcome("d-1")
    seconds = time.monotonic() - started
    assert ": started - v2 released over v1" in line, line
    # The layer of the same envelope is not an image push.
    assert pushes.rulebook.lines(r"canary\.istio push ignored: events\[0\]: not a tagged manifest")
    assert weights(kube, pushes.namespace) == {"v1": 90, "v2": 10}
    entries = history(kube, pushes.namespace)
    assert len(entries) == 1, entries
    actor = entries[0]["actor"]
    assert actor.startswith("eda:release_on_push (docker-distribution push d-1 of bookinfo/reviews:v2"), actor
    assert "by ci-bot" in actor
    assert "reviews-v2" in deployments(kube, pushes.namespace)
    print(f"figure: push to first traffic moved in {seconds:.1f}s")


def test_a_duplicate_push_and_a_second_tag_start_nothing(pushes: PushLab, kube: KubeClient):
    before = history(kube, pushes.namespace)
    assert pushes.push(harbor_push("bookinfo/reviews", "v2", 1765051200)) == 200
    assert "nothing started - already in flight - a release of v2 is in progress" in pushes.outcome(
        "harbor:1765051200:bookinfo/reviews:v2")
    assert pushes.push({"repository": "bookinfo/reviews", "tag": "v3", "id": "g-v3", "source": "ci job 7"}) == 200
    assert "nothing started - another release is in flight - v2 has traffic" in pushes.outcome("g-v3")
    # The base's own tag pushed again (a rebuild of v1): already released.
    assert pushes.push({"repository": "bookinfo/reviews", "tag": "v1", "id": "g-v1"}) == 200
    assert "nothing started - already released - v1 is the base version" in pushes.outcome("g-v1")
    assert history(kube, pushes.namespace) == before
    assert weights(kube, pushes.namespace) == {"v1": 90, "v2": 10}
    assert "reviews-v3" not in deployments(kube, pushes.namespace)


@pytest.mark.parametrize(("body", "said"), [
    ({"foo": 1}, "is neither a Docker Registry notification"),
    ({"repository": "Bookinfo/Reviews", "tag": "v2"}, "repository 'Bookinfo/Reviews' is not a valid registry"),
    ({"repository": "bookinfo/reviews", "tag": "-v2"}, "tag '-v2' is not a valid image tag"),
    ({"repository": "bookinfo/reviews", "tag": "v2", "branch": "main"}, "unknown key(s) branch in a generic push"),
    ({"events": [{"action": "push"}]}, "events[0] of the Docker Registry notification has no 'target' object"),
    ({"type": "PUSH_ARTIFACT", "event_data": {"resources": []}}, "needs event_data.repository"),
])
def test_a_bad_payload_is_refused_and_starts_nothing(pushes: PushLab, kube: KubeClient, body: Any, said: str):
    before = (history(kube, pushes.namespace), history(kube, pushes.namespace, "ratings"))
    assert pushes.push(body) == 200
    line = pushes.rulebook.wait_for(r"canary\.istio push refused: .*" + re.escape(said))[-1]
    assert line.endswith("- nothing started"), line
    assert (history(kube, pushes.namespace), history(kube, pushes.namespace, "ratings")) == before


def test_a_body_that_is_not_json_is_refused(pushes: PushLab):
    assert pushes.push(None, raw=b"repository=bookinfo/reviews&tag=v2") == 400


def test_an_unknown_repository_is_logged_and_ignored(pushes: PushLab, kube: KubeClient):
    before = deployments(kube, pushes.namespace)
    assert pushes.push({"repository": "bookinfo/payments", "tag": "v2", "id": "unknown-1"}) == 200
    line = pushes.outcome("unknown-1")
    assert "ignored - repository bookinfo/payments is not mapped to a service" in line, line
    assert deployments(kube, pushes.namespace) == before


def test_a_release_lock_held_by_another_run_is_honoured_and_reported(pushes: PushLab, kube: KubeClient,
                                                                     eda_lab: dict[str, Any]):
    held = run_module("release_lock", {"kubeconfig": eda_lab["kubeconfig"], "name": "canary-ratings",
                                       "namespace": pushes.namespace, "holder": "user:alice@laptop"})
    assert not held.get("failed"), held
    assert pushes.push({"repository": "bookinfo/ratings", "tag": "v2", "id": "locked-1"}) == 200
    line = pushes.outcome("locked-1")
    assert "nothing started - the release lock is held" in line and "user:alice@laptop" in line, line
    assert history(kube, pushes.namespace, "ratings") == []
    with pytest.raises(KubeError):
        kube.get(f"/apis/apps/v1/namespaces/{pushes.namespace}/deployments/ratings-v2")


def test_the_example_variables_name_every_input_the_rulebook_uses():
    rulebook = (REPO_ROOT / "extensions" / "eda" / "rulebooks" / "release_on_push.yml").read_text()
    example = yaml.safe_load((REPO_ROOT / "extensions" / "eda" / "vars" / "release_on_push.yml").read_text())
    used = set(re.findall(r"\{\{ *(canary_eda_\w+)", rulebook))
    assert used and used <= set(example), used - set(example)


def test_the_documented_hmac_variant_refuses_unsigned_bodies(eda_lab: dict[str, Any], tmp_path: Path):
    """docs/events.md: for a signing sender, the rulebook's source takes the webhook's HMAC options instead of token."""
    shipped = (REPO_ROOT / "extensions" / "eda" / "rulebooks" / "release_on_push.yml").read_text()
    assert shipped.count('        token: "{{ canary_eda_token }}"\n') == 1
    signed = tmp_path / "release_on_push_hmac.yml"
    signed.write_text(shipped.replace('        token: "{{ canary_eda_token }}"\n',
                                      '        hmac_secret: "{{ canary_eda_hmac_secret }}"\n'
                                      '        hmac_header: x-hub-signature-256\n'))
    port, secret = free_port(), secrets.token_hex(12)
    rulebook = Rulebook(str(signed), {"canary_eda_host": "127.0.0.1", "canary_eda_push_port": port,
                                      "canary_eda_hmac_secret": secret, "canary_eda_repositories": {}},
                        eda_lab, tmp_path / "home")
    try:
        wait_listening(f"http://127.0.0.1:{port}/")
        url = f"http://127.0.0.1:{port}/push"
        body = json.dumps({"repository": "team/app", "tag": "v1", "id": "hmac-1"}).encode()
        assert post(url, None, None, raw=body) == 400  # no signature at all
        wrong = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
        assert post(url, None, None, raw=body, headers={"x-hub-signature-256": f"sha256={wrong}"}) == 401
        right = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert post(url, None, None, raw=body, headers={"x-hub-signature-256": f"sha256={right}"}) == 200
        assert "ignored - repository team/app is not mapped" in rulebook.wait_for(PUSHED.format(id="hmac-1"))[-1]
        assert len(rulebook.lines(r"canary\.istio push ")) == 1
    finally:
        rulebook.stop()
