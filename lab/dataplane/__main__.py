"""``python -m lab.dataplane --state DIR/lab.json``: runs the lab's data plane in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab.dataplane.server import DataPlane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dataplane", description=__doc__)
    parser.add_argument("--state", required=True, help="the lab's lab.json (or the directory holding it)")
    parser.add_argument("--gateway-port", type=int, default=0, help="ingress gateway port (0: any free one)")
    parser.add_argument("--mesh-port", type=int, default=0, help="service-to-service port (0: any free one)")
    parser.add_argument("--admin-port", type=int, default=0, help="metrics/debug port (0: any free one)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    state = Path(args.state)
    if state.is_dir():
        state = state / "lab.json"
    if not state.is_file():
        print(f"no lab state at {state}: start the lab first (python -m lab up)", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    DataPlane(state.resolve(), args.gateway_port, args.mesh_port, args.admin_port).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
