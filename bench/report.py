"""Turns the benchmark's results into the printed table and docs/performance(.zh-CN).md."""
# The Chinese document uses full-width punctuation, and the English one the multiplication sign and en dash.
# ruff: noqa: RUF001

from __future__ import annotations

import math
from typing import Any

from bench.changes import median

EN = "en"
ZH = "zh"


def _t(lang: str, en: str, zh: str) -> str:
    return zh if lang == ZH else en


def s(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- targets ----------------------------------------------------------------------------------

MODULE = "traffic_split module process"
IN_PROCESS_ENV = "CANARY_ISTIO_IN_PROCESS=0"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for our default path (in the controller's worker) and, as separate rows,
    for the module-process path (``CANARY_ISTIO_IN_PROCESS=0``, remote hosts, become...)."""
    out = []
    one = results.get("one_change")
    if one:
        ratio = one["ratios"]["task_traffic_split_over_k8s_json_patch"]["median"]
        out.append({"id": "one", "en": "One change: our task time ≤ 0.5× k8s_json_patch's (default, in-process)",
                    "zh": "单次变更：任务耗时 ≤ k8s_json_patch 的 0.5 倍（默认，进程内）",
                    "measured": f"{s(ratio)}×", "met": ratio <= 0.5})
        module_ratio = one.get("ratios", {}).get("task_module_process_over_k8s_json_patch", {}).get("median")
        if module_ratio is not None:
            out.append({"id": "one-module", "en": f"… the same, module process (`{IN_PROCESS_ENV}`)",
                        "zh": f"… 同上，模块进程（`{IN_PROCESS_ENV}`）",
                        "measured": f"{s(module_ratio)}×", "met": module_ratio <= 0.5})
    many = results.get("many", {}).get("100")
    if many:
        for suffix, name, key, en, zh in (
                ("", "traffic_split", "task_loop_over_traffic_split", " (default, in-process)", "（默认，进程内）"),
                ("-module", MODULE, "task_loop_over_module_process", f", module process (`{IN_PROCESS_ENV}`)",
                 f"，模块进程（`{IN_PROCESS_ENV}`）")):
            if name not in many:
                continue
            task = many[name]["median"]["task_s"]
            ratio = many["ratios"][key]["median"]
            out.append({"id": f"many-time{suffix}", "en": f"100 services in one task: ≤ 3 s{en}",
                        "zh": f"一个任务切换 100 个服务：≤ 3 秒{zh}", "measured": f"{s(task)} s", "met": task <= 3})
            out.append({"id": f"many-ratio{suffix}",
                        "en": f"100 services: ≥ 25× faster than the kubernetes.core loop{en}",
                        "zh": f"100 个服务：比 kubernetes.core 循环快 ≥ 25 倍{zh}", "measured": f"{s(ratio, 1)}×",
                        "met": ratio >= 25})
    per_vs = []
    ours = ("traffic_split", MODULE)
    if one:
        per_vs += [one[name]["median"]["requests"] for name in ours if name in one]
    for size, item in results.get("many", {}).items():
        per_vs += [item[name]["median"]["requests"] / int(size) for name in ours if name in item]
    if per_vs:
        worst = max(per_vs)
        out.append({"id": "requests", "en": "≤ 3 API requests per VirtualService change (both paths)",
                    "zh": "每个 VirtualService 变更 ≤ 3 个 API 请求（两种方式）", "measured": s(worst, 1),
                    "met": worst <= 3})
    modules = results.get("modules") or []
    if modules:
        worst_group = max((max(row.get("discovery_groups", {}).values(), default=0) for row in modules), default=0)
        runs = [run for item in [one, *results.get("many", {}).values()] if item
                for name in ours if name in item for run in [item[name]["cold"], *item[name]["runs"]] if run]
        worst_group = max([worst_group, *(run["requests"].get("discovery_max_per_group", 0) for run in runs)])
        out.append({"id": "discovery", "en": "No discovery beyond one request per API group (our modules)",
                    "zh": "发现请求每个 API 组不超过一个（本集合的模块）",
                    "measured": f"max {worst_group} per group", "measured_zh": f"每组最多 {worst_group} 个",
                    "met": worst_group <= 1})
    router = results.get("router") or {}
    if router.get("added"):
        added = router["added"]["one hop"]["p50_ms"]
        rate = router["paced"]["one hop"]["rate"]
        out.append({"id": "router", "en": "Router: ≤ 2 ms added at the median per hop at 200 requests/s",
                    "zh": "路由器：200 请求/秒时每跳增加的中位延迟 ≤ 2 毫秒",
                    "measured": f"{s(added, 3)} ms @ {rate:.0f}/s", "met": added <= 2 and rate >= 190})
    elif router.get("skipped"):
        out.append({"id": "router", "en": "Router: ≤ 2 ms added at the median per hop at 200 requests/s",
                    "zh": "路由器：200 请求/秒时每跳增加的中位延迟 ≤ 2 毫秒",
                    "measured": f"not measured: {router['skipped']}", "met": None})
    return out


def _met(lang: str, met: bool | None) -> str:
    if met is None:
        return _t(lang, "not measured", "未测量")
    return _t(lang, "**met**", "**达成**") if met else _t(lang, "**missed**", "**未达成**")


# --- sections ---------------------------------------------------------------------------------

def _process_cells(med: dict[str, Any], lang: str, in_worker: bool) -> tuple[str, str]:
    """Module-process seconds and peak RSS, or what stands in their place when none ran."""
    # Results written before module processes were counted: a module process ran when it took time.
    if med.get("module_processes", 1 if med.get("module_s") else 0):
        return s(med["module_s"]), s(med["peak_rss_mb"], 1)
    if in_worker:
        return _t(lang, "none", "无"), _t(lang, "none (in the worker)", "无（在 worker 中）")
    return "–", "–"


def one_change_table(results: dict[str, Any], lang: str) -> str:
    one = results["one_change"]
    header = [_t(lang, "task", "任务"), _t(lang, "task time (s)", "任务耗时（秒）"),
              _t(lang, "playbook wall (s)", "playbook 总耗时（秒）"),
              _t(lang, "module process (s)", "模块进程（秒）"),
              _t(lang, "Ansible around it (s)", "Ansible 自身开销（秒）"),
              _t(lang, "module process peak RSS (MiB)", "模块进程峰值内存（MiB）"),
              _t(lang, "controller worker peak RSS (MiB)", "控制端 worker 峰值内存（MiB）"),
              _t(lang, "API requests warm (cold)", "API 请求 热（冷）"),
              _t(lang, "task time / k8s_json_patch", "任务耗时 / k8s_json_patch")]
    rows = []
    base_runs = one["k8s_json_patch"]["runs"]
    for name, label in (("debug", _t(lang, "ansible.builtin.debug (no module: Ansible's own floor)",
                                     "ansible.builtin.debug（无模块：Ansible 自身的下限）")),
                        ("traffic_split", _t(lang, "**canary.istio.traffic_split** (default: in the controller's "
                                                   "worker)",
                                             "**canary.istio.traffic_split**（默认：在控制端 worker 进程内）")),
                        (MODULE, _t(lang, f"canary.istio.traffic_split, module process (`{IN_PROCESS_ENV}`)",
                                    f"canary.istio.traffic_split，模块进程（`{IN_PROCESS_ENV}`）")),
                        ("k8s_json_patch", "kubernetes.core.k8s_json_patch"),
                        ("k8s", _t(lang, "kubernetes.core.k8s (whole VirtualService)",
                                   "kubernetes.core.k8s（整个 VirtualService）")),
                        ("traffic_split pipelining", _t(lang, "canary.istio.traffic_split, module process, "
                                                              "pipelining on",
                                                        "canary.istio.traffic_split，模块进程，开启 pipelining")),
                        ("k8s_json_patch pipelining", _t(lang, "kubernetes.core.k8s_json_patch, pipelining on",
                                                         "kubernetes.core.k8s_json_patch，开启 pipelining"))):
        item = one.get(name)
        if not item:
            continue
        med = item["median"]
        cold = item["cold"]["requests"]["total"] if item.get("cold") else None
        around = median([r["task_s"] - r["module_s"] for r in item["runs"]]) if med.get("module_s") else None
        base = one["k8s_json_patch pipelining"]["runs"] if "pipelining" in name else base_runs
        ratio = median([a["task_s"] / b["task_s"] for a, b in zip(item["runs"], base, strict=True)])
        process_s, process_rss = _process_cells(med, lang, name == "traffic_split")
        rows.append([label, s(med["task_s"], 3), s(med["wall_s"]), process_s, s(around), process_rss,
                     s(med.get("worker_rss_mb"), 1), f"{med['requests']:.0f} ({cold})", f"{ratio:.2f}×"])
    return table(header, rows)


def many_table(results: dict[str, Any], lang: str) -> str:
    header = [_t(lang, "services", "服务数"), _t(lang, "task", "任务"), _t(lang, "runs", "轮数"),
              _t(lang, "task time (s)", "任务耗时（秒）"),
              _t(lang, "loop / this (task, pair by pair)", "循环 / 本行（任务，逐对）"),
              _t(lang, "playbook wall (s)", "playbook 总耗时（秒）"),
              _t(lang, "API requests (warm)", "API 请求（热）"),
              _t(lang, "module process peak RSS (MiB)", "模块进程峰值内存（MiB）"),
              _t(lang, "controller worker peak RSS (MiB)", "控制端 worker 峰值内存（MiB）")]
    labels = (("traffic_split", "traffic_split_task", _t(lang, "**traffic_split** `services:` (default, in-process)",
                                                         "**traffic_split** `services:`（默认，进程内）")),
              (MODULE, "module_process", _t(lang, "traffic_split `services:`, module process",
                                            "traffic_split `services:`，模块进程")),
              ("k8s_json_patch_loop", None, _t(lang, "k8s_json_patch `loop:`", "k8s_json_patch `loop:`")))
    rows = []
    for size, item in results["many"].items():
        for name, ratio_key, label in labels:
            if name not in item:
                continue
            med = item[name]["median"]
            ratio = "–"
            if ratio_key:
                key = "task_loop_over_traffic_split" if ratio_key == "traffic_split_task" \
                    else "task_loop_over_module_process"
                ratio = f"{s(item['ratios'][key]['median'], 1)}×"
            _, process_rss = _process_cells(med, lang, name == "traffic_split")
            rows.append([size, label, str(len(item[name]["runs"])), s(med["task_s"], 3), ratio, s(med["wall_s"]),
                         f"{med['requests']:.0f}", process_rss, s(med.get("worker_rss_mb"), 1)])
    return table(header, rows)


def path_problems(results: dict[str, Any], parts: tuple[str, ...] = ("one", "many")) -> list[str]:
    """Runs that did not take the path their row names (see ``bench.changes.check_paths``)."""
    problems = list((results.get("one_change") or {}).get("path_problems") or []) if "one" in parts else []
    for size, item in (results.get("many") or {}).items() if "many" in parts else ():
        problems += [f"{size} services, {p}" for p in item.get("path_problems") or []]
    return problems


def _path_note(results: dict[str, Any], lang: str, parts: tuple[str, ...] = ("one", "many")) -> str:
    problems = path_problems(results, parts)
    if not problems:
        return _t(lang, "Path check: every in-process run started no module process, every module-process run "
                        "started its module processes.",
                  "路径检查：进程内的每次运行都没有启动模块进程，模块进程方式的每次运行都启动了模块进程。")
    return _t(lang, "⚠ Path check failed: ", "⚠ 路径检查未通过：") + "; ".join(problems)


def modules_table(results: dict[str, Any], lang: str) -> str:
    header = [_t(lang, "module", "模块"), _t(lang, "operation", "操作"),
              _t(lang, "requests (audit log)", "请求数（审计日志）"),
              _t(lang, "by verb", "按动词"), _t(lang, "discovery", "发现请求"),
              _t(lang, "module's own count", "模块自报"), "changed"]
    rows = []
    for row in results.get("modules") or []:
        verbs = ", ".join(f"{k} {v}" for k, v in sorted(row["by_verb"].items()))
        rows.append([f"`{row['module']}`", row["operation"] + (" ⚠ failed" if row["failed"] else ""),
                     str(row["requests"]), verbs, str(row["discovery"]), str(row["reported"]),
                     str(row["changed"]).lower()])
    one = results.get("one_change")
    if one:
        for name, what in (("k8s_json_patch", _t(lang, "change weights", "修改权重")),
                           ("k8s", _t(lang, "apply the whole VirtualService", "应用整个 VirtualService"))):
            for temp, item in (("cold", one[name]["cold"]), ("warm", one[name]["runs"][-1])):
                if not item:
                    continue
                req = item["requests"]
                verbs = ", ".join(f"{k} {req[k]}" for k in ("discovery", "get", "list", "write") if req[k])
                rows.append([f"`kubernetes.core.{name}`", f"{what} ({temp})", str(req["total"]), verbs,
                             str(req["discovery"]), "–", str(item["changed"][-1]).lower()])
    return table(header, rows)


def profile_table(results: dict[str, Any], lang: str) -> str:
    prof = results["profile"]
    ph = prof["phases_ms"]
    ours = prof["modules"].get("traffic_split", {})
    theirs = prof["modules"].get("k8s_json_patch", {})
    header = [_t(lang, "phase", "阶段"), "canary.istio.traffic_split (ms)", "kubernetes.core.k8s_json_patch (ms)"]
    rows = [
        [_t(lang, "interpreter start (`python -c pass`)", "解释器启动（`python -c pass`）"),
         s(prof["interpreter_start_s"] * 1000, 0), s(prof["interpreter_start_s"] * 1000, 0)],
        [_t(lang, "all imports of the AnsiballZ run (`-X importtime`, inflates a little)",
            "AnsiballZ 运行中的全部导入（`-X importtime`，略有放大）"),
         s(ours.get("imports", {}).get("total_ms"), 0), s(theirs.get("imports", {}).get("total_ms"), 0)],
        [_t(lang, "… of which `ansible.module_utils` via AnsiballZ (compiled from the zip every run)",
            "… 其中经 AnsiballZ 导入的 `ansible.module_utils`（每次从 zip 重新编译）"),
         s(_top(ours, "ansible.module_utils._internal._ansiballz._loader"), 0),
         s(_top(theirs, "ansible.module_utils._internal._ansiballz._loader"), 0)],
        [_t(lang, "… of which the collection's own code (self time)", "… 其中集合自身代码（自身耗时）"),
         s(ours.get("imports", {}).get("collection_self_ms"), 0),
         s(theirs.get("imports", {}).get("collection_self_ms"), 0)],
        [_t(lang, "… of which compiling the collection's sources (no .pyc in a zip)",
            "… 其中编译集合源码（zip 中无 .pyc）"), s(prof["compile_total_ms"], 0), "–"],
        [_t(lang, "import `kubernetes` + dynamic client (in-process driver)",
            "导入 `kubernetes` 与动态客户端（进程内测量）"), "0", s(ph.get("kubernetes.import_kubernetes"), 0)],
        [_t(lang, "kubeconfig → settings (ours: + importing PyYAML, which the controller has loaded already)",
            "读取 kubeconfig（本集合：+ 导入 PyYAML，控制端已导入）"),
         s(ph.get("ours.kubeconfig"), 1) + (f" (+{s(ph['ours.import_yaml'], 1)})" if "ours.import_yaml" in ph else ""),
         s(ph.get("kubernetes.kubeconfig"), 1)],
        [_t(lang, "TLS context (ours: only the cluster's CA)", "TLS 上下文（本集合：只信任集群 CA）"),
         s(ph.get("ours.tls_context"), 1), _t(lang, "(in first request)", "（含在首个请求中）")],
        [_t(lang, "first request (connect, TLS handshake, GET)", "首个请求（连接、TLS 握手、GET）"),
         s(ph.get("ours.first_request"), 1), s(ph.get("kubernetes.first_request"), 1)],
        [_t(lang, "each further request on the kept-alive connection", "长连接上的后续每个请求"),
         s(ph.get("ours.second_request"), 1), s(ph.get("kubernetes.second_request"), 1)],
        [_t(lang, "**module process, whole (AnsiballZ file run directly, median)**",
            "**模块进程总计（直接运行 AnsiballZ 文件，中位数）**"),
         s(ours.get("process_s", 0) * 1000, 0), s(theirs.get("process_s", 0) * 1000, 0)],
    ]
    one = results.get("one_change") or {}
    if one.get("traffic_split") and one.get(MODULE):
        rows += [
            [_t(lang, f"task time, module process (`{IN_PROCESS_ENV}`; section 1 median)",
                f"任务耗时，模块进程（`{IN_PROCESS_ENV}`；第 1 节中位数）"),
             s(one[MODULE]["median"]["task_s"] * 1000, 0), s(one["k8s_json_patch"]["median"]["task_s"] * 1000, 0)],
            [_t(lang, "**task time, default: in the controller's worker, no module process (section 1 median)**",
                "**任务耗时，默认：在控制端 worker 内，无模块进程（第 1 节中位数）**"),
             s(one["traffic_split"]["median"]["task_s"] * 1000, 0), _t(lang, "(no such path)", "（无此方式）")],
        ]
    return table(header, rows)


def _top(module: dict[str, Any], name: str) -> float | None:
    for key, value in module.get("imports", {}).get("top", []):
        if key == name:
            return value
    return None


def router_section(results: dict[str, Any], lang: str) -> str:
    router = results.get("router") or {}
    if router.get("skipped"):
        return _t(lang, f"Not measured in this run: {router['skipped']}. `bench/router.py` runs as soon as "
                        "`lab.dataplane.start` exists.",
                  f"本次未测量：{router['skipped']}。`lab.dataplane.start` 可用后 `bench/router.py` 即可运行。")
    if not router:
        return _t(lang, "Not measured in this run.", "本次未测量。")
    header = [_t(lang, "path", "路径"), _t(lang, "rate (req/s)", "速率（请求/秒）"), "p50 (ms)", "p90 (ms)",
              "p99 (ms)", _t(lang, "added per hop, p50 (ms)", "每跳增加 p50（毫秒）"),
              _t(lang, "errors", "错误"), _t(lang, "late sends", "延迟发送")]
    rows = []
    for name, item in router["paced"].items():
        added = router["added"].get(name, {}).get("p50_ms")
        rows.append([name, s(item["rate"], 0), s(item["p50_ms"], 3), s(item["p90_ms"], 3), s(item["p99_ms"], 3),
                     s(added, 3) if added is not None else "–", str(item["errors"]), str(item["late"])])
    paced = table(header, rows)
    header2 = [_t(lang, "connections", "连接数"), _t(lang, "path", "路径"), _t(lang, "requests/s", "请求/秒"),
               "p50 (ms)", "p99 (ms)", _t(lang, "errors", "错误")]
    rows2 = []
    for connections, variants in router["throughput"].items():
        for name, item in variants.items():
            rows2.append([connections, name, s(item["rate"], 0), s(item["p50_ms"], 2), s(item["p99_ms"], 2),
                          str(item["errors"])])
    return (paced + "\n\n" + _t(lang, "Closed loop (each connection sends again when answered), "
                                      f"{router['seconds']:g} s each:",
                                f"闭环（每个连接收到应答后立即再发），每项 {router['seconds']:g} 秒：")
            + "\n\n" + table(header2, rows2))


# --- documents --------------------------------------------------------------------------------

def machine_table(results: dict[str, Any], lang: str) -> str:
    m = results["machine"]
    rows = [["nproc", str(m["nproc"])], ["CPU", m["cpu"]], [_t(lang, "memory", "内存"), m["memory"]],
            [_t(lang, "kernel", "内核"), m["kernel"]], ["Python", m["python"]],
            ["ansible-core", m["ansible_core"]], [_t(lang, "ansible (PyPI package)", "ansible（PyPI 包）"),
                                                  m["ansible"]],
            ["kubernetes.core", m["kubernetes_core"]], ["ansible.posix", m["ansible_posix"]],
            [_t(lang, "kubernetes (Python client)", "kubernetes（Python 客户端）"), m["kubernetes_python"]],
            ["PyYAML", m["pyyaml"]], ["canary.istio", m["canary_istio"]],
            [_t(lang, "load average at start / end (1 min)", "开始 / 结束时的负载（1 分钟）"),
             f"{m.get('load_start', '?')} / {m.get('load_end', '?')}"],
            ["kube-apiserver", m["apiserver"]], ["etcd", m["etcd"]]]
    return table([_t(lang, "what", "项目"), _t(lang, "value", "值")], rows)


def targets_table(results: dict[str, Any], lang: str) -> str:
    rows = [[item[lang], item.get("measured_zh", item["measured"]) if lang == ZH else item["measured"],
             _met(lang, item["met"])] for item in targets(results)]
    return table([_t(lang, "target", "目标"), _t(lang, "measured", "实测"), _t(lang, "result", "结果")], rows)


def render(results: dict[str, Any], lang: str) -> str:
    return render_zh(results) if lang == ZH else render_en(results)


def _med(one: dict[str, Any], name: str, key: str) -> float | None:
    item = one.get(name) or {}
    return (item.get("median") or {}).get(key)


def _findings(results: dict[str, Any]) -> dict[str, str]:
    prof = results.get("profile") or {}
    phases = prof.get("phases_ms", {})
    one = results.get("one_change") or {}
    module_runs = (one.get(MODULE) or {}).get("runs") or []
    around = median([r["task_s"] - r["module_s"] for r in module_runs]) if module_runs else None
    floor = None
    if around is not None and prof:
        loader = _top(prof["modules"].get("traffic_split", {}), "ansible.module_utils._internal._ansiballz._loader")
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
    return {"floor": s(floor), "theirs": s(theirs), "half": s(theirs / 2 if theirs else None),
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
            "module_verdict_en": "–" if module_ratio is None else
            ("within the 0.5× target" if module_ratio <= 0.5 else "above the 0.5× target"),
            "module_verdict_zh": "–" if module_ratio is None else
            ("达到 0.5 倍目标" if module_ratio <= 0.5 else "未达到 0.5 倍目标"),
            "in_share": s(in_over_module * 100 if in_over_module else None, 0),
            "in_worker_rss": s(in_worker, 1), "debug_worker_rss": s(debug_worker, 1),
            "worker_added": s(in_worker - debug_worker if in_worker and debug_worker else None, 1),
            "module_rss": s(_med(one, MODULE, "peak_rss_mb"), 1),
            "many_in": s(((many.get("traffic_split") or {}).get("median") or {}).get("task_s"), 3),
            "many_module": s(((many.get(MODULE) or {}).get("median") or {}).get("task_s")),
            "istio_discovery": str(istio_discovery) if modules else "–",
            "duration": f", {round(results['settings']['seconds'] / 60)} minutes this time"
            if results.get("settings", {}).get("seconds") else "",
            "manifest_discovery": str(manifest_discovery) if manifest_discovery is not None else "–"}


def render_en(results: dict[str, Any]) -> str:
    f = _findings(results)
    runs = results["settings"]["runs"]
    parts = [
        "# Performance",
        "",
        f"Measured by `make bench` (`python -m bench`) on {results['date']}; this page is written by the "
        "benchmark, edit `bench/report.py` rather than this file. Numbers are from one machine (below) and "
        "move by 10–20 % from run to run on a busy 2-core box; compare ratios, not absolute seconds.",
        "",
        "## Targets",
        "",
        "Reported, never asserted by tests.",
        "",
        targets_table(results, EN),
        "",
        "## Method",
        "",
        "- **Cluster**: the project's lab (`python -m lab up --dir build/bench-lab`): a real kube-apiserver and "
        "etcd on loopback with Istio's networking CRDs. The audit log (policy level Metadata, the apiserver's "
        "own loopback user excluded) is where every request count on this page comes from: each run sits "
        "between two marker requests (`lab.audit.AuditWindow`) and only the admin user's requests count.",
        "- **kubernetes.core**: PyPI's `ansible` package plus `kubernetes` in a virtualenv of the benchmark's "
        "own (`~/.cache/canary-istio-lab/bench-venv`, made by `make bench` when missing); never a dependency "
        "of the collection. Every playbook, ours and theirs, runs with that virtualenv's `ansible-playbook` "
        "and Python, so both collections get the same ansible-core and interpreter.",
        "- **Playbooks**: one play on `localhost` with `-c local`, no fact gathering, the task under test and "
        "nothing else; `ansible-playbook` started afresh for each run (what a CI job or AWX does).",
        f"- **Runs**: every variant once untimed (\"cold\": kubernetes.core fills its discovery cache, kept in "
        f"`$TMPDIR`, then), then {runs} timed rounds ({results['settings']['runs_largest']} for 100 services). "
        "In a round each variant runs once, in an order rotated from round to round, and every task changes "
        "the weights to values they did not have, so every timed task writes. Medians are shown; a ratio is "
        "taken between the two tools' runs of the same round, then the median of those ratios.",
        "- **Task time**: the `ansible.posix.json` callback's per-task `duration.start`/`end` (ansible-core "
        "2.19 itself ships no JSON callback; `ansible.posix` comes with the `ansible` package). **Playbook "
        "wall**: around the `ansible-playbook` process.",
        "- **Two paths for our modules**: on a local connection our modules run by default inside the "
        "controller's task worker, through their action plugins (`plugins/action/<module>.py` → "
        "`plugins/plugin_utils/_in_process.py`), with no module process; with `CANARY_ISTIO_IN_PROCESS=0` in "
        "`ansible-playbook`'s environment (and always for remote hosts, become, task `environment:` or async) "
        "they run as a module process like any other module. Sections 1 and 2 measure both, as separate rows; "
        "every run counts the module processes it started, and a run on the wrong path is reported under its "
        "table.",
        "- **Module process**: Ansible runs modules through an interpreter wrapper that records, with GNU "
        "`time`, the peak RSS and wall time of the module process itself (not of `ansible-playbook`). "
        "\"Ansible around it\" is task time minus module-process time: temp dir, transfer, fork/exec, result "
        "handling. The in-process path starts no module process, so these columns say \"none\" there.",
        "- **Controller worker**: Ansible forks one worker process per task and host; with the in-process path "
        "our module's code runs there. A `sitecustomize` put on `ansible-playbook`'s `PYTHONPATH` only "
        "(`bench/worker_probe/`, which takes itself off `PYTHONPATH` at once so module processes never load "
        "it) records each forked worker's peak RSS (`getrusage`, at `os._exit` or at the SIGTERM with which "
        "`ansible-playbook` ends a worker still alive). A forked worker's RSS includes the pages it shares "
        "with `ansible-playbook`, so compare it with the `debug` row, whose worker runs no module.",
        "- **Router**: see section 5.",
        "",
        "## Machine",
        "",
        machine_table(results, EN),
        "",
        "## 1. One weight change",
        "",
        "Moving 10 %→20 %… of a VirtualService's traffic to v2: our `traffic_split` (reads the VirtualService "
        "and DestinationRule, checks the subsets exist, one JSON Patch guarded by `test` ops, history "
        "annotations) against `kubernetes.core.k8s_json_patch` (a bare patch of two weights: no guard, no "
        "subset check) and `kubernetes.core.k8s` applying the whole templated VirtualService. Ours twice: the "
        "default path (in the controller's worker, no module process) and the module process "
        "(`CANARY_ISTIO_IN_PROCESS=0`); the pipelining row runs ours as a module process too.",
        "",
        one_change_table(results, EN),
        "",
        f"In the controller's worker our task takes {f['in_task']} s against {f['module_task']} s as a module "
        f"process ({f['in_share']} % of it, pair by pair). Memory: no module process runs; the worker's peak "
        f"RSS is {f['in_worker_rss']} MiB against {f['debug_worker_rss']} MiB for a `debug` task's worker, so "
        f"running the module there adds about {f['worker_added']} MiB, where the module-process path starts "
        f"a {f['module_rss']} MiB process.",
        "",
        _path_note(results, EN, ("one",)),
        "",
        "## 2. Many services in one step",
        "",
        "N VirtualServices moved to the same weights: one `traffic_split` task with `services:` (lockstep: all "
        "read and validated before the first write, put back if a later write fails) against a "
        "`k8s_json_patch` task with `loop:` over the N names. Ours on both paths; \"loop / this\" is the "
        "`k8s_json_patch` loop's task time over the row's, pair by pair.",
        "",
        many_table(results, EN),
        "",
        _path_note(results, EN, ("many",)),
        "",
        "## 3. API requests per operation",
        "",
        "From the audit log. Our modules were run once per operation as the module file (what Ansible runs "
        "as a module process; the in-process path calls the same `execute` function with the same arguments, "
        "so it makes the same requests: sections 1 and 2 count both paths from the audit log), in this order, "
        "on one namespace. \"discovery\" counts GETs of `/api`, `/apis`, `/apis/<group>[/<version>]`. "
        "Lockstep per service: see section 2 (requests ÷ N).",
        "",
        modules_table(results, EN),
        "",
        "## 4. Where the module's time goes",
        "",
        "The module-process path first: the AnsiballZ file Ansible wrote for a real task (kept with "
        "`ANSIBLE_KEEP_REMOTE_FILES`, `CANARY_ISTIO_IN_PROCESS=0`) run again directly, and a driver "
        "(`bench/phase_driver.py`) timing the connection steps in a fresh process. The last two rows are task "
        "times from section 1: the module-process path, and the default path, where none of the process "
        "phases above it are paid.",
        "",
        profile_table(results, EN),
        "",
        "What was done about it:",
        "",
        f"- **In-process action plugins** — on a local connection (no become, no task `environment:`, not "
        f"async) each module's action plugin validates the arguments against the module's own argument spec "
        f"and calls the module's `execute` function inside the controller's task worker "
        f"(`plugins/plugin_utils/_in_process.py`): no interpreter start, no AnsiballZ, no `/bin/sh`, no "
        f"`module_utils` compiled from a zip. The task takes {f['in_task']} s instead of {f['module_task']} s "
        f"(section 1), {f['in_ratio']}× `k8s_json_patch`'s; 100 services in one task {f['many_in']} s "
        f"instead of {f['many_module']} s (section 2). `CANARY_ISTIO_IN_PROCESS=0` turns it off; both paths "
        "run the same code and return the same result.",
        f"- **TLS context with only the cluster's CA** — when the kubeconfig names a CA, "
        f"`ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)` trusts that CA alone, as kubectl does, instead of "
        f"`ssl.create_default_context()` loading the system's whole CA store first: {f['tls']} ms, against "
        f"{f['system_ca']} ms for a context with the system's store, measured in the same driver run.",
        f"- **No `kubernetes` import on the common path** — the modules talk to the API with the standard "
        f"library on one kept-alive TLS connection (`module_utils/_client.py`). Importing `kubernetes` and its "
        f"dynamic client costs kubernetes.core {f['kube_import']} ms per task before the first request; ours "
        "imports the package only for kubeconfig users with exec plugins or auth providers.",
        f"- **Zero discovery requests when `networking.istio.io/v1` is served** — that version is tried "
        f"first, and only a 404 for the type triggers one discovery request for the group (section 3: "
        f"{f['istio_discovery']} discovery requests over all operations of the Istio modules; `manifest`, "
        f"which applies arbitrary kinds, makes {f['manifest_discovery']}, one per API group it needs).",
        "- **Minimum reads and writes for a safe change** — GET VirtualService, GET DestinationRule (the "
        "subset check), one guarded PATCH; a no-op re-run makes the two GETs only.",
        "- **Lockstep** — N services in one task, so the per-task cost is paid once, not N times.",
        "",
        "What is left, and where it goes:",
        "",
        f"- **Default path** — {f['in_task_ms']} ms per task, of which Ansible's own per-task work (forking the "
        f"worker, templating, the callback), as the `debug` row shows, is about {f['debug_task_ms']} ms. Ours on "
        f"top: importing the module into the fresh worker, validating arguments, kubeconfig "
        f"({f['kubeconfig']} ms; PyYAML is loaded already), TLS context ({f['tls']} ms), the first request "
        f"with its TLS handshake "
        f"({f['first_request']} ms) and each further request ({f['further_request']} ms).",
        f"- **Module-process path** (`CANARY_ISTIO_IN_PROCESS=0`, remote hosts, become, task `environment:`, "
        f"async) — Ansible around the module is about {f['around']} s of every task (temp dir, AnsiballZ "
        f"build and transfer, `/bin/sh` and exec, result parsing); with `connection: local`, pipelining makes "
        f"no clear difference (section 1). The whole module process is about {f['process']} ms, of which the "
        f"interpreter start is {f['start']} ms and Ansible's own `module_utils` (compiled from the AnsiballZ "
        f"zip on every run) the largest part. These fixed costs, which no module code can remove, are about "
        f"{f['floor']} s per task, against {f['half']} s for half of `k8s_json_patch`'s median task "
        f"({f['theirs']} s): on this path the ratio is {f['module_ratio']}×, {f['module_verdict_en']}.",
        f"- **Compiling our sources** (module-process path only) — {f['compile']} ms per run: AnsiballZ "
        "imports from a zip, where Python keeps no `.pyc`, so every `module_utils` file a module imports is "
        "compiled on every task.",
        "",
        "## 5. The lab router",
        "",
        f"A Bookinfo `ratings` workload under the lab data plane; `GET /ratings/0` sent straight to the "
        f"workload (\"direct\") and through the router's mesh port as a sidecar would (\"one hop\"), paced at "
        f"{s(results.get('router', {}).get('rate'), 0)} requests/s (open loop: send times fixed in advance) "
        f"by a Python load generator (threads, one kept-alive connection each, bounded in count and time, "
        "loopback only). Added latency per hop = router p50 − direct p50 in the same round, median over "
        "rounds. The load generator, the router and the workload share the machine's cores.",
        "",
        router_section(results, EN),
        "",
        "## Reproducing",
        "",
        "```",
        f"make bench                      # everything{f['duration']}",
        "BENCH_RUNS=3 make bench         # fewer rounds",
        ".venv/bin/python -m bench --help",
        "```",
        "",
        "Raw results: `build/bench/results.json`.",
        "",
    ]
    return "\n".join(parts)


def render_zh(results: dict[str, Any]) -> str:
    f = _findings(results)
    parts = [
        "# 性能",
        "",
        f"由 `make bench`（`python -m bench`）于 {results['date']} 测得并自动生成；请修改 `bench/report.py` "
        "而不是本文件。完整说明见英文版 [performance.md](performance.md)。数字来自一台机器（见下），"
        "在繁忙的 2 核机器上每次运行会有 10–20% 的波动，请比较比值而非绝对秒数。",
        "",
        "## 目标",
        "",
        targets_table(results, ZH),
        "",
        "## 方法（摘要）",
        "",
        "- 集群：项目自带实验环境（真实的 kube-apiserver 与 etcd，仅回环地址，带 Istio CRD）；所有请求数"
        "均取自 apiserver 审计日志。",
        "- kubernetes.core 来自 PyPI 的 `ansible` 包，装在基准测试专用的虚拟环境中，不是本集合的依赖；"
        "两个集合使用同一个 ansible-playbook 与 Python。",
        f"- 每个变体先冷启动运行一次（不计时），再计时 {results['settings']['runs']} 轮，轮内顺序轮换；"
        "取中位数，比值在同一轮内逐对计算后取中位数。",
        "- 本集合的模块有两种运行方式，第 1、2 节分行列出：本地连接时默认经 action 插件"
        "（`plugins/action/<module>.py` → `plugins/plugin_utils/_in_process.py`）在控制端的任务 worker 进程内运行，"
        "没有模块进程；控制端环境中设置 `CANARY_ISTIO_IN_PROCESS=0`（以及远程主机、become、任务 `environment:`、"
        "async）时作为普通模块进程运行。每次运行都统计启动的模块进程数，走错方式的运行会在表下注明。",
        "- 任务耗时取自 `ansible.posix.json` 回调的 `duration.start/end`；模块进程的峰值内存与耗时由解释器"
        "包装脚本（GNU time）记录，进程内方式没有模块进程，这两列写作「无」。",
        "- 控制端 worker 峰值内存：只给 `ansible-playbook` 的 `PYTHONPATH` 加上 `bench/worker_probe/` 中的 "
        "`sitecustomize`（启动后立即从 `PYTHONPATH` 移除，模块进程不会加载），记录每个 fork 出的 worker 的"
        "峰值 RSS（`getrusage`）。fork 出的 worker 的 RSS 包含与 `ansible-playbook` 共享的页，"
        "请与不运行模块的 `debug` 行比较。",
        "",
        "## 机器",
        "",
        machine_table(results, ZH),
        "",
        "## 1. 单次权重变更",
        "",
        "把一个 VirtualService 的流量按 10%→20%… 移到 v2：本集合的 `traffic_split`（读取 VirtualService 与 "
        "DestinationRule、检查 subset、一次带 `test` 校验的 JSON Patch）对比 `kubernetes.core.k8s_json_patch` 与 "
        "`kubernetes.core.k8s`。本集合分两行：默认方式（控制端 worker 内，无模块进程）与模块进程方式"
        "（`CANARY_ISTIO_IN_PROCESS=0`）；pipelining 行也以模块进程方式运行。",
        "",
        one_change_table(results, ZH),
        "",
        f"在控制端 worker 内，本模块任务耗时 {f['in_task']} 秒，模块进程方式为 {f['module_task']} 秒"
        f"（逐对计算为其 {f['in_share']}%）。内存：没有模块进程；worker 峰值 RSS 为 {f['in_worker_rss']} MiB，"
        f"`debug` 任务的 worker 为 {f['debug_worker_rss']} MiB，即在 worker 内运行模块约增加 {f['worker_added']} MiB，"
        f"而模块进程方式要启动一个 {f['module_rss']} MiB 的进程。",
        "",
        _path_note(results, ZH, ("one",)),
        "",
        "## 2. 一步切换多个服务",
        "",
        "N 个 VirtualService 切到相同权重：一个带 `services:` 的 `traffic_split` 任务（两种方式各一行）对比一个带 "
        "`loop:` 的 `k8s_json_patch` 任务；「循环 / 本行」为循环任务耗时除以该行任务耗时（逐对计算）。",
        "",
        many_table(results, ZH),
        "",
        _path_note(results, ZH, ("many",)),
        "",
        "## 3. 每个操作的 API 请求数",
        "",
        "直接运行模块文件（即模块进程方式）测得；进程内方式以相同参数调用同一个 `execute` 函数，请求相同"
        "（第 1、2 节对两种方式都从审计日志计数）。",
        "",
        modules_table(results, ZH),
        "",
        "## 4. 模块时间花在哪里",
        "",
        profile_table(results, ZH),
        "",
        "表中各阶段为模块进程方式（`CANARY_ISTIO_IN_PROCESS=0`）；最后两行是第 1 节的任务耗时，默认方式不付出"
        "上面任何进程阶段的开销。",
        "",
        "为此做了什么：",
        "",
        f"- **进程内 action 插件**：本地连接（无 become、无任务 `environment:`、非 async）时，action 插件按模块自身的"
        f"参数规范校验参数，并在控制端任务 worker 内调用模块的 `execute` 函数：没有解释器启动、AnsiballZ、"
        f"`/bin/sh`，也不必从 zip 编译 `module_utils`。任务耗时 {f['in_task']} 秒"
        f"（模块进程方式 {f['module_task']} 秒），"
        f"为 `k8s_json_patch` 的 {f['in_ratio']} 倍；一个任务切换 100 个服务 {f['many_in']} 秒（模块进程方式 "
        f"{f['many_module']} 秒）。`CANARY_ISTIO_IN_PROCESS=0` 可关闭；两种方式运行同一套代码、返回相同结果。",
        f"- **TLS 上下文只信任集群 CA**：kubeconfig 指定了 CA 时，用 `ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)` "
        f"只加载该 CA"
        f"（与 kubectl 一致），不再由 `ssl.create_default_context()` 先加载系统全部 CA：现为 {f['tls']} 毫秒，"
        f"同一次测量中加载系统 CA 的上下文为 {f['system_ca']} 毫秒。",
        f"- **常规路径不导入 `kubernetes` 包**：用标准库在一个长连接上访问 API；kubernetes.core 每个任务为导入该包及其"
        f"动态客户端花费约 {f['kube_import']} 毫秒。仅当 kubeconfig 使用 exec 插件或 auth provider 时才导入。",
        f"- **服务端提供 `networking.istio.io/v1` 时零发现请求**：先直接尝试该版本，只有该类型返回 404 时才对该组做一次"
        f"发现请求（第 3 节：Istio 模块全部操作共 {f['istio_discovery']} 个发现请求；应用任意类型的 `manifest` 为 "
        f"{f['manifest_discovery']} 个，每个所需 API 组一个）。",
        "- 安全变更所需的最少读写：两次 GET 加一次带校验的 PATCH；多个服务在一个任务里完成（lockstep）。",
        "",
        "剩余开销：",
        "",
        f"- **默认方式**：每个任务 {f['in_task_ms']} 毫秒，其中 Ansible 自身的每任务开销（fork worker、模板、回调）"
        f"按 `debug` 行约 {f['debug_task_ms']} 毫秒；其余为把模块导入新 worker、校验参数、"
        f"读取 kubeconfig（{f['kubeconfig']} 毫秒，PyYAML 已导入）、"
        f"TLS 上下文（{f['tls']} 毫秒）、首个请求含 TLS 握手（{f['first_request']} 毫秒）及后续每个请求"
        f"（{f['further_request']} 毫秒）。",
        f"- **模块进程方式**：Ansible 自身每个任务约 {f['around']} 秒，加上解释器启动与 Ansible 自己的 module_utils，"
        f"固定开销约 {f['floor']} 秒（k8s_json_patch 任务中位数的一半为 {f['half']} 秒），此方式的比值为 "
        f"{f['module_ratio']} 倍，{f['module_verdict_zh']}；每次从 AnsiballZ zip 编译集合源码约 {f['compile']} 毫秒。",
        "",
        "## 5. 实验环境路由器",
        "",
        router_section(results, ZH),
        "",
    ]
    return "\n".join(parts)


def console(results: dict[str, Any]) -> str:
    """The table printed at the end of ``make bench``."""
    lines = ["", "canary.istio benchmark — medians", ""]
    if results.get("one_change"):
        lines += ["One weight change", one_change_table(results, EN), ""]
    if results.get("many"):
        lines += ["Many services", many_table(results, EN), ""]
    if results.get("router"):
        lines += ["Router", router_section(results, EN), ""]
    if results.get("one_change") or results.get("many"):
        lines += [_path_note(results, EN), ""]
    lines += ["Targets", targets_table(results, EN), ""]
    return "\n".join(lines)
