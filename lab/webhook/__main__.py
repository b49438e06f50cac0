"""``python -m lab.webhook --dir LAB_DIR``: serves Istio's validation for one lab, in the foreground.

Listens on 127.0.0.1 (any free port), then writes ``LAB_DIR/webhook.json`` with its pid, port and
URL: the lab registers the webhook only once that file says it listens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from lab.webhook import INFO_FILE, crd_rules
from lab.webhook.server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.webhook", description=__doc__)
    parser.add_argument("--dir", required=True, help="the lab directory (its pki/ holds webhook.crt and .key)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lab_dir = Path(args.dir)
    pki = lab_dir / "pki"
    try:
        server = make_server(str(pki / "webhook.crt"), str(pki / "webhook.key"), args.port)
    except OSError as exc:
        print(f"lab webhook: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = server.server_address[1]
    # Read the CRDs' schemas (their CEL rules) while the apiserver starts, not on the first review.
    threading.Thread(target=crd_rules.schemas, name="crd-schemas", daemon=True).start()
    info = {"pid": os.getpid(), "port": port, "url": f"https://127.0.0.1:{port}/validate"}
    temporary = lab_dir / (INFO_FILE + ".tmp")
    temporary.write_text(json.dumps(info) + "\n")
    temporary.replace(lab_dir / INFO_FILE)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("lab.webhook").info("listening on %s", info["url"])
    try:
        server.serve_forever()
    finally:
        server.server_close()
        (lab_dir / INFO_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
