"""`DEMO_API=gateway make demo`: the release on Istio's upstream Gateway API Bookinfo files (issue 24, section 4).

The ingress is Istio's bookinfo-gateway.yaml (a Gateway API Gateway and the productpage HTTPRoute), every
service is routed by route-all-v1.yaml's Service-parented HTTPRoutes, and the role promotes a healthy
reviews v2 on the reviews HTTPRoute through the analysed steps under load. Lean: one run, the counts
of the demo's load generator (every page sorted by the reviews version that served or failed it) and
what the API server holds at the end, and the release report: its charts draw both versions from Istio's
metrics (which name the per-version Services reviews-v1 and reviews-v2 as the destination service), and its
copy in the ConfigMap beside the route is the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.controlplane import Lab, load_state
from lab.kube import KubeClient
from tests.traffic.test_demo import run_demo, users

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_gateway_api_demo_promotes_with_no_failed_request(tmp_path: Path):
    lab_dir = tmp_path / "demo-lab-gateway"
    try:
        out = run_demo(lab_dir, DEMO_API="gateway")
        assert "Gateway API: Istio's bookinfo/gateway-api files" in out
        assert re.search(r"base release\s+200 answers, 0 errors: .*v1 100\.0%", out), out[-3000:]
        assert re.search(r"after\s+200 answers, 0 errors: .*v2 100\.0%", out), out[-3000:]
        assert "Analysis of v2: promote - every step passed its analysis (10%, 25%, 50%)" in out, out[-3000:]
        seen = users(out)
        assert seen.get("v2", (0, 0))[0] > 0 and seen["v1"][1] == 0 and seen["v2"][1] == 0, seen
        assert "unknown" not in seen, seen
        # What the API server holds: all of reviews on the Service the role created, no VirtualService.
        kube = KubeClient.from_state(load_state(lab_dir))
        route = kube.get("/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/reviews")
        assert [(r["name"], r.get("weight", 1)) for r in route["spec"]["rules"][0]["backendRefs"]] == \
            [("reviews-v2", 100)]
        service = kube.get("/api/v1/namespaces/default/services/reviews-v2")
        assert service["spec"]["selector"] == {"app": "reviews", "version": "v2"}
        assert kube.get("/apis/networking.istio.io/v1/namespaces/default/virtualservices")["items"] == []
        report = Path(re.search(r"Release report: (\S+\.html)", out).group(1))
        page = report.read_text(encoding="utf-8")
        for chart in ("success_rate", "p99"):
            drawn = re.search(rf'data-chart="{chart}".*?</svg>', page, re.S).group(0)
            lines = dict(re.findall(r'<polyline data-line="(\w+)"[^>]* points="([^"]*)"', drawn))
            assert {"base", "canary"} <= {line for line, points in lines.items() if points.count(",") >= 2}, \
                (chart, lines)
        kept = kube.get("/api/v1/namespaces/default/configmaps/canary-report-reviews")
        assert kept["data"]["report.html"] == page
        assert kept["metadata"]["annotations"]["canary.istio/canary"] == "v2"
    finally:
        Lab(lab_dir).down(quiet=True)
