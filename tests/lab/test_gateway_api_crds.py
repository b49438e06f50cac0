"""Gateway API's vendored CRDs: unmodified on disk, one documented adaptation, ``""`` kept as ``""``.

The expectations come from Gateway API itself (its published files and the ``group: ""`` its
docs give for core-group references), not from the lab's code.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest

from lab.controlplane import GATEWAY_API_CRD_DIR, adapt_crd_for_1_20, load_gateway_api_crds
from lab.kube import KubeClient, KubeError

ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"


def test_vendored_files_are_the_published_ones() -> None:
    table = dict(re.findall(r"\| `(gateway\.networking\.k8s\.io_[a-z_]+\.yaml)` \| `([0-9a-f]{64})` \|",
                            (GATEWAY_API_CRD_DIR / "README.md").read_text()))
    files = {path.name: path for path in GATEWAY_API_CRD_DIR.glob("gateway.networking.k8s.io_*.yaml")}
    assert set(table) == set(files) and len(files) == 11
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == table[name], name
        assert "bundle-version: v1.6.1" in path.read_text() and "channel: standard" in path.read_text()


def _differences(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            if key not in after:
                found.append(f"removed {path}/{key}={before[key]!r}")
            elif key not in before:
                found.append(f"added {path}/{key}={after[key]!r}")
            else:
                found.extend(_differences(before[key], after[key], f"{path}/{key}"))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after, strict=True))
        return [d for i, (b, a) in pairs for d in _differences(b, a, f"{path}[{i}]")]
    return [] if before == after else [f"changed {path}"]


def test_adaptation_drops_empty_defaults_and_makes_group_nullable_only() -> None:
    raw = load_gateway_api_crds(adapt=False)
    assert len(raw) == 10
    removed = added = 0
    for crd in raw:
        for difference in _differences(crd, adapt_crd_for_1_20(copy.deepcopy(crd))):
            if difference.startswith("removed ") and difference.endswith("/default=''"):
                removed += 1
            elif difference.startswith("added ") and difference.endswith("/group/nullable=True"):
                added += 1
            else:
                pytest.fail(f"{crd['metadata']['name']}: unexpected change {difference}")
    text = "".join(p.read_text() for p in GATEWAY_API_CRD_DIR.glob("gateway.networking.k8s.io_*.yaml"))
    assert removed == len(re.findall(r'default: ""', text)) > 0
    assert added > 0


def _route(name: str, parent: dict[str, Any], backends: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [parent], "rules": [{"backendRefs": backends}]}}


def test_core_group_references_are_stored_as_sent(kube: KubeClient, namespace: str) -> None:
    # Istio's samples/bookinfo/gateway-api/route-reviews-90-10.yaml, with the core group spelled out.
    route = _route("reviews", {"group": "", "kind": "Service", "name": "reviews", "port": 9080},
                   [{"group": "", "kind": "Service", "name": "reviews-v1", "port": 9080, "weight": 90},
                    {"name": "reviews-v2", "port": 9080, "weight": 10}])
    kube.create(ROUTES.format(namespace=namespace), route)
    stored = kube.get(ROUTES.format(namespace=namespace) + "/reviews")["spec"]
    assert stored["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}]
    assert stored["rules"][0]["backendRefs"][0]["group"] == ""
    assert "group" not in stored["rules"][0]["backendRefs"][1]  # left out: stored left out
    # The CRD's own defaults other than "" still apply (path match PathPrefix "/").
    assert stored["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_schema_types_are_still_enforced(kube: KubeClient, namespace: str) -> None:
    route = _route("bad-weight", {"kind": "Service", "name": "reviews"},
                   [{"name": "reviews-v1", "port": 9080, "weight": "ninety"}])
    with pytest.raises(KubeError) as refused:
        kube.create(ROUTES.format(namespace=namespace), route)
    assert refused.value.status == 422 and "weight" in str(refused.value)


