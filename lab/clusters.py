"""Several lab clusters side by side, and an Ansible inventory with one host per cluster.

``python -m lab up --clusters N`` makes ``DIR/cluster-1`` … ``DIR/cluster-N``, each an ordinary lab
(its own etcd, kube-apiserver, validation webhook, certificates and tokens; with ``--dataplane`` its
own data plane and Prometheus), started at the same time. ``DIR/clusters.json`` names them, so
``down``, ``status``, ``env`` and ``inventory`` on ``DIR`` act on every cluster.

The inventory has one host per cluster with a local connection: a release to a cluster runs on the
controller and reaches that cluster through its kubeconfig, which is what ``canary_kubeconfig``
(the playbooks' variable) names. Each host carries a ``wave``: cluster-1 is wave 1, the others
wave 2, unless ``--waves`` says otherwise; a group per wave (``wave_1``, ``wave_2`` …) holds them.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from lab import prometheus
from lab.controlplane import Lab, LabError, find_binaries, load_state, say

CLUSTERS_FILE = "clusters.json"
INVENTORY_FILE = "inventory.yml"
CLUSTERS_GROUP = "canary_clusters"
MAX_CLUSTERS = 9


def cluster_names(count: int) -> list[str]:
    return [f"cluster-{index}" for index in range(1, count + 1)]


def clusters_of(lab_dir: str | os.PathLike[str]) -> list[Path] | None:
    """The cluster directories of a multi-cluster lab directory, or None for a single lab."""
    path = Path(lab_dir) / CLUSTERS_FILE
    try:
        names = json.loads(path.read_text())["clusters"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{path} is not a cluster list ({exc}); remove it and run up --clusters again") from None
    return [Path(lab_dir) / name for name in names]


def up(lab_dir: str | os.PathLike[str], count: int, dataplane: bool = False,
       provision: bool = True) -> list[dict[str, Any]]:
    """Starts ``count`` clusters at once; returns their states. All or none: when one fails to
    start, the others are stopped again."""
    if not 1 <= count <= MAX_CLUSTERS:
        raise LabError(f"--clusters {count}: from 1 to {MAX_CLUSTERS} clusters")
    root = Path(lab_dir).resolve()
    existing = clusters_of(root)
    if existing is not None and len(existing) != count:
        raise LabError(f"{root} holds {len(existing)} clusters; run down first to start {count}")
    if existing is None and (root / "lab.json").exists():
        raise LabError(f"{root} holds a single lab; run down first, or use another --dir")
    find_binaries(provision=provision)  # build once, before the clusters start side by side
    root.mkdir(parents=True, exist_ok=True)
    names = cluster_names(count)
    (root / CLUSTERS_FILE).write_text(json.dumps({"clusters": names}, indent=2))

    def start(name: str) -> dict[str, Any]:
        state = Lab(root / name).up(provision=False)
        if dataplane:
            from lab import dataplane as plane
            plane.start(root / name)
        return state

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(start, name) for name in names]
        errors = [future.exception() for future in futures]
    failed = [(name, error) for name, error in zip(names, errors, strict=True) if error is not None]
    if failed:
        down(root)
        raise LabError("; ".join(f"{name}: {error}" for name, error in failed))
    states = [future.result() for future in futures]
    say(f"{count} clusters up in {root}: " + ", ".join(f"{s['name']} {s['server']}" for s in states))
    return states


def down(lab_dir: str | os.PathLike[str]) -> bool:
    """Stops every cluster of the directory; True when there were clusters."""
    root = Path(lab_dir)
    directories = clusters_of(root)
    if directories is None:
        return False
    with ThreadPoolExecutor(max_workers=len(directories) or 1) as pool:
        list(pool.map(lambda directory: Lab(directory).down(quiet=True), directories))
    (root / CLUSTERS_FILE).unlink(missing_ok=True)
    say(f"{len(directories)} clusters down ({root})")
    return True


def parse_waves(text: str | None, count: int) -> list[int]:
    """``"1,2,2"`` → [1, 2, 2]; None → wave 1 for the first cluster, wave 2 for the rest."""
    if text is None:
        return [1] + [2] * (count - 1)
    try:
        waves = [int(part) for part in text.split(",")]
    except ValueError:
        raise LabError(f"--waves {text!r}: give one whole number per cluster, e.g. 1,2,2") from None
    if len(waves) != count or any(wave < 1 for wave in waves):
        raise LabError(f"--waves {text!r}: {count} numbers of 1 or more, one per cluster (cluster-1 first)")
    return waves


def inventory(lab_dir: str | os.PathLike[str], waves: list[int] | None = None) -> dict[str, Any]:
    """The inventory (as data) of a multi-cluster lab directory."""
    root = Path(lab_dir).resolve()
    directories = clusters_of(root)
    if directories is None:
        raise LabError(f"{root} has no clusters (start them with: python -m lab --dir {root} up --clusters 3)")
    waves = waves or parse_waves(None, len(directories))
    hosts: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for directory, wave in zip(directories, waves, strict=True):
        state = load_state(directory)
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            # A file path: what the modules' kubeconfig option and K8S_AUTH_KUBECONFIG take.
            "canary_kubeconfig": state["kubeconfig"],
            "canary_cluster_server": state["server"],
            "wave": wave,
        }
        metrics = prometheus.info(directory)
        if metrics:
            host["canary_prometheus_url"] = metrics["url"]
        hosts[state["name"]] = host
        groups.setdefault(f"wave_{wave}", {"hosts": {}})["hosts"][state["name"]] = {}
    return {"all": {"children": {CLUSTERS_GROUP: {"hosts": hosts},
                                 **{name: groups[name] for name in sorted(groups, key=lambda g: int(g[5:]))}}}}


def write_inventory(lab_dir: str | os.PathLike[str], waves: list[int] | None = None,
                    output: str | os.PathLike[str] | None = None) -> Path:
    data = inventory(lab_dir, waves)
    path = Path(output) if output else Path(lab_dir).resolve() / INVENTORY_FILE
    header = ("# Written by `python -m lab inventory`: one host per lab cluster (local connection),\n"
              "# its kubeconfig as canary_kubeconfig, its wave, and its Prometheus when it has one.\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path
