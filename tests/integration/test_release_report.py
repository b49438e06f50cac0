"""release_report's configmap: the page kept in a ConfigMap beside the route, on the lab's real API server.

The limit is Kubernetes' own: a ConfigMap's data may hold 1 MiB (MaxSecretSize, the bytes of its values);
the API server refuses one byte more, which the last test shows first. No Prometheus is given, so the page has
no charts and its size is the same on every run: the ``reason`` line pads it to the byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.kube import KubeClient, KubeError
from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

MIB = 1024 * 1024
T0 = 1_800_000_000.0


def report(lab_state: dict[str, Any], namespace: str, dest: Path, check: bool = False, **args: Any) -> dict[str, Any]:
    return run_module("release_report", {
        **lab_auth(lab_state), "namespace": namespace, "service": "reviews", "base": "v1", "canary": "v2",
        "dest": str(dest), "prometheus_url": "", "started_at": T0, "ended_at": T0 + 60, "decision": "promote",
        "configmap": "canary-report-reviews", **args}, check=check)


def stored(kube: KubeClient, namespace: str) -> dict[str, Any] | None:
    try:
        return kube.get(f"/api/v1/namespaces/{namespace}/configmaps/canary-report-reviews")
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def test_the_page_is_kept_beside_the_route_and_check_mode_stores_nothing(lab_state, kube, namespace, tmp_path):
    checked = report(lab_state, namespace, tmp_path / "checked.html", check=True)
    assert checked["changed"] is True and checked["configmap"]["kept"] is True, checked
    assert stored(kube, namespace) is None

    result = report(lab_state, namespace, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    kept = stored(kube, namespace)
    assert kept["data"] == {"report.html": page}
    assert kept["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "canary.istio",
                                          "canary.istio/service": "reviews"}
    annotations = kept["metadata"]["annotations"]
    assert annotations["canary.istio/canary"] == "v2"
    assert result["configmap"] == {"name": "canary-report-reviews", "namespace": namespace, "kept": True,
                                   "bytes": len(page.encode("utf-8")),
                                   "written_at": annotations["canary.istio/written-at"]}
    assert result["changed"] is True and result["api_requests"] == 1


def test_a_page_over_a_configmaps_mib_leaves_the_configmap_empty_and_says_so(lab_state, kube, namespace, tmp_path):
    # The API server's own limit first: 1 MiB of data is taken, one byte more is refused.
    for size, taken in ((MIB, True), (MIB + 1, False)):
        body = {"metadata": {"name": f"limit-{size}"}, "data": {"report.html": "x" * size}}
        try:
            kube.create(f"/api/v1/namespaces/{namespace}/configmaps", body)
        except KubeError as exc:
            assert not taken and exc.status == 422, exc
        else:
            assert taken, size
    bare = report(lab_state, namespace, tmp_path / "bare.html", reason="")
    padding = MIB - bare["configmap"]["bytes"]
    at_limit = report(lab_state, namespace, tmp_path / "at-limit.html", reason="x" * padding)
    assert at_limit["configmap"]["bytes"] == MIB and at_limit["configmap"]["kept"] is True, at_limit["configmap"]
    assert stored(kube, namespace)["data"]["report.html"] == (tmp_path / "at-limit.html").read_text(encoding="utf-8")

    over = report(lab_state, namespace, tmp_path / "over.html", reason="x" * (padding + 1))
    assert (tmp_path / "over.html").stat().st_size == MIB + 1
    assert over["configmap"]["kept"] is False and over["configmap"]["bytes"] == MIB + 1
    assert "is over a ConfigMap's 1048576 bytes" in str(over["warnings"]), over["warnings"]
    kept = stored(kube, namespace)
    assert kept["data"] == {"report.html": ""} and kept["metadata"]["annotations"]["canary.istio/canary"] == "v2"


def test_a_configmap_that_cannot_be_written_is_a_warning_and_the_file_is_the_report(lab_state, tmp_path):
    result = report(lab_state, "no-such-namespace-here", tmp_path / "report.html")
    assert result.get("failed") is not True and (tmp_path / "report.html").is_file(), result
    assert "configmap" not in result
    assert "not kept in ConfigMap no-such-namespace-here/canary-report-reviews: namespace 'no-such-namespace-here' " \
        "does not exist" in str(result["warnings"]), result["warnings"]
