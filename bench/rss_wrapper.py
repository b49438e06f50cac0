"""Runs a command and appends its peak RSS and wall time to ``$BENCH_RSS_FILE``.

The fallback for machines without GNU time: ``rss_wrapper.py PYTHON ARGS...``. Only the
standard library, so it starts quickly with any interpreter.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time


def main() -> int:
    started = time.monotonic()
    code = subprocess.call(sys.argv[1:])
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    target = os.environ.get("BENCH_RSS_FILE")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"rss_kb={peak} elapsed={elapsed:.2f}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
