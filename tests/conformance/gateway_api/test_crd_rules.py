"""The CRDs' own CEL rules, enforced by the lab's webhook, judged by upstream's own cases.

- Gateway API: every object of its published examples and conformance manifests is accepted; every
  object of its ``hack/invalid-examples/standard`` is refused, and a refusal by a CEL rule carries
  that rule's own message.
- Istio: istio/api's ``tests/testdata`` (``_err`` says what the refusal must contain).

Unit tests evaluate the rules directly; the ``lab`` ones send the objects to the lab's API server.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import pytest

from lab.kube import KubeClient, KubeError
from lab.webhook import CRD_RULES_WEBHOOK_NAME
from lab.webhook.crd_rules import violations
from tests.conformance.gateway_api.corpus import (
    crd_rule_messages,
    invalid_gateway_api_examples,
    istio_api_cases,
    valid_gateway_api_objects,
)

VALID = valid_gateway_api_objects()
INVALID = invalid_gateway_api_examples()
ISTIO = istio_api_cases()


def _id(name: str, obj: dict[str, Any]) -> str:
    return f"{name}:{obj['kind']}/{obj['metadata']['name']}"


def _is_cel_expectation(expected: str) -> bool:
    """istio/api's ``_err`` names a CEL rule's message (else it is a schema check's wording)."""
    return any(expected in message or message in expected for message in crd_rule_messages())


@pytest.mark.unit
@pytest.mark.parametrize(("name", "obj"), VALID, ids=[_id(n, o) for n, o in VALID])
def test_gateway_api_published_objects_break_no_rule(name: str, obj: dict[str, Any]) -> None:
    assert violations(obj) == []


@pytest.mark.unit
def test_corpus_sizes() -> None:
    assert len(VALID) > 400 and len(INVALID) == 32
    assert sum(1 for _name, _obj, expected in ISTIO if expected and _is_cel_expectation(expected)) >= 15


# Cases whose refusal is a schema check's (the API server's wording) are judged in the lab test only.
ISTIO_CEL = [case for case in ISTIO if case[2] is None or _is_cel_expectation(case[2])]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "obj", "expected"), ISTIO_CEL, ids=[_id(n, o) for n, o, _expected in ISTIO_CEL])
def test_istio_api_cases_on_cel_rules(name: str, obj: dict[str, Any], expected: str | None) -> None:
    found = violations(obj)
    if expected is None:
        assert found == []
    else:
        assert any(expected in error for error in found), (expected, found)


# --- through the lab's API server ------------------------------------------------------------


@lru_cache(maxsize=1)
def _resources() -> dict[tuple[str, str], tuple[str, bool]]:
    """(group, kind) → (plural, namespaced), from the CRDs the lab installs."""
    from lab.controlplane import load_crds, load_gateway_api_crds

    return {(crd["spec"]["group"], crd["spec"]["names"]["kind"]):
            (crd["spec"]["names"]["plural"], crd["spec"]["scope"] == "Namespaced")
            for crd in load_crds() + load_gateway_api_crds(adapt=False)}


def _create(kube: KubeClient, namespace: str, obj: dict[str, Any]) -> KubeError | None:
    body = json.loads(json.dumps(obj))
    group, _slash, version = body["apiVersion"].rpartition("/")
    plural, namespaced = _resources()[(group, body["kind"])]
    if namespaced:
        body["metadata"]["namespace"] = namespace
        path = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    else:  # GatewayClass: one name per test run
        body["metadata"]["name"] = f"{namespace}-{body['metadata']['name']}"[:63]
        path = f"/apis/{group}/{version}/{plural}"
    try:
        kube.create(path, body)
    except KubeError as error:
        return error
    return None


def _only_group_read_as_null(error: KubeError) -> bool:
    """1.20 reads ``group: ""`` as null; Istio's CRDs are installed as published, without the
    nullable adaptation Gateway API's get (lab/crds/gateway-api/README.md)."""
    text = str(error).split(" is invalid: ", 1)[-1].strip("[]")
    return error.status == 422 and all(
        re.fullmatch(r'\S*\.group: Invalid value: "null": \S*\.group in body must be of type string: "null"', part)
        for part in text.split(", "))


@pytest.mark.lab
def test_gateway_api_invalid_examples_are_refused(kube: KubeClient, namespace: str) -> None:
    by_rules = []
    for name, obj in INVALID:
        error = _create(kube, namespace, obj)
        assert error is not None, f"{_id(name, obj)} was accepted"
        text = str(error)
        if CRD_RULES_WEBHOOK_NAME in text:
            assert error.status == 400
            assert any(f'Invalid value: "{kind}": {message}' in text for message in crd_rule_messages()
                       for kind in ("object", "array", "string", "integer")), (name, text)
            by_rules.append(name)
        else:
            assert error.status == 422, (name, text)  # the schema's own checks (patterns, required, ...)
    # At v1.6.1, 12 of the 32 are caught only by CEL rules, which 1.20 itself ignores.
    assert len(by_rules) == 12, by_rules


@pytest.mark.lab
def test_gateway_api_published_examples_are_accepted(kube: KubeClient, namespace: str) -> None:
    seen = set()
    for name, obj in VALID:
        if not name.startswith("examples/") or (obj["kind"], obj["metadata"]["name"]) in seen:
            continue
        seen.add((obj["kind"], obj["metadata"]["name"]))
        error = _create(kube, namespace, obj)
        assert error is None, f"{_id(name, obj)}: {error}"
    assert len(seen) > 50


@pytest.mark.lab
def test_istio_api_cases_through_the_api_server(kube: KubeClient, namespace: str) -> None:
    through_webhook = 0
    for index, (name, case, expected) in enumerate(ISTIO):
        obj = json.loads(json.dumps(case))
        if expected is None:  # valid cases share names
            obj["metadata"]["name"] = f"valid-{index}"
        error = _create(kube, namespace, obj)
        if expected is None:
            # Accepted by the schema and the CEL rules; istiod's own checks (validation.istio.io,
            # "configuration is invalid") may still refuse: istio/api's cases judge the CRDs only.
            assert error is None or (error.status == 400 and "configuration is invalid" in str(error)) \
                or _only_group_read_as_null(error), f"{_id(name, obj)}: {error}"
        else:
            assert error is not None, f"{_id(name, obj)} was accepted; upstream expects {expected!r}"
            if _is_cel_expectation(expected) and error.status == 400:
                assert expected in str(error), (expected, str(error))
                through_webhook += 1
    # The others are refused first by 1.20's schema check (e.g. it reads Istio's ``group: ""`` as
    # null); test_istio_api_cases_on_cel_rules judges their rules directly.
    assert through_webhook >= 10
