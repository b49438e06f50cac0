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

def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    one = results.get("one_change")
    if one:
        ratio = one["ratios"]["task_traffic_split_over_k8s_json_patch"]["median"]
        out.append({"id": "one", "en": "One change: our task time ≤ 0.5× k8s_json_patch's",
                    "zh": "单次变更：任务耗时 ≤ k8s_json_patch 的 0.5 倍",
                    "measured": f"{s(ratio)}×", "met": ratio <= 0.5})
    many = results.get("many", {}).get("100")
    if many:
        task = many["traffic_split"]["median"]["task_s"]
        ratio = many["ratios"]["task_loop_over_traffic_split"]["median"]
        out.append({"id": "many-time", "en": "100 services in one task: ≤ 3 s",
                    "zh": "一个任务切换 100 个服务：≤ 3 秒", "measured": f"{s(task)} s", "met": task <= 3})
        out.append({"id": "many-ratio", "en": "100 services: ≥ 25× faster than the kubernetes.core loop",
                    "zh": "100 个服务：比 kubernetes.core 循环快 ≥ 25 倍", "measured": f"{s(ratio, 1)}×",
                    "met": ratio >= 25})
    per_vs = []
    if one:
        per_vs.append(one["traffic_split"]["median"]["requests"])
    for size, item in results.get("many", {}).items():
        per_vs.append(item["traffic_split"]["median"]["requests"] / int(size))
    if per_vs:
        worst = max(per_vs)
        out.append({"id": "requests", "en": "≤ 3 API requests per VirtualService change",
                    "zh": "每个 VirtualService 变更 ≤ 3 个 API 请求", "measured": s(worst, 1),
                    "met": worst <= 3})
    modules = results.get("modules") or []
    if modules:
        worst_group = max((max(row.get("discovery_groups", {}).values(), default=0) for row in modules), default=0)
        for item in [one] if one else []:
            for name in ("traffic_split",):
                worst_group = max(worst_group, max((r["requests"].get("discovery_max_per_group", 0)
                                                    for r in item[name]["runs"]), default=0))
        out.append({"id": "discovery", "en": "No discovery beyond one request per API group (our modules)",
                    "zh": "发现请求每个 API 组不超过一个（本集合的模块）",
                    "measured": _t(EN, f"max {worst_group} per group", ""), "measured_zh": f"每组最多 {worst_group} 个",
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

def one_change_table(results: dict[str, Any], lang: str) -> str:
    one = results["one_change"]
    header = [_t(lang, "task", "任务"), _t(lang, "task time (s)", "任务耗时（秒）"),
              _t(lang, "playbook wall (s)", "playbook 总耗时（秒）"),
              _t(lang, "module process (s)", "模块进程（秒）"),
              _t(lang, "Ansible around it (s)", "Ansible 自身开销（秒）"),
              _t(lang, "module peak RSS (MiB)", "模块峰值内存（MiB）"),
              _t(lang, "API requests warm (cold)", "API 请求 热（冷）"),
              _t(lang, "task time / k8s_json_patch", "任务耗时 / k8s_json_patch")]
    rows = []
    base_runs = one["k8s_json_patch"]["runs"]
    for name, label in (("debug", "ansible.builtin.debug"), ("traffic_split", "canary.istio.traffic_split"),
                        ("k8s_json_patch", "kubernetes.core.k8s_json_patch"),
                        ("k8s", _t(lang, "kubernetes.core.k8s (whole VirtualService)",
                                   "kubernetes.core.k8s（整个 VirtualService）")),
                        ("traffic_split pipelining", _t(lang, "canary.istio.traffic_split, pipelining on",
                                                        "canary.istio.traffic_split，开启 pipelining")),
                        ("k8s_json_patch pipelining", _t(lang, "kubernetes.core.k8s_json_patch, pipelining on",
                                                         "kubernetes.core.k8s_json_patch，开启 pipelining"))):
        item = one.get(name)
        if not item:
            continue
        med = item["median"]
        cold = item["cold"]["requests"]["total"] if item.get("cold") else None
        around = median([r["task_s"] - r["module_s"] for r in item["runs"]]) if med["module_s"] else None
        base = one["k8s_json_patch pipelining"]["runs"] if "pipelining" in name else base_runs
        ratio = median([a["task_s"] / b["task_s"] for a, b in zip(item["runs"], base, strict=True)])
        rows.append([label, s(med["task_s"]), s(med["wall_s"]), s(med["module_s"]) if med["module_s"] else "–",
                     s(around), s(med["peak_rss_mb"], 1) if med["peak_rss_mb"] else "–",
                     f"{med['requests']:.0f} ({cold})", f"{ratio:.2f}×"])
    return table(header, rows)


def many_table(results: dict[str, Any], lang: str) -> str:
    header = [_t(lang, "services", "服务数"), _t(lang, "runs", "轮数"),
              _t(lang, "traffic_split task (s)", "traffic_split 任务（秒）"),
              _t(lang, "k8s_json_patch loop task (s)", "k8s_json_patch 循环任务（秒）"),
              _t(lang, "loop / ours (task, pair by pair)", "循环 / 本模块（任务，逐对）"),
              _t(lang, "playbook wall ours / loop (s)", "playbook 总耗时 本模块 / 循环（秒）"),
              _t(lang, "requests ours / loop (warm)", "请求数 本模块 / 循环（热）"),
              _t(lang, "module peak RSS ours / loop (MiB)", "模块峰值内存 本模块 / 循环（MiB）")]
    rows = []
    for size, item in results["many"].items():
        ours, loop = item["traffic_split"]["median"], item["k8s_json_patch_loop"]["median"]
        rows.append([size, str(len(item["traffic_split"]["runs"])), s(ours["task_s"]), s(loop["task_s"]),
                     f"{s(item['ratios']['task_loop_over_traffic_split']['median'], 1)}×",
                     f"{s(ours['wall_s'])} / {s(loop['wall_s'])}",
                     f"{ours['requests']:.0f} / {loop['requests']:.0f}",
                     f"{s(ours['peak_rss_mb'], 1)} / {s(loop['peak_rss_mb'], 1)}"])
    return table(header, rows)


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
        [_t(lang, "kubeconfig → settings", "读取 kubeconfig"), s(ph.get("ours.kubeconfig"), 1),
         s(ph.get("kubernetes.kubeconfig"), 1)],
        [_t(lang, "TLS context", "TLS 上下文"), s(ph.get("ours.tls_context"), 1), _t(lang, "(in first request)",
                                                                                   "（含在首个请求中）")],
        [_t(lang, "first request (connect, TLS handshake, GET)", "首个请求（连接、TLS 握手、GET）"),
         s(ph.get("ours.first_request"), 1), s(ph.get("kubernetes.first_request"), 1)],
        [_t(lang, "each further request on the kept-alive connection", "长连接上的后续每个请求"),
         s(ph.get("ours.second_request"), 1), s(ph.get("kubernetes.second_request"), 1)],
        [_t(lang, "**module process, whole (AnsiballZ file run directly, median)**",
            "**模块进程总计（直接运行 AnsiballZ 文件，中位数）**"),
         s(ours.get("process_s", 0) * 1000, 0), s(theirs.get("process_s", 0) * 1000, 0)],
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


def _findings(results: dict[str, Any]) -> dict[str, str]:
    prof = results.get("profile") or {}
    one = results.get("one_change") or {}
    around = ""
    if one:
        around = s(median([r["task_s"] - r["module_s"] for r in one["traffic_split"]["runs"]]))
    floor = None
    if one and prof:
        loader = _top(prof["modules"].get("traffic_split", {}), "ansible.module_utils._internal._ansiballz._loader")
        floor = median([r["task_s"] - r["module_s"] for r in one["traffic_split"]["runs"]]) \
            + prof.get("interpreter_start_s", 0) + (loader or 0) / 1000
    theirs = median([r["task_s"] for r in one["k8s_json_patch"]["runs"]]) if one else None
    return {"floor": s(floor), "theirs": s(theirs), "half": s(theirs / 2 if theirs else None),
            "tls": s(prof.get("phases_ms", {}).get("ours.tls_context"), 0),
            "around": around,
            "compile": s(prof.get("compile_total_ms"), 0),
            "kube_import": s(prof.get("phases_ms", {}).get("kubernetes.import_kubernetes"), 0),
            "process": s((prof.get("modules", {}).get("traffic_split", {}).get("process_s") or 0) * 1000, 0),
            "start": s((prof.get("interpreter_start_s") or 0) * 1000, 0)}


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
        "- **Module process**: Ansible runs modules through an interpreter wrapper that records, with GNU "
        "`time`, the peak RSS and wall time of the module process itself (not of `ansible-playbook`). "
        "\"Ansible around it\" is task time minus module-process time: temp dir, transfer, fork/exec, result "
        "handling.",
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
        "subset check) and `kubernetes.core.k8s` applying the whole templated VirtualService.",
        "",
        one_change_table(results, EN),
        "",
        "## 2. Many services in one step",
        "",
        "N VirtualServices moved to the same weights: one `traffic_split` task with `services:` (lockstep: all "
        "read and validated before the first write, put back if a later write fails) against a "
        "`k8s_json_patch` task with `loop:` over the N names.",
        "",
        many_table(results, EN),
        "",
        "## 3. API requests per operation",
        "",
        "From the audit log. Our modules were run once per operation as the module file (what Ansible runs "
        "after transferring it; the requests are the same as under `ansible-playbook`), in this order, on one "
        "namespace. \"discovery\" counts GETs of `/api`, `/apis`, `/apis/<group>[/<version>]`. Lockstep per "
        "service: see section 2 (requests ÷ N).",
        "",
        modules_table(results, EN),
        "",
        "## 4. Where the module's time goes",
        "",
        "The AnsiballZ file Ansible wrote for a real task (kept with `ANSIBLE_KEEP_REMOTE_FILES`) run again "
        "directly, and a driver (`bench/phase_driver.py`) timing the connection steps in a fresh process.",
        "",
        profile_table(results, EN),
        "",
        "What was done about it (in the collection's design, measured here):",
        "",
        f"- No `kubernetes` package: the modules talk to the API with the standard library on one kept-alive "
        f"TLS connection (`module_utils/_client.py`). Importing `kubernetes` and its dynamic client costs "
        f"kubernetes.core {f['kube_import']} ms per task before the first request; ours pays nothing for it "
        "(the package is imported only for kubeconfig users with exec plugins or auth providers).",
        "- No discovery: `networking.istio.io/v1` is tried first, and only a 404 for the type triggers one "
        "discovery request for the group (section 3: 0 discovery requests in every operation).",
        "- Reads and writes are the minimum for a safe change: GET VirtualService, GET DestinationRule (the "
        "subset check), one guarded PATCH; a no-op re-run makes the two GETs only.",
        "- Lockstep: N services in one module process, so the per-task cost (interpreter, imports, Ansible's "
        "own per-task work) is paid once, not N times.",
        "",
        "What is left, and where it goes:",
        "",
        f"- **Ansible around the module** — about {f['around']} s of every task (temp dir, AnsiballZ build "
        f"and transfer, `/bin/sh` and exec, result parsing); with `connection: local`, pipelining makes no "
        f"clear difference (section 1). Our whole module process is about {f['process']} ms, of which the "
        f"interpreter start is {f['start']} ms and Ansible's own `module_utils` (compiled from the AnsiballZ "
        "zip on every run) the largest part. Together these fixed costs, which no module code can remove, are "
        f"about {f['floor']} s per task, against {f['half']} s for half of `k8s_json_patch`'s median task "
        f"({f['theirs']} s): the 0.5× target for one change is at the edge of what a module run through "
        "AnsiballZ can reach, and is met or missed with the machine's load, which slows kubernetes.core's "
        "heavier imports more than ours.",
        f"- **TLS context** — {f['tls']} ms per run: `ssl.create_default_context()` loads the system's whole "
        "CA bundle before the kubeconfig's own CA is added. When the kubeconfig names a CA, a bare "
        "`ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)` with only that CA loads in well under 1 ms and trusts "
        "exactly what kubectl trusts.",
        f"- **Compiling our sources** — {f['compile']} ms per run: AnsiballZ imports from a zip, where Python "
        "keeps no `.pyc`, so every `module_utils` file a module imports is compiled on every task; "
        "`_canary.py` (about 1,100 lines) is the largest.",
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
        "make bench                      # everything, about 8-12 minutes",
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
        "- 任务耗时取自 `ansible.posix.json` 回调的 `duration.start/end`；模块进程的峰值内存与耗时由解释器"
        "包装脚本（GNU time）记录。",
        "",
        "## 机器",
        "",
        machine_table(results, ZH),
        "",
        "## 1. 单次权重变更",
        "",
        one_change_table(results, ZH),
        "",
        "## 2. 一步切换多个服务",
        "",
        many_table(results, ZH),
        "",
        "## 3. 每个操作的 API 请求数",
        "",
        modules_table(results, ZH),
        "",
        "## 4. 模块时间花在哪里",
        "",
        profile_table(results, ZH),
        "",
        f"- 不导入 `kubernetes` 包（kubernetes.core 每个任务为此花费约 {f['kube_import']} 毫秒），不做发现请求，"
        "一个长连接完成全部请求；多个服务在一个模块进程里完成。",
        f"- 剩余开销：Ansible 自身每个任务约 {f['around']} 秒，加上解释器启动与 Ansible 自己的 module_utils，"
        f"固定开销约 {f['floor']} 秒（k8s_json_patch 任务中位数的一半为 {f['half']} 秒），因此 0.5 倍目标处于"
        "AnsiballZ 方式运行模块所能达到的边缘；"
        f"TLS 上下文 {f['tls']} 毫秒（加载了系统全部 CA，"
        f"kubeconfig 已指定 CA 时可省去）；每次从 AnsiballZ zip 编译集合源码约 {f['compile']} 毫秒。",
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
    lines += ["Targets", targets_table(results, EN), ""]
    return "\n".join(lines)
