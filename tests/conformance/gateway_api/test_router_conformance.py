"""Gateway API's own conformance suite, run against the lab router's pure functions.

Each claimed test takes its manifests from upstream (``upstream/conformance/...``) and its
expectations from ``cases.yaml`` (transcribed from the suite's ``.go`` files): the request goes
through ``Snapshot.route_mesh`` (mesh tests, from a client in ``gateway-conformance-mesh`` to the
Host ``echo``) or ``Snapshot.route_gateway`` (the ingress), and the decision is judged as the
suite judges the response: status, backend workload and namespace, the request the backend sees,
the redirect's location.  ``SUPPORTED`` / ``SKIPPED`` below feed the report in docs/testing.md.
"""

from __future__ import annotations

import random
import urllib.parse
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.dataplane.routing import Decision, Endpoint, Request, ServiceEntry, Snapshot
from tests.conformance.gateway_api.corpus import UPSTREAM, documents

CASES = yaml.safe_load((Path(__file__).resolve().parent / "cases.yaml").read_text())
TESTS = {test["name"]: test for test in CASES["tests"]}
for _test in TESTS.values():
    if "same_cases_as" in _test:  # a gateway test whose .go cases are its mesh twin's, backend renamed
        _test["cases"] = [{**case, "backend": case["backend"].replace("echo-", "infra-backend-")} if "backend" in case
                          else case for case in TESTS[_test["same_cases_as"]]["cases"]]

# HTTPRoute tests of the v1.6.1 suite the lab does not claim, with the reason (as a conformance
# report lists skipped tests).
SKIPPED = {
    "HTTPRouteWeight / MeshHTTPRouteWeight": "statistical (500 requests, 5% tolerance): not transcribed",
    "HTTPRouteCrossNamespace / ReferenceGrant tests": "the lab does not read ReferenceGrants",
    "HTTPRouteListenerHostnameMatching / HostnameIntersection / HTTPS": "one plain-HTTP ingress; no TLS",
    "HTTPRouteRewriteHost / ResponseHeaderModifier": "the harness checks no Host or response header yet",
    "HTTPRoute*Status / *Invalid* (conditions)": "the lab writes no route status",
    "HTTPRouteRequestMirror / Timeout / Retry / CORS / ExtensionRef": "not transcribed yet",
}


@lru_cache(maxsize=1)
def _base_objects() -> list[dict[str, Any]]:
    docs = documents("conformance/base/manifests.yaml") + documents("conformance/mesh/manifests.yaml")
    return [doc for _where, doc in docs]


def _snapshot(manifest: str) -> Snapshot:
    objects = _base_objects() + [doc for _where, doc in documents(manifest)]
    services, endpoints, routes, gateways = [], [], [], []
    for index, obj in enumerate(objects):
        meta = obj["metadata"]
        namespace = meta.get("namespace", "default")
        meta.setdefault("creationTimestamp", f"2026-01-01T00:00:{index:02d}Z")  # applied in file order
        if obj["kind"] == "Service":
            services.append(ServiceEntry(namespace, meta["name"], dict(obj["spec"].get("selector") or {})))
        elif obj["kind"] == "Deployment":
            labels = obj["spec"]["template"]["metadata"].get("labels") or {}
            endpoints.append(Endpoint(namespace, meta["name"], dict(labels), 8080))
        elif obj["kind"] == "HTTPRoute":
            routes.append(obj)
        elif obj["kind"] == "Gateway" and obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            gateways.append(obj)
    return Snapshot(services=services, endpoints=endpoints, http_routes=routes, kubernetes_gateways=gateways)


def _route(test: dict[str, Any], case: dict[str, Any], snapshot: Snapshot, seed: int) -> tuple[Decision, Request]:
    headers = {str(k).lower(): str(v) for k, v in (case.get("headers") or {}).items()}
    mesh = test["kind"] == "mesh"
    request = Request(method=case.get("method", "GET"), path=case["path"],
                      authority=case.get("host", "echo" if mesh else "gateway.example"), headers=headers,
                      source_namespace=case.get("source_namespace", CASES["mesh_namespace"]) if mesh else "")
    rng = random.Random(seed)
    decision = snapshot.route_mesh(request, rng) if mesh else snapshot.route_gateway(request, rng, 80)
    return decision, request


CLAIMED = [(name, index) for name, test in TESTS.items() for index in range(len(test["cases"]))]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "index"), CLAIMED, ids=[f"{n}/{i}" for n, i in CLAIMED])
def test_conformance_case(name: str, index: int) -> None:
    test = TESTS[name]
    snapshot = _snapshot(test["manifest"])
    if "weights" in test:
        _judge_weights(test, test["cases"][index], snapshot)
        return
    # The suite sends each request until the answer is stable; a few draws stand for that here
    # (a Service that selects two versions would otherwise pass by luck).
    for seed in range(8):
        _judge(test, test["cases"][index], snapshot, seed)


def _judge_weights(test: dict[str, Any], case: dict[str, Any], snapshot: Snapshot) -> None:
    """weight.go's TestWeightedDistribution: 500 requests, each share within 0.05, up to 10 tries."""
    failures = []
    for attempt in range(10):
        counts: dict[str, int] = {}
        for request_index in range(500):
            decision, _answer = _route(test, case, snapshot, attempt * 1000 + request_index)
            assert decision.target is not None, (decision.status, decision.body)
            counts[decision.target.endpoint.workload] = counts.get(decision.target.endpoint.workload, 0) + 1
        off = {name: counts.get(name, 0) / 500 for name, want in test["weights"].items()
               if abs(counts.get(name, 0) / 500 - want) > 0.05}
        unexpected = set(counts) - set(test["weights"])
        if not off and not unexpected:
            return
        failures.append((off, unexpected))
    pytest.fail(f"weighted distribution off in every try: {failures}")


def _judge(test: dict[str, Any], case: dict[str, Any], snapshot: Snapshot, seed: int) -> None:
    decision, request = _route(test, case, snapshot, seed)
    status = decision.status if decision.target is None else 200
    assert status == case.get("status", 200), (decision.status, decision.body)
    if "backend" in case:
        assert decision.target is not None
        assert decision.target.endpoint.workload == case["backend"]
        namespace = CASES["mesh_namespace"] if test["kind"] == "mesh" else CASES["infra_namespace"]
        assert decision.target.endpoint.namespace == case.get("namespace", namespace)
    if "expected_path" in case:
        assert (decision.path or request.path) == case["expected_path"]
    seen = dict(request.headers.items())
    _apply(seen, decision.request_headers)
    for header, value in (case.get("expected_headers") or {}).items():
        assert seen.get(header.lower()) == value, (header, seen)
    for header in case.get("absent_headers") or []:
        assert header.lower() not in seen
    if "expected_host" in case:
        assert (decision.authority or request.authority) == case["expected_host"]
    answered = {str(k).lower(): str(v) for k, v in (case.get("backend_response_headers") or {}).items()}
    _apply(answered, decision.response_headers)
    for header, value in (case.get("response_headers") or {}).items():
        assert answered.get(header.lower()) == value, (header, answered)
    for header in case.get("response_absent") or []:
        assert header.lower() not in answered
    if "redirect" in case:
        location = urllib.parse.urlsplit(decision.redirect or "")
        expected = case["redirect"]
        assert location.path == expected.get("path", location.path)
        assert location.hostname == expected.get("host", request.authority.split(":")[0])
        if "scheme" in expected:
            assert location.scheme == expected["scheme"]
        if "port" in expected:
            assert (location.port or {"http": 80, "https": 443}[location.scheme]) == expected["port"]
        elif "scheme" in expected:  # a new scheme with no port: its well-known port, left out
            assert location.port is None


def _apply(headers: dict[str, str], ops: dict[str, Any]) -> None:
    """How Envoy applies header operations (set, then append with ",", then remove)."""
    for name, value in (ops.get("set") or {}).items():
        headers[name.lower()] = value
    for name, value in (ops.get("add") or {}).items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    for name in ops.get("remove") or []:
        headers.pop(name.lower(), None)


@pytest.mark.unit
def test_every_claimed_manifest_is_upstreams() -> None:
    for test in TESTS.values():
        assert (UPSTREAM / test["manifest"]).is_file(), test["manifest"]


@pytest.mark.unit
@pytest.mark.parametrize("document", ["docs/testing.md", "docs/testing.zh-CN.md"])
def test_the_report_in_the_docs_is_this_run(document: str) -> None:
    """The docs' report lists as passed exactly the tests claimed here, with their request counts.

    The Chinese lines start with "passed" and "skipped" and full-width punctuation, written as escapes.
    """
    text = (Path(__file__).resolve().parents[3] / document).read_text()
    passed_line = next(line for line in text.splitlines() if line.startswith(("Passed (", "\u901a\u8fc7\uff08")))
    skipped_line = next(line for line in text.splitlines() if line.startswith(("Skipped: ", "\u8df3\u8fc7\uff1a")))
    for name in CASES["suite_tests"]:
        if name in TESTS:
            requests = 500 if "weights" in TESTS[name] else len(TESTS[name]["cases"])
            assert f"`{name}` ({requests})" in passed_line, name
            assert f"`{name}`" not in skipped_line
        else:
            assert f"`{name}`" in skipped_line and f"`{name}`" not in passed_line, name
