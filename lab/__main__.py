"""Command line of the lab: ``python -m lab up|down|status|env|inventory|provision|eda``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lab import alertmanager, clusters, prometheus
from lab.controlplane import DEFAULT_DIR, Lab, LabError, find_binaries, load_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("--dir", default=os.environ.get("LAB_DIR", str(DEFAULT_DIR)),
                        help="lab directory (default: %(default)s; env LAB_DIR)")
    # --dir is accepted after the subcommand too ("python -m lab up --dir X").
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=argparse.SUPPRESS, help="lab directory")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common],
                        help="start etcd, kube-apiserver, the Istio validation webhook (and optionally the data plane)")
    up.add_argument("--dataplane", action="store_true", help="also start the data plane (Bookinfo runner, router)")
    up.add_argument("--no-provision", action="store_true", help="fail instead of building missing binaries")
    up.add_argument("--clusters", type=int, metavar="N",
                    help="start N independent clusters at once, in DIR/cluster-1 … DIR/cluster-N")
    sub.add_parser("down", parents=[common], help="stop every process this lab (or each of its clusters) started")
    status = sub.add_parser("status", parents=[common], help="versions, ports and processes")
    status.add_argument("--json", action="store_true")
    env = sub.add_parser("env", parents=[common],
                         help="print shell exports (KUBECONFIG, K8S_AUTH_KUBECONFIG, CANARY_ISTIO_PROMETHEUS_URL)")
    env.add_argument("--cluster", type=int, metavar="K", help="of cluster K of a multi-cluster lab")
    inventory = sub.add_parser("inventory", parents=[common],
                               help="write an Ansible inventory with one host per cluster (DIR/inventory.yml)")
    inventory.add_argument("--waves", metavar="1,2,2",
                           help="wave of each cluster, cluster-1 first (default: 1 for cluster-1, 2 for the rest)")
    inventory.add_argument("--output", metavar="FILE", help="where to write it (default: DIR/inventory.yml)")
    sub.add_parser("provision", parents=[common], help="find or build etcd and kube-apiserver, and print their paths")
    eda = sub.add_parser("eda", parents=[common], help="run canary.istio's rulebooks against the lab")
    eda.add_argument("--namespace", default="default", help="namespace of the lab's Bookinfo (default: %(default)s)")
    eda.add_argument("--push-port", type=int, default=0, help="port of the push webhook (default: a free one)")
    eda.add_argument("--debounce", type=int, default=60, help="seconds a resolved overload alert must stay resolved")
    eda.add_argument("--stop", action="store_true", help="stop the rulebooks instead")
    args = parser.parse_args(argv)
    lab = Lab(args.dir)
    try:
        several = clusters.clusters_of(args.dir)
        if args.command == "up" and args.clusters:
            clusters.up(args.dir, args.clusters, dataplane=args.dataplane, provision=not args.no_provision)
            print(f"inventory: python -m lab --dir {args.dir} inventory", file=sys.stderr)
            return 0
        if several is not None and args.command in ("down", "status", "env", "up"):
            return _several(args, several)
        if args.command == "inventory":
            count = len(several) if several is not None else 0
            path = clusters.write_inventory(args.dir, clusters.parse_waves(args.waves, count) if count else None,
                                            args.output)
            print(path)
            return 0
        if args.command == "up":
            state = lab.up(provision=not args.no_provision)
            if args.dataplane:
                from lab import dataplane
                info = dataplane.start(Path(state["dir"]))
                print(f"gateway: {info.get('gateway_url')}/productpage", file=sys.stderr)
                metrics = prometheus.info(Path(state["dir"]))
                if metrics:
                    print(f"prometheus: {metrics['url']}", file=sys.stderr)
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            info = lab.status()
            dataplane_file = Path(args.dir) / "dataplane.json"
            if dataplane_file.exists():
                info["dataplane"] = json.loads(dataplane_file.read_text())
            info["prometheus"] = prometheus.info(args.dir)
            manager = alertmanager.info(args.dir)
            info["alertmanager"] = {k: v for k, v in manager.items() if k != "token"} if manager else None
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                print(f"lab {info['name']}: {'up' if info['up'] else 'DOWN'} ({info['dir']})")
                print(f"  server:     {info['server']}")
                print(f"  kubeconfig: {info['kubeconfig']}")
                if info.get("webhook_url"):
                    print(f"  webhook:    {info['webhook_url']} (Istio validation, failurePolicy Fail)")
                for key, port in info["ports"].items():
                    print(f"  port {key}: {port}")
                for key, version in info["versions"].items():
                    print(f"  version {key}: {version}")
                for key, proc in info["processes"].items():
                    print(f"  process {key}: pid {proc['pid']} {'running' if proc['running'] else 'stopped'}")
                if "dataplane" in info:
                    print(f"  gateway:    {info['dataplane'].get('gateway_url')}/productpage")
                if info["prometheus"]:
                    print(f"  prometheus: {info['prometheus']['url']}")
                if info["alertmanager"]:
                    manager = info["alertmanager"]
                    print(f"  alertmanager: {manager['url']} (posts to {manager['webhook_url']})")
            return 0 if info["up"] else 1
        elif args.command == "env":
            if args.cluster:
                raise LabError(f"{args.dir} is a single lab; --cluster is for labs started with up --clusters")
            _print_env(args.dir)
        elif args.command == "eda":
            from lab import eda
            if args.stop:
                eda.stop(args.dir)
                return 0
            return eda.main(args.dir, args.namespace, args.push_port, args.debounce)
        elif args.command == "provision":
            for name, path in find_binaries().items():
                print(f"{name}: {path}")
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_env(directory: str | Path, suffix: str = "") -> None:
    state = load_state(directory)
    print(f"export KUBECONFIG{suffix}={state['kubeconfig']}")
    print(f"export K8S_AUTH_KUBECONFIG{suffix}={state['kubeconfig']}")
    running = prometheus.info(directory)
    if running:
        print(f"export {prometheus.URL_ENV}{suffix}={running['url']}")


def _several(args: argparse.Namespace, directories: list[Path]) -> int:
    """down, status and env of a lab directory holding several clusters."""
    if args.command == "up":
        raise LabError(f"{args.dir} holds {len(directories)} clusters: run up --clusters {len(directories)}, "
                       "or down first")
    if args.command == "down":
        clusters.down(args.dir)
        return 0
    if args.command == "env":
        if args.cluster:
            if not 1 <= args.cluster <= len(directories):
                raise LabError(f"--cluster {args.cluster}: this lab has clusters 1 to {len(directories)}")
            _print_env(directories[args.cluster - 1])
        else:
            # One set per cluster, suffixed with its number (pick one with --cluster K).
            for index, directory in enumerate(directories, 1):
                _print_env(directory, f"_CLUSTER_{index}")
        return 0
    infos = []
    for directory in directories:
        try:
            info = Lab(directory).status()
        except LabError as exc:
            info = {"name": directory.name, "dir": str(directory), "up": False, "error": str(exc)}
        info["prometheus"] = prometheus.info(directory)
        infos.append(info)
    if args.json:
        print(json.dumps({"clusters": infos}, indent=2))
    else:
        for info in infos:
            where = info.get("server") or info.get("error")
            metrics = f", prometheus {info['prometheus']['url']}" if info.get("prometheus") else ""
            print(f"{info['name']}: {'up' if info['up'] else 'DOWN'} {where}{metrics}")
    return 0 if all(info["up"] for info in infos) else 1


if __name__ == "__main__":
    sys.exit(main())
