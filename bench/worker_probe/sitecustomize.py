"""Records the peak RSS of every process ``ansible-playbook`` forks (its task workers).

The benchmark puts this directory on ``PYTHONPATH`` for ``ansible-playbook`` only, with
``BENCH_WORKER_RSS_FILE`` naming where to write. Python imports ``sitecustomize`` at start-up; this
one takes its directory off ``PYTHONPATH`` again at once, so module processes the workers start do
not load it, and registers a fork hook. Ansible's workers are forked (``multiprocessing``, start
method ``fork``) and leave through ``os._exit``, which runs no ``atexit`` handlers, or - the last
task's worker, when ``ansible-playbook`` cleans up before it has exited - through the SIGTERM handler
the worker installs. In each forked child both are wrapped to append
``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux) first, once; the result has been sent by then.
A terminated worker may write after ``ansible-playbook`` has exited: each worker writes a
``started`` line when forked, so the reader knows which peaks to wait for (``bench.runner``).

A forked worker's peak RSS includes the pages it shares with ``ansible-playbook`` (resident in
both), so it is read against the worker of a task that runs no module (``ansible.builtin.debug``).
Only the standard library; nothing happens unless ``BENCH_WORKER_RSS_FILE`` is set.
"""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

_TARGET = os.environ.get("BENCH_WORKER_RSS_FILE")
_HERE = os.path.dirname(os.path.abspath(__file__))
_RECORDED = False


def _drop_from_pythonpath() -> None:
    entries = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep)
               if e and os.path.abspath(e) != _HERE]
    if entries:
        os.environ["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        os.environ.pop("PYTHONPATH", None)


def _record() -> None:
    global _RECORDED
    if _RECORDED:
        return
    _RECORDED = True
    _write(f"worker_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} pid={os.getpid()}")


def _write(line: str) -> None:
    try:
        with open(_TARGET, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError:  # measuring must never change how the worker runs
        pass


def _in_child() -> None:
    # A "started" line first: the benchmark waits for the peak of every worker that started.
    _write(f"started pid={os.getpid()}")
    real_exit = os._exit
    real_signal = signal.signal

    def _exit(code: int) -> None:
        _record()
        real_exit(code)

    def _signal(signum: int, handler: Any) -> Any:
        if signum == signal.SIGTERM and callable(handler):
            inner = handler

            def handler(number: int, frame: Any) -> Any:
                _record()
                return inner(number, frame)
        return real_signal(signum, handler)

    os._exit = _exit
    signal.signal = _signal


_drop_from_pythonpath()
if _TARGET:
    os.register_at_fork(after_in_child=_in_child)
