"""Item 7 of the benchmark: three clusters released in waves against one after another.

Three lab clusters (``python -m lab up --clusters 3 --dataplane``: each its own etcd, API server,
data plane and Prometheus) under ``build/bench-waves``. Each round releases reviews v2 twice, each
time in a namespace of its own with Bookinfo's v1 base deployed in every cluster beforehand (set-up
counts in no measurement), with ``playbooks/waves.yml`` over the lab's inventory: once in waves
[1, 2, 2] (cluster-1, then cluster-2 and cluster-3 at the same time) and once in waves [1, 2, 3]
(one cluster after another). Every cluster runs the same canary: one step to 50 %, an analysis of
that cluster's Prometheus after it, ``decision: auto``, while users load every cluster's gateway
(the waves tests' settings). Which of the two goes first alternates from round to round.

Per run: the playbook's wall time (``ansible-playbook`` start to end), each cluster's release time
(its VirtualService history: first step to promotion) and whether every cluster ended promoted.
"""

from __future__ import annotations

import datetime
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench.env import REPO_ROOT, say
from lab import clusters
from lab.kube import KubeClient
from tests.traffic.conftest import take_down
from tests.traffic.test_waves import HEALTHY, NAMES, Waves, base_everywhere, start

PLANS = {"waves": (1, 2, 2), "one after another": (1, 2, 3)}
HISTORY = "canary.istio/history"


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _release_seconds(waves: Waves, namespace: str) -> dict[str, float]:
    """Each cluster's release, from its first weight step to its promotion (the history's times)."""
    out = {}
    for name in NAMES:
        annotations = waves.virtual_service(name, namespace)["metadata"].get("annotations") or {}
        times = [_seconds(entry["time"]) for entry in json.loads(annotations.get(HISTORY, "[]"))]
        out[name] = max(times) - min(times) if times else float("nan")
    return out

def _clean(waves: Waves, namespace: str) -> None:
    """The namespace's workloads go: the next run's data plane has only its own to serve."""
    for lab in waves.labs.values():
        take_down(KubeClient.from_state(lab.state), namespace)


def _one_run(waves: Waves, plan: str, round_index: int, work: Path) -> dict[str, Any]:
    namespace = f"bench-waves-{round_index}-{plan.replace(' ', '-')}"
    base_everywhere(waves, namespace)
    proc = waves.run(namespace, dict.fromkeys(NAMES, HEALTHY), work, wave_numbers=PLANS[plan])
    if proc.returncode != 0:
        raise RuntimeError(f"waves {plan}: ansible-playbook failed\n{proc.stdout[-3000:]}\n{proc.stderr[-1500:]}")
    promoted = all(waves.weights(name, namespace) == {"v2": 100} for name in NAMES)
    releases = _release_seconds(waves, namespace)
    _clean(waves, namespace)
    return {"wall_s": waves.seconds, "release_s": releases, "promoted_everywhere": promoted}


def waves_vs_one_after_another(runs: int, root: Path | None = None) -> dict[str, Any]:
    root = root or REPO_ROOT / "build" / "bench-waves"
    work = root.parent / f"{root.name}-work"
    clusters.down(root)
    shutil.rmtree(root, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    say(f"waves: starting three lab clusters with data planes in {root}")
    waves = start(root)
    measured: dict[str, list[dict[str, Any]]] = {plan: [] for plan in PLANS}
    try:
        for round_index in range(runs):
            order = list(PLANS) if round_index % 2 == 0 else list(PLANS)[::-1]
            for plan in order:
                run = _one_run(waves, plan, round_index, work)
                measured[plan].append(run)
                say(f"waves round {round_index + 1}, {plan} {list(PLANS[plan])}: {run['wall_s']:.1f} s, "
                    f"clusters {', '.join(f'{v:.1f}' for v in run['release_s'].values())} s, "
                    f"promoted everywhere: {run['promoted_everywhere']}")
    finally:
        clusters.down(root)
    out: dict[str, Any] = {"plans": {}}
    for plan, items in measured.items():
        out["plans"][plan] = {"waves": list(PLANS[plan]), "runs": items, "median": {
            "wall_s": statistics.median(r["wall_s"] for r in items),
            "slowest_cluster_s": statistics.median(max(r["release_s"].values()) for r in items),
            "sum_clusters_s": statistics.median(sum(r["release_s"].values()) for r in items)},
            "promoted_everywhere": all(r["promoted_everywhere"] for r in items)}
    pairs = zip(measured["waves"], measured["one after another"], strict=True)
    out["wall_ratio"] = statistics.median(w["wall_s"] / o["wall_s"] for w, o in pairs)
    return out
