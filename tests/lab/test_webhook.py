"""The lab's API server refuses what istiod's validating webhook refuses, and stores nothing.

Expected messages are Istio's (release 1.30.3, pkg/config/validation/*.go, wrapped by
pkg/webhooks/validation/server/server.go as "configuration is invalid: ...", then by the API server
as 'admission webhook "validation.istio.io" denied the request: ...'); the accepted objects are
Istio's own Bookinfo samples (vendored once, in tests/conformance/upstream/). Nothing here comes from the collection.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.controlplane import Lab, process_alive
from lab.kube import KubeClient, KubeError

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).parents[1] / "conformance" / "upstream" / "istio" / "samples" / "bookinfo" / "networking"
DENIED = 'admission webhook "validation.istio.io" denied the request: '
PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "Gateway": "gateways",
           "ServiceEntry": "serviceentries"}


def path(kind: str, namespace: str, name: str | None = None, version: str = "v1") -> str:
    base = f"/apis/networking.istio.io/{version}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{base}/{name}" if name else base


def reviews_vs(route: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"], "http": [{"route": route, **extra}]}}


def refused(kube: KubeClient, method: str, url: str, body: Any, content_type: str = "application/json") -> str:
    with pytest.raises(KubeError) as caught:
        kube.request(method, url, body, content_type=content_type)
    assert caught.value.status == 400, caught.value
    return caught.value.body["message"]


def assert_absent(kube: KubeClient, url: str) -> None:
    with pytest.raises(KubeError) as missing:
        kube.get(url)
    assert missing.value.status == 404


def test_negative_weight_is_refused_with_istios_message_and_nothing_is_stored(kube: KubeClient, namespace: str):
    body = reviews_vs([{"destination": {"host": "reviews", "subset": "v1"}, "weight": 110},
                       {"destination": {"host": "reviews", "subset": "v2"}, "weight": -10}])
    message = refused(kube, "POST", path("VirtualService", namespace), body)
    assert message == DENIED + "configuration is invalid: weight -10 < 0"  # validateWeight
    assert_absent(kube, path("VirtualService", namespace, "reviews"))


def test_route_with_both_route_and_redirect_is_refused(kube: KubeClient, namespace: str):
    body = reviews_vs([{"destination": {"host": "reviews", "subset": "v1"}}], redirect={"uri": "/v1/reviews"})
    message = refused(kube, "POST", path("VirtualService", namespace), body)
    # validateHTTPRouteConflict
    assert message == DENIED + "configuration is invalid: HTTP route cannot contain both route and redirect"
    assert_absent(kube, path("VirtualService", namespace, "reviews"))


@pytest.mark.parametrize("subset", ["v2.1", "v2_1"])
def test_subset_name_that_is_not_a_dns_label_is_refused(kube: KubeClient, namespace: str, subset: str):
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "subsets": [{"name": subset, "labels": {"version": "v2"}}]}}
    message = refused(kube, "POST", path("DestinationRule", namespace), rule)
    assert message == DENIED + f"configuration is invalid: subset name is invalid: {subset}"  # validateSubsetName
    assert_absent(kube, path("DestinationRule", namespace, "reviews"))


def test_an_update_istio_refuses_leaves_the_stored_object_unchanged(kube: KubeClient, namespace: str):
    stored = kube.create(path("VirtualService", namespace),
                         reviews_vs([{"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                                     {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}]))
    url = path("VirtualService", namespace, "reviews")
    both_zero = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
                 {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0}]
    message = refused(kube, "PATCH", url, both_zero, content_type="application/json-patch+json")
    # validateHTTPRouteDestinations
    assert message == DENIED + "configuration is invalid: total destination weight = 0"
    replaced = copy.deepcopy(stored)
    replaced["spec"]["http"][0]["route"][1]["destination"]["subset"] = "v2.1"
    message = refused(kube, "PUT", url, replaced)
    assert message == DENIED + "configuration is invalid: subset name is invalid: v2.1"
    after = kube.get(url)
    assert after["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert after["spec"] == stored["spec"]


def test_the_refusal_comes_after_the_schema_and_applies_to_every_served_version(kube: KubeClient, namespace: str):
    # A wrong type is the CRD schema's 422; a right type with a bad value is the webhook's 400.
    with pytest.raises(KubeError) as typed:
        kube.create(path("VirtualService", namespace),
                    reviews_vs([{"destination": {"host": "reviews"}, "weight": "ten"}]))
    assert typed.value.status == 422
    for version in ("v1beta1", "v1alpha3"):
        body = reviews_vs([{"destination": {"host": "reviews"}}], directResponse={"status": 503})
        body["apiVersion"] = f"networking.istio.io/{version}"
        message = refused(kube, "POST", path("VirtualService", namespace, version=version), body)
        assert message == DENIED + "configuration is invalid: HTTP route cannot contain both route and direct_response"


def test_delegate_virtual_service_may_not_name_gateways(kube: KubeClient, namespace: str):
    body = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "delegate"},
            "spec": {"gateways": ["bookinfo-gateway"],
                     "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}
    message = refused(kube, "POST", path("VirtualService", namespace), body)
    assert message == DENIED + "configuration is invalid: delegate virtual service must have no gateways specified"


def test_istios_bookinfo_samples_are_accepted(kube: KubeClient, namespace: str):
    applied: dict[str, int] = {}
    try:
        for sample in sorted(SAMPLES.glob("*.yaml")):
            for doc in yaml.safe_load_all(sample.read_text()):
                if not doc:
                    continue
                doc["metadata"]["namespace"] = namespace
                url = path(doc["kind"], namespace, doc["metadata"]["name"])
                try:
                    current = kube.get(url)
                except KubeError as exc:
                    assert exc.status == 404
                    kube.create(path(doc["kind"], namespace), doc)
                else:
                    # Several samples define "reviews": each later one is an UPDATE, validated too.
                    doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    kube.replace(url, doc)
                stored = kube.get(url)
                assert stored["spec"] == doc["spec"], sample.name  # nothing pruned: all fields are Istio's
                applied[url] = applied.get(url, 0) + 1
        assert sum(applied.values()) >= 25
    finally:
        # Gateways for "*" would take ingress traffic of a data plane sharing this lab.
        for url in applied:
            kube.delete(url)


def test_the_webhook_is_registered_by_url_and_fails_closed(lab_state: dict[str, Any], kube: KubeClient):
    configuration = kube.get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                             "istiod-default-validator")
    (webhook,) = configuration["webhooks"]
    assert webhook["name"] == "validation.istio.io"
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["clientConfig"]["url"] == lab_state["webhook_url"]
    assert webhook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert webhook["clientConfig"]["caBundle"]
    assert {"virtualservices", "destinationrules", "gateways"} <= set(webhook["rules"][0]["resources"])


@pytest.mark.slow
def test_without_its_webhook_the_lab_refuses_istio_writes_until_it_is_back(lab_state: dict[str, Any],
                                                                           kube: KubeClient, namespace: str):
    lab = Lab(lab_state["dir"])
    lab.kill("webhook")
    try:
        with pytest.raises(KubeError) as caught:
            kube.create(path("VirtualService", namespace),
                        reviews_vs([{"destination": {"host": "reviews", "subset": "v1"}}]))
        assert caught.value.status == 500
        assert "failed calling webhook" in str(caught.value)
        assert_absent(kube, path("VirtualService", namespace, "reviews"))
    finally:
        lab.start_again("webhook")
    kube.create(path("VirtualService", namespace), reviews_vs([{"destination": {"host": "reviews", "subset": "v1"}}]))


def test_status_shows_the_webhook_and_down_stops_it(tmp_path: Path):
    lab_dir = tmp_path / "lab"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab", "--dir", str(lab_dir), *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300, check=False)

    up = run("up", "--no-provision")
    assert up.returncode == 0, up.stderr
    try:
        status = run("status")
        assert "webhook:    https://127.0.0.1:" in status.stdout
        assert "process webhook: pid" in status.stdout and "running" in status.stdout
        info = json.loads(run("status", "--json").stdout)
        assert info["up"] is True and info["processes"]["webhook"]["running"] is True
        record = json.loads((lab_dir / "lab.json").read_text())["processes"]["webhook"]
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert not process_alive(record)
    assert not (lab_dir / "webhook.json").exists()
