"""Turns the benchmark's results into the printed table and docs/performance(.zh-CN).md.

The numbers are computed here, once, into a context of language-neutral figures (formatted
numbers, row keys, flags); the words live in two Jinja2 templates, ``templates/performance.md.j2``
(English) and ``templates/performance.zh-CN.md.j2`` (Chinese). A figure therefore cannot differ
between the languages, and ``tests/unit/bench/test_bench_report.py`` checks that every figure one
document shows, the other shows too.
"""
# The figures carry the multiplication sign and the en dash (no value).
# ruff: noqa: RUF001

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jinja2

from bench.changes import median

EN = "en"
ZH = "zh"
TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE_FILES = {EN: "performance.md.j2", ZH: "performance.zh-CN.md.j2"}

MODULE = "traffic_split module process"
IN_PROCESS_ENV = "CANARY_ISTIO_IN_PROCESS=0"
ANSIBALLZ_LOADER = "ansible.module_utils._internal._ansiballz._loader"


def s(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


# --- targets ----------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for our default path (in the controller's worker) and, as separate rows,
    for the module-process path (``CANARY_ISTIO_IN_PROCESS=0``, remote hosts, become...).

    Each target: ``id`` (the templates name it), ``met`` (None: not measured) and its figures:
    ``value`` (formatted with its unit), or ``worst_group`` / ``skipped`` for the two that need words.
    """
    out: list[dict[str, Any]] = []
    one = results.get("one_change")
    if one:
        ratio = one["ratios"]["task_traffic_split_over_k8s_json_patch"]["median"]
        out.append({"id": "one", "value": f"{s(ratio)}×", "met": ratio <= 0.5})
        module_ratio = one.get("ratios", {}).get("task_module_process_over_k8s_json_patch", {}).get("median")
        if module_ratio is not None:
            out.append({"id": "one-module", "value": f"{s(module_ratio)}×", "met": module_ratio <= 0.5})
    many = results.get("many", {}).get("100")
    if many:
        for suffix, name, key in (("", "traffic_split", "task_loop_over_traffic_split"),
                                  ("-module", MODULE, "task_loop_over_module_process")):
            if name not in many:
                continue
            task = many[name]["median"]["task_s"]
            ratio = many["ratios"][key]["median"]
            out.append({"id": f"many-time{suffix}", "value": f"{s(task)} s", "met": task <= 3})
            out.append({"id": f"many-ratio{suffix}", "value": f"{s(ratio, 1)}×", "met": ratio >= 25})
    per_vs = []
    ours = ("traffic_split", MODULE)
    if one:
        per_vs += [one[name]["median"]["requests"] for name in ours if name in one]
    for size, item in results.get("many", {}).items():
        per_vs += [item[name]["median"]["requests"] / int(size) for name in ours if name in item]
    if per_vs:
        worst = max(per_vs)
        out.append({"id": "requests", "value": s(worst, 1), "met": worst <= 3})
    modules = results.get("modules") or []
    if modules:
        worst_group = max((max(row.get("discovery_groups", {}).values(), default=0) for row in modules), default=0)
        runs = [run for item in [one, *results.get("many", {}).values()] if item
                for name in ours if name in item for run in [item[name]["cold"], *item[name]["runs"]] if run]
        worst_group = max([worst_group, *(run["requests"].get("discovery_max_per_group", 0) for run in runs)])
        out.append({"id": "discovery", "worst_group": worst_group, "met": worst_group <= 1})
    router = results.get("router") or {}
    if router.get("added"):
        added = router["added"]["one hop"]["p50_ms"]
        rate = router["paced"]["one hop"]["rate"]
        out.append({"id": "router", "value": f"{s(added, 3)} ms @ {rate:.0f}/s", "met": added <= 2 and rate >= 190})
    elif router.get("skipped"):
        out.append({"id": "router", "skipped": router["skipped"], "met": None})
    thousand = ((results.get("scale") or {}).get("sizes") or {}).get("1000")
    if thousand:
        task = thousand["median"]["task_s"]
        out.append({"id": "scale", "value": f"{s(task)} s", "met": task <= 5})
    return [{"value": None, "worst_group": None, "skipped": None, **target} for target in out]


# --- tables: rows of figures, keyed so the templates can name them -----------------------------

ONE_CHANGE_ROWS = ("debug", "traffic_split", MODULE, "k8s_json_patch", "k8s", "traffic_split pipelining",
                   "k8s_json_patch pipelining", "traffic_split HTTPRoute", "k8s HTTPRoute")
# Rows whose task runs in the controller's worker (no module process).
IN_WORKER_ROWS = ("traffic_split", "traffic_split HTTPRoute")


def _process_cells(med: dict[str, Any], in_worker: bool) -> tuple[str | None, str | None]:
    """Module-process seconds and peak RSS; None when no module process ran (the templates say why)."""
    # Results written before module processes were counted: a module process ran when it took time.
    if med.get("module_processes", 1 if med.get("module_s") else 0):
        return s(med["module_s"]), s(med["peak_rss_mb"], 1)
    return None, None


def one_change_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    one = results["one_change"]
    rows = []
    base_runs = one["k8s_json_patch"]["runs"]
    for name in ONE_CHANGE_ROWS:
        item = one.get(name)
        if not item:
            continue
        med = item["median"]
        cold = item["cold"]["requests"]["total"] if item.get("cold") else None
        around = median([r["task_s"] - r["module_s"] for r in item["runs"]]) if med.get("module_s") else None
        base = one["k8s_json_patch pipelining"]["runs"] if "pipelining" in name else base_runs
        ratio = median([a["task_s"] / b["task_s"] for a, b in zip(item["runs"], base, strict=True)])
        process_s, process_rss = _process_cells(med, name in IN_WORKER_ROWS)
        rows.append({"id": name, "in_worker": name in IN_WORKER_ROWS, "task_s": s(med["task_s"], 3),
                     "wall_s": s(med["wall_s"]), "process_s": process_s, "around_s": s(around),
                     "process_rss": process_rss, "worker_rss": s(med.get("worker_rss_mb"), 1),
                     "requests": f"{med['requests']:.0f} ({cold})", "ratio": f"{ratio:.2f}×"})
    return rows


MANY_ROWS = (("traffic_split", "task_loop_over_traffic_split"), (MODULE, "task_loop_over_module_process"),
             ("k8s_json_patch_loop", None))


def many_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for size, item in results["many"].items():
        for name, ratio_key in MANY_ROWS:
            if name not in item:
                continue
            med = item[name]["median"]
            ratio = f"{s(item['ratios'][ratio_key]['median'], 1)}×" if ratio_key else "–"
            _, process_rss = _process_cells(med, name == "traffic_split")
            rows.append({"size": size, "id": name, "in_worker": name == "traffic_split",
                         "runs": str(len(item[name]["runs"])), "task_s": s(med["task_s"], 3), "ratio": ratio,
                         "wall_s": s(med["wall_s"]), "requests": f"{med['requests']:.0f}", "process_rss": process_rss,
                         "worker_rss": s(med.get("worker_rss_mb"), 1)})
    return rows


def path_problems(results: dict[str, Any], parts: tuple[str, ...] = ("one", "many")) -> list[str]:
    """Runs that did not take the path their row names (see ``bench.changes.check_paths``)."""
    problems = list((results.get("one_change") or {}).get("path_problems") or []) if "one" in parts else []
    for size, item in (results.get("many") or {}).items() if "many" in parts else ():
        problems += [f"{size} services, {p}" for p in item.get("path_problems") or []]
    return problems


def module_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Our modules (``kind: ours``), then kubernetes.core's from section 1 (``kind: theirs``)."""
    rows = []
    for row in results.get("modules") or []:
        verbs = ", ".join(f"{k} {v}" for k, v in sorted(row["by_verb"].items()))
        rows.append({"kind": "ours", "module": row["module"], "operation": row["operation"], "failed": row["failed"],
                     "requests": str(row["requests"]), "verbs": verbs, "discovery": str(row["discovery"]),
                     "reported": str(row["reported"]), "changed": str(row["changed"]).lower()})
    one = results.get("one_change")
    if one:
        for name in ("k8s_json_patch", "k8s"):
            for temp, item in (("cold", one[name]["cold"]), ("warm", one[name]["runs"][-1])):
                if not item:
                    continue
                req = item["requests"]
                verbs = ", ".join(f"{k} {req[k]}" for k in ("discovery", "get", "list", "write") if req[k])
                rows.append({"kind": "theirs", "module": name, "temp": temp, "requests": str(req["total"]),
                             "verbs": verbs, "discovery": str(req["discovery"]),
                             "changed": str(item["changed"][-1]).lower()})
    return rows


def _top(module: dict[str, Any], name: str) -> float | None:
    for key, value in module.get("imports", {}).get("top", []):
        if key == name:
            return value
    return None


def profile_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Phase rows: ``id``, ``ours`` and ``theirs``; None where a cell is a word (the templates say which)."""
    prof = results["profile"]
    ph = prof["phases_ms"]
    ours = prof["modules"].get("traffic_split", {})
    theirs = prof["modules"].get("k8s_json_patch", {})
    start = s(prof["interpreter_start_s"] * 1000, 0)
    kubeconfig = s(ph.get("ours.kubeconfig"), 1) + (f" (+{s(ph['ours.import_yaml'], 1)})"
                                                    if "ours.import_yaml" in ph else "")
    rows = [
        ("interpreter_start", start, start),
        ("imports", s(ours.get("imports", {}).get("total_ms"), 0), s(theirs.get("imports", {}).get("total_ms"), 0)),
        ("module_utils", s(_top(ours, ANSIBALLZ_LOADER), 0), s(_top(theirs, ANSIBALLZ_LOADER), 0)),
        ("collection_self", s(ours.get("imports", {}).get("collection_self_ms"), 0),
         s(theirs.get("imports", {}).get("collection_self_ms"), 0)),
        ("compile", s(prof["compile_total_ms"], 0), "–"),
        ("import_kubernetes", "0", s(ph.get("kubernetes.import_kubernetes"), 0)),
        ("kubeconfig", kubeconfig, s(ph.get("kubernetes.kubeconfig"), 1)),
        ("tls_context", s(ph.get("ours.tls_context"), 1), None),
        ("first_request", s(ph.get("ours.first_request"), 1), s(ph.get("kubernetes.first_request"), 1)),
        ("further_request", s(ph.get("ours.second_request"), 1), s(ph.get("kubernetes.second_request"), 1)),
        ("process", s(ours.get("process_s", 0) * 1000, 0), s(theirs.get("process_s", 0) * 1000, 0)),
    ]
    one = results.get("one_change") or {}
    if one.get("traffic_split") and one.get(MODULE):
        rows += [("task_module_process", s(one[MODULE]["median"]["task_s"] * 1000, 0),
                  s(one["k8s_json_patch"]["median"]["task_s"] * 1000, 0)),
                 ("task_in_process", s(one["traffic_split"]["median"]["task_s"] * 1000, 0), None)]
    return [{"id": row_id, "ours": ours_cell, "theirs": theirs_cell} for row_id, ours_cell, theirs_cell in rows]


def router_context(results: dict[str, Any]) -> dict[str, Any]:
    router = results.get("router") or {}
    if router.get("skipped") or not router:
        return {"skipped": router.get("skipped"), "measured": False}
    paced = []
    for name, item in router["paced"].items():
        added = router["added"].get(name, {}).get("p50_ms")
        paced.append({"name": name, "rate": s(item["rate"], 0), "p50": s(item["p50_ms"], 3),
                      "p90": s(item["p90_ms"], 3), "p99": s(item["p99_ms"], 3),
                      "added": s(added, 3) if added is not None else "–",
                      "errors": str(item["errors"]), "late": str(item["late"])})
    throughput = [{"connections": connections, "name": name, "rate": s(item["rate"], 0), "p50": s(item["p50_ms"], 2),
                   "p99": s(item["p99_ms"], 2), "errors": str(item["errors"])}
                  for connections, variants in router["throughput"].items() for name, item in variants.items()]
    return {"skipped": None, "measured": True, "paced": paced, "throughput": throughput,
            "seconds": f"{router['seconds']:g}"}


def scale_context(results: dict[str, Any]) -> dict[str, Any] | None:
    """Item 6: one lockstep task per size; per-service cost relative to the smallest size."""
    sizes = (results.get("scale") or {}).get("sizes")
    if not sizes:
        return None
    ordered = sorted(sizes.items(), key=lambda pair: int(pair[0]))
    smallest = ordered[0][1]["median"]["per_service_ms"]
    rows = []
    for size, item in ordered:
        med = item["median"]
        rows.append({"size": f"{int(size):,}", "runs": str(len(item["runs"])), "task_s": s(med["task_s"]),
                     "per_service_ms": s(med["per_service_ms"]), "relative": f"{s(med['per_service_ms'] / smallest)}×",
                     "floor_s": s(med.get("floor_s")),
                     "over_floor": f"{s(med['over_floor'])}×" if med.get("over_floor") else "–",
                     "requests": f"{med['requests']:.0f}", "per_service": s(med["requests_per_service"], 3),
                     "read_s": s(med["read_s"]), "write_s": s(med["write_s"]),
                     "peak_rss": s(med["peak_rss_mib"], 1), "growth": s(med["peak_rss_growth_mib"], 1),
                     "concurrency": str(item.get("concurrency")), "holds": bool(item.get("holds_last_weights")),
                     "fastest": s(min(run["task_s"] for run in item["runs"])),
                     "slowest": s(max(run["task_s"] for run in item["runs"]))})
    largest = ordered[-1][1]["median"]
    return {"rows": rows, "largest": rows[-1]["size"], "smallest": rows[0]["size"],
            "date": results["scale"].get("date") or results["date"], "load": results["scale"].get("load") or "?",
            "spread": s(largest["per_service_ms"] / smallest), "all_hold": all(r["holds"] for r in rows)}


def waves_context(results: dict[str, Any]) -> dict[str, Any] | None:
    """Item 7: three clusters in waves [1, 2, 2] against one after another [1, 2, 3]."""
    plans = (results.get("waves") or {}).get("plans")
    if not plans:
        return None
    rows = [{"plan": plan, "waves": ", ".join(str(n) for n in item["waves"]), "runs": str(len(item["runs"])),
             "wall_s": s(item["median"]["wall_s"], 1), "slowest": s(item["median"]["slowest_cluster_s"], 1),
             "sum": s(item["median"]["sum_clusters_s"], 1), "promoted": bool(item["promoted_everywhere"])}
            for plan, item in plans.items()]
    return {"rows": rows, "ratio": s(results["waves"]["wall_ratio"]),
            "date": results["waves"].get("date") or results["date"], "load": results["waves"].get("load") or "?"}


def _med(one: dict[str, Any], name: str, key: str) -> float | None:
    item = one.get(name) or {}
    return (item.get("median") or {}).get(key)


def findings(results: dict[str, Any]) -> dict[str, Any]:
    """The figures the prose quotes."""
    prof = results.get("profile") or {}
    phases = prof.get("phases_ms", {})
    one = results.get("one_change") or {}
    module_runs = (one.get(MODULE) or {}).get("runs") or []
    around = median([r["task_s"] - r["module_s"] for r in module_runs]) if module_runs else None
    floor = None
    if around is not None and prof:
        loader = _top(prof["modules"].get("traffic_split", {}), ANSIBALLZ_LOADER)
        floor = around + prof.get("interpreter_start_s", 0) + (loader or 0) / 1000
    theirs = _med(one, "k8s_json_patch", "task_s")
    ratios = one.get("ratios", {})
    in_worker, debug_worker = _med(one, "traffic_split", "worker_rss_mb"), _med(one, "debug", "worker_rss_mb")
    many = (results.get("many") or {}).get("100") or {}
    modules = results.get("modules") or []
    istio_discovery = sum(row["discovery"] for row in modules if row["module"] != "manifest")
    manifest_discovery = max((row["discovery"] for row in modules if row["module"] == "manifest"), default=None)
    in_over_module = (ratios.get("task_in_process_over_module_process") or {}).get("median")
    module_ratio = (ratios.get("task_module_process_over_k8s_json_patch") or {}).get("median")
    seconds = results.get("settings", {}).get("seconds")
    rule_reads = results.get("rule_reads") or {}
    return {"rules": str(rule_reads["rules"]) if rule_reads else "–",
            "rules_list": s(rule_reads.get("list_ms"), 1), "rules_table": s(rule_reads.get("table_ms"), 1),
            "floor": s(floor), "theirs": s(theirs), "half": s(theirs / 2 if theirs else None),
            "tls": s(phases.get("ours.tls_context"), 1),
            "system_ca": s(phases.get("ours.system_ca_context"), 1),
            "around": s(around),
            "compile": s(prof.get("compile_total_ms"), 0),
            "kube_import": s(phases.get("kubernetes.import_kubernetes"), 0),
            "kubeconfig": s(phases.get("ours.kubeconfig"), 1),
            "first_request": s(phases.get("ours.first_request"), 1),
            "further_request": s(phases.get("ours.second_request"), 1),
            "process": s((prof.get("modules", {}).get("traffic_split", {}).get("process_s") or 0) * 1000, 0),
            "start": s((prof.get("interpreter_start_s") or 0) * 1000, 0),
            "in_task": s(_med(one, "traffic_split", "task_s"), 3),
            "module_task": s(_med(one, MODULE, "task_s"), 3),
            "debug_task": s(_med(one, "debug", "task_s"), 3),
            "in_task_ms": s((_med(one, "traffic_split", "task_s") or math.nan) * 1000, 0),
            "debug_task_ms": s((_med(one, "debug", "task_s") or math.nan) * 1000, 0),
            "in_ratio": s((ratios.get("task_traffic_split_over_k8s_json_patch") or {}).get("median")),
            "module_ratio": s(module_ratio),
            # None: not measured; the templates word the verdict.
            "module_within_target": None if module_ratio is None else module_ratio <= 0.5,
            "in_share": s(in_over_module * 100 if in_over_module else None, 0),
            "in_worker_rss": s(in_worker, 1), "debug_worker_rss": s(debug_worker, 1),
            "worker_added": s(in_worker - debug_worker if in_worker and debug_worker else None, 1),
            "module_rss": s(_med(one, MODULE, "peak_rss_mb"), 1),
            "many_in": s(((many.get("traffic_split") or {}).get("median") or {}).get("task_s"), 3),
            "many_module": s(((many.get(MODULE) or {}).get("median") or {}).get("task_s")),
            "istio_discovery": str(istio_discovery) if modules else "–",
            "minutes": round(seconds / 60) if seconds else None,
            "manifest_discovery": str(manifest_discovery) if manifest_discovery is not None else "–"}


def context(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the templates show, as figures; no words of either language."""
    one = results.get("one_change")
    return {
        "date": results["date"],
        "runs": results["settings"]["runs"],
        "runs_largest": results["settings"]["runs_largest"],
        "in_process_env": IN_PROCESS_ENV,
        "machine": results.get("machine"),
        "targets": targets(results),
        "one_change": one_change_rows(results) if one else None,
        "many": many_rows(results) if results.get("many") else None,
        "problems": {"one": path_problems(results, ("one",)), "many": path_problems(results, ("many",)),
                     "all": path_problems(results)},
        "modules": module_rows(results),
        "profile": profile_rows(results) if results.get("profile") else None,
        "router": router_context(results),
        "router_rate": s((results.get("router") or {}).get("rate"), 0),
        "scale": scale_context(results),
        "waves": waves_context(results),
        "f": findings(results),
    }


# --- rendering --------------------------------------------------------------------------------

@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              autoescape=False)  # Markdown, not HTML


def render(results: dict[str, Any], lang: str) -> str:
    return _environment().get_template(TEMPLATE_FILES[lang]).render(context(results))


def console(results: dict[str, Any]) -> str:
    """The table printed at the end of ``make bench``: the English template's tables."""
    ctx = context(results)
    # Making the module renders the whole page once: a partial run (--only) has tables left empty.
    page_ctx = {**ctx, **{key: ctx[key] or [] for key in ("one_change", "many", "profile")}}
    tables = _environment().get_template(TEMPLATE_FILES[EN]).make_module(page_ctx)
    lines = ["", "canary.istio benchmark — medians", ""]
    if ctx["one_change"]:
        lines += ["One weight change", str(tables.one_change_table()).rstrip("\n"), ""]
    if ctx["many"]:
        lines += ["Many services", str(tables.many_table()).rstrip("\n"), ""]
    if results.get("router"):
        lines += ["Router", str(tables.router_section()).rstrip("\n"), ""]
    if ctx["scale"]:
        lines += ["Thousands of services in one step", str(tables.scale_table()).rstrip("\n"), ""]
    if ctx["waves"]:
        lines += ["Three clusters: waves against one after another", str(tables.waves_table()).rstrip("\n"), ""]
    if ctx["one_change"] or ctx["many"]:
        lines += [str(tables.path_note(ctx["problems"]["all"])).rstrip("\n"), ""]
    lines += ["Targets", str(tables.targets_table()).rstrip("\n"), ""]
    return "\n".join(lines)
