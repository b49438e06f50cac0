"""The lab's copy of istiod's validation, without a lab.

Expected answers come from Istio 1.30.3: the cases of its own tables (named after the Go test and
case they come from, in pkg/config/validation/validation_test.go and virtualservice_test.go, written
here as the JSON a user would post) and the messages of pkg/config/validation/*.go. Never from the
collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.webhook.validation import (
    MultiError,
    append_errors,
    multierror_append,
    review,
    validate_destination_rule,
    validate_gateway,
    validate_http_route,
    validate_object,
    validate_virtual_service,
)

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parents[1] / "conformance" / "upstream" / "istio" / "samples" / "bookinfo" / "networking"


def route_to(*destinations: dict[str, Any]) -> dict[str, Any]:
    return {"route": list(destinations)}


def dest(host: str = "foo.baz", **fields: Any) -> dict[str, Any]:
    return {"destination": {"host": host}, **fields}


# TestValidateHTTPRoute (validation_test.go) and TestValidateDelegateHTTPRoute (virtualservice_test.go)
HTTP_ROUTES = [
    ("empty", {}, False),
    ("simple", route_to(dest()), True),
    ("no destination", route_to({}), False),
    ("weighted", route_to(dest("foo.baz.south", weight=25), dest("foo.baz.east", weight=75)), True),
    ("total weight > 100", route_to(dest("foo.baz.south", weight=550), dest("foo.baz.east", weight=500)), True),
    ("total weight < 100", route_to(dest("foo.baz.south", weight=49), dest("foo.baz.east", weight=50)), True),
    ("simple redirect", {"redirect": {"uri": "/lerp", "authority": "foo.biz"}}, True),
    ("conflicting redirect and route", {**route_to(dest()), "redirect": {"uri": "/lerp", "authority": "foo.biz"}},
     False),
    ("empty header name - request add", route_to(dest(headers={"request": {"add": {"": "value"}}})), False),
    ("empty header name - response remove", route_to(dest(headers={"response": {"remove": [""]}})), False),
    ("null header match", {**route_to(dest()), "match": [{"headers": {"header": None}}]}, False),
    ("nil match", {**route_to(dest()), "match": None}, True),
    ("match with nil element", {**route_to(dest()), "match": [None]}, True),
    ("invalid mirror percent", {**route_to(dest()), "mirrorPercent": 101}, False),
    ("invalid mirror percentage", {**route_to(dest()), "mirrorPercentage": {"value": 101}}, False),
    ("valid mirror percentage", {**route_to(dest()), "mirrorPercentage": {"value": 1}}, True),
    ("negative mirror percentage", {**route_to(dest()), "mirrorPercentage": {"value": -1}}, False),
    ("empty prefix match in method", {**route_to(dest()), "match": [{"method": {"prefix": ""}}]}, False),
    ("empty prefix match in uri", {**route_to(dest()), "match": [{"uri": {"prefix": ""}}]}, True),
    ("empty regex match in uri", {**route_to(dest()), "match": [{"uri": {"regex": ""}}]}, False),
    ("regex without headers match *", {**route_to(dest()), "match": [{"withoutHeaders": {"h": {"regex": "*"}}}]},
     True),
    ("regex without headers match ?", {**route_to(dest()), "match": [{"withoutHeaders": {"h": {"regex": "?"}}}]},
     False),
    ("simple direct response", {"directResponse": {"status": 200}}, True),
    ("direct response and route", {**route_to(dest()), "directResponse": {"status": 200}}, False),
    ("direct response with bad status", {"directResponse": {"status": 1000}}, False),
]


@pytest.mark.parametrize(("name", "route", "valid"), HTTP_ROUTES, ids=[c[0] for c in HTTP_ROUTES])
def test_http_route_table_from_istio(name: str, route: dict[str, Any], valid: bool) -> None:
    assert (validate_http_route(route, delegate=False) is None) is valid


def vs(hosts: list[str] | None, http: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(spec)
    if hosts is not None:
        body["hosts"] = hosts
    if http is not None:
        body["http"] = http
    return body


SIMPLE = [route_to(dest())]
# TestValidateVirtualService (validation_test.go)
VIRTUAL_SERVICES = [
    ("simple", vs(["foo.bar"], SIMPLE), True),
    ("duplicate hosts", vs(["*.foo.bar", "*.bar"], SIMPLE), False),
    ("with no destination", vs(["*.foo.bar", "*.bar"], [route_to({})]), False),
    ("destination with out hosts", vs(["*.foo.bar", "*.bar"], [route_to({"destination": {}})]), False),
    ("delegate with no hosts", vs(None, SIMPLE), True),
    ("bad host", vs(["foo.ba!r"], SIMPLE), False),
    ("no tcp or http routing", vs(["foo.bar"]), False),
    ("bad gateway", vs(["foo.bar"], SIMPLE, gateways=["b@dgateway"]), False),
    ("FQDN for gateway", vs(["foo.bar"], SIMPLE, gateways=["gateway.example.com"]), True),
    ("namespace/name for gateway", vs(["foo.bar"], SIMPLE, gateways=["ns1/gateway"]), True),
    ("namespace/* for gateway", vs(["foo.bar"], SIMPLE, gateways=["ns1/*"]), False),
    ("*/name for gateway", vs(["foo.bar"], SIMPLE, gateways=["*/gateway"]), False),
    ("wildcard for mesh gateway", vs(["*"], SIMPLE), False),
    ("wildcard for non-mesh gateway", vs(["*"], SIMPLE, gateways=["somegateway"]), True),
    ("missing tcp route", vs(["foo.bar"], tcp=[{"match": [{"port": 999}]}]), False),
    ("missing tls route", vs(["foo.bar"], tls=[{"match": [{"port": 999, "sniHosts": ["foo.bar"]}]}]), False),
    ("deprecated mirror", vs(["foo.bar"], [{**route_to(dest()), "mirrorPercent": 5}], gateways=["ns1/gateway"]),
     True),
    ("jwt claim route without gateway",
     vs(["foo.bar"], [{**route_to(dest()), "match": [{"headers": {"@request.auth.claims.foo": {"exact": "bar"}}}]}]),
     False),
    ("allow sni based domains",
     vs(["outbound_.15010_._.istiod.istio-system.svc.cluster.local"], gateways=["ns1/gateway"],
        tls=[{"match": [{"sniHosts": ["outbound_.15010_._.istiod.istio-system.svc.cluster.local"]}],
              "route": [{"destination": {"host": "istio.istio-system.svc.cluster.local"}}]}]), True),
    # TestValidateRootHTTPRoute / TestValidateDelegateHTTPRoute (virtualservice_test.go)
    ("root: simple delegate", vs(["foo.bar"], [{"delegate": {"name": "test", "namespace": "test"}}]), True),
    ("root: route and delegate conflict",
     vs(["foo.bar"], [{**route_to(dest()), "delegate": {"name": "test", "namespace": "test"}}]), False),
    ("root: redirect and delegate conflict",
     vs(["foo.bar"], [{"redirect": {"uri": "/lerp", "authority": "foo.biz"},
                       "delegate": {"name": "test", "namespace": "test"}}]), False),
    ("delegate route with delegate", vs(None, [{**route_to(dest()), "delegate": {"name": "test"}}]), False),
    ("delegate with gateways", vs(None, SIMPLE, gateways=["ns1/gateway"]), False),
]


@pytest.mark.parametrize(("name", "spec", "valid"), VIRTUAL_SERVICES, ids=[c[0] for c in VIRTUAL_SERVICES])
def test_virtual_service_table_from_istio(name: str, spec: dict[str, Any], valid: bool) -> None:
    assert (validate_virtual_service("vs", "default", spec) is None) is valid


# TestValidateDestinationRule (validation_test.go)
DESTINATION_RULES = [
    ("simple destination rule", {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}, True),
    ("missing destination name", {"host": "", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}, False),
    ("missing subset name", {"host": "reviews", "subsets": [{"name": "", "labels": {"version": "v1"}}]}, False),
    ("valid traffic policy, top level",
     {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
      "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}, True),
    ("empty traffic policy", {"host": "reviews", "trafficPolicy": {}}, False),
    ("duplicate subset names", {"host": "reviews", "subsets": [{"name": "v1"}, {"name": "v1"}]}, False),
    ("dotted subset name", {"host": "reviews", "subsets": [{"name": "v2.1"}]}, False),
    ("underscored subset name", {"host": "reviews", "subsets": [{"name": "v2_1"}]}, False),
    ("bad label value", {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "-v1"}}]}, False),
    ("exportTo none", {"host": "reviews", "exportTo": ["~"]}, False),
]


@pytest.mark.parametrize(("name", "spec", "valid"), DESTINATION_RULES, ids=[c[0] for c in DESTINATION_RULES])
def test_destination_rule_table_from_istio(name: str, spec: dict[str, Any], valid: bool) -> None:
    assert (validate_destination_rule("reviews", "default", spec) is None) is valid


HTTP_SERVER = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
# TestValidateGateway (validation_test.go)
GATEWAYS = [
    ("empty", "gw", {}, False),
    ("happy domain", "gw", {"servers": [{**HTTP_SERVER, "hosts": ["foo.bar.com"]}]}, True),
    ("happy multiple servers", "gw", {"servers": [HTTP_SERVER, {**HTTP_SERVER, "port": {
        "number": 8080, "name": "http-8080", "protocol": "HTTP"}}]}, True),
    ("invalid short name host", "gw", {"servers": [{**HTTP_SERVER, "hosts": ["foo"]}]}, False),
    ("invalid partial wildcard", "gw", {"servers": [{**HTTP_SERVER, "hosts": ["*bar.com"]}]}, False),
    ("duplicate port names", "gw", {"servers": [HTTP_SERVER, {**HTTP_SERVER, "port": {
        "number": 8080, "name": "http", "protocol": "HTTP"}}]}, False),
    ("https without tls", "gw", {"servers": [{**HTTP_SERVER, "port": {
        "number": 443, "name": "https", "protocol": "HTTPS"}}]}, False),
    ("invalid name", "gw.name", {"servers": [HTTP_SERVER]}, False),
]


@pytest.mark.parametrize(("name", "gateway", "spec", "valid"), GATEWAYS, ids=[c[0] for c in GATEWAYS])
def test_gateway_table_from_istio(name: str, gateway: str, spec: dict[str, Any], valid: bool) -> None:
    assert (validate_gateway(gateway, "default", spec) is None) is valid


def obj(kind: str, spec: dict[str, Any], name: str = "reviews") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"},
            "spec": spec}


# Messages: the strings of validateWeight, validateHTTPRouteConflict, validateSubsetName,
# validateHTTPRouteDestinations, as the webhook (server.go) wraps them.
MESSAGES = [
    ("negative weight", obj("VirtualService", vs(["reviews"], [route_to(dest("reviews", weight=-1))])),
     "configuration is invalid: weight -1 < 0"),
    ("route and redirect", obj("VirtualService", vs(["reviews"], [
        {**route_to(dest("reviews")), "redirect": {"uri": "/v2"}}])),
     "configuration is invalid: HTTP route cannot contain both route and redirect"),
    ("route and directResponse", obj("VirtualService", vs(["reviews"], [
        {**route_to(dest("reviews")), "directResponse": {"status": 503}}])),
     "configuration is invalid: HTTP route cannot contain both route and direct_response"),
    ("dotted subset in a DestinationRule", obj("DestinationRule", {"host": "reviews", "subsets": [
        {"name": "v2.1", "labels": {"version": "v2.1"}}]}),
     "configuration is invalid: subset name is invalid: v2.1"),
    ("underscored subset in a route", obj("VirtualService", vs(["reviews"], [
        route_to({"destination": {"host": "reviews", "subset": "v2_1"}})])),
     "configuration is invalid: subset name is invalid: v2_1"),
    ("weights summing to zero", obj("VirtualService", vs(["reviews"], [
        route_to(dest("reviews", weight=0), dest("ratings", weight=0))])),
     "configuration is invalid: total destination weight = 0"),
    ("wildcard host for the mesh", obj("VirtualService", vs(["*"], [route_to(dest("reviews"))])),
     "configuration is invalid: wildcard host * is not allowed for virtual services bound to the mesh gateway"),
    ("nothing to do", obj("VirtualService", vs(["reviews"], [{"match": [{"uri": {"prefix": "/"}}]}])),
     "configuration is invalid: HTTP route, redirect or direct_response is required"),
    # "destination is required" is added with multierror.Append: a list even of one error.
    ("destination missing", obj("VirtualService", vs(["reviews"], [route_to({"weight": 100})])),
     "configuration is invalid: 1 error occurred:\n\t* destination is required\n\n"),
    ("two errors", obj("VirtualService", vs(["reviews"], [
        route_to(dest("reviews", weight=-1), dest("ratings", weight=-2))])),
     "configuration is invalid: 2 errors occurred:\n\t* weight -1 < 0\n\t* weight -2 < 0\n\n"),
    ("delegate with gateways", obj("VirtualService", vs(None, [route_to(dest("reviews"))], gateways=["gw"])),
     "configuration is invalid: delegate virtual service must have no gateways specified"),
]


@pytest.mark.parametrize(("name", "body", "expected"), MESSAGES, ids=[c[0] for c in MESSAGES])
def test_refusal_messages_are_istios(name: str, body: dict[str, Any], expected: str) -> None:
    assert validate_object(body) == expected


def test_errors_add_up_as_go_multierror_does() -> None:
    assert append_errors(None, "a") == "a"
    assert append_errors("a", None) == "a"
    assert append_errors("a", "b") == MultiError(["a", "b"])
    assert append_errors("a", MultiError(["b", "c"])) == MultiError(["a", "b", "c"])
    assert str(multierror_append(None, "x")) == "1 error occurred:\n\t* x\n\n"


def test_admission_review_refuses_with_message_and_allows_others() -> None:
    bad = obj("VirtualService", vs(["reviews"], [route_to(dest("reviews", weight=-1))]))
    refused = review({"uid": "u1", "operation": "CREATE", "namespace": "ns", "object": bad})
    assert refused == {"uid": "u1", "allowed": False, "status": {"message": "configuration is invalid: weight -1 < 0"}}
    assert review({"uid": "u2", "operation": "DELETE", "object": None}) == {"uid": "u2", "allowed": True}
    other = {"kind": "ServiceEntry", "metadata": {"name": "x"}, "spec": {}}
    assert review({"uid": "u3", "operation": "CREATE", "object": other})["allowed"] is True


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_istios_bookinfo_samples_are_valid(sample: str) -> None:
    for doc in yaml.safe_load_all((SAMPLES / sample).read_text()):
        if doc:
            assert validate_object(doc, "bookinfo") is None, (sample, doc["metadata"]["name"])
