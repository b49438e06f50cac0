"""What the canary_release role needs on Gateway API, module by module, against the lab's API server:

- manifest's ``version_of`` creates a version's per-version Service from the service's own Service as
  Istio's ``samples/bookinfo/platform/kube/bookinfo-versions.yaml`` has it, once, and leaves an existing one;
- release_history's ``kind: HTTPRoute`` records an entry on the HTTPRoute's history annotation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance import corpus
from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

SERVICES = "/api/v1/namespaces/{ns}/services"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"


def istio_service(path: str, name: str) -> dict[str, Any]:
    return next(o for o in corpus.istio_objects(f"samples/bookinfo/platform/kube/{path}")
                if o["kind"] == "Service" and o["metadata"]["name"] == name)


@pytest.fixture
def reviews(kube, namespace):
    kube.create(SERVICES.format(ns=namespace), istio_service("bookinfo.yaml", "reviews"))
    yield namespace
    for name in ("reviews", "reviews-v2", "reviews-v3", "bare"):
        try:
            kube.delete(f"{SERVICES.format(ns=namespace)}/{name}")
        except Exception:  # pylint: disable=broad-except  # not every test creates every Service
            pass


def test_version_of_creates_istios_per_version_service_once(lab_state, kube, reviews, audit):
    args = {**lab_auth(lab_state), "namespace": reviews, "version_of": {"service": "reviews", "version": "v2"}}
    window = audit()
    first = run_module("manifest", args)
    assert first["changed"] is True and [(o["name"], o["method"]) for o in first["objects"]] == \
        [("reviews-v2", "created")]
    stored = kube.get(f"{SERVICES.format(ns=reviews)}/reviews-v2")
    upstream = istio_service("bookinfo-versions.yaml", "reviews-v2")
    assert stored["spec"]["selector"] == upstream["spec"]["selector"]
    assert [{"name": p["name"], "port": p["port"]} for p in stored["spec"]["ports"]] == upstream["spec"]["ports"]
    assert len(window.writes()) == 1
    # Present already: read, not written.
    window = audit()
    again = run_module("manifest", args)
    assert again["changed"] is False and again["objects"] == [] and window.writes() == []


def test_version_of_leaves_an_existing_service_and_refuses_what_it_cannot_build(lab_state, kube, reviews, audit):
    mine = istio_service("bookinfo-versions.yaml", "reviews-v3")
    mine["metadata"]["labels"] = {"team": "books"}
    kube.create(SERVICES.format(ns=reviews), mine)
    before = kube.get(f"{SERVICES.format(ns=reviews)}/reviews-v3")
    auth = {**lab_auth(lab_state), "namespace": reviews}
    kept = run_module("manifest", {**auth, "version_of": {"service": "reviews", "version": "v3"}})
    assert kept["changed"] is False
    assert kube.get(f"{SERVICES.format(ns=reviews)}/reviews-v3")["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]
    kube.create(SERVICES.format(ns=reviews), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bare"},
                                              "spec": {"ports": [{"port": 80}]}})
    window = audit()
    for version_of, fragment in [({"service": "bare", "version": "v2"}, "has no selector"),
                                 ({"service": "nosuch", "version": "v2"}, "Service " + reviews + "/nosuch not found"),
                                 ({"service": "reviews", "version": "v2!"}, "is not a valid label value")]:
        refused = run_module("manifest", {**auth, "version_of": version_of})
        assert refused.get("failed") and fragment in refused["msg"], refused
    refused = run_module("manifest", {**auth, "state": "absent", "version_of": {"service": "reviews", "version": "v2"}})
    assert refused.get("failed") and "state absent" in refused["msg"]
    assert window.writes() == []


def test_release_history_records_on_an_httproute(lab_state, kube, reviews):
    upstream = corpus.istio_objects("samples/bookinfo/gateway-api/route-reviews-v1.yaml")[0]
    before = kube.create(ROUTES.format(ns=reviews), upstream)
    args = {**lab_auth(lab_state), "kind": "HTTPRoute", "name": "reviews", "namespace": reviews,
            "entry": {"action": "rollback", "reason": "rolled back by alert HighErrorRate"}, "actor": "tester"}
    result = run_module("release_history", args)
    assert result["changed"] is True and result["entries"] == 1
    route = kube.get(f"{ROUTES.format(ns=reviews)}/reviews")
    history = json.loads(route["metadata"]["annotations"]["canary.istio/history"])
    assert history[0]["reason"] == "rolled back by alert HighErrorRate" and history[0]["actor"] == "tester"
    assert route["spec"] == before["spec"]  # only the annotation was written
    missing = run_module("release_history", {**args, "name": "nosuch"})
    assert missing.get("failed") and "HTTPRoute " + reviews + "/nosuch not found" in missing["msg"]
