"""``python -m bench``: runs the whole benchmark on a lab of its own and writes docs/performance*.md."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from bench import changes, module_requests, profile, report, resilience, router, scale, waves
from bench.env import (
    REPO_ROOT,
    WORK_DIR,
    bench_python,
    ensure_bench_venv,
    interpreter_wrapper,
    machine,
    say,
)
from bench.objects import Objects
from bench.runner import PlaybookRunner
from lab.controlplane import Lab, load_state, process_alive
from lab.kube import KubeClient

RESULTS = WORK_DIR / "results.json"
DOCS = {report.EN: REPO_ROOT / "docs" / "performance.md", report.ZH: REPO_ROOT / "docs" / "performance.zh-CN.md"}
DECISION_DOCS = {report.EN: REPO_ROOT / "docs" / "decisions.md", report.ZH: REPO_ROOT / "docs" / "decisions.zh-CN.md"}


def _lab_running(directory: Path) -> bool:
    try:
        state = load_state(directory)
    except Exception:
        return False
    return all(process_alive(state["processes"].get(k, {})) for k in ("etcd", "apiserver"))


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


PERFORMANCE_PARTS = ("profile", "one", "many", "modules", "router", "scale", "waves", "resilience")
# The decision-quality benchmark (bench/decisions.py) needs no Kubernetes lab and writes pages of its own.
ALL_PARTS = (*PERFORMANCE_PARTS, "decisions")
# The parts that compare with kubernetes.core, which lives in the benchmark's own virtualenv.
KUBERNETES_CORE_PARTS = {"profile", "one", "many", "resilience"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")),
                        help="timed rounds per measurement (default %(default)s; env BENCH_RUNS)")
    parser.add_argument("--runs-largest", type=int, default=int(os.environ.get("BENCH_RUNS_LARGEST", "3")),
                        help="rounds for 100 services (the kubernetes.core loop takes a minute a round)")
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1,10,100"),
                        help="numbers of services for item 2 (default %(default)s)")
    parser.add_argument("--scale-sizes", default=os.environ.get("BENCH_SCALE_SIZES", "100,1000,5000"),
                        help="numbers of services for item 6, one lockstep task each (default %(default)s)")
    parser.add_argument("--runs-waves", type=int, default=int(os.environ.get("BENCH_RUNS_WAVES", "2")),
                        help="rounds for item 7 (each releases three clusters twice, a few minutes a round)")
    parser.add_argument("--lab-dir", default=str(REPO_ROOT / "build" / "bench-lab"))
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab running at the end")
    parser.add_argument("--only", default=",".join(ALL_PARTS),
                        help="comma-separated parts to run (default: all)")
    parser.add_argument("--report-only", action="store_true",
                        help=f"re-render the table and docs from {RESULTS.relative_to(REPO_ROOT)}")
    parser.add_argument("--no-docs", action="store_true", help="print the table, do not write docs/")
    parser.add_argument("--merge", action="store_true",
                        help=f"with --only: put the parts measured into {RESULTS.relative_to(REPO_ROOT)} (from a "
                             "full run) and write docs/ from it, other sections as they were")
    parser.add_argument("--replications", type=int, default=int(os.environ.get("BENCH_REPLICATIONS", "10000")),
                        help="simulated releases per scenario of the decisions part (default %(default)s)")
    parser.add_argument("--no-e2e", action="store_true",
                        help="decisions part: skip the end-to-end run through Prometheus and the module")
    args = parser.parse_args(argv)

    parts = set(args.only.split(","))
    if "decisions" in parts or args.report_only:
        code = decisions_part(args, run_it="decisions" in parts and not args.report_only)
        parts.discard("decisions")
        if not parts or (args.report_only and not RESULTS.exists()):
            return code
        args.only = ",".join(part for part in PERFORMANCE_PARTS if part in parts)

    # The documents need every section: a run of some sections (--only) keeps its numbers apart and
    # leaves the full results and docs/ as they are.
    partial = not args.report_only and set(args.only.split(",")) != set(PERFORMANCE_PARTS)
    if args.merge and not (partial and RESULTS.exists()):
        say(f"--merge needs --only and the results of a full run in {RESULTS.relative_to(REPO_ROOT)}")
        return 2
    if args.report_only:
        results = json.loads(RESULTS.read_text())
    else:
        results = run(args)
        saved = RESULTS.with_name("results-partial.json") if partial else RESULTS
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1, default=str))
        if args.merge:
            full = json.loads(RESULTS.read_text())
            full.update({part: results[part] for part in results if part not in ("date", "settings", "machine")})
            RESULTS.write_text(json.dumps(full, indent=1, default=str))
            results, partial = full, False
    print(report.console(results))
    if results.get("resilience"):
        print(resilience.console(results["resilience"]))
    if partial:
        say(f"partial run (--only {args.only}): numbers in {saved.relative_to(REPO_ROOT)}; docs/ left as they are")
    elif not args.no_docs:
        for lang, path in DOCS.items():
            path.write_text(report.render(results, lang))
        say(f"wrote {', '.join(str(p.relative_to(REPO_ROOT)) for p in DOCS.values())}")
    return 0


def decisions_part(args: argparse.Namespace, run_it: bool) -> int:
    """The decisions part: simulate (or, with --report-only, re-read), print, write docs/decisions*.md."""
    from bench import decision_report, decisions
    saved = WORK_DIR / "decisions.json"
    if run_it:
        results = decisions.run(args.replications, e2e=not args.no_e2e, say=say)
        results["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1, default=str))
    elif saved.exists():
        results = json.loads(saved.read_text())
    else:
        return 0
    print(decision_report.console(results))
    if not args.no_docs:
        for lang, path in DECISION_DOCS.items():
            path.write_text(decision_report.render(results, lang))
        say(f"wrote {', '.join(str(p.relative_to(REPO_ROOT)) for p in DECISION_DOCS.values())}")
    return 0


def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    parts = set(args.only.split(","))
    with_kubernetes_core = bool(parts & KUBERNETES_CORE_PARTS)
    if with_kubernetes_core:
        ensure_bench_venv()
    lab_dir = Path(args.lab_dir).resolve()
    was_running = _lab_running(lab_dir)
    lab = Lab(lab_dir)
    state = lab.up()
    results: dict = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     "settings": {"runs": args.runs, "runs_largest": args.runs_largest, "sizes": args.sizes}}
    try:
        # Without kubernetes.core parts the bench virtualenv may not exist: describe the project's Python.
        results["machine"] = machine(state, bench_python() if with_kubernetes_core or bench_python().exists()
                                     else Path(sys.executable))
        results["machine"]["load_start"] = _load()
        say(f"kubernetes.core {results['machine']['kubernetes_core']} (ansible {results['machine']['ansible']}, "
            f"ansible-core {results['machine']['ansible_core']})")
        objects = Objects(KubeClient.from_state(state, user="admin"))
        namespace = objects.namespace("bench")
        runner = PlaybookRunner(state, interpreter_wrapper()) if with_kubernetes_core else None
        if "profile" in parts:
            for name in ("one-ts", "one-jp"):
                objects.service_pair(name, namespace)
            results["profile"] = profile.where_time_goes(state, namespace, args.runs)
        if "one" in parts:
            results["one_change"] = changes.one_change(runner, objects, namespace, args.runs)
        if "many" in parts:
            sizes = tuple(int(n) for n in args.sizes.split(",") if n)
            results["many"] = changes.many_services(runner, objects, namespace, args.runs, sizes,
                                                    args.runs_largest)
            # The namespace now holds a DestinationRule per service of every variant.
            results["rule_reads"] = profile.rule_reads(state, namespace)
        if "resilience" in parts:
            results["resilience"] = resilience.resilience_change(runner, objects, objects.namespace("bench-res"),
                                                                 args.runs)
        if "modules" in parts:
            say("API requests per module operation")
            results["modules"] = module_requests.per_module(state, objects.namespace("bench-mods"))
        if "router" in parts:
            results["router"] = router.router_bench(lab_dir, state, objects.namespace("bench-router"))
        if "scale" in parts:
            sizes = tuple(int(n) for n in args.scale_sizes.split(",") if n)
            load_before = _load()
            results["scale"] = scale.lockstep_scale(state, args.runs, sizes, args.runs_largest)
            # Its own date and load: a page may show it beside sections measured at another time.
            results["scale"].update(date=results["date"], load=f"{load_before} / {_load()}")
        if "waves" in parts:
            load_before = _load()
            # Three clusters of its own (build/bench-waves); the single-cluster lab idles meanwhile.
            try:
                results["waves"] = waves.waves_vs_one_after_another(min(args.runs, args.runs_waves))
            except Exception as exc:  # three clusters on a busy machine: keep the other sections' numbers
                say(f"waves: not measured: {exc}")
                results["waves"] = {"skipped": str(exc)[:2000]}
            results["waves"].update(date=results["date"], load=f"{load_before} / {_load()}")
    finally:
        if not was_running and not args.keep_lab:
            lab.down(quiet=True)
    if "machine" in results:
        results["machine"]["load_end"] = _load()
    results = {k: v for k, v in results.items() if v is not None}
    results["settings"]["seconds"] = round(time.monotonic() - started)
    say(f"benchmark took {results['settings']['seconds']} s")
    return results


if __name__ == "__main__":
    sys.exit(main())
