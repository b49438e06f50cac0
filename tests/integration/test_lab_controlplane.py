"""The lab's control plane is real: versions, Istio's own CRDs, RBAC, audit, two labs side by side."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.controlplane import find_binaries, process_alive
from lab.kube import KubeClient, KubeError
from tests.helpers.collection import REPO_ROOT

pytestmark = pytest.mark.lab

VS_PATH = "/apis/networking.istio.io/{version}/namespaces/{ns}/virtualservices"


def _reviews_vs(name: str, weight: Any = 100, version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": f"networking.istio.io/{version}", "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {"hosts": ["reviews"],
                 "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": weight}],
                           "someFutureField": {"kept": True}}]},
    }


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_virtual_service_created_at_v1alpha3_reads_back_at_v1_and_v1beta1(kube: KubeClient, namespace: str):
    kube.create(VS_PATH.format(version="v1alpha3", ns=namespace), _reviews_vs("reviews", version="v1alpha3"))
    for version in ("v1", "v1beta1", "v1alpha3"):
        got = kube.get(VS_PATH.format(version=version, ns=namespace) + "/reviews")
        assert got["apiVersion"] == f"networking.istio.io/{version}"
        assert got["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v1"
        # Istio's CRDs are structural and do not preserve unknown fields: the API server prunes
        # a field Istio's schema does not know, as on a cluster with Istio installed.
        assert "someFutureField" not in got["spec"]["http"][0]


def test_istios_published_crds_are_installed_with_v1_stored(kube: KubeClient):
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names = {crd["metadata"]["name"] for crd in kube.get(base)["items"]}
    assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
            "gateways.networking.istio.io", "serviceentries.networking.istio.io", "sidecars.networking.istio.io",
            "authorizationpolicies.security.istio.io", "telemetries.telemetry.istio.io",
            "wasmplugins.extensions.istio.io"} <= names
    for kind in ("virtualservices", "destinationrules", "gateways"):
        crd = kube.get(f"{base}/{kind}.networking.istio.io")
        # Istio's generator marks its files; the lab posts them unmodified.
        assert crd["metadata"]["labels"]["app"] == "istio-pilot"
        versions = {v["name"]: (v["served"], v["storage"]) for v in crd["spec"]["versions"]}
        assert versions == {"v1": (True, True), "v1beta1": (True, False), "v1alpha3": (True, False)}
        assert crd["status"]["storedVersions"] == ["v1"]


def test_schema_rejects_a_string_weight_with_422_naming_the_field(kube: KubeClient, namespace: str):
    with pytest.raises(KubeError) as caught:
        kube.create(VS_PATH.format(version="v1", ns=namespace), _reviews_vs("bad", weight="abc"))
    assert caught.value.status == 422
    # Kubernetes 1.20 names the field without list indices.
    assert "spec.http.route.weight" in str(caught.value)
    assert "must be of type integer" in str(caught.value)
    with pytest.raises(KubeError) as missing:
        kube.get(VS_PATH.format(version="v1", ns=namespace) + "/bad")
    assert missing.value.status == 404


def test_rbac_unprivileged_token_cannot_patch_admin_can(lab_state: dict[str, Any], kube: KubeClient, namespace: str):
    path = VS_PATH.format(version="v1", ns=namespace)
    kube.create(path, _reviews_vs("reviews"))
    patch = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100}]
    for user in ("viewer", "nobody"):
        client = KubeClient.from_state(lab_state, user=user)
        with pytest.raises(KubeError) as caught:
            client.json_patch(f"{path}/reviews", patch)
        assert caught.value.status == 403
        assert f'User "lab:{user}" cannot patch resource "virtualservices"' in str(caught.value)
    # The viewer may read, nobody may not.
    assert KubeClient.from_state(lab_state, user="viewer").get(f"{path}/reviews")["metadata"]["name"] == "reviews"
    with pytest.raises(KubeError) as denied:
        KubeClient.from_state(lab_state, user="nobody").get(f"{path}/reviews")
    assert denied.value.status == 403
    patched = kube.json_patch(f"{path}/reviews", [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
    assert patched["metadata"]["labels"] == {"a": "b"}


def test_tls_is_verified_against_the_lab_ca(lab_state: dict[str, Any], tmp_path: Path):
    wrong_ca = tmp_path / "other-ca.crt"
    wrong_ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text()
                        if Path("/etc/ssl/certs/ca-certificates.crt").exists() else "")
    import ssl
    client = KubeClient(lab_state["server"], lab_state["tokens"]["admin"], str(wrong_ca))
    with pytest.raises(ssl.SSLError):
        client.get("/version")


def test_audit_helper_counts_exactly_the_requests_made(audit, kube: KubeClient, namespace: str):
    path = VS_PATH.format(version="v1", ns=namespace)
    window = audit()
    kube.create(path, _reviews_vs("counted"))
    kube.get(f"{path}/counted")
    kube.get(path)
    kube.json_patch(f"{path}/counted", [{"op": "replace", "path": "/spec/hosts", "value": ["reviews"]}])
    made = window.requests(user="lab:admin")
    assert [(e["verb"], e["objectRef"]["resource"]) for e in made] == [
        ("create", "virtualservices"), ("get", "virtualservices"), ("list", "virtualservices"),
        ("patch", "virtualservices")]
    assert len(window.writes(user="lab:admin")) == 2


def _run_lab(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "--dir", str(lab_dir), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_second_lab_starts_from_nothing_side_by_side_and_down_leaves_nothing(
        tmp_path: Path, lab_state: dict[str, Any], kube: KubeClient, namespace: str):
    second_dir = tmp_path / "second"
    up = _run_lab(second_dir, "up", "--no-provision")
    assert up.returncode == 0, up.stderr
    try:
        status = _run_lab(second_dir, "status", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert info["up"] is True
        assert info["versions"]["apiserver_reported"] == "v1.20.2"
        assert "3.4" in info["versions"]["etcd"]
        ports = info["ports"]
        assert set(ports.values()).isdisjoint(lab_state["ports"].values())
        second = json.loads((second_dir / "lab.json").read_text())
        other = KubeClient.from_state(second)
        # Each lab holds its own objects.
        kube.create(VS_PATH.format(version="v1", ns=namespace), _reviews_vs("only-in-first"))
        other.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        other.create(VS_PATH.format(version="v1", ns=namespace), _reviews_vs("only-in-second"))
        assert [i["metadata"]["name"] for i in other.get(VS_PATH.format(version="v1", ns=namespace))["items"]] \
            == ["only-in-second"]
        assert [i["metadata"]["name"] for i in kube.get(VS_PATH.format(version="v1", ns=namespace))["items"]] \
            == ["only-in-first"]
        records = list(second["processes"].values())
    finally:
        down = _run_lab(second_dir, "down")
    assert down.returncode == 0, down.stderr
    assert not any(process_alive(r) for r in records)
    assert not any(_listening(p) for p in ports.values())
    assert not (second_dir / "lab.json").exists()
    # The session's lab is untouched.
    assert kube.get("/version")["gitVersion"] == "v1.20.2"


def test_a_lab_that_cannot_start_says_why_and_leaves_no_process(tmp_path: Path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    real = find_binaries(provision=False)
    (fake_bin / "etcd").symlink_to(real["etcd"])
    broken = fake_bin / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'kube-apiserver: cannot start: simulated failure' >&2\nexit 3\n")
    broken.chmod(0o755)
    lab_dir = tmp_path / "broken"
    result = subprocess.run([sys.executable, "-m", "lab", "--dir", str(lab_dir), "up", "--no-provision"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "KUBEBUILDER_ASSETS": str(fake_bin)})
    assert result.returncode == 1
    assert "kube-apiserver" in result.stderr
    assert "simulated failure" in result.stderr
    assert str(broken) in result.stderr
    # No etcd left behind from the failed start.
    leftovers = subprocess.run(["pgrep", "-f", str(lab_dir)], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == ""


def _audited_writes(lab_dir: Path, resource: str) -> list[str]:
    events = [json.loads(line) for line in (lab_dir / "audit.log").read_text().splitlines() if line.strip()]
    return [e["objectRef"].get("name", "") for e in events
            if e.get("stage") == "ResponseComplete" and e["verb"] == "create"
            and e.get("objectRef", {}).get("resource") == resource and e["responseStatus"]["code"] == 201]


@pytest.mark.slow
def test_the_first_lab_provisions_etcd_later_labs_start_from_its_kept_copy_and_a_bad_copy_is_dropped(
        tmp_path: Path):
    # A machine of its own: an empty cache, the binaries it already has.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "KUBEBUILDER_ASSETS": str(Path(find_binaries(provision=False)["kube-apiserver"]).parent)}

    def lab(lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lab", "--dir", str(lab_dir), *args], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    try:
        up = lab(first, "up", "--no-provision")
        assert up.returncode == 0, up.stderr
        assert "provisioning etcd with 25 CRDs once" in up.stderr
        assert len(_audited_writes(first, "customresourcedefinitions")) == 25
        assert lab(first, "down").returncode == 0
        up = lab(second, "up", "--no-provision")
        assert up.returncode == 0, up.stderr
        assert "provisioning" not in up.stderr
        state = json.loads((second / "lab.json").read_text())
        assert state["etcd_template"]["copied"] is True
        template = Path(state["etcd_template"]["path"])
        assert template.parent == tmp_path / "cache" / "canary-istio-lab" / "etcd-templates"
        # Nothing was created at start-up but the webhook's registration, yet the lab holds what the first
        # one provisioned: Istio's CRDs served, the viewer's RBAC, a fresh webhook on this lab's own port.
        assert _audited_writes(second, "customresourcedefinitions") == []
        assert _audited_writes(second, "clusterroles") == []
        viewer = KubeClient.from_state(state, user="viewer")
        assert viewer.get("/apis/networking.istio.io/v1/namespaces/default/virtualservices")["items"] == []
        with pytest.raises(KubeError) as denied:
            KubeClient.from_state(state, user="nobody").get(
                "/apis/networking.istio.io/v1/namespaces/default/virtualservices")
        assert denied.value.status == 403
        admin = KubeClient.from_state(state)
        with pytest.raises(KubeError) as refused:
            admin.create("/apis/networking.istio.io/v1/namespaces/default/virtualservices", _reviews_vs("bad", -1))
        assert refused.value.status == 400 and "validation.istio.io" in str(refused.value)
        assert lab(second, "down").returncode == 0
        # Kept data that etcd cannot read: that lab fails and says so, and the copy is gone for the next one.
        (template / "member" / "snap" / "db").write_bytes(b"not a bbolt file")
        up = lab(third, "up", "--no-provision")
        assert up.returncode == 1
        assert f"removing the kept etcd data {template}: etcd did not start on a copy of it" in up.stderr
        assert not template.exists()
        assert not (third / "lab.json").exists()
    finally:
        for lab_dir in (first, second, third):
            lab(lab_dir, "down")
