"""Upstream objects placed in the lab: one fresh namespace per sample (or validation case), made once.

The lab and collection tests of one sample share its namespace (like the ``namespace`` fixture
of tests/conftest.py, a fresh ``t-…`` namespace, never deleted), so the corpus costs one
namespace and one create per object, whichever tests run.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from lab.kube import KubeClient, KubeError
from tests.conformance.corpus import PLURALS

GROUP = "/apis/networking.istio.io/v1"


@dataclass(frozen=True)
class Placed:
    namespace: str
    refused: dict[tuple[str, str], KubeError]  # (kind, name) -> the API server's refusal

    def refusals(self) -> dict[str, str]:
        return {f"{kind}/{name}": str(error) for (kind, name), error in self.refused.items()}


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    path = f"{GROUP}/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


@pytest.fixture(scope="session")
def place_upstream(kube: KubeClient) -> Callable[[str, Iterable[dict[str, Any]]], Placed]:
    """``place_upstream(key, objects)``: a fresh namespace holding ``objects`` (once per key)."""
    placed: dict[str, Placed] = {}

    def place(key: str, objects: Iterable[dict[str, Any]]) -> Placed:
        if key not in placed:
            namespace = f"t-{uuid.uuid4().hex[:10]}"
            kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": namespace}})
            refused = {}
            for obj in objects:
                body = copy.deepcopy(obj)
                # Upstream examples name namespaces of their own (foo, istio-system, nsA): the
                # object goes to the fresh namespace instead; fully qualified hosts keep theirs.
                body["metadata"] = {**body.get("metadata", {}), "namespace": namespace}
                try:
                    kube.create(object_path(body["kind"], namespace), body)
                except KubeError as error:
                    refused[(body["kind"], body["metadata"]["name"])] = error
            placed[key] = Placed(namespace, refused)
        return placed[key]

    return place
