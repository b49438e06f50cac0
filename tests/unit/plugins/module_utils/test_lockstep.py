"""Lockstep moves of many VirtualServices (``_lockstep.move``) against an in-memory API that applies
JSON Patches with the independent applier of tests/unit/plugins/module_utils/_logic/support.py, and
fails where told to."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._client import (
    ApiError,
    ConnectionFailed,
    RequestOutcomeUnknown,
)
from ansible_collections.canary.istio.plugins.module_utils._context import ModuleFailure, ReadCache
from ansible_collections.canary.istio.plugins.module_utils._lockstep import move, validate_concurrency
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._traffic import Target, plan, write
from tests.unit.plugins.module_utils._logic.support import PatchTestFailed, apply_patch, bookinfo_vs

pytestmark = pytest.mark.unit

NAMESPACE = "bookinfo"
RULE = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": NAMESPACE},
        "spec": {"host": "reviews", "subsets": [{"name": s, "labels": {"version": s}} for s in ("v1", "v2", "v3")]}}


class FakeApi:
    """VirtualServices by name; ``forbid``: names whose PATCH is refused (403); ``lose``: names whose
    PATCH is applied but its answer lost, the re-read right after failing too."""

    def __init__(self, count: int):
        self.lock = threading.Lock()
        self.store: dict[str, dict[str, Any]] = {}
        for index in range(count):
            vs = bookinfo_vs()
            vs["metadata"]["name"] = f"svc-{index:04d}"
            self.store[vs["metadata"]["name"]] = vs
        self.original = copy.deepcopy(self.store)
        self.forbid: set[str] = set()
        self.lose: set[str] = set()
        self.broken_reads: set[str] = set()
        # Names whose copy in a LIST lags behind the store (a watch cache not yet up to date).
        self.stale: dict[str, dict[str, Any]] = {}
        self.lists: list[tuple[str, bool]] = []
        self.patches = 0
        self.requests = 0


class FakeIstio:
    api_version = "networking.istio.io/v1"

    def __init__(self, api: FakeApi, client: FakeClient | None = None):
        self.api = api
        self.client = client or FakeClient()

    def _count(self) -> None:
        self.api.requests += 1
        self.client.requests_made += 1

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.api.lock:
            self._count()
            if kind == "DestinationRule":
                return copy.deepcopy(RULE) if name == RULE["metadata"]["name"] else None
            if name in self.api.broken_reads:
                self.api.broken_reads.discard(name)
                raise ConnectionFailed("connection reset while reading")
            return copy.deepcopy(self.api.store.get(name))

    def list(self, kind: str, namespace: str, label_selector: str | None = None, page_size: int | None = None,
             each: Any = None, cached: bool = False) -> list[dict[str, Any]]:
        with self.api.lock:
            self._count()
            self.api.lists.append((kind, cached))
            if kind == "VirtualService":
                items = [self.api.stale.get(name) if cached and name in self.api.stale else vs
                         for name, vs in self.api.store.items()]
            else:
                items = [RULE]
            items = copy.deepcopy(items)
            return [each(item) for item in items] if each else items

    def cached_column(self, kind: str, namespace: str, column: str) -> list[tuple[str, Any]]:
        with self.api.lock:
            self._count()
            return [(RULE["metadata"]["name"], RULE["spec"]["host"])]

    def json_patch(self, kind: str, namespace: str, name: str, ops: list[dict[str, Any]],
                   dry_run: bool = False) -> dict[str, Any]:
        with self.api.lock:
            self._count()
            if name in self.api.forbid:
                raise ApiError(403, "Forbidden", {"message": f"cannot patch {name}"}, "PATCH", name)
            try:
                updated = apply_patch(copy.deepcopy(self.api.store[name]), ops)
            except PatchTestFailed:
                raise ApiError(422, "Unprocessable Entity", {"message": "the server rejected our request due to "
                                                                        "an error in our request"}) from None
            updated["metadata"]["resourceVersion"] = str(int(updated["metadata"]["resourceVersion"]) + 1)
            self.api.store[name] = updated
            self.api.patches += 1
            if name in self.api.lose:
                self.api.lose.discard(name)
                self.api.broken_reads.add(name)
                raise RequestOutcomeUnknown("answer lost", "PATCH", name)
            return copy.deepcopy(updated)


class FakeClient:
    def __init__(self) -> None:
        self.requests_made = 0


class FakeContext:
    def __init__(self, api: FakeApi, progress=None):
        self.api = api
        self.client = FakeClient()
        self.istio = FakeIstio(api, self.client)
        self.check_mode = False
        self.cache = ReadCache()
        self.progress = progress
        self.doing = ("access", "virtualservices", None, None, "networking.istio.io")
        self.forks = 0

    def at(self, verb, resource, name, namespace, api_group="networking.istio.io"):
        self.doing = (verb, resource, name, namespace, api_group)
        return self

    def fork(self):
        twin = copy.copy(self)
        twin.doing = self.doing
        self.forks += 1
        return twin

    def join(self, twin):
        pass


OPTIONS = {"remove_unnamed": False, "record": True, "actor": "unit", "history_limit": 20}


def _move(ctx: FakeContext, count: int, concurrency: int = 4) -> tuple[list[Target], Any]:
    targets = [Target(f"svc-{index:04d}", NAMESPACE, weights={"v1": 60, "v2": 40}) for index in range(count)]
    try:
        figures = move(ctx, targets, lambda worker, t: plan(worker, t, **OPTIONS),
                       lambda worker, t: write(worker, t, lambda: plan(worker, t, **OPTIONS), 2), concurrency)
    except ModuleFailure as failure:
        return targets, failure
    return targets, figures


def _weights(vs: dict[str, Any]) -> dict[str, int]:
    return {d["destination"]["subset"]: d.get("weight", 0) for d in vs["spec"]["http"][-1]["route"]}


def test_all_move_with_one_list_of_each_kind_and_a_patch_each():
    api = FakeApi(120)
    lines: list[str] = []
    ctx = FakeContext(api, progress=lines.append)
    _targets, figures = _move(ctx, 120, concurrency=8)
    assert figures["concurrency"] == 8 and ctx.forks >= 2
    assert all(_weights(vs) == {"v1": 60, "v2": 40} for vs in api.store.values())
    assert api.requests == 2 + 120  # VirtualService LIST, DestinationRule LIST, one PATCH each
    assert lines[0] == "traffic_split: reading 120 VirtualServices, 8 at a time"
    assert any(line.startswith("traffic_split: written 120/120") for line in lines), lines
    assert figures["peak_rss_mib"] > 0


def test_a_stale_copy_from_the_listing_is_read_again_and_planned_anew():
    # The LIST comes from the API server's watch cache, which may lag: svc-0007's copy there is from
    # before someone moved it to 50/50. The PATCH made from it tests the old resourceVersion and is
    # refused; the service is read again and its move planned from what is really stored.
    api = FakeApi(60)
    api.stale["svc-0007"] = copy.deepcopy(api.store["svc-0007"])
    newer = api.store["svc-0007"]
    newer["spec"]["http"][-1]["route"][0]["weight"] = 50
    newer["spec"]["http"][-1]["route"][1]["weight"] = 50
    newer["metadata"]["resourceVersion"] = "1235"
    ctx = FakeContext(api)
    targets, figures = _move(ctx, 60)
    assert not isinstance(figures, ModuleFailure), figures
    assert api.lists[0] == ("VirtualService", True)
    moved = targets[7]
    assert moved.before == {"v1": 50, "v2": 50} and moved.after == {"v1": 60, "v2": 40}
    assert _weights(api.store["svc-0007"]) == {"v1": 60, "v2": 40}
    history = api.store["svc-0007"]["metadata"]["annotations"]["canary.istio/history"]
    assert '"from":{"v1":50,"v2":50}' in history
    assert api.requests == 2 + 60 + 2  # LISTs, a PATCH each, the refused PATCH and the GET after it


@pytest.mark.parametrize("case", ["not listed", "plan reads"])
def test_services_a_listing_read_are_planned_in_the_calling_thread_until_one_needs_a_request(case):
    api = FakeApi(80)
    targets = [Target(f"svc-{index:04d}", NAMESPACE, weights={"v1": 60, "v2": 40}) for index in range(80)]
    if case == "not listed":
        # svc-0030 was created after the LIST was answered: it is read with a GET, by a worker.
        late = api.store.pop("svc-0030")
        first_elsewhere = 30
    else:
        # svc-0030's rule is named, so its plan reads it (a GET): the services after it go to workers.
        targets[30].destination_rule = "reviews"
        first_elsewhere = 31
    planned_in: dict[str, str] = {}

    def planning(worker, target):
        if case == "not listed" and target.name == "svc-0000":
            api.store["svc-0030"] = late
        planned_in[target.name] = threading.current_thread().name
        plan(worker, target, **OPTIONS)

    move(FakeContext(api), targets, planning,
         lambda worker, t: write(worker, t, lambda: plan(worker, t, **OPTIONS), 2), 4)
    here = threading.current_thread().name
    assert [name for name, thread in planned_in.items() if thread == here] == \
        [f"svc-{index:04d}" for index in range(first_elsewhere)]
    assert all(_weights(vs) == {"v1": 60, "v2": 40} for vs in api.store.values())


def test_a_refused_write_puts_back_every_service_already_written():
    api = FakeApi(60)
    api.forbid.add("svc-0040")
    ctx = FakeContext(api)
    targets, failure = _move(ctx, 60)
    assert isinstance(failure, ModuleFailure)
    assert "svc-0040" in failure.msg and "put back the services already moved" in failure.msg
    assert api.patches >= 40 * 2  # forty written, then forty put back
    assert all(_weights(vs) == _weights(api.original[name]) for name, vs in api.store.items())
    assert all(t.rolled_back for t in targets[:40])
    assert not any(entry["moved"] for entry in failure.result["services"])


def test_a_write_whose_answer_and_re_read_were_lost_is_found_and_put_back():
    api = FakeApi(12)
    api.lose.add("svc-0005")  # applied, answer lost, the re-read fails: the write fails, outcome unknown
    ctx = FakeContext(api)
    targets, failure = _move(ctx, 12, concurrency=1)
    assert isinstance(failure, ModuleFailure)
    assert f"{NAMESPACE}/svc-0005" in failure.msg
    lost = targets[5]
    assert lost.rolled_back is True
    for name, vs in api.store.items():
        assert _weights(vs) == _weights(api.original[name]), name
        assert "canary.istio/history" not in vs["metadata"]["annotations"], name


def test_a_failed_read_writes_nothing():
    api = FakeApi(70)
    del api.store["svc-0033"]
    ctx = FakeContext(api)
    _targets, failure = _move(ctx, 70)
    assert isinstance(failure, ModuleFailure)
    assert "svc-0033 not found" in failure.msg and "no VirtualService was changed" in failure.msg
    assert api.patches == 0


@pytest.mark.parametrize("value", [0, 65, -1, "8", True, 2.5])
def test_concurrency_out_of_range_is_refused(value):
    with pytest.raises(CanaryInputError, match="from 1 to 64"):
        validate_concurrency(value)
