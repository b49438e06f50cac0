# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Moving many VirtualServices as one step: all or nothing, with a bounded number of requests in
flight.

1. Plan: every VirtualService is read and its change validated (DestinationRules are read once per
   namespace for the whole task). One failure and nothing is written.
2. Write: one guarded PATCH per VirtualService. After the first failure no new write starts; the
   writes already in flight finish, then every VirtualService that was written - or whose write
   may have been applied (its answer was lost) and a re-read shows it was - is put back.

``concurrency`` workers each have their own connection (a connection carries one request at a
time) and they share the API version negotiated, so a discovery, when one is needed, is made once.
The first VirtualService is planned before the workers start, unless its namespace is read with
LISTs (those of every such namespace go side by side). Progress lines come from the calling thread
only.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._client import ApiError, describe_api_error
from ansible_collections.canary.istio.plugins.module_utils._context import Context, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._traffic import (
    Target,
    destination_rules_of,
    list_virtual_services,
    rollback,
    settle_unknown,
)

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
# Below this many services a task is short: no progress lines.
PROGRESS_FROM = 100
PROGRESS_EVERY_SECONDS = 1.0
# From this many services of the task in one namespace, its VirtualServices are read with one LIST
# instead of a GET each (a LIST also returns the namespace's other VirtualServices).
LIST_FROM = 50


def validate_concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise CanaryInputError(f"concurrency {value!r} must be an integer from 1 to {MAX_CONCURRENCY} "
                               "(requests in flight at once, one connection each)")
    return value


def message(ctx: Context, error: BaseException) -> str:
    """What went wrong, for a person: API errors name the verb and object of their own request."""
    del ctx
    if isinstance(error, ApiError):
        return describe_api_error(error)
    if isinstance(error, (ModuleFailure, CanaryInputError)):
        return getattr(error, "msg", None) or str(error)
    return str(error) or type(error).__name__


class Progress:
    """Progress lines for long moves: one when a phase starts, then at most one a second."""

    def __init__(self, emit: Callable[[str], None] | None, total: int, concurrency: int):
        self.emit = emit if emit is not None and total >= PROGRESS_FROM else None
        self.total = total
        self.concurrency = concurrency
        self.started = time.monotonic()
        self.last = 0.0

    def phase(self, verb: str, count: int) -> None:
        if self.emit:
            self.emit(f"traffic_split: {verb} {count} VirtualServices, {self.concurrency} at a time")
            self.last = time.monotonic()

    def tick(self, verb: str, done: int, count: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.emit and (final or now - self.last >= PROGRESS_EVERY_SECONDS):
            self.emit(f"traffic_split: {verb} {done}/{count} ({now - self.started:.1f} s)")
            self.last = now


class Workers:
    """A pool of threads, each with a context (connection) of its own, created on first use."""

    def __init__(self, ctx: Context, size: int):
        self.ctx = ctx
        self.size = size
        self._local = threading.local()
        self._forks: list[Context] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="canary-istio") if size > 1 else None

    def _context(self) -> Context:
        if self._pool is None:
            return self.ctx
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self.ctx.fork()
            with self._lock:
                self._forks.append(ctx)
        return ctx

    def run(self, targets: list[Target], work: Callable[[Context, Target], None], stop: threading.Event,
            on_done: Callable[[int], None]) -> list[Target]:
        """Runs ``work`` on each target (in order of the list, ``size`` at a time) until ``stop`` is set;
        targets not started by then are skipped. Returns the targets that failed (``target.error`` set)."""
        failed: list[Target] = []

        def one(target: Target) -> None:
            if stop.is_set():
                return
            ctx = self.ctx
            try:
                ctx = self._context()
                work(ctx, target)
            except Exception as exc:  # every failure is reported and stops the task, bugs included
                target.error = message(ctx, exc)
                if not isinstance(exc, (ApiError, ModuleFailure, CanaryInputError)):
                    target.maybe_written = True  # a connection failure: was it applied? settle later
                with self._lock:
                    failed.append(target)
                stop.set()

        if self._pool is None:
            for done, target in enumerate(targets, 1):
                one(target)
                on_done(done)
            return failed
        # ``size`` loops that take the next target in turn and count it done under one condition: not
        # a future per target, whose wait(FIRST_COMPLETED) in a loop puts a waiter on every pending
        # future each time one finishes (quadratic in the number of services), and whose thousand
        # submissions contend for the interpreter with the workers already sending.
        total, finished = len(targets), 0
        queue = iter(targets)
        progress = threading.Condition()

        def loop() -> None:
            nonlocal finished
            while True:
                with progress:
                    target = next(queue, None)
                if target is None:
                    return
                try:
                    one(target)
                finally:
                    with progress:
                        finished += 1
                        if finished == total:
                            progress.notify()

        futures = [self._pool.submit(loop) for _worker in range(self.size)]
        while True:
            with progress:
                if finished < total:
                    progress.wait(timeout=PROGRESS_EVERY_SECONDS)
                count = finished
            on_done(count)
            if count == total:
                break
        for future in futures:
            future.result()
        return failed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for fork in self._forks:
            self.ctx.join(fork)
        self._forks.clear()


def move(ctx: Context, targets: list[Target], plan: Callable[[Context, Target], None],
         write: Callable[[Context, Target], None], concurrency: int) -> dict[str, Any]:
    """Plans every target, then writes them all, or none (see the module docstring).

    Returns figures about the run (seconds per phase, peak memory); raises ModuleFailure with every
    service's report when something failed.
    """
    rss_before = _peak_rss_kib()
    started = time.monotonic()
    workers = Workers(ctx, min(concurrency, len(targets)))
    progress = Progress(ctx.progress, len(targets), workers.size)
    stop = threading.Event()
    several = len(targets) > 1
    try:
        # 1. Read and validate everything before the first write.
        progress.phase("reading", len(targets))
        failed = _list_crowded_namespaces(ctx, workers, targets, stop, plan)
        first_planned = any(t.vs is not None for t in targets[:1])

        def checked(left: list[Target]) -> Callable[[int], None]:
            """Progress of planning ``left``, the targets not planned before it."""
            return lambda done: progress.tick("read and checked", done + len(targets) - len(left), len(targets))

        if not failed:
            listed = targets[1:] if first_planned else targets
            failed, rest = _plan_listed(ctx, listed, plan, stop, checked(listed))
        if not failed:
            failed = workers.run(rest, plan, stop, checked(rest))
        if failed:
            first = min(failed, key=targets.index)
            kinds = " or ".join(sorted({t.kind for t in targets}, reverse=True))
            raise ModuleFailure(about(first) + (f" (no {kinds} was changed)" if several else ""),
                                changed=False, services=[t.report() for t in targets])
        planned = time.monotonic()
        progress.tick("read and checked", len(targets), len(targets), final=True)

        # 2. Write; after a failure start no new write, then put back what was written.
        to_write = [t for t in targets if t.patch]
        progress.phase("writing", len(to_write))
        failed = workers.run(to_write, write, stop, lambda done: progress.tick("written", done, len(to_write)))
        if failed:
            _put_back(ctx, workers, targets, failed, progress)
        progress.tick("written", len(to_write), len(to_write), final=True)
        finished = time.monotonic()
    finally:
        workers.close()
    return {"concurrency": workers.size, "read_seconds": round(planned - started, 3),
            "write_seconds": round(finished - planned, 3), **memory(rss_before)}


def _list_crowded_namespaces(ctx: Context, workers: Workers, targets: list[Target], stop: threading.Event,
                             plan: Callable[[Context, Target], None] | None = None) -> list[Target]:
    """Reads what many services of one namespace need with one LIST each - the namespace's
    VirtualServices and DestinationRules - all side by side (workers share the API version negotiated:
    when one is discovered, it is discovered once). With no such namespace, the plan of the first
    service goes alone. A namespace's first service stands for it in an error."""
    by_namespace: dict[str, list[Target]] = {}
    for target in targets:
        if target.kind == "VirtualService":  # an HTTPRoute is read with a GET of its own
            by_namespace.setdefault(target.namespace, []).append(target)
    crowded = [group for group in by_namespace.values() if len(group) >= LIST_FROM]
    if not crowded:
        return Workers(ctx, 1).run(targets[:1], plan, stop, lambda done: None) if plan else []

    def read_virtual_services(worker: Context, first: Target) -> None:
        listed = list_virtual_services(worker, first.namespace)
        if listed is None:
            return
        for target in by_namespace[first.namespace]:
            target.listed = listed.get(target.name)

    def read_destination_rules(worker: Context, first: Target) -> None:
        if not first.destination_rule:
            destination_rules_of(worker, first.namespace, first.hosts.cluster_domain)

    jobs = [(read_virtual_services, group[0]) for group in crowded]
    jobs += [(read_destination_rules, group[0]) for group in crowded]
    return workers.run([first for _read, first in jobs], _dispatch(jobs), stop, lambda done: None)


def _plan_listed(ctx: Context, targets: list[Target], plan: Callable[[Context, Target], None],
                 stop: threading.Event, on_done: Callable[[int], None]) -> tuple[list[Target], list[Target]]:
    """Plans in this thread, in order, the targets a LIST already read, for as long as planning makes
    no request (all it needs was listed): handing each to a worker would cost more than planning it.
    Returns the failed targets and those left for the workers (from the first one not listed, or
    after the first plan that had to read)."""
    here = Workers(ctx, 1)
    for index, target in enumerate(targets):
        if target.listed is None:
            return [], targets[index:]
        requests = ctx.client.requests_made
        failed = here.run([target], plan, stop, lambda done: None)
        if failed:
            return failed, []
        on_done(index + 1)
        if ctx.client.requests_made != requests:
            return [], targets[index + 1:]
    return [], []


def _dispatch(jobs: list[tuple[Callable[[Context, Target], None], Target]]) -> Callable[[Context, Target], None]:
    """One work function for jobs of different kinds over the same targets (in the order given)."""
    pending = list(jobs)
    lock = threading.Lock()

    def work(worker: Context, target: Target) -> None:
        with lock:
            index = next(i for i, (_read, first) in enumerate(pending) if first is target)
            read, _first = pending.pop(index)
        read(worker, target)

    return work


def _put_back(ctx: Context, workers: Workers, targets: list[Target], failed: list[Target],
              progress: Progress) -> None:
    position = {id(target): index for index, target in enumerate(targets)}

    def in_order(some: list[Target]) -> list[Target]:
        return sorted(some, key=lambda target: position[id(target)])

    first = in_order(failed)[0]
    unsure = [t for t in targets if t.written is None and t.maybe_written]
    moved = [t for t in targets if t.written is not None]
    progress.phase("putting back", len(moved) + len(unsure))
    restored: list[Target] = []
    not_restored: list[Target] = []
    lock = threading.Lock()

    def undo(worker_ctx: Context, target: Target) -> None:
        try:
            settle_unknown(worker_ctx, target)
            if target.written is None:
                return
            rollback(worker_ctx, target)
            with lock:
                restored.append(target)
        except Exception as exc:  # report every service, never stop half way
            target.error = f"could not put back: {message(worker_ctx, exc)}"
            with lock:
                not_restored.append(target)

    workers.run(moved + unsure, undo, threading.Event(),
                lambda done: progress.tick("put back", done, len(moved) + len(unsure)))
    summary = about(first)
    others = [t for t in failed if t is not first]
    if others:
        summary += f"; {len(others)} more failed: " + _names(in_order(others))
    if restored:
        summary += "; put back the services already moved: " + _names(in_order(restored))
    if not_restored:
        summary += "; COULD NOT put back " + ", ".join(t.label for t in in_order(not_restored)) + ": check them now"
    raise ModuleFailure(summary, changed=bool(not_restored), services=[t.report() for t in targets])


def _names(targets: list[Target], shown: int = 20) -> str:
    labels = [t.label for t in targets[:shown]]
    if len(targets) > shown:
        labels.append(f"and {len(targets) - shown} more (see services)")
    return ", ".join(labels)


def about(target: Target) -> str:
    """The error of one service, naming it once."""
    error = target.error or "failed"
    return error if target.label in error else f"{target.label}: {error}"


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def memory(peak_before_kib: int) -> dict[str, float]:
    """Peak resident memory of the process running the task, and how much the task raised it."""
    peak = _peak_rss_kib()
    return {"peak_rss_mib": round(peak / 1024, 1), "peak_rss_growth_mib": round((peak - peak_before_kib) / 1024, 1)}
