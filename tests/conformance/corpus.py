"""The vendored upstream corpus as Python objects: samples (one per file) and validation cases."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

UPSTREAM = Path(__file__).resolve().parent / "upstream"
BOOKINFO = UPSTREAM / "istio" / "samples" / "bookinfo" / "networking"

# The namespace a sample without one is read in (its short names resolve there).
SAMPLE_NAMESPACE = "bookinfo"

PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules",
           "Gateway": "gateways", "ServiceEntry": "serviceentries"}


@dataclass(frozen=True)
class Sample:
    """One vendored upstream file and the objects in it."""

    id: str  # path under upstream/, without .yaml
    path: Path
    objects: tuple[dict[str, Any], ...]

    @property
    def label(self) -> str:
        """A short test id: ``bookinfo:virtual-service-reviews-90-10``, ``virtual_service:L0067``."""
        parts = Path(self.id).parts
        if "bookinfo" in parts:
            return f"bookinfo:{parts[-1]}"
        if parts[0] == "api":
            return f"{parts[-2]}:{parts[-1]}"
        return f"analyzer:{parts[-1]}"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects if o.get("kind") == kind]

    @property
    def virtual_services(self) -> list[dict[str, Any]]:
        return self.of_kind("VirtualService")

    @property
    def destination_rules(self) -> list[dict[str, Any]]:
        return self.of_kind("DestinationRule")


def _load(path: Path) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as handle:
        return tuple(d for d in yaml.safe_load_all(handle) if d)


# Bookinfo in its Gateway API form (HTTPRoutes, per-version Services, Deployments): read with
# :func:`istio_objects`, not part of the Istio networking corpus.
GATEWAY_API_FORM = ("gateway-api", "kube")


def istio_objects(upstream_path: str) -> list[dict[str, Any]]:
    """The objects of one vendored istio/istio file, by its upstream path."""
    return [copy.deepcopy(o) for o in _load(UPSTREAM / "istio" / upstream_path)]


@cache
def samples() -> tuple[Sample, ...]:
    """Every vendored sample file, Bookinfo first, then proto examples, then analyzer data."""
    found = []
    for path in sorted(UPSTREAM.rglob("*.yaml")):
        if path.name == "validation-cases.yaml" or path.parent.name in GATEWAY_API_FORM:
            continue
        found.append(Sample(str(path.relative_to(UPSTREAM).with_suffix("")), path, _load(path)))
    return tuple(found)


def sample(name: str) -> Sample:
    """A sample by file name (``virtual-service-reviews-90-10``) or id."""
    for candidate in samples():
        if name in (candidate.id, candidate.path.stem):
            return candidate
    raise KeyError(name)


def with_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of ``obj`` placed in ``namespace`` unless it names its own."""
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    return obj


def sample_objects(item: Sample, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """The sample's objects (of ``kind``), each in its own namespace or ``SAMPLE_NAMESPACE``."""
    for obj in item.objects:
        if kind is None or obj.get("kind") == kind:
            yield with_namespace(obj, SAMPLE_NAMESPACE)


@dataclass(frozen=True)
class ValidationCase:
    id: str
    source: str  # "test: <file> <Test> <case>" or "rule: <function>"
    valid: bool
    message: str | None  # a fragment of istiod's message for an invalid case
    object: dict[str, Any]


@cache
def validation_cases() -> tuple[ValidationCase, ...]:
    with (UPSTREAM / "validation-cases.yaml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return tuple(ValidationCase(c["id"], f"test: {c['test']}" if c.get("test") else f"rule: {c['rule']}",
                                bool(c["valid"]), c.get("message"), c["object"]) for c in data["cases"])
