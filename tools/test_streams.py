"""``make test``: the whole suite as two pytest runs side by side, each on labs of its own.

The traffic tests (``tests/traffic``) spend most of their time waiting for real time to pass:
load at a set rate, Prometheus windows, analyses every few seconds. Everything else spends it
running ansible-playbook and the lab's API server. One after the other, a 2-core machine used
about one core; side by side the suite takes about as long as the longer half.

The other half prints as it runs; the traffic half writes ``build/test-traffic.log`` and is printed
when it ends. The exit status is non-zero when either half failed. Arguments are passed to both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAFFIC = "tests/traffic"
LOG = REPO_ROOT / "build" / "test-traffic.log"


def main(argv: list[str]) -> int:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with LOG.open("w") as log:
        traffic = subprocess.Popen([sys.executable, "-m", "pytest", TRAFFIC, *argv], cwd=REPO_ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            rest = subprocess.run([sys.executable, "-m", "pytest", f"--ignore={TRAFFIC}", *argv],
                                  cwd=REPO_ROOT, check=False).returncode
            print(f"\n[make test] the other tests ended after {time.monotonic() - started:.0f} s "
                  f"(exit {rest}); the traffic tests, {LOG.relative_to(REPO_ROOT)}:", flush=True)
            traffic_rc = traffic.wait()
        except BaseException as stopped:
            # Ctrl-C at a terminal reaches both pytest runs already; a second one would cut short
            # the teardown that takes their labs down.
            if not isinstance(stopped, KeyboardInterrupt):
                traffic.send_signal(signal.SIGINT)
            traffic.wait(timeout=120)
            raise
    print(LOG.read_text(errors="replace"), flush=True)
    print(f"[make test] {time.monotonic() - started:.0f} s in all; other tests exit {rest}, "
          f"traffic tests exit {traffic_rc}", flush=True)
    return 1 if rest or traffic_rc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
