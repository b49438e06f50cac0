"""virtual_service, destination_rule and their _info modules against the lab's real apiserver."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import Lab
from lab.kube import KubeClient
from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

VS_SPEC = {"hosts": ["reviews"],
           "http": [{"name": "primary",
                     "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}]}
DR_SPEC = {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                          {"name": "v3", "labels": {"version": "v3"}}]}


def _path(kind: str, namespace: str, name: str, version: str = "v1") -> str:
    plural = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}[kind]
    return f"/apis/networking.istio.io/{version}/namespaces/{namespace}/{plural}/{name}"


@pytest.mark.parametrize("module,kind,spec,changed_spec", [
    ("virtual_service", "VirtualService", VS_SPEC,
     {**VS_SPEC, "http": [{**VS_SPEC["http"][0], "timeout": "5s"}]}),
    ("destination_rule", "DestinationRule", DR_SPEC,
     {**DR_SPEC, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}),
])
def test_write_module_lifecycle(lab_state, kube: KubeClient, namespace: str, module, kind, spec, changed_spec):
    auth = lab_auth(lab_state)
    args = {**auth, "name": "reviews", "namespace": namespace, "spec": spec, "labels": {"app": "reviews"}}

    created = run_module(module, args)
    assert created["changed"] is True and created["method"] == "created", created
    assert created["api_version"] == "networking.istio.io/v1"
    stored = kube.get(_path(kind, namespace, "reviews"))
    assert stored["spec"] == spec and stored["metadata"]["labels"] == {"app": "reviews"}

    again = run_module(module, args)
    assert again["changed"] is False and again["method"] == "unchanged", again
    assert kube.get(_path(kind, namespace, "reviews"))["metadata"]["resourceVersion"] == \
        stored["metadata"]["resourceVersion"]

    # Check mode: the dry run reports the change, nothing is stored.
    checked = run_module(module, {**args, "spec": changed_spec}, check=True, diff=True)
    assert checked["changed"] is True, checked
    assert checked["result"]["spec"] == changed_spec
    after_check = kube.get(_path(kind, namespace, "reviews"))
    assert after_check["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert after_check["spec"] == spec
    assert checked["diff"]["before"]["spec"] == spec and checked["diff"]["after"]["spec"] == changed_spec

    # Someone else's label survives our update; the diff shows only what changed.
    kube.merge_patch(_path(kind, namespace, "reviews"), {"metadata": {"labels": {"team": "books"}}})
    updated = run_module(module, {**args, "spec": changed_spec}, diff=True)
    assert updated["changed"] is True and updated["method"] == "updated", updated
    stored = kube.get(_path(kind, namespace, "reviews"))
    assert stored["spec"] == changed_spec
    assert stored["metadata"]["labels"] == {"app": "reviews", "team": "books"}
    assert updated["diff"]["before"]["spec"] == spec and updated["diff"]["after"]["spec"] == changed_spec
    assert run_module(module, {**args, "spec": changed_spec})["changed"] is False

    removed = run_module(module, {**auth, "name": "reviews", "namespace": namespace, "state": "absent",
                                  **({"force": True} if module == "destination_rule" else {})})
    assert removed["changed"] is True and removed["method"] == "deleted"
    assert kube.get(_path(kind, namespace, "reviews").rsplit("/", 1)[0])["items"] == []
    gone = run_module(module, {**auth, "name": "reviews", "namespace": namespace, "state": "absent"})
    assert gone["changed"] is False


def test_definition_from_a_file_and_info_modules(lab_state, kube, namespace):
    auth = lab_auth(lab_state)
    definition = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                  "metadata": {"name": "ratings", "labels": {"app": "ratings"}},
                  "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]}}
    assert run_module("virtual_service", {**auth, "definition": definition, "namespace": namespace})["changed"]
    run_module("virtual_service", {**auth, "name": "other", "namespace": namespace,
                                   "spec": {"hosts": ["other"], "http": [{"route": [{"destination": {"host": "o"}}]}]}})
    one = run_module("virtual_service_info", {**auth, "name": "ratings", "namespace": namespace}, check=True)
    assert [r["metadata"]["name"] for r in one["resources"]] == ["ratings"]
    assert one["resources"][0]["spec"] == definition["spec"]
    listed = run_module("virtual_service_info", {**auth, "namespace": namespace})
    assert sorted(r["metadata"]["name"] for r in listed["resources"]) == ["other", "ratings"]
    assert all(r["kind"] == "VirtualService" for r in listed["resources"])
    selected = run_module("virtual_service_info", {**auth, "namespace": namespace, "label_selectors": ["app=ratings"]})
    assert [r["metadata"]["name"] for r in selected["resources"]] == ["ratings"]
    across = {**auth, "all_namespaces": True, "label_selectors": ["app=ratings"]}
    everywhere = run_module("virtual_service_info", across)
    found = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in everywhere["resources"]}
    assert (namespace, "ratings") in found
    missing = run_module("virtual_service_info", {**auth, "name": "nope", "namespace": namespace})
    assert missing["resources"] == [] and not missing.get("failed")
    run_module("destination_rule", {**auth, "name": "ratings", "namespace": namespace, "spec": DR_SPEC})
    dr = run_module("destination_rule_info", {**auth, "namespace": namespace})
    assert [r["metadata"]["name"] for r in dr["resources"]] == ["ratings"]


def test_adding_a_subset_keeps_the_ones_not_named(lab_state, kube, namespace):
    auth = lab_auth(lab_state)
    run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace, "spec": DR_SPEC})
    # The tutorial's destination-rule-v1-v2.yaml lists only v1 and v2: v3 must survive it.
    tutorial_spec = {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                    {"name": "v2", "labels": {"version": "v2"}}]}
    result = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace,
                                             "spec": tutorial_spec})
    assert result["changed"] is True
    assert result["subsets"] == ["v1", "v3", "v2"]
    stored = kube.get(_path("DestinationRule", namespace, "reviews"))
    assert [s["name"] for s in stored["spec"]["subsets"]] == ["v1", "v3", "v2"]
    # The subsets option alone adds/updates in place.
    canary_subset = {"name": "v2", "labels": {"version": "v2", "track": "canary"}}
    updated = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace,
                                              "subsets": [canary_subset]})
    assert updated["changed"] is True
    stored = kube.get(_path("DestinationRule", namespace, "reviews"))
    assert stored["spec"]["subsets"][2] == {"name": "v2", "labels": {"version": "v2", "track": "canary"}}
    assert stored["spec"]["subsets"][1] == DR_SPEC["subsets"][1]


def test_removing_a_routed_subset_is_refused_until_traffic_moves(lab_state, kube, namespace, audit):
    auth = lab_auth(lab_state)
    run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace, "spec": DR_SPEC})
    run_module("virtual_service", {**auth, "name": "reviews", "namespace": namespace, "spec": VS_SPEC})
    window = audit()
    refused = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace,
                                              "remove_subsets": ["v1"]})
    assert refused.get("failed") is True
    assert "subset 'v1' by VirtualService reviews" in refused["msg"]
    assert "force" in refused["msg"]
    whole = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace, "state": "absent"})
    assert whole.get("failed") is True and "still routed" in whole["msg"]
    assert window.writes() == []
    # v3 is not routed: it may go.
    ok = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace, "remove_subsets": ["v3"]})
    assert ok["changed"] is True and ok["removed_subsets"] == ["v3"] and ok["subsets"] == ["v1"]
    forced = run_module("destination_rule", {**auth, "name": "reviews", "namespace": namespace,
                                             "remove_subsets": ["v1"], "force": True})
    assert forced["changed"] is True and forced["subsets"] == []


@pytest.mark.parametrize("case", ["forbidden", "schema", "namespace_missing", "object_missing",
                                  "bad_kubeconfig", "bad_spec", "bad_name"])
def test_errors_are_clear_and_change_nothing(lab_state, kube, namespace, audit, tmp_path: Path, case):
    auth = lab_auth(lab_state)
    run_module("virtual_service", {**auth, "name": "reviews", "namespace": namespace, "spec": VS_SPEC})
    before = kube.get(_path("VirtualService", namespace, "reviews"))
    changed_spec = {**VS_SPEC, "http": [{**VS_SPEC["http"][0], "timeout": "9s"}]}
    args: dict[str, Any] = {**auth, "name": "reviews", "namespace": namespace, "spec": changed_spec}
    module = "virtual_service"
    expected: list[str]
    if case == "forbidden":
        args.update(lab_auth(lab_state, "viewer"))
        expected = ['cannot update resource "virtualservices"', "Grant verb 'update' on resource 'virtualservices'"]
    elif case == "schema":
        args["spec"] = {**VS_SPEC, "http": [{**VS_SPEC["http"][0], "timeout": 5}]}
        expected = ["rejected", "(422)", "spec.http.timeout"]
    elif case == "namespace_missing":
        args.update(name="fresh", namespace="no-such-namespace")
        expected = ["namespace 'no-such-namespace' does not exist"]
    elif case == "object_missing":
        module = "destination_rule"
        args = {**auth, "name": "nope", "namespace": namespace, "subsets": [{"name": "v2", "labels": {"v": "2"}}]}
        expected = ["DestinationRule", "/nope does not exist; give spec to create it"]
    elif case == "bad_kubeconfig":
        broken = tmp_path / "kubeconfig"
        broken.write_text("clusters: [unterminated\n")
        args["kubeconfig"] = str(broken)
        args.pop("context")
        expected = ["is not valid YAML", str(broken)]
    elif case == "bad_spec":
        # Weights need not sum to 100 in Istio, but several destinations totalling 0 are rejected
        # (istio/istio pkg/config/validation/validation.go validateHTTPRouteDestinations).
        args["spec"] = {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 0},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 0}]}]}
        expected = ["2 destinations whose weights total 0"]
    else:
        args["name"] = "Reviews_Bad"
        expected = ["'Reviews_Bad' is not a valid Kubernetes name"]
    window = audit()
    result = run_module(module, args)
    assert result.get("failed") is True, result
    for fragment in expected:
        assert fragment in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"] and "Traceback" not in result["_stderr"]
    assert window.writes() == [] or all(e["responseStatus"]["code"] >= 400 for e in window.writes())
    assert kube.get(_path("VirtualService", namespace, "reviews"))["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]


@pytest.fixture(scope="module")
def scratch_lab(tmp_path_factory) -> Any:
    """A second lab whose Istio CRDs the tests may change (served versions, or none at all)."""
    lab = Lab(tmp_path_factory.mktemp("scratch") / "lab")
    state = lab.up(provision=False)
    try:
        yield state
    finally:
        lab.down(quiet=True)


def _reinstall_crds(state: dict[str, Any], versions: list[str], without: tuple[str, ...] = ()) -> None:
    """Istio's networking CRDs again, served only at ``versions`` (none: removed), minus the kinds
    in ``without``; a kind that serves none of ``versions`` stays removed, as in an older Istio."""
    import time

    from lab.controlplane import load_crds

    client = KubeClient.from_state(state)
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    docs = load_crds(("networking.istio.io",))
    for doc in docs:
        try:
            client.delete(f"{base}/{doc['metadata']['name']}")
        except Exception:
            pass
    deadline = time.monotonic() + 60
    for doc in docs:
        while time.monotonic() < deadline:
            try:
                client.get(f"{base}/{doc['metadata']['name']}")
                time.sleep(0.2)
            except Exception:
                break
    for doc in docs:
        served = [v for v in doc["spec"]["versions"] if v["name"] in versions]
        if not served or doc["spec"]["names"]["kind"] in without:
            continue
        narrowed = copy.deepcopy(doc)
        narrowed["spec"]["versions"] = [dict(v, storage=(v["name"] == served[0]["name"])) for v in served]
        client.create(base, narrowed)
    if versions:
        probe = "destinationrules" if "VirtualService" in without else "virtualservices"
        while time.monotonic() < deadline:
            try:
                client.get(f"/apis/networking.istio.io/{versions[0]}/{probe}")
                break
            except Exception:
                time.sleep(0.2)


def test_cluster_serving_only_v1alpha3_still_works(scratch_lab, audit):
    _reinstall_crds(scratch_lab, ["v1alpha3"])
    auth = {"kubeconfig": scratch_lab["kubeconfig"], "context": "lab"}
    created = run_module("virtual_service", {**auth, "name": "reviews", "namespace": "default", "spec": VS_SPEC})
    assert created["changed"] is True, created
    assert created["api_version"] == "networking.istio.io/v1alpha3"
    # The first guess (v1) 404s, one discovery request finds v1alpha3.
    assert created["api_requests"] == 4
    again = run_module("virtual_service", {**auth, "name": "reviews", "namespace": "default", "spec": VS_SPEC})
    assert again["changed"] is False
    forced = run_module("virtual_service_info", {**auth, "name": "reviews", "namespace": "default",
                                                 "api_version": "v1alpha3"})
    assert forced["resources"][0]["spec"] == VS_SPEC and forced["api_requests"] == 1
    wrong = run_module("virtual_service_info", {**auth, "name": "reviews", "namespace": "default",
                                                "api_version": "v1"})
    assert wrong.get("failed") is True and "api_version" in wrong["msg"]


def test_cluster_without_istio_crds_gets_a_clear_error(scratch_lab):
    _reinstall_crds(scratch_lab, [])
    auth = {"kubeconfig": scratch_lab["kubeconfig"], "context": "lab"}
    for module, extra in (("virtual_service", {"spec": VS_SPEC}), ("destination_rule_info", {})):
        result = run_module(module, {**auth, "name": "reviews", "namespace": "default", **extra})
        assert result.get("failed") is True
        assert "Istio's CRDs (VirtualService, DestinationRule) are missing" in result["msg"], result["msg"]


def test_cluster_without_the_virtualservice_crd_names_it(scratch_lab):
    # Istio's other networking CRDs are served, so the group answers discovery; the missing kind is named.
    _reinstall_crds(scratch_lab, ["v1"], without=("VirtualService",))
    auth = {"kubeconfig": scratch_lab["kubeconfig"], "context": "lab"}
    result = run_module("virtual_service_info", {**auth, "name": "reviews", "namespace": "default"})
    assert result.get("failed") is True, result
    assert "VirtualService (virtualservices)" in result["msg"] and "CRD is missing" in result["msg"], result["msg"]
    rules = run_module("destination_rule_info", {**auth, "namespace": "default"})
    assert rules.get("failed") is not True, rules


def test_create_only_creates_a_missing_route_and_leaves_an_existing_one(lab_state, kube, namespace, audit):
    """base_release run again during a canary: Istio's all-v1 reviews route must not undo the 90/10 split
    (Istio's virtual-service-reviews-90-10.yaml) that the release holds; a missing route is still created."""
    from tests.conformance import corpus

    auth = lab_auth(lab_state)
    samples = corpus.istio_objects("samples/bookinfo/networking/virtual-service-all-v1.yaml")
    all_v1 = next(o for o in samples if o["metadata"]["name"] == "reviews")
    split = corpus.istio_objects("samples/bookinfo/networking/virtual-service-reviews-90-10.yaml")[0]
    args = {**auth, "definition": all_v1, "namespace": namespace, "create_only": True}

    created = run_module("virtual_service", args)
    assert created["changed"] is True and created["method"] == "created", created
    assert kube.get(_path("VirtualService", namespace, "reviews"))["spec"] == all_v1["spec"]

    kube.replace(_path("VirtualService", namespace, "reviews"),
                 {**kube.get(_path("VirtualService", namespace, "reviews")), "spec": split["spec"]})
    held = kube.get(_path("VirtualService", namespace, "reviews"))
    window = audit()
    kept = run_module("virtual_service", args, diff=True)
    events = window.requests(user="lab:admin")
    assert kept["changed"] is False and kept["method"] == "unchanged", kept
    assert [e["verb"] for e in events] == ["get"]
    now = kube.get(_path("VirtualService", namespace, "reviews"))
    assert now["spec"] == split["spec"] and now["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]

    # Without create_only the stored route is made the definition's again.
    reset = run_module("virtual_service", {**args, "create_only": False})
    assert reset["method"] == "updated"
    assert kube.get(_path("VirtualService", namespace, "reviews"))["spec"] == all_v1["spec"]
