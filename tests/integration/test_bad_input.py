"""Bad input everywhere: every module refuses it with a clear message, no traceback and no write.

Each row is (module, arguments, a fragment the message must contain). The lab holds a valid
Bookinfo reviews VirtualService and DestinationRule, so a row fails only because of its bad value.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.helpers.ansible import lab_auth, run_module

pytestmark = pytest.mark.lab

UNICODE = "评论-v2-ü"
HUGE = [{"name": f"svc-{i}"} for i in range(10_001)]
VS_SPEC = {"hosts": ["reviews"], "http": [{"name": "primary", "route": [
    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]}]}

ROWS: list[tuple[str, dict[str, Any], str]] = [
    # traffic_split
    ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 150}, "150 is not an integer"),
    ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": "abc"}, "'abc' is not"),
    ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": ""}, "'' is not"),
    ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v2", "canary_weight": [30]}, "[30] is not"),
    ("traffic_split", {"name": "reviews", "base": "v1", "canary": "v1", "canary_weight": 30}, "v1"),
    ("traffic_split", {"name": "reviews", "base": "v1", "canary_weight": 30}, "missing canary"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "v2": "fifty"}}, "'fifty'"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 101, "v2": -1}}, "101"),
    ("traffic_split", {"name": "reviews", "weights": {}}, "weights"),
    ("traffic_split", {"name": "reviews", "weights": {UNICODE: 100}}, "not a valid subset name"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "route_name": UNICODE}, UNICODE),
    ("traffic_split", {"name": "Reviews!", "weights": {"v1": 100}}, "not a valid Kubernetes name"),
    ("traffic_split", {"name": "", "weights": {"v1": 100}}, "name"),
    ("traffic_split", {"name": "reviews", "namespace": "UPPER", "weights": {"v1": 100}}, "'UPPER' is not a valid"),
    ("traffic_split", {"services": HUGE, "weights": {"v1": 100}}, "at most 10000"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "concurrency": 0}, "concurrency 0 must be"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "concurrency": 65}, "from 1 to 64"),
    ("traffic_split", {"services": [], "weights": {"v1": 100}}, "services is empty"),
    ("traffic_split", {"services": ["reviews"], "weights": {"v1": 100}}, "unable to convert to dict"),
    ("traffic_split", {"services": [{"name": "reviews", "colour": "x"}], "weights": {"v1": 100}}, "unknown keys"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "history_limit": 0}, "history_limit 0"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "max_retries": 999}, "max_retries 999"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "api_version": "v2"}, "api_version"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "request_timeout": "soon"}, "request_timeout"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "cluster_domain": "Cluster.Local"},
     "cluster_domain 'Cluster.Local' is not a DNS domain"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 100}, "root_namespace": "Istio_System"},
     "root_namespace 'Istio_System' is not a valid Kubernetes name"),
    # header_route
    ("header_route", {"name": "reviews", "route": "t", "headers": {}, "subset": "v2"}, "headers is empty"),
    ("header_route", {"name": "reviews", "route": "t", "headers": {"end-user": ["x"]}, "subset": "v2"},
     "must be a string"),
    ("header_route", {"name": "reviews", "route": "t", "match": [], "subset": "v2"}, "match"),
    ("header_route", {"name": "reviews", "route": "t", "headers": {"a": "b"}, "subset": UNICODE},
     "not a valid subset name"),
    ("header_route", {"name": "reviews", "route": "t", "headers": {"a": "b"}}, "needs subset"),
    ("header_route", {"name": "reviews", "route": "primary", "headers": {"a": "b"}, "subset": "v1"}, "primary"),
    # virtual_service / destination_rule
    # A VirtualService without hosts is a delegate; Istio's ValidateVirtualService refuses gateways on it
    # (istio/istio pkg/config/validation/validation.go).
    ("virtual_service", {"name": "reviews", "spec": {"hosts": [], "gateways": ["bookinfo-gateway"],
                                                     "http": VS_SPEC["http"]}}, "must have no gateways"),
    ("virtual_service", {"name": "reviews", "spec": {"hosts": ["r"], "http": "all"}}, "must be a list"),
    ("virtual_service", {"name": "reviews", "spec": {"hosts": ["r"], "http": [{"route": []}]}}, "non-empty list"),
    ("virtual_service", {"name": "reviews", "spec": {"hosts": ["r"], "http": [{"route": [{"weight": 100}]}]}},
     "destination.host"),
    ("virtual_service", {"name": "reviews", "spec": {"hosts": ["r"], "http": [{"route": [
        {"destination": {"host": "r", "subset": "a"}, "weight": 50.5},
        {"destination": {"host": "r", "subset": "b"}, "weight": 49.5}]}]}}, "50.5"),
    ("virtual_service", {"name": "reviews"}, "needs spec"),
    ("virtual_service", {"name": "reviews", "definition": {"kind": "Deployment"}}, "kind 'Deployment'"),
    ("virtual_service", {"name": "reviews", "spec": VS_SPEC, "labels": {"a": 1}}, "must be strings"),
    ("virtual_service", {"name": "x" * 300, "spec": VS_SPEC}, "not a valid Kubernetes name"),
    ("destination_rule", {"name": "reviews", "spec": {"subsets": []}}, "spec.host"),
    ("destination_rule", {"name": "reviews", "spec": {"host": "reviews", "subsets": [{"labels": {}}]}},
     "needs a name"),
    ("destination_rule", {"name": "reviews", "spec": {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}}, {"name": "v1", "labels": {"version": "v1"}}]}}, "two subsets"),
    ("destination_rule", {"name": "reviews", "subsets": [{"name": "v9"}]}, "labels"),
    ("destination_rule", {"name": "reviews", "subsets": [{"name": "v9", "labels": {"version": 9}}]}, "9"),
    ("destination_rule", {"name": "reviews", "remove_subsets": ["v1"]}, "still routed"),
    # Subset names are DNS-1123 labels in Istio (validateSubsetName: labels.IsDNS1123Label).
    ("destination_rule", {"name": "reviews", "subsets": [{"name": "v2.1", "labels": {"version": "v2.1"}}]},
     "'v2.1' is not a valid subset name: Istio requires a DNS-1123 label"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "v2_1": 50}},
     "'v2_1' is not a valid subset name: Istio requires a DNS-1123 label"),
    # Istio's DNS-1123 label admits upper case (pkg/config/labels IsDNS1123Label): 'V2' is valid, 'v2.1' is not.
    ("header_route", {"name": "reviews", "route": "t", "headers": {"a": "b"}, "subset": "v2.1"},
     "'v2.1' is not a valid subset name: Istio requires a DNS-1123 label"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "reviews:v2_1": 50}},
     "'v2_1' is not a valid subset name: Istio requires a DNS-1123 label"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 50, ":v2": 50}}, "host name before ':'"),
    ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "ratings:v2": 50}}, "never sends traffic"),
    ("destination_rule_info", {"name": "reviews", "all_namespaces": True}, "exclude each other"),
    ("virtual_service_info", {"name": UNICODE}, "not a valid Kubernetes name"),
    # manifest, canary_info, release_lock
    ("manifest", {}, "no manifest given"),
    ("manifest", {"definition": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]}, "metadata.name"),
    ("manifest", {"definition": "a: [b"}, "not valid YAML"),
    ("manifest", {"src": ["/definitely/missing.yaml"]}, "does not exist"),
    ("canary_info", {"name": "reviews", "route_name": "nope"}, "'nope'"),
    ("release_lock", {"name": "lock", "holder": "   "}, "holder"),
    ("release_lock", {"name": "lock", "holder": "me", "ttl": 0}, "ttl 0"),
    # canary_analysis (reads Prometheus only; its full table is in tests/traffic/test_canary_analysis.py)
    ("canary_analysis", {"service": "reviews", "base": "v1", "canary": "v2", "prometheus_url": "http://127.0.0.1:9",
                         "checks": [{"name": "error-budget"}]}, "'error-budget' is not a built-in check"),
    ("canary_analysis", {"service": "reviews", "base": "v1", "canary": "v2", "prometheus_url": ""},
     "no Prometheus URL"),
    ("canary_analysis", {"service": "reviews", "base": "v1", "canary": "v2", "prometheus_url": "http://127.0.0.1:9",
                         "look": 5, "looks": 4}, "look 5 is beyond looks 4"),
    ("canary_analysis", {"service": "reviews", "base": "v1", "canary": "v2", "prometheus_url": "http://127.0.0.1:9",
                         "window": "10s", "scrape_interval": "15s"}, "window 10s is shorter than two scrape intervals"),
    # mesh_topology (reads Prometheus only; unreachable and empty Prometheus in tests/traffic/test_mesh_topology.py)
    ("mesh_topology", {"window": "30"}, "window must be a Prometheus duration"),
    ("mesh_topology", {"window": ""}, "window must be a Prometheus duration"),
    ("mesh_topology", {"window": "0m"}, "window must be longer than 0, got '0m'"),
    ("mesh_topology", {"service": "Reviews!"}, "service 'Reviews!' is not a valid Kubernetes name"),
    ("mesh_topology", {"service": ""}, "service '' is not a valid Kubernetes name"),
    ("mesh_topology", {"namespace": UNICODE}, "is not a valid Kubernetes name"),
    ("mesh_topology", {"confidence": 100}, "confidence is a percentage from 50"),
    ("mesh_topology", {"confidence": "sure"}, "confidence"),
    ("mesh_topology", {"reporter": "both"}, "reporter"),
    ("mesh_topology", {"picture_format": "png"}, "picture_format"),
    ("mesh_topology", {"dest": "/nonexistent/dir/mesh.svg"}, "the directory '/nonexistent/dir' does not exist"),
    ("mesh_topology", {"dest": "/tmp"}, "dest '/tmp' is a directory"),
    ("mesh_topology", {"prometheus_url": ""}, "no Prometheus URL"),
    ("mesh_topology", {"prometheus_url": "prometheus:9090"}, "must be an http(s) URL"),
    ("mesh_topology", {"prometheus_url": "http://127.0.0.1:9"}, "cannot reach Prometheus at http://127.0.0.1:9"),
    ("mesh_topology", {"prometheus_url": "http://127.0.0.1:9", "prometheus_timeout": 0}, "prometheus_timeout"),
    # release_history (records an entry on the VirtualService's history), release_report (writes an HTML file)
    ("release_history", {"name": "reviews", "entry": {"note": "x"}, "history_limit": 0},
     "history_limit 0 must be between 1 and 1000"),
    ("release_history", {"name": UNICODE, "entry": {"note": "x"}}, "not a valid Kubernetes name"),
    ("release_report", {"service": "reviews", "base": "v1", "canary": "v2", "dest": "/definitely/missing/r.html"},
     "must be a file in an existing directory"),
    ("release_report", {"service": "reviews", "base": "v1", "canary": "v2", "dest": "/tmp/r.html", "window": "30"},
     "window must be a Prometheus duration"),
    # resilience (its own table, against Istio's tasks: tests/integration/test_resilience_module.py)
    ("resilience", {"name": "reviews", "retries": {"attempts": -1}}, "retries.attempts -1 is not an integer from 0"),
    ("resilience", {"name": "reviews", "subset": "v9", "circuit_breaker": {"outlier_detection": {"interval": "1s"}}},
     "subset 'v9' is not defined in the DestinationRule"),
]


@pytest.fixture(scope="module")
def bookinfo_rules(lab_state) -> str:
    import uuid

    from lab.kube import KubeClient
    kube = KubeClient.from_state(lab_state)
    namespace = f"bad-{uuid.uuid4().hex[:8]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    auth = {**lab_auth(lab_state), "namespace": namespace}
    run_module("destination_rule", {**auth, "name": "reviews", "spec": {
        "host": "reviews", "subsets": [{"name": s, "labels": {"version": s}} for s in ("v1", "v2", "v3")]}})
    run_module("virtual_service", {**auth, "name": "reviews", "spec": VS_SPEC})
    return namespace


@pytest.mark.parametrize("module,args,fragment", ROWS, ids=[f"{i}-{r[0]}" for i, r in enumerate(ROWS)])
def test_bad_input_is_refused_clearly_without_a_write(lab_state, bookinfo_rules, audit, module, args, fragment):
    window = audit()
    # A module takes the Kubernetes connection options only if it talks to Kubernetes (its USES); run
    # by Ansible, its action plugin drops the group's options it does not take.
    uses = importlib.import_module(f"ansible_collections.canary.istio.plugins.modules.{module}").USES
    auth = lab_auth(lab_state) if "kubernetes" in uses else {}
    result = run_module(module, {**auth, "namespace": bookinfo_rules, **args})
    assert result.get("failed") is True, result
    message = result["msg"]
    assert fragment in message, message
    assert "Traceback" not in message and "Traceback" not in result["_stderr"]
    assert "unexpected error in canary.istio" not in message
    assert window.writes() == [], [e["requestURI"] for e in window.writes()]


def test_every_module_appears_in_the_table():
    from tests.helpers.collection import REPO_ROOT
    modules = {p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")} - {"traffic_probe"}
    assert modules <= {row[0] for row in ROWS}
