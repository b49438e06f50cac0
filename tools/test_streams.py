"""``make test``: the whole suite as two pytest runs side by side, each on labs of its own.

The traffic tests (``tests/traffic``) spend most of their time waiting for real time to pass:
load at a set rate, Prometheus windows, analyses every few seconds. Everything else spends it
running ansible-playbook and the lab's API server. One after the other, a 2-core machine used
about one core; side by side the suite takes about as long as the longer half. The event tests
(``tests/eda``: alerts that must fire, rulebooks that wait for them) run after the traffic tests,
in their run: that evens the two halves out (on the last three fresh clones the traffic half ended
4-6 minutes before the other, and the event tests take about 3).

A third run side by side was measured and is not used: the two halves of the rest kept both cores
busy (load average 12-17) and the suite took longer, not shorter: after 29 minutes one half had run
71 % of its tests.

The first run prints as it runs; the other writes ``build/test-traffic.log``, printed when it ends.
Each run has a shared lab of its own (``CANARY_TEST_LAB``). The exit status is non-zero when either
run failed. Arguments are passed to both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAFFIC = "tests/traffic"
BESIDE_TRAFFIC = ("tests/eda",)


def streams() -> list[tuple[str, list[str]]]:
    """(name, pytest arguments) of each run; the first one prints as it runs."""
    ignored = [f"--ignore={path}" for path in (TRAFFIC, *BESIDE_TRAFFIC)]
    return [("other", ignored), ("traffic", [TRAFFIC, *BESIDE_TRAFFIC])]


def log_path(name: str) -> Path:
    return REPO_ROOT / "build" / f"test-{name}.log"


def main(argv: list[str]) -> int:
    started = time.monotonic()
    (first, first_args), *rest = streams()
    background: list[tuple[str, subprocess.Popen, Path]] = []
    codes: dict[str, int] = {}
    try:
        for name, args in rest:
            log = log_path(name)
            log.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "CANARY_TEST_LAB": str(REPO_ROOT / "build" / f"test-lab-{name}")}
            with log.open("w") as out:
                background.append((name, subprocess.Popen([sys.executable, "-m", "pytest", *args, *argv],
                                                          cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                                          env=env), log))
        codes[first] = subprocess.run([sys.executable, "-m", "pytest", *first_args, *argv], cwd=REPO_ROOT,
                                      check=False).returncode
        print(f"\n[make test] the {first} tests ended after {time.monotonic() - started:.0f} s "
              f"(exit {codes[first]})", flush=True)
        for name, process, log in background:
            codes[name] = process.wait()
            print(f"\n[make test] the {name} tests ended after {time.monotonic() - started:.0f} s "
                  f"(exit {codes[name]}), {log.relative_to(REPO_ROOT)}:", flush=True)
            print(log.read_text(errors="replace"), flush=True)
    except BaseException as stopped:
        # Ctrl-C at a terminal reaches every pytest run already; a second one would cut short
        # the teardown that takes their labs down.
        for _, process, _ in background:
            if not isinstance(stopped, KeyboardInterrupt):
                process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
        raise
    summary = ", ".join(f"{name} exit {code}" for name, code in codes.items())
    print(f"[make test] {time.monotonic() - started:.0f} s in all; {summary}", flush=True)
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
