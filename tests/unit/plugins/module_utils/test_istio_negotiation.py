"""Istio API version negotiation shared by twins (one per worker thread), and the LIST read from the
API server's watch cache. The fake server answers as kube-apiserver does: a version that does not
serve a resource type gets a 404 Status with no details ("the server could not find the requested
resource"), the group's discovery document lists the versions served, and a ``continue`` token must
come without a ``resourceVersion``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, KubeClient
from ansible_collections.canary.istio.plugins.module_utils._istio import Istio

pytestmark = pytest.mark.unit

GROUP = "/apis/networking.istio.io"
NOT_SERVED = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
              "message": "the server could not find the requested resource", "details": {}}


class OldCluster(KubeClient):
    """A cluster serving networking.istio.io at v1beta1 only. ``together``: requests that miss wait
    at a barrier until that many have missed, so that they miss at the same time."""

    def __init__(self, together: int = 1):  # pylint: disable=super-init-not-called
        self.lock = threading.Lock()
        self.asked: list[tuple[str, dict[str, Any] | None]] = []
        self.barrier = threading.Barrier(together)

    def twin(self) -> OldCluster:
        return self  # one recorder for every twin

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str | None = None) -> Any:
        with self.lock:
            self.asked.append((path, query))
        if path == GROUP:
            return {"kind": "APIGroup", "name": "networking.istio.io",
                    "versions": [{"groupVersion": "networking.istio.io/v1beta1", "version": "v1beta1"}]}
        if path.startswith(f"{GROUP}/v1/"):
            self.barrier.wait(timeout=5)
            raise ApiError(404, "Not Found", NOT_SERVED, method, path)
        return {"kind": "VirtualServiceList", "metadata": {}, "items": []}


def test_requests_that_miss_together_discover_the_version_once():
    client = OldCluster(together=2)
    first = Istio(client)
    second = first.twin(client)
    results: list[Any] = []

    def read(istio: Istio, kind: str) -> None:
        results.append(istio.list(kind, "bookinfo"))

    threads = [threading.Thread(target=read, args=(first, "VirtualService")),
               threading.Thread(target=read, args=(second, "DestinationRule"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert results == [[], []]
    paths = [path for path, _query in client.asked]
    assert paths.count(GROUP) == 1, paths
    assert sorted(paths) == sorted([
        f"{GROUP}/v1/namespaces/bookinfo/virtualservices", f"{GROUP}/v1/namespaces/bookinfo/destinationrules",
        GROUP,
        f"{GROUP}/v1beta1/namespaces/bookinfo/virtualservices",
        f"{GROUP}/v1beta1/namespaces/bookinfo/destinationrules"])
    assert first.api_version == second.api_version == "networking.istio.io/v1beta1"
    # A twin made later starts at the version found, with no miss.
    client.asked.clear()
    Istio.twin(first, client).get("VirtualService", "bookinfo", "reviews")
    assert [path for path, _query in client.asked] == [f"{GROUP}/v1beta1/namespaces/bookinfo/virtualservices/reviews"]


class PagedCluster(KubeClient):
    """Two pages of VirtualServices; refuses a ``continue`` that comes with a ``resourceVersion``, as
    kube-apiserver does ("specifying resource version is not allowed when using continue")."""

    def __init__(self):  # pylint: disable=super-init-not-called
        self.asked: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str | None = None) -> Any:
        query = dict(query or {})
        self.asked.append(query)
        if query.get("continue") and query.get("resourceVersion"):
            raise ApiError(400, "Bad Request", {"message": "specifying resource version is not allowed when "
                                                           "using continue"}, method, path)
        if query.get("continue") == "page-2":
            return {"metadata": {}, "items": [{"metadata": {"name": "b"}}]}
        return {"metadata": {"continue": "page-2"}, "items": [{"metadata": {"name": "a"}}]}


def test_a_cached_list_asks_the_watch_cache_on_its_first_page_only():
    client = PagedCluster()
    names = [item["metadata"]["name"] for item in
             Istio(client, "v1").list("VirtualService", "bookinfo", page_size=1, cached=True)]
    assert names == ["a", "b"]
    assert client.asked == [{"limit": 1, "resourceVersion": "0"}, {"limit": 1, "continue": "page-2"}]


def test_a_list_not_cached_reads_from_etcd():
    client = PagedCluster()
    Istio(client, "v1").list("VirtualService", "bookinfo", page_size=1)
    assert all("resourceVersion" not in query for query in client.asked)


class MixedCluster(KubeClient):
    """networking.istio.io served at v1beta1 and v1alpha3; DestinationRule at both, VirtualService at
    v1alpha3 only (an old VirtualService CRD left in place)."""

    SERVES = {"v1beta1": ["destinationrules"], "v1alpha3": ["destinationrules", "virtualservices"]}

    def __init__(self):  # pylint: disable=super-init-not-called
        self.asked: list[str] = []

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str | None = None) -> Any:
        self.asked.append(path)
        if path == GROUP:
            return {"kind": "APIGroup", "versions": [{"version": "v1beta1"}, {"version": "v1alpha3"}]}
        version, _sep, rest = path[len(GROUP) + 1:].partition("/")
        if version not in self.SERVES:
            raise ApiError(404, "Not Found", NOT_SERVED, method, path)
        if not rest:
            return {"kind": "APIResourceList", "resources": [{"name": name} for name in self.SERVES[version]]}
        if rest.split("/")[2] not in self.SERVES[version]:
            raise ApiError(404, "Not Found", NOT_SERVED, method, path)
        return {"metadata": {}, "items": []}


def test_a_kind_not_served_at_the_version_discovered_earlier_is_looked_for():
    client = MixedCluster()
    istio = Istio(client)
    assert istio.list("DestinationRule", "bookinfo") == []
    assert istio.version == "v1beta1"
    assert istio.list("VirtualService", "bookinfo") == []
    assert istio.version == "v1alpha3"
    assert client.asked == [
        f"{GROUP}/v1/namespaces/bookinfo/destinationrules", GROUP,
        f"{GROUP}/v1beta1/namespaces/bookinfo/destinationrules",
        f"{GROUP}/v1beta1/namespaces/bookinfo/virtualservices",
        f"{GROUP}/v1", f"{GROUP}/v1beta1", f"{GROUP}/v1alpha3",
        f"{GROUP}/v1alpha3/namespaces/bookinfo/virtualservices"]
