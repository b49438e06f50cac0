"""traffic_split, header_route and canary_info against the lab's real apiserver."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

import pytest

from lab.kube import KubeClient, KubeError
from tests.helpers.ansible import lab_auth, run_module
from tests.helpers.invariant import invariant_problems

pytestmark = pytest.mark.lab

VS = "/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices"
DR = "/apis/networking.istio.io/v1/namespaces/{ns}/destinationrules"


def reviews_vs() -> dict[str, Any]:
    """Bookinfo's reviews VirtualService as a team might really have it."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "labels": {"app": "reviews", "team": "books"},
                     "annotations": {"owner": "books-team@example.com"}},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {"name": "testers", "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
                {"name": "faulty-path", "match": [{"uri": {"prefix": "/broken"}}],
                 "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}},
                 "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
                {"name": "primary",
                 "route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}},
                            "weight": 100, "headers": {"response": {"set": {"x-version": "base"}}}}],
                 "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"},
                 "timeout": "10s",
                 "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"]}},
            ],
        },
    }


def reviews_dr(subsets: tuple[str, ...] = ("v1", "v2", "v3")) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
                     "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


@pytest.fixture
def bookinfo(kube: KubeClient, namespace: str) -> str:
    kube.create(VS.format(ns=namespace), reviews_vs())
    kube.create(DR.format(ns=namespace), reviews_dr())
    return namespace


def get_vs(kube: KubeClient, ns: str, name: str = "reviews") -> dict[str, Any]:
    return kube.get(f"{VS.format(ns=ns)}/{name}")


def without_weights(vs: dict[str, Any]) -> dict[str, Any]:
    """The VirtualService with the weights and our own records taken out: what must never change."""
    vs = copy.deepcopy(vs)
    for route in vs["spec"]["http"]:
        for destination in route.get("route", []):
            destination.pop("weight", None)
    annotations = vs["metadata"].get("annotations", {})
    for key in [k for k in annotations if k.startswith("canary.istio/")]:
        del annotations[key]
    for key in ("resourceVersion", "generation", "managedFields"):
        vs["metadata"].pop(key, None)
    return vs


def split(state, ns, weight, **extra) -> dict[str, Any]:
    return run_module("traffic_split", {**lab_auth(state), "name": "reviews", "namespace": ns,
                                        "base": "v1", "canary": "v2", "canary_weight": weight, **extra})


def test_splits_preserve_everything_but_the_weights(lab_state, kube, bookinfo):
    original = get_vs(kube, bookinfo)
    for weight in (10, 50, 100, 0):
        result = split(lab_state, bookinfo, weight, actor="tester")
        assert result["changed"] is True and not result.get("failed"), result
        assert result["after"] == {"v1": 100 - weight, "v2": weight}
        stored = get_vs(kube, bookinfo)
        primary = stored["spec"]["http"][2]["route"]
        assert [(d["destination"]["subset"], d["weight"]) for d in primary] == [("v1", 100 - weight), ("v2", weight)]
        # The new destination copies host and port of the route's others.
        assert primary[1]["destination"] == {"host": "reviews", "subset": "v2", "port": {"number": 9080}}
        # Every field other than the weights, and the appended v2 destination, is exactly as before.
        now = without_weights(stored)
        now["spec"]["http"][2]["route"] = now["spec"]["http"][2]["route"][:1]
        assert now == without_weights(original)
    state = json.loads(stored["metadata"]["annotations"]["canary.istio/state"])
    assert state == {"base": "v1", "canary": "v2", "weight": 0, "route": "primary"}
    history = json.loads(stored["metadata"]["annotations"]["canary.istio/history"])
    assert [(h["from"], h["to"], h["actor"]) for h in history] == [
        ({"v1": 100}, {"v1": 90, "v2": 10}, "tester"),
        ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, "tester"),
        ({"v1": 50, "v2": 50}, {"v1": 0, "v2": 100}, "tester"),
        ({"v1": 0, "v2": 100}, {"v1": 100, "v2": 0}, "tester")]


def test_idempotent_check_mode_and_diff(lab_state, kube, bookinfo):
    first = split(lab_state, bookinfo, 30)
    assert first["changed"] is True
    stored = get_vs(kube, bookinfo)
    again = split(lab_state, bookinfo, 30)
    assert again["changed"] is False and again["before"] == again["after"] == {"v1": 70, "v2": 30}
    assert get_vs(kube, bookinfo)["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    checked = run_module("traffic_split", {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo,
                                           "weights": {"v1": 40, "v2": 60}}, check=True, diff=True)
    assert checked["changed"] is True and checked["after"] == {"v1": 40, "v2": 60}
    assert checked["diff"] == {"before": {f"{bookinfo}/reviews": {"v1": 70, "v2": 30}},
                               "after": {f"{bookinfo}/reviews": {"v1": 40, "v2": 60}}}
    assert get_vs(kube, bookinfo)["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def test_one_split_makes_at_most_three_requests(lab_state, bookinfo, audit):
    window = audit()
    result = split(lab_state, bookinfo, 20)
    made = window.requests(user="lab:admin")
    assert result["changed"] is True
    # GET the VirtualService; GET the DestinationRule named after the service: it is for exactly
    # this host and defines both subsets, and Istio merges further rules for the same host (they
    # could add subsets, not remove them), so no other rule needs reading; one guarded PATCH.
    assert [(e["verb"], e["objectRef"]["resource"], e["objectRef"].get("name")) for e in made] == [
        ("get", "virtualservices", "reviews"), ("get", "destinationrules", "reviews"),
        ("patch", "virtualservices", "reviews")]
    assert result["api_requests"] == len(made)


def test_a_rule_not_named_after_its_service_is_found_from_the_watch_cache(lab_state, kube, bookinfo, audit):
    base = DR.format(ns=bookinfo)
    rule = kube.get(f"{base}/reviews")
    renamed = {"apiVersion": rule["apiVersion"], "kind": rule["kind"], "spec": rule["spec"],
               "metadata": {"name": "reviews-subsets", "namespace": bookinfo}}
    kube.create(base, renamed)
    kube.delete(f"{base}/reviews")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the watch cache may lag a moment behind the writes
            cached = {item["metadata"]["name"] for item in kube.get(base, resourceVersion="0")["items"]}
            if "reviews-subsets" in cached and "reviews" not in cached:
                break
            time.sleep(0.05)
        window = audit()
        result = split(lab_state, bookinfo, 30)
        made = window.requests(user="lab:admin")
        assert result.get("failed") is not True, result
        assert result["services"][0]["destination_rule"] == "reviews-subsets"
        # The guess by name finds nothing; the names and hosts from the watch cache point at the
        # renamed rule, which is read with a GET; no LIST of every rule of the namespace.
        assert [(e["verb"], e["objectRef"]["resource"], e["objectRef"].get("name")) for e in made] == [
            ("get", "virtualservices", "reviews"), ("get", "destinationrules", "reviews"),
            ("list", "destinationrules", None), ("get", "destinationrules", "reviews-subsets"),
            ("patch", "virtualservices", "reviews")]
        assert "resourceVersion=0" in made[2]["requestURI"] and "includeObject=None" in made[2]["requestURI"]
    finally:
        kube.create(base, {**renamed, "metadata": {"name": "reviews", "namespace": bookinfo}})
        kube.delete(f"{base}/reviews-subsets")


@pytest.mark.parametrize("args,expected", [
    ({"canary_weight": -1}, "-1 is not an integer between 0 and 100"),
    ({"canary_weight": 101}, "101 is not an integer between 0 and 100"),
    ({"canary_weight": 50.5}, "50.5 is not an integer between 0 and 100"),
    ({"canary_weight": "abc"}, "'abc' is not an integer between 0 and 100"),
    ({"canary_weight": ""}, "'' is not an integer between 0 and 100"),
    ({"weights": {"v1": 60, "v2": 39}}, "sum to 99"),
    ({"weights": {"v1": 50, "v9": 50}}, "subset(s) v9"),
    ({"weights": {"v1": 50, "v2": 50}, "route_name": "nope"}, "'nope'"),
    ({"weights": {"v1": 50, "v2": 50}, "name": "missing"}, "VirtualService"),
])
def test_bad_input_fails_clearly_without_a_write(lab_state, kube, bookinfo, audit, args, expected):
    params = {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo}
    if "canary_weight" in args:
        params.update(base="v1", canary="v2")
    params.update(args)
    before = get_vs(kube, bookinfo)
    window = audit()
    result = run_module("traffic_split", params)
    assert result.get("failed") is True, result
    assert expected in result["msg"], result["msg"]
    assert "Traceback" not in result["_stderr"]
    assert window.writes() == []
    assert get_vs(kube, bookinfo)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_unknown_subset_message_names_subset_and_rule(lab_state, kube, namespace):
    kube.create(VS.format(ns=namespace), reviews_vs())
    kube.create(DR.format(ns=namespace), reviews_dr(("v1", "v3")))
    result = split(lab_state, namespace, 30)
    assert result.get("failed") is True
    assert "subset(s) v2" in result["msg"] and f"DestinationRule {namespace}/reviews" in result["msg"]
    assert "defines only v1, v3" in result["msg"]


def test_invariant_holds_in_every_stored_version(lab_state, kube, namespace):
    vs = reviews_vs()
    vs["spec"]["http"] = vs["spec"]["http"][2:]  # only the primary route
    kube.create(VS.format(ns=namespace), vs)
    created_dr = kube.create(DR.format(ns=namespace), reviews_dr(("v1",)))
    start = created_dr["metadata"]["resourceVersion"]
    events: list[tuple[int, str, dict[str, Any]]] = []
    stop = threading.Event()

    def watch(path: str, kind: str) -> None:
        client = KubeClient.from_state(lab_state)
        for event in client.watch(path, resource_version=start, timeout_seconds=60):
            if stop.is_set():
                return
            obj = event["object"]
            if event["type"] in ("ADDED", "MODIFIED"):
                events.append((int(obj["metadata"]["resourceVersion"]), kind, obj))
            if kind == "vs" and obj.get("metadata", {}).get("annotations", {}).get("done") == "yes":
                return
            if kind == "dr" and obj.get("metadata", {}).get("annotations", {}).get("done") == "yes":
                return

    threads = [threading.Thread(target=watch, args=(VS.format(ns=namespace), "vs"), daemon=True),
               threading.Thread(target=watch, args=(DR.format(ns=namespace), "dr"), daemon=True)]
    for t in threads:
        t.start()
    auth = {**lab_auth(lab_state), "namespace": namespace}
    steps = [
        ("destination_rule", {"name": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}),
        ("traffic_split", {"name": "reviews", "weights": {"v1": 90, "v2": 10}}),
        ("traffic_split", {"name": "reviews", "weights": {"v1": 50, "v2": 50}}),
        ("traffic_split", {"name": "reviews", "weights": {"v1": 0, "v2": 100}}),
        ("traffic_split", {"name": "reviews", "weights": {"v2": 100}, "remove_unnamed": True}),
        ("destination_rule", {"name": "reviews", "remove_subsets": ["v1"]}),
    ]
    # Removing v1 before traffic left it must be refused, whatever the order of calls.
    early = run_module("destination_rule", {**auth, "name": "reviews", "remove_subsets": ["v1"]})
    assert early.get("failed") is True
    for module, args in steps:
        result = run_module(module, {**auth, **args})
        assert result["changed"] is True and not result.get("failed"), (module, args, result)
    kube.merge_patch(f"{VS.format(ns=namespace)}/reviews", {"metadata": {"annotations": {"done": "yes"}}})
    kube.merge_patch(f"{DR.format(ns=namespace)}/reviews", {"metadata": {"annotations": {"done": "yes"}}})
    for t in threads:
        t.join(timeout=30)
    stop.set()
    events.sort(key=lambda e: e[0])
    subsets: set[str] = {"v1"}
    checked = 0
    problems: list[str] = []
    for _rv, kind, obj in events:
        if kind == "dr":
            subsets = {s["name"] for s in obj["spec"].get("subsets", [])}
        else:
            problems += invariant_problems(obj, subsets)
            checked += 1
    assert problems == []
    assert checked >= 5  # every traffic step was seen
    assert subsets == {"v2"}


def test_concurrent_writer_and_fifty_splits_both_survive(lab_state, kube, bookinfo):
    other = KubeClient.from_state(lab_state)
    added: list[str] = []
    done = threading.Event()

    def other_writer() -> None:
        index = 0
        while not done.is_set() and index < 40:
            name = f"other-{index}"
            route = {"name": name, "match": [{"headers": {"x-other": {"exact": str(index)}}}],
                     "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}
            try:
                other.json_patch(f"{VS.format(ns=bookinfo)}/reviews",
                                 [{"op": "add", "path": "/spec/http/0", "value": route}])
                added.append(name)
            except KubeError:
                pass
            index += 1
            done.wait(0.1)

    thread = threading.Thread(target=other_writer)
    thread.start()
    weights = [(i * 7) % 101 for i in range(50)]
    try:
        for weight in weights:
            # The other writer writes about every 0.1 s; on a loaded machine one re-read-and-patch of
            # ours can take longer than that several times in a row, so this test allows more
            # attempts than the default 5 (what it shows is that neither write is lost).
            result = split(lab_state, bookinfo, weight, max_retries=30)
            assert not result.get("failed"), result.get("msg", result)
    finally:
        done.set()
        thread.join()
    stored = get_vs(kube, bookinfo)
    names = [r.get("name") for r in stored["spec"]["http"]]
    assert added and all(name in names for name in added)
    primary = next(r for r in stored["spec"]["http"] if r.get("name") == "primary")
    expected = {"v1": 100 - weights[-1], "v2": weights[-1]}
    assert {d["destination"]["subset"]: d["weight"] for d in primary["route"]} == expected
    assert names[-3:] == ["testers", "faulty-path", "primary"]


def _three_services(kube: KubeClient, namespace: str) -> None:
    for name in ("cart", "checkout", "payments"):
        vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
              "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": name, "subset": "stable"},
                                                            "weight": 100}]}]}}
        kube.create(VS.format(ns=namespace), vs)
        subsets = ["stable", "canary"] if name != "payments" else ["stable"]
        rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name},
                "spec": {"host": name, "subsets": [{"name": s, "labels": {"track": s}} for s in subsets]}}
        kube.create(DR.format(ns=namespace), rule)


def _add_canary_subset(kube: KubeClient, namespace: str, name: str) -> None:
    subset = {"name": "canary", "labels": {"track": "canary"}}
    kube.json_patch(f"{DR.format(ns=namespace)}/{name}", [{"op": "add", "path": "/spec/subsets/-", "value": subset}])


def _weights_of(kube: KubeClient, namespace: str, name: str) -> dict[str, int]:
    route = get_vs(kube, namespace, name)["spec"]["http"][0]["route"]
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route}


def test_lockstep_validates_all_before_the_first_write(lab_state, kube, namespace, audit):
    _three_services(kube, namespace)
    window = audit()
    result = run_module("traffic_split", {**lab_auth(lab_state), "namespace": namespace,
                                          "services": [{"name": "cart"}, {"name": "checkout"}, {"name": "payments"}],
                                          "weights": {"stable": 90, "canary": 10}})
    assert result.get("failed") is True
    assert f"{namespace}/payments" in result["msg"] and "no VirtualService was changed" in result["msg"]
    assert window.writes() == []
    for name in ("cart", "checkout", "payments"):
        assert _weights_of(kube, namespace, name) == {"stable": 100}
    assert [s["moved"] for s in result["services"]] == [False, False, False]


def test_lockstep_puts_back_what_moved_when_a_later_write_is_forbidden(lab_state, kube, namespace):
    _three_services(kube, namespace)
    _add_canary_subset(kube, namespace, "payments")
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube.create(f"{rbac}/roles", {"metadata": {"name": "split-two"}, "rules": [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules"],
         "verbs": ["get", "list"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["patch"],
         "resourceNames": ["cart", "checkout"]}]})
    kube.create(f"{rbac}/rolebindings", {"metadata": {"name": "split-two"},
                                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                     "name": "split-two"},
                                         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                                       "name": "lab:nobody"}]})
    result = run_module("traffic_split", {**lab_auth(lab_state, "nobody"), "namespace": namespace,
                                          "services": [{"name": "cart"}, {"name": "checkout"}, {"name": "payments"}],
                                          "weights": {"stable": 90, "canary": 10}})
    assert result.get("failed") is True, result
    assert "Grant verb 'patch' on resource 'virtualservices'" in result["msg"]
    assert f"put back the services already moved: {namespace}/cart, {namespace}/checkout" in result["msg"]
    by_name = {s["name"]: s for s in result["services"]}
    assert by_name["cart"]["rolled_back"] and by_name["checkout"]["rolled_back"]
    assert not by_name["payments"]["moved"] and by_name["payments"]["error"]
    for name in ("cart", "checkout", "payments"):
        assert _weights_of(kube, namespace, name) == {"stable": 100}
        annotations = get_vs(kube, namespace, name)["metadata"].get("annotations") or {}
        assert "canary.istio/state" not in annotations


def test_lockstep_moves_all_together(lab_state, kube, namespace):
    _three_services(kube, namespace)
    _add_canary_subset(kube, namespace, "payments")
    result = run_module("traffic_split", {**lab_auth(lab_state), "namespace": namespace,
                                          "services": [{"name": "cart"}, {"name": "checkout"}, {"name": "payments"}],
                                          "weights": {"stable": 75, "canary": 25}})
    assert result["changed"] is True and [s["moved"] for s in result["services"]] == [True, True, True]
    for name in ("cart", "checkout", "payments"):
        assert _weights_of(kube, namespace, name) == {"stable": 75, "canary": 25}


def test_header_route_sits_above_default_and_is_idempotent(lab_state, kube, bookinfo):
    auth = {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo}
    created = run_module("header_route", {**auth, "route": "canary-testers", "headers": {"end-user": "alice"},
                                          "subset": "v2"}, diff=True)
    assert created["changed"] is True, created
    stored = get_vs(kube, bookinfo)
    names = [r.get("name") for r in stored["spec"]["http"]]
    assert names == ["testers", "faulty-path", "canary-testers", "primary"]
    new = stored["spec"]["http"][2]
    assert new["match"] == [{"headers": {"end-user": {"exact": "alice"}}}]
    assert new["route"] == [{"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}},
                             "weight": 100}]
    assert run_module("header_route", {**auth, "route": "canary-testers", "headers": {"end-user": "alice"},
                                       "subset": "v2"})["changed"] is False
    missing = run_module("header_route", {**auth, "route": "x", "headers": {"end-user": "bob"}, "subset": "v9"})
    assert missing.get("failed") is True and "subset 'v9'" in missing["msg"]
    removed = run_module("header_route", {**auth, "route": "canary-testers", "state": "absent"})
    assert removed["changed"] is True
    after = get_vs(kube, bookinfo)
    assert without_weights(after)["spec"] == without_weights(reviews_vs())["spec"]
    assert run_module("header_route", {**auth, "route": "canary-testers", "state": "absent"})["changed"] is False


def test_canary_info_reports_routes_subsets_deployments_and_history(lab_state, kube, bookinfo):
    for version in ("v1", "v2"):
        kube.create(f"/apis/apps/v1/namespaces/{bookinfo}/deployments", {
            "metadata": {"name": f"reviews-{version}"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "reviews", "version": version}},
                     "template": {"metadata": {"labels": {"app": "reviews", "version": version}},
                                  "spec": {"containers": [{"name": "reviews", "image": "reviews"}]}}}})
    split(lab_state, bookinfo, 30, actor="ops")
    info = run_module("canary_info", {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo}, check=True)
    assert info["exists"] is True and info["weights"] == {"v1": 70, "v2": 30}
    assert [r["name"] for r in info["routes"]] == ["testers", "faulty-path", "primary"]
    backing = {s["name"]: s["deployments"] for s in info["subsets"]}
    assert backing == {"v1": ["reviews-v1"], "v2": ["reviews-v2"], "v3": []}
    assert {s["name"]: s["routed"] for s in info["subsets"]} == {"v1": True, "v2": True, "v3": True}
    assert info["state"] == {"base": "v1", "canary": "v2", "weight": 30, "route": "primary"}
    assert info["history"][-1]["actor"] == "ops" and info["history"][-1]["to"] == {"v1": 70, "v2": 30}
    absent = run_module("canary_info", {**lab_auth(lab_state), "name": "nothing", "namespace": bookinfo})
    assert absent["exists"] is False and not absent.get("failed")
    assert "deprecations" not in info and "deprecations" not in absent


def test_canary_info_planner_options_still_work_and_are_deprecated(lab_state, kube, bookinfo):
    split(lab_state, bookinfo, 30, actor="ops")
    args = {**lab_auth(lab_state), "name": "reviews", "namespace": bookinfo, "base": "v1", "canary": "v2"}
    reading = run_module("canary_info", args)
    assert not reading.get("failed") and "deprecations" not in reading, reading
    planned = run_module("canary_info", {**args, "goal": "set_ratio", "ratio": 50})
    assert not planned.get("failed"), planned.get("msg")
    assert planned["next_run"]["action"] == "step"
    # ansible-core 2.19 returns deprecations as structured records, older ones as plain dicts.
    [deprecation] = planned["deprecations"]
    assert "canary_info options goal, ratio are deprecated" in json.dumps(deprecation)
    assert deprecation["version"] == "2.0.0" and "canary.istio" in json.dumps(deprecation)
