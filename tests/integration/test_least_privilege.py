"""The shipped Roles are enough for each feature, and a missing permission names what to grant."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lab.kube import KubeClient
from tests.helpers.ansible import lab_auth, run_module
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.lab

RBAC = REPO_ROOT / "rbac"
BOOKINFO = REPO_ROOT / "bookinfo"


def _bind(kube: KubeClient, namespace: str, file: str, user: str = "lab:nobody") -> None:
    role = yaml.safe_load((RBAC / file).read_text())
    kind = role["kind"]
    if kind == "Role":
        kube.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", role)
    else:
        role["metadata"]["name"] += f"-{namespace}"
        kube.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    kube.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", {
        "metadata": {"name": role["metadata"]["name"]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role["metadata"]["name"]},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


def _as(state: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**lab_auth(state, "nobody"), "namespace": namespace}


@pytest.mark.parametrize("role_file", ["canary-traffic-role.yaml", "canary-traffic-clusterrole.yaml"])
def test_traffic_role_is_enough_to_move_traffic(lab_state, kube, namespace, role_file):
    admin = {**lab_auth(lab_state), "namespace": namespace}
    for path in ("networking/destination-rule-v1-v2.yaml", "networking/virtual-service-all-v1.yaml"):
        assert not run_module("manifest", {**admin, "src": [str(BOOKINFO / path)]}).get("failed")
    _bind(kube, namespace, role_file)
    user = _as(lab_state, namespace)
    steps = [
        ("release_lock", {"name": "canary-reviews", "holder": "job"}),
        ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 30}),
        ("header_route", {"name": "reviews", "route": "testers", "headers": {"end-user": "jason"}, "subset": "v2"}),
        ("canary_info", {"name": "reviews"}),
        ("virtual_service_info", {}),
        ("destination_rule_info", {"name": "reviews"}),
        ("release_lock", {"name": "canary-reviews", "holder": "job", "state": "absent"}),
    ]
    for module, args in steps:
        result = run_module(module, {**user, **args})
        assert not result.get("failed"), (module, result.get("msg"))
    # What the traffic role does not allow fails with the verb and resource to grant.
    denied = run_module("destination_rule", {**user, "name": "reviews",
                                             "subsets": [{"name": "v3", "labels": {"version": "v3"}}]})
    assert denied.get("failed") is True
    assert "Grant verb 'update' on resource 'destinationrules' (apiGroup networking.istio.io)" in denied["msg"]
    created = run_module("virtual_service", {**user, "name": "new", "spec": {
        "hosts": ["new"], "http": [{"route": [{"destination": {"host": "new"}}]}]}})
    assert created.get("failed") is True and "Grant verb 'create' on resource 'virtualservices'" in created["msg"]


def test_release_role_is_enough_for_the_whole_release(lab_state, kube, namespace):
    _bind(kube, namespace, "canary-release-role.yaml")
    user = _as(lab_state, namespace)
    steps = [
        ("manifest", {"src": [str(BOOKINFO / "platform/kube/bookinfo-reviews-v1.yaml"),
                              str(BOOKINFO / "networking/bookinfo-gateway.yaml"),
                              str(BOOKINFO / "networking/destination-rule-all-reviews-v1.yaml"),
                              str(BOOKINFO / "networking/virtual-service-all-v1.yaml")]}),
        ("manifest", {"src": [str(BOOKINFO / "platform/kube/bookinfo-reviews-v2.yaml")]}),
        ("destination_rule", {"name": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}),
        ("release_lock", {"name": "canary-reviews", "holder": "job"}),
        ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "v2": 50}}),
        ("traffic_split", {"name": "reviews", "weights": {"v2": 100}, "remove_unnamed": True}),
        ("destination_rule", {"name": "reviews", "remove_subsets": ["v1"]}),
        ("manifest", {"definition": {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "metadata": {"name": "reviews-v1"}}, "state": "absent"}),
        ("release_lock", {"name": "canary-reviews", "holder": "job", "state": "absent"}),
    ]
    for module, args in steps:
        result = run_module(module, {**user, **args})
        assert not result.get("failed"), (module, result.get("msg"))
    # The Role is namespaced: the same user can do nothing in another namespace.
    elsewhere = run_module("virtual_service_info", {**lab_auth(lab_state, "nobody"), "namespace": "default"})
    assert elsewhere.get("failed") is True
    assert "Grant verb 'list' on resource 'virtualservices'" in elsewhere["msg"]
