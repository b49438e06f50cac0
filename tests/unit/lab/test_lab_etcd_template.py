"""The kept etcd data a lab starts from: one copy per apiserver, etcd and set of CRDs, kept whole or not at all."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest

from lab import controlplane

pytestmark = pytest.mark.unit

CRDS = [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "virtualservices.networking.istio.io"},
         "spec": {"group": "networking.istio.io", "versions": [{"name": "v1", "served": True, "storage": True}]}}]


@pytest.fixture
def binaries(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in controlplane.BINARIES:
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\x7fELF " + name.encode())
        paths[name] = str(path)
    return paths


def test_the_same_binaries_and_crds_name_the_same_copy_and_any_change_another(binaries, tmp_path, monkeypatch):
    monkeypatch.setattr(controlplane, "CACHE_DIR", tmp_path / "cache")
    versions = {"etcd": "etcd Version: 3.4.23", "kube-apiserver": "Kubernetes v1.20.2"}
    kept = controlplane.etcd_template(binaries, versions, CRDS)
    assert kept.parent == tmp_path / "cache" / "etcd-templates"
    assert controlplane.etcd_template(dict(binaries), dict(versions), copy.deepcopy(CRDS)) == kept
    served_less = copy.deepcopy(CRDS)
    served_less[0]["spec"]["versions"][0]["served"] = False
    assert controlplane.etcd_template(binaries, versions, served_less) != kept
    assert controlplane.etcd_template(binaries, {**versions, "kube-apiserver": "Kubernetes v1.21.0"}, CRDS) != kept
    rebuilt = Path(binaries["kube-apiserver"])
    rebuilt.write_bytes(rebuilt.read_bytes() + b" rebuilt")
    assert controlplane.etcd_template(binaries, versions, CRDS) != kept


def test_a_copy_is_kept_whole_the_first_stays_and_a_lab_copies_it(tmp_path):
    data = tmp_path / "lab" / "etcd"
    (data / "member" / "snap").mkdir(parents=True)
    (data / "member" / "snap" / "db").write_bytes(b"first")
    template = tmp_path / "cache" / "etcd-templates" / "k1"
    assert not controlplane.copy_template(template, tmp_path / "new" / "etcd")
    assert not (tmp_path / "new" / "etcd").exists()
    controlplane.keep_template(data, template)
    # A second lab that provisioned at the same time: its copy is dropped, nothing partial is left.
    (data / "member" / "snap" / "db").write_bytes(b"second")
    controlplane.keep_template(data, template)
    assert (template / "member" / "snap" / "db").read_bytes() == b"first"
    assert [p.name for p in template.parent.iterdir()] == ["k1"]
    assert controlplane.copy_template(template, tmp_path / "new" / "etcd")
    assert (tmp_path / "new" / "etcd" / "member" / "snap" / "db").read_bytes() == b"first"


def test_copies_no_lab_used_for_a_week_are_removed_when_another_is_kept(tmp_path):
    templates = tmp_path / "etcd-templates"
    old, recent = templates / "old", templates / "recent"
    for path in (old, recent):
        path.mkdir(parents=True)
    week_ago = time.time() - (controlplane.TEMPLATE_UNUSED_DAYS * 86400 + 60)
    os.utime(old, (week_ago, week_ago))
    os.utime(recent, (week_ago, week_ago))
    data = tmp_path / "etcd"
    data.mkdir()
    # A lab copies "recent": it is in use again.
    assert controlplane.copy_template(recent, tmp_path / "lab" / "etcd")
    controlplane.keep_template(data, templates / "new")
    assert sorted(p.name for p in templates.iterdir()) == ["new", "recent"]
