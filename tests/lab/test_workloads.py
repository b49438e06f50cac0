"""The workload runner: Deployments in the API server become Bookinfo processes, and back."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from tests.lab.conftest import DataPlaneLab, object_path

pytestmark = pytest.mark.lab


def deployment(name: str, image: str, labels: dict[str, str], replicas: int = 1,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "ports": [{"containerPort": 9080}]}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}


def pid_alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: Any, timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message or "condition not met in time"
        time.sleep(0.05)


DETAILS_IMAGE = "docker.io/istio/examples-bookinfo-details-v1:1.16.2"


def test_deployment_becomes_available_and_answers(dp_lab: DataPlaneLab) -> None:
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("details-v1", DETAILS_IMAGE, {"app": "details", "version": "v1"}, replicas=2), namespace)
    stored = dp_lab.wait_condition(namespace, "details-v1", "Available", "True")
    status = stored["status"]
    assert status["observedGeneration"] == stored["metadata"]["generation"]
    assert status["replicas"] == status["updatedReplicas"] == status["readyReplicas"] == 2
    assert status["availableReplicas"] == 2
    progressing = {c["type"]: c for c in status["conditions"]}["Progressing"]
    assert progressing["status"] == "True" and progressing["reason"] == "NewReplicaSetAvailable"
    dp_lab.wait_available(namespace, ["details-v1"])
    # With no Service object, the app label names the service; a workload in the namespace reaches it.
    reply = dp_lab.mesh("details:9080", "/details/0", namespace=namespace)
    assert reply.status == 200 and reply.json()["author"] == "William Shakespeare"
    workload = dp_lab.workload(namespace, "details-v1")
    assert workload and pid_alive(workload["current"]["pid"])


def test_deleted_deployment_stops_its_process(dp_lab: DataPlaneLab) -> None:
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("ratings-v1", "docker.io/istio/examples-bookinfo-ratings-v1:1.16.2",
                            {"app": "ratings", "version": "v1"}), namespace)
    dp_lab.wait_available(namespace, ["ratings-v1"])
    pid = dp_lab.workload(namespace, "ratings-v1")["current"]["pid"]
    assert pid_alive(pid)
    dp_lab.delete("Deployment", namespace, "ratings-v1")
    wait_until(lambda: not pid_alive(pid), message=f"process {pid} still runs after its Deployment was deleted")
    assert dp_lab.workload(namespace, "ratings-v1") is None
    # Nothing serves the service any more: the router has no route for it.
    assert dp_lab.mesh("ratings:9080", "/ratings/0", namespace=namespace).status == 404


def test_unknown_image_is_not_available_with_reason(dp_lab: DataPlaneLab) -> None:
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("web", "nginx:1.25", {"app": "web"}), namespace)
    stored = dp_lab.wait_condition(namespace, "web", "Available", "False")
    available = {c["type"]: c for c in stored["status"]["conditions"]}["Available"]
    assert available["reason"] == "UnsupportedImage"
    assert "nginx:1.25" in available["message"]
    assert not stored["status"].get("availableReplicas")
    assert stored["status"]["unavailableReplicas"] == 1
    # Fixing the image makes it run.
    dp_lab.apply(deployment("web", DETAILS_IMAGE, {"app": "web"}), namespace)
    dp_lab.wait_condition(namespace, "web", "Available", "True")


def test_scale_to_zero_and_back(dp_lab: DataPlaneLab) -> None:
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("details-v1", DETAILS_IMAGE, {"app": "details", "version": "v1"}), namespace)
    dp_lab.wait_available(namespace, ["details-v1"])
    pid = dp_lab.workload(namespace, "details-v1")["current"]["pid"]
    path = object_path("Deployment", namespace, "details-v1")
    dp_lab.kube.merge_patch(path, {"spec": {"replicas": 0}})
    wait_until(lambda: not pid_alive(pid), message="scaled to 0 but the process still runs")
    stored = dp_lab.wait_condition(namespace, "details-v1", "Available", "True")
    assert not stored["status"].get("replicas")
    dp_lab.kube.merge_patch(path, {"spec": {"replicas": 1}})
    dp_lab.wait_available(namespace, ["details-v1"])
    assert dp_lab.workload(namespace, "details-v1")["current"]["pid"] != pid


def test_template_change_replaces_the_process_without_failed_requests(dp_lab: DataPlaneLab) -> None:
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("details-v1", DETAILS_IMAGE, {"app": "details", "version": "v1"}), namespace)
    dp_lab.wait_available(namespace, ["details-v1"])
    old_pid = dp_lab.workload(namespace, "details-v1")["current"]["pid"]
    failures: list[int] = []
    served = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal served
        # Its own connection (the fixture's helper is not shared across threads).
        lab = DataPlaneLab(dp_lab.dir, dp_lab.state, dp_lab.info, dp_lab.kube)
        while not stop.is_set():
            status = lab.mesh("details:9080", "/details/0", namespace=namespace).status
            served += 1
            if status != 200:
                failures.append(status)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.2)
        dp_lab.apply(deployment("details-v1", DETAILS_IMAGE, {"app": "details", "version": "v1"},
                                env={"RESTARTED_AT": str(time.time())}), namespace)
        stored = dp_lab.wait_condition(namespace, "details-v1", "Progressing", "True")
        wait_until(lambda: not pid_alive(old_pid), message="old process still runs after the template changed")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert stored["metadata"]["generation"] == 2
    assert dp_lab.workload(namespace, "details-v1")["current"]["pid"] != old_pid
    assert served > 50 and failures == [], f"{len(failures)} failed of {served}: {failures[:5]}"


def test_replicas_weight_the_spread_like_a_service(dp_lab: DataPlaneLab) -> None:
    # Without a VirtualService, a Service balances over pods: 3 replicas of v1 and 1 of v2 is 75/25.
    namespace = dp_lab.create_namespace()
    dp_lab.apply(deployment("ratings-v1", "docker.io/istio/examples-bookinfo-ratings-v1:1.16.2",
                            {"app": "ratings", "version": "v1"}, replicas=3), namespace)
    dp_lab.apply(deployment("details-v1", DETAILS_IMAGE, {"app": "details", "version": "v1"}), namespace)
    dp_lab.wait_available(namespace, ["ratings-v1", "details-v1"])
    assert os.environ.get("PYTEST_CURRENT_TEST")
    config = dp_lab.debug("config")
    replicas = {e["workload"]: e["replicas"] for e in config["endpoints"] if e["namespace"] == namespace}
    assert replicas == {"ratings-v1": 3, "details-v1": 1}
