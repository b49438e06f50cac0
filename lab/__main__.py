"""Command line of the lab: ``python -m lab up|down|status|env|provision``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lab import prometheus
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
    sub.add_parser("down", parents=[common], help="stop every process this lab started")
    status = sub.add_parser("status", parents=[common], help="versions, ports and processes")
    status.add_argument("--json", action="store_true")
    sub.add_parser("env", parents=[common],
                   help="print shell exports (KUBECONFIG, K8S_AUTH_KUBECONFIG, CANARY_ISTIO_PROMETHEUS_URL)")
    sub.add_parser("provision", parents=[common], help="find or build etcd and kube-apiserver, and print their paths")
    args = parser.parse_args(argv)
    lab = Lab(args.dir)
    try:
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
            return 0 if info["up"] else 1
        elif args.command == "env":
            state = load_state(args.dir)
            print(f"export KUBECONFIG={state['kubeconfig']}")
            print(f"export K8S_AUTH_KUBECONFIG={state['kubeconfig']}")
            running = prometheus.info(args.dir)
            if running:
                print(f"export {prometheus.URL_ENV}={running['url']}")
        elif args.command == "provision":
            for name, path in find_binaries().items():
                print(f"{name}: {path}")
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
