"""Which DestinationRules a split checks (``_traffic.read_destination_rules``) when it reads fewer
than all of a namespace's rules: the rule named after the service, or the names the API server's
watch cache gives, which may lag behind etcd.

The expected rules follow Istio's documented behaviour, not our code: rules for the same exact host
in one namespace are merged (the earlier one's subsets first), a deleted or re-pointed rule no
longer applies, an exact host beats a wildcard. The fake server below holds two views: ``stored``
(what a GET or a full LIST returns) and ``cached`` (what the watch cache shows, possibly stale).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, KubeClient
from ansible_collections.canary.istio.plugins.module_utils._context import ReadCache
from ansible_collections.canary.istio.plugins.module_utils._istio import TABLE, Istio
from ansible_collections.canary.istio.plugins.module_utils._traffic import (
    Target,
    destination_rules_of,
    read_destination_rules,
)

pytestmark = pytest.mark.unit

NAMESPACE = "bookinfo"


def rule(name: str, host: str, *subsets: str) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


class TwoViews:
    """``stored``: the rules in etcd, listed by name. ``cached``: (name, host) rows of the watch cache,
    or None for a server that gives no host column. ``calls`` records each request."""

    def __init__(self, stored: list[dict[str, Any]], cached: list[tuple[str, str]] | None):
        self.stored = {r["metadata"]["name"]: r for r in stored}
        self.cached = cached
        self.calls: list[tuple[str, str | None]] = []
        self.may_get = True

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        if not self.may_get:
            raise ApiError(403, "Forbidden", {"message": "cannot get destinationrules"})
        return copy.deepcopy(self.stored.get(name)) if namespace == NAMESPACE else None

    def list(self, kind: str, namespace: str, label_selector: str | None = None, page_size: int | None = None,
             each: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace))
        items = [copy.deepcopy(self.stored[n]) for n in sorted(self.stored)] if namespace == NAMESPACE else []
        return [each(item) for item in items] if each else items

    def cached_column(self, kind: str, namespace: str, column: str) -> list[tuple[str, Any]] | None:
        self.calls.append(("table", namespace))
        return list(self.cached or []) if self.cached is not None and namespace == NAMESPACE else self.cached


class Ctx:
    def __init__(self, istio: TwoViews):
        self.istio = istio
        self.cache = ReadCache()

    def at(self, *args: Any) -> Ctx:
        return self


def read(views: TwoViews, needed: tuple[str, ...] = ("v1", "v2"), ctx: Ctx | None = None) -> list[str]:
    """The names of the rules a split of service reviews (VirtualService in bookinfo) checks."""
    target = Target("reviews", NAMESPACE, "reviews")
    rules = read_destination_rules(ctx or Ctx(views), target, "reviews", needed)
    return [r["metadata"]["name"] for r in rules]


def test_the_rule_named_after_the_service_answers_alone_when_it_has_the_subsets():
    views = TwoViews([rule("reviews", "reviews", "v1", "v2"), rule("ratings", "ratings", "v1")],
                     [("ratings", "ratings"), ("reviews", "reviews")])
    assert read(views) == ["reviews"]
    assert views.calls == [("get", "reviews")]  # with the VirtualService's GET and the PATCH: three


def test_the_rule_named_after_the_service_but_for_another_host_is_not_used():
    views = TwoViews([rule("reviews", "ratings", "v1", "v2"), rule("reviews-dr", "reviews", "v1", "v2")],
                     [("reviews", "ratings"), ("reviews-dr", "reviews")])
    assert read(views) == ["reviews-dr"]
    assert views.calls == [("get", "reviews"), ("table", NAMESPACE), ("get", "reviews-dr")]


def test_a_subset_the_named_rule_lacks_is_looked_for_in_every_rule_istio_merges():
    views = TwoViews([rule("reviews", "reviews", "v1"), rule("reviews-canary", "reviews", "v2")],
                     [("reviews", "reviews"), ("reviews-canary", "reviews")])
    assert read(views) == ["reviews", "reviews-canary"]
    assert ("list", NAMESPACE) not in views.calls


def test_without_subsets_to_check_the_cache_names_every_rule_for_the_host():
    # canary_info reports the merged subsets: one rule alone is not the answer.
    views = TwoViews([rule("reviews", "reviews", "v1"), rule("reviews-canary", "reviews", "v2")],
                     [("reviews", "reviews"), ("reviews-canary", "reviews")])
    assert read(views, needed=()) == ["reviews", "reviews-canary"]
    assert views.calls == [("table", NAMESPACE), ("get", "reviews"), ("get", "reviews-canary")]


def test_a_rule_the_cache_names_is_read_with_a_get_and_nothing_is_listed_in_full():
    views = TwoViews([rule("reviews-dr", "reviews", "v1", "v2"), rule("ratings", "ratings", "v1")],
                     [("ratings", "ratings"), ("reviews-dr", "reviews")])
    assert read(views) == ["reviews-dr"]
    assert views.calls == [("get", "reviews"), ("table", NAMESPACE), ("get", "reviews-dr")]


def test_hosts_in_the_table_are_resolved_in_the_rule_namespace():
    views = TwoViews([rule("reviews-dr", "reviews.bookinfo.svc.cluster.local", "v1", "v2")],
                     [("reviews-dr", "reviews.bookinfo.svc.cluster.local")])
    assert read(views) == ["reviews-dr"]
    assert ("list", NAMESPACE) not in views.calls


def test_a_rule_pointed_at_another_host_since_the_cache_saw_it_is_not_used():
    # The cache still shows "old" for reviews; etcd has it on ratings now and a new rule for reviews.
    views = TwoViews([rule("old", "ratings", "v1", "v2"), rule("reviews-new", "reviews", "v1")],
                     [("old", "reviews")])
    assert read(views, needed=("v1",)) == ["reviews-new"]
    assert views.calls[-1] == ("list", NAMESPACE)


def test_a_rule_deleted_since_the_cache_saw_it_is_not_used():
    views = TwoViews([rule("wide", "*.bookinfo.svc.cluster.local", "v1")], [("gone", "reviews")])
    assert read(views, needed=("v1",)) == ["wide"]
    assert views.calls == [("get", "reviews"), ("table", NAMESPACE), ("get", "gone"), ("list", NAMESPACE)]


def test_a_rule_the_cache_missed_is_found_by_the_full_search():
    # "reviews-v2" was created after the cache's snapshot; Istio merges both rules for the host.
    views = TwoViews([rule("reviews-dr", "reviews", "v1"), rule("reviews-v2", "reviews", "v2")],
                     [("reviews-dr", "reviews")])
    assert read(views) == ["reviews-dr", "reviews-v2"]
    assert views.calls[-1] == ("list", NAMESPACE)


def test_a_subset_defined_nowhere_leaves_the_rules_for_the_caller_to_refuse():
    views = TwoViews([rule("reviews", "reviews", "v1")], [("reviews", "reviews")])
    assert read(views) == ["reviews"]  # plan() then refuses v2: "defines only v1"
    assert views.calls[-1] == ("list", NAMESPACE)


def test_only_a_wildcard_in_the_cache_means_a_full_search():
    views = TwoViews([rule("reviews-dr", "reviews", "v1", "v2"), rule("wide", "*.svc.cluster.local", "v1")],
                     [("wide", "*.svc.cluster.local")])
    assert read(views) == ["reviews-dr"]  # an exact host beats any wildcard
    assert views.calls[-1] == ("list", NAMESPACE)


def test_a_server_without_the_host_column_is_searched_in_full():
    views = TwoViews([rule("reviews-dr", "reviews", "v1", "v2")], None)
    assert read(views) == ["reviews-dr"]
    assert views.calls == [("get", "reviews"), ("table", NAMESPACE), ("list", NAMESPACE)]


def test_a_role_that_may_list_rules_but_not_get_them_is_served_by_the_full_search():
    views = TwoViews([rule("reviews", "reviews", "v1", "v2")], [("reviews", "reviews")])
    views.may_get = False
    assert read(views) == ["reviews"]
    assert views.calls == [("get", "reviews"), ("table", NAMESPACE), ("get", "reviews"), ("list", NAMESPACE)]


def test_a_namespace_the_task_listed_already_costs_no_request():
    views = TwoViews([rule("reviews", "reviews", "v1", "v2")], [("reviews", "reviews")])
    ctx = Ctx(views)
    destination_rules_of(ctx, NAMESPACE, "cluster.local")
    assert read(views, ctx=ctx) == ["reviews"]
    assert views.calls == [("list", NAMESPACE)]


class TableClient(KubeClient):
    """Answers every request with ``answer`` and keeps what was asked."""

    def __init__(self, answer: Any):  # pylint: disable=super-init-not-called
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str | None = None) -> Any:
        self.asked.append({"method": method, "path": path, "query": query, "accept": accept})
        if isinstance(self.answer, ApiError):
            raise self.answer
        return self.answer


# The shape of a meta.k8s.io/v1 Table for a custom resource: a Name column first, then the CRD's
# additionalPrinterColumns (Istio's DestinationRule CRD: Host from .spec.host, Age).
ISTIO_TABLE = {
    "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "812"},
    "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
        {"name": "Host", "type": "string", "format": "", "description": "", "priority": 0},
        {"name": "Age", "type": "date", "format": "", "description": "", "priority": 0}],
    "rows": [{"cells": ["details", "details", "3m"]}, {"cells": ["reviews", "reviews", "3m"]}],
}


def test_the_host_table_is_asked_of_the_watch_cache_and_read_by_column_name():
    client = TableClient(ISTIO_TABLE)
    pairs = Istio(client).cached_column("DestinationRule", NAMESPACE, "Host")
    assert pairs == [("details", "details"), ("reviews", "reviews")]
    asked = client.asked[0]
    assert asked["method"] == "GET" and asked["path"].endswith(f"/namespaces/{NAMESPACE}/destinationrules")
    assert asked["query"] == {"resourceVersion": "0", "includeObject": "None"}
    assert asked["accept"] == TABLE and TABLE.startswith("application/json;as=Table;v=v1;g=meta.k8s.io")


@pytest.mark.parametrize("answer", [
    {"kind": "DestinationRuleList", "items": []},  # a server that ignores the Table request
    {**ISTIO_TABLE, "columnDefinitions": ISTIO_TABLE["columnDefinitions"][::2]},  # a CRD without Host
    {**ISTIO_TABLE, "rows": [{"cells": ["reviews"]}]},  # rows that do not match the columns
    ApiError(406, "Not Acceptable", {"message": "only application/json"}),
], ids=["not-a-table", "no-host-column", "short-row", "406"])
def test_anything_but_a_host_table_means_no_answer(answer):
    assert Istio(TableClient(answer)).cached_column("DestinationRule", NAMESPACE, "Host") is None


def test_refused_listing_is_an_error_not_an_empty_table():
    client = TableClient(ApiError(403, "Forbidden", {"message": "cannot list"}))
    with pytest.raises(ApiError):
        Istio(client).cached_column("DestinationRule", NAMESPACE, "Host")
