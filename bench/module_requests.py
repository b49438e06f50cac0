"""Item 3 of the benchmark: API requests per operation for every module of the collection.

Each operation runs the module file directly with its arguments (what Ansible does on the target
after transferring it; the requests are the same), once, inside an audit window. The count comes
from the apiserver's audit log, and is compared with the ``api_requests`` the module reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from bench.env import REPO_ROOT, WORK_DIR, bench_python, say
from bench.runner import AUDIT_USER, DROPPED_ENV, discovery_group, is_discovery
from lab.audit import AuditWindow
from tests.helpers.collection import COLLECTION_DIR, COLLECTIONS_ROOT


def run_module(lab_state: dict[str, Any], module: str, args: dict[str, Any], check: bool = False
               ) -> dict[str, Any]:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=WORK_DIR, delete=False) as handle:
        json.dump(payload, handle)
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env.update({"PYTHONPATH": str(COLLECTIONS_ROOT), "K8S_AUTH_KUBECONFIG": lab_state["kubeconfig"]})
    try:
        proc = subprocess.run([str(bench_python()), str(COLLECTION_DIR / "plugins" / "modules" / f"{module}.py"),
                               handle.name], capture_output=True, text=True, env=env, cwd=str(REPO_ROOT),
                              timeout=300, check=False)
    finally:
        os.unlink(handle.name)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"failed": True, "msg": f"no JSON result: {proc.stdout[-500:]} {proc.stderr[-800:]}"}


def operations(namespace: str) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(what, module, arguments, check mode), in an order where each builds on the one before."""
    vs_spec = {"hosts": ["reviews"], "http": [{"name": "primary", "route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 0}]}]}
    vs_changed = json.loads(json.dumps(vs_spec))
    vs_changed["http"][0]["timeout"] = "10s"
    dr_spec = {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}
    base = {"namespace": namespace}
    return [
        ("create DestinationRule", "destination_rule", {**base, "name": "reviews", "spec": dr_spec}, False),
        ("add a subset", "destination_rule",
         {**base, "name": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}, False),
        ("add a subset again (no change)", "destination_rule",
         {**base, "name": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}, False),
        ("create VirtualService", "virtual_service", {**base, "name": "reviews", "spec": vs_spec}, False),
        ("update VirtualService", "virtual_service", {**base, "name": "reviews", "spec": vs_changed}, False),
        ("same VirtualService again (no change)", "virtual_service",
         {**base, "name": "reviews", "spec": vs_changed}, False),
        ("read one VirtualService", "virtual_service_info", {**base, "name": "reviews"}, False),
        ("list VirtualServices", "virtual_service_info", dict(base), False),
        ("read one DestinationRule", "destination_rule_info", {**base, "name": "reviews"}, False),
        ("change weights", "traffic_split", {**base, "name": "reviews", "base": "v1", "canary": "v2",
                                             "canary_weight": 20}, False),
        ("same weights again (no change)", "traffic_split",
         {**base, "name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 20}, False),
        ("change weights, check mode", "traffic_split",
         {**base, "name": "reviews", "base": "v1", "canary": "v2", "canary_weight": 50}, True),
        ("add a header route", "header_route", {**base, "name": "reviews", "route": "testers",
                                                "headers": {"end-user": "jason"}, "subset": "v2"}, False),
        ("same header route again (no change)", "header_route",
         {**base, "name": "reviews", "route": "testers", "headers": {"end-user": "jason"}, "subset": "v2"},
         False),
        ("canary status", "canary_info", {**base, "name": "reviews"}, False),
        ("apply Bookinfo (12 objects)", "manifest",
         {**base, "src": [str(REPO_ROOT / "bookinfo/platform/kube/bookinfo-reviews-v1.yaml")]}, False),
        ("apply Bookinfo again (no change)", "manifest",
         {**base, "src": [str(REPO_ROOT / "bookinfo/platform/kube/bookinfo-reviews-v1.yaml")]}, False),
        ("remove header route", "header_route", {**base, "name": "reviews", "route": "testers",
                                                 "state": "absent"}, False),
        ("delete VirtualService", "virtual_service", {**base, "name": "reviews", "state": "absent"}, False),
    ]


def per_module(lab_state: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    rows = []
    for what, module, args, check in operations(namespace):
        window = AuditWindow(lab_state)
        result = run_module(lab_state, module, args, check)
        events = window.requests(user=AUDIT_USER)
        verbs: dict[str, int] = {}
        discovery_groups: dict[str, int] = {}
        for event in events:
            if is_discovery(event):
                group = discovery_group(event.get("requestURI", ""))
                discovery_groups[group] = discovery_groups.get(group, 0) + 1
            verb = "discovery" if is_discovery(event) else event.get("verb", "?")
            verbs[verb] = verbs.get(verb, 0) + 1
        row = {"module": module, "operation": what, "requests": len(events), "by_verb": verbs,
               "discovery": verbs.get("discovery", 0), "discovery_groups": discovery_groups,
               "reported": result.get("api_requests"),
               "changed": result.get("changed"), "failed": bool(result.get("failed")),
               "msg": str(result.get("msg", ""))[:300] if result.get("failed") else ""}
        if row["failed"]:
            say(f"module requests: {module} ({what}) failed: {row['msg']}")
        rows.append(row)
    return rows
