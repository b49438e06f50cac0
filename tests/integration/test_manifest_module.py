"""manifest: server-side apply of Bookinfo files, least discovery, waiting for Deployments."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lab.kube import KubeClient, KubeError
from tests.helpers.ansible import lab_auth, run_module
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.lab

BOOKINFO_V1 = str(REPO_ROOT / "bookinfo" / "platform" / "kube" / "bookinfo-reviews-v1.yaml")


def _mark_available(kube: KubeClient, namespace: str, name: str) -> None:
    """What a controller would write once the pods run (the lab runs no controller-manager)."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    deployment = kube.get(path)
    replicas = deployment["spec"].get("replicas", 1)
    deployment["status"] = {
        "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
        "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    kube.replace(f"{path}/status", deployment)


def test_bookinfo_file_applies_twice_second_unchanged_with_least_discovery(lab_state, kube, namespace, audit):
    auth = lab_auth(lab_state)
    window = audit()
    first = run_module("manifest", {**auth, "src": [BOOKINFO_V1], "namespace": namespace})
    assert first["changed"] is True, first
    kinds = sorted({(o["kind"], o["method"]) for o in first["objects"]})
    assert kinds == [("Deployment", "created"), ("Service", "created"), ("ServiceAccount", "created")]
    assert {o["name"] for o in first["objects"] if o["kind"] == "Deployment"} == \
        {"details-v1", "ratings-v1", "reviews-v1", "productpage-v1"}
    # Only the group-versions used: v1 and apps/v1.
    assert first["discovery_requests"] == 2
    discovery = window.requests(user="lab:admin", where=lambda e: e["requestURI"] in ("/api/v1", "/apis/apps/v1"))
    assert len(discovery) == 2
    assert not window.requests(user="lab:admin", where=lambda e: e["requestURI"] in ("/api", "/apis"))
    deployment = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/reviews-v1")
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "reviews", "version": "v1"}
    assert any(f["manager"] == "canary.istio" for f in deployment["metadata"]["managedFields"])

    second = run_module("manifest", {**auth, "src": [BOOKINFO_V1], "namespace": namespace}, diff=True)
    assert second["changed"] is False, [o for o in second["objects"] if o["changed"]]
    assert {o["method"] for o in second["objects"]} == {"unchanged"}


def test_check_mode_and_diff_store_nothing(lab_state, kube, namespace):
    auth = lab_auth(lab_state)
    definition = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
    checked = run_module("manifest", {**auth, "definition": definition, "namespace": namespace}, check=True, diff=True)
    assert checked["changed"] is True and checked["objects"][0]["method"] == "created"
    assert checked["objects"][0]["diff"]["after"]["data"] == {"a": "1"}
    with pytest.raises(KubeError):
        kube.get(f"/api/v1/namespaces/{namespace}/configmaps/settings")
    run_module("manifest", {**auth, "definition": definition, "namespace": namespace})
    stored = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/settings")
    yaml_text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '2'}\n"
    update = run_module("manifest", {**auth, "definition": yaml_text, "namespace": namespace}, check=True, diff=True)
    assert update["changed"] is True
    assert update["objects"][0]["diff"]["before"]["data"] == {"a": "1"}
    assert update["objects"][0]["diff"]["after"]["data"] == {"a": "2"}
    assert kube.get(f"/api/v1/namespaces/{namespace}/configmaps/settings")["metadata"]["resourceVersion"] == \
        stored["metadata"]["resourceVersion"]
    gone = run_module("manifest", {**auth, "definition": definition, "namespace": namespace, "state": "absent"})
    assert gone["changed"] is True and gone["objects"][0]["method"] == "deleted"
    again = run_module("manifest", {**auth, "definition": definition, "namespace": namespace, "state": "absent"})
    assert again["changed"] is False


def test_wait_succeeds_when_deployments_become_available(lab_state, kube, namespace):
    auth = lab_auth(lab_state)
    v2 = str(REPO_ROOT / "bookinfo" / "platform" / "kube" / "bookinfo-reviews-v2.yaml")

    def controller() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _mark_available(kube, namespace, "reviews-v2")
                return
            except KubeError:
                time.sleep(0.2)

    thread = threading.Thread(target=controller)
    thread.start()
    result = run_module("manifest", {**auth, "src": [v2], "namespace": namespace, "wait": True, "wait_timeout": 30})
    thread.join()
    assert result["changed"] is True and not result.get("failed"), result
    assert result["not_ready"] == {}


def test_wait_times_out_naming_what_is_not_ready(lab_state, namespace):
    auth = lab_auth(lab_state)
    v3 = str(REPO_ROOT / "bookinfo" / "platform" / "kube" / "bookinfo-reviews-v3.yaml")
    started = time.monotonic()
    result = run_module("manifest", {**auth, "src": [v3], "namespace": namespace, "wait": True, "wait_timeout": 2})
    assert time.monotonic() - started < 15
    assert result.get("failed") is True
    assert f"{namespace}/reviews-v3" in result["msg"]
    assert "availableReplicas 0/1" in result["msg"] and "after 2s" in result["msg"]


@pytest.mark.parametrize("args,expected", [
    ({"src": ["/no/such/file.yaml"]}, "src '/no/such/file.yaml' does not exist"),
    ({"definition": "kind: [broken"}, "definition[0] is not valid YAML"),
    ({"definition": {"kind": "ConfigMap", "metadata": {"name": "x"}}}, "needs apiVersion, kind and metadata.name"),
    ({"definition": {"apiVersion": "example.com/v9", "kind": "Widget", "metadata": {"name": "x"}}},
     "does not serve apiVersion 'example.com/v9'"),
])
def test_bad_manifests_fail_clearly_without_writes(lab_state, namespace, audit, args: dict[str, Any], expected: str):
    window = audit()
    result = run_module("manifest", {**lab_auth(lab_state), "namespace": namespace, **args})
    assert result.get("failed") is True and expected in result["msg"], result
    assert window.writes() == []
