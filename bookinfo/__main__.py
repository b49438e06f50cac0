"""``python -m bookinfo serve <service> [--port N] [--version vX] [--ready-file F]``."""

from __future__ import annotations

import importlib
import sys

from bookinfo import SERVICES

USAGE = f"usage: python -m bookinfo serve {{{','.join(SERVICES)}}} [--port N] [--version vX] [--ready-file F]"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "serve" or argv[1] not in SERVICES:
        print(USAGE, file=sys.stderr)
        return 2
    module = importlib.import_module(f"bookinfo.{argv[1]}")
    module.main(argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
