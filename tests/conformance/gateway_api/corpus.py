"""The vendored Gateway API and istio/api files (``upstream/``) as Python objects."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

UPSTREAM = Path(__file__).resolve().parent / "upstream"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def documents(pattern: str) -> list[tuple[str, dict[str, Any]]]:
    """``(file relative to upstream/, object)`` for every object in the files matching ``pattern``."""
    found = []
    for path in sorted(UPSTREAM.glob(pattern)):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                found.append((str(path.relative_to(UPSTREAM)), doc))
    return found


def invalid_gateway_api_examples() -> list[tuple[str, dict[str, Any]]]:
    return documents("hack/invalid-examples/standard/*/*.yaml")


def valid_gateway_api_objects() -> list[tuple[str, dict[str, Any]]]:
    """Every Gateway API object of the published examples and the conformance manifests."""
    docs = documents("examples/standard/**/*.yaml") + documents("conformance/**/*.yaml")
    return [(f, d) for f, d in docs if str(d.get("apiVersion", "")).startswith(GATEWAY_API_GROUP + "/")]


# PyYAML (YAML 1.1) reads the flow item ``001:db8::`` of this case as a mapping; Go's YAML reads a
# string. The case judges the parser, not the CRD: left out.
PYYAML_MISREADS = {("istio-api/tests/testdata/serviceentry-valid.yaml", "full")}


def istio_api_cases() -> list[tuple[str, dict[str, Any], str | None]]:
    """istio/api's CRD validation cases: (file, object without ``_err``, ``_err`` or None)."""
    cases = []
    for name, doc in documents("istio-api/tests/testdata/*.yaml"):
        if (name, doc["metadata"]["name"]) in PYYAML_MISREADS:
            continue
        expected = doc.pop("_err", None)
        cases.append((name, doc, expected))
    return cases


@lru_cache(maxsize=1)
def crd_rule_messages() -> frozenset[str]:
    """Every ``message`` of every ``x-kubernetes-validations`` rule in the vendored CRDs."""
    from lab.webhook.crd_rules import schemas

    messages: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            messages.update(rule["message"] for rule in node.get("x-kubernetes-validations") or ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for schema in schemas().values():
        walk(schema)
    return frozenset(messages)
