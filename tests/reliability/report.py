# ruff: noqa: RUF001 - the Chinese text uses full-width punctuation on purpose
"""Regenerates docs/reliability.md and docs/reliability.zh-CN.md from a real run of the tests.

    .venv/bin/python -m tests.reliability.report      (or: make reliability-report)

Runs the fault, bad-input, least-privilege, secret and concurrency tests against the lab, reads
their outcomes from pytest's JUnit XML, counts the API requests of each operation from the lab's
audit log, and writes the figures into both documents. Nothing in the documents is typed by hand
except the promises themselves.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lab.audit import AuditWindow
from lab.controlplane import Lab
from lab.kube import KubeClient
from tests.helpers.ansible import lab_auth, run_module
from tests.helpers.collection import REPO_ROOT, ensure_collection_path

# The pure-logic tests of what routes and releases accept: the files of tests/unit/logic before the unit
# tests mirrored the source tree. Named one by one, so that suite_of finds their cases (the directory never
# matched a case's file) and the analysis and release tests now beside them stay out of this suite.
LOGIC_INPUT_TESTS = ("destinations", "errors", "header_routes", "hosts", "httproutes", "invariant", "matches",
                     "patches", "release_run", "resilience", "resources", "routes", "state", "subsets", "weights")

SUITES = {
    "faults": ["tests/reliability/test_faults.py", "tests/integration/test_slow_apiserver.py"],
    "bad input": ["tests/integration/test_bad_input.py", "tests/reliability/test_role_inputs.py",
                  *(f"tests/unit/plugins/module_utils/_logic/test_{name}.py" for name in LOGIC_INPUT_TESTS),
                  "tests/unit/plugins/filter/test_filters.py", "tests/unit/plugins/module_utils/test_probe.py"],
    "least privilege": ["tests/integration/test_least_privilege.py"],
    "secrets and TLS": ["tests/integration/test_collection.py", "tests/reliability/test_secrets.py"],
    "concurrency": ["tests/integration/test_release_lock.py", "tests/integration/test_traffic_modules.py",
                    "tests/reliability/test_concurrency.py"],
}


def run_suites(junit: Path) -> list[dict[str, Any]]:
    files = sorted({f for files in SUITES.values() for f in files})
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *files],
                   cwd=REPO_ROOT, check=False)
    cases = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        path = case.get("classname", "").replace(".", "/") + ".py"
        cases.append({"file": path, "name": case.get("name", ""), "outcome": outcome,
                      "seconds": float(case.get("time", 0))})
    return cases


def count_requests() -> list[tuple[str, int, str]]:
    """API requests per operation, counted from the audit log of a fresh lab."""
    lab = Lab(REPO_ROOT / "build" / "reliability-lab")
    state = lab.up()
    try:
        kube = KubeClient.from_state(state)
        namespace = f"req-{uuid.uuid4().hex[:6]}"
        kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
        auth = {**lab_auth(state), "namespace": namespace}
        rule = {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}
        route = [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 100}]
        operations: list[tuple[str, str, dict[str, Any]]] = [
            ("destination_rule: create", "destination_rule", {"name": "reviews", "spec": rule}),
            ("virtual_service: create", "virtual_service", {"name": "reviews", "spec": {
                "hosts": ["reviews"], "http": [{"name": "primary", "route": route}]}}),
            ("destination_rule: add subset v2", "destination_rule", {
                "name": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}),
            ("traffic_split: 30% to v2", "traffic_split", {"name": "reviews", "weights": {"v1": 70, "v2": 30}}),
            ("traffic_split: same again (no change)", "traffic_split", {"name": "reviews",
                                                                        "weights": {"v1": 70, "v2": 30}}),
            ("traffic_split: refused (unknown subset)", "traffic_split", {
                "name": "reviews", "weights": {"v1": 70, "v2": 0, "v9": 30}}),
            ("header_route: add tester route", "header_route", {"name": "reviews", "route": "testers",
                                                                "headers": {"end-user": "jason"}, "subset": "v2"}),
            ("canary_info", "canary_info", {"name": "reviews"}),
            ("release_lock: take", "release_lock", {"name": "canary-reviews", "holder": "report"}),
            ("release_lock: release", "release_lock", {"name": "canary-reviews", "holder": "report",
                                                       "state": "absent"}),
        ]
        counted = []
        for label, module, args in operations:
            window = AuditWindow(state)
            result = run_module(module, {**auth, **args})
            events = window.requests(user="lab:admin")
            verbs = ", ".join(f"{e['verb']} {e.get('objectRef', {}).get('resource', e['requestURI'])}" for e in events)
            counted.append((label + (" - failed as expected" if result.get("failed") else ""), len(events), verbs))
        return counted
    finally:
        lab.down(quiet=True)


def suite_of(case: dict[str, Any]) -> str:
    for suite, files in SUITES.items():
        if case["file"] in files:
            if suite == "concurrency" and case["file"].endswith("test_traffic_modules.py") and \
                    not any(word in case["name"] for word in ("concurrent", "lockstep")):
                return ""
            if suite == "secrets and TLS" and case["file"].endswith("test_collection.py") and \
                    not any(w in case["name"] for w in ("secret", "tls", "certificate")):
                return ""
            return suite
    return ""


def write_docs(cases: list[dict[str, Any]], requests: list[tuple[str, int, str]]) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        suite = suite_of(case)
        if suite:
            by_suite.setdefault(suite, []).append(case)
    bad_rows = sum(1 for c in cases if c["file"] in ("tests/integration/test_bad_input.py",
                                                     "tests/reliability/test_role_inputs.py")
                   and c["name"].startswith("test_bad"))
    faults = [c for c in by_suite.get("faults", []) if "crash" in c["name"] or "slow" in c["name"]]

    def table(rows: list[dict[str, Any]]) -> list[str]:
        lines = ["| test | outcome | seconds |", "| --- | --- | --- |"]
        lines += [f"| `{c['file']}::{c['name']}` | {c['outcome']} | {c['seconds']:.1f} |" for c in rows]
        return lines

    summary = []
    for suite in SUITES:
        rows = by_suite.get(suite, [])
        passed = sum(1 for c in rows if c["outcome"] == "passed")
        summary.append((suite, passed, len(rows)))
    totals = {"faults_survived": sum(1 for c in faults if c["outcome"] == "passed"), "faults": len(faults),
              "bad_rows": bad_rows}
    for language in ("en", "zh-CN"):
        path = REPO_ROOT / "docs" / ("reliability.md" if language == "en" else "reliability.zh-CN.md")
        path.write_text("\n".join(render(language, stamp, summary, totals, by_suite, requests, table)) + "\n")
        print(f"wrote {path}")


PROMISES = {
    "en": [
        "Every version of a VirtualService the API server stores while we run routes only to subsets that exist, "
        "with integer weights 0..100 summing to 100 (make before break).",
        "We change only what we own: other routes, fields, subsets, labels and annotations stay as they were.",
        "Bad input is refused before any write, with a message naming the value and the rule; never a traceback.",
        "A concurrent edit is never lost: writes are guarded and re-read on conflict; two canary runs on one "
        "service never interleave (a Lease).",
        "A crash of the API server or etcd mid-run ends the run with a clear message, leaves a valid state, and "
        "re-running the same playbook finishes the job. A slow API server ends a task after `request_timeout`.",
        "Least privilege: `rbac/` Roles are enough for each feature; a missing permission names the verb and "
        "resource to grant.",
        "Secrets (tokens, keys) never appear in output at any verbosity, in diffs, annotations or messages; TLS "
        "is verified by default.",
    ],
    "zh-CN": [
        "运行期间 API server 存储的每个 VirtualService 版本都只路由到已存在的子集，且权重为 0..100 的整数、总和为 100"
        "（先建后拆）。",
        "只修改我们负责的部分：其他路由、字段、子集、标签和注解保持不变。",
        "错误输入在任何写操作之前就被拒绝，错误信息会指出具体的值和规则；绝不输出 Python 回溯。",
        "并发修改不会丢失：写操作带有校验，冲突时重新读取；同一服务的两次灰度发布不会交错进行（Lease 锁）。",
        "运行中 API server 或 etcd 崩溃时，运行以明确的信息结束，集群保持有效状态，重新运行同一 playbook 即可完成；"
        "API server 响应过慢时任务在 `request_timeout` 后结束。",
        "最小权限：`rbac/` 中的 Role 足以完成各项功能；缺少权限时错误信息会指出需要授予的动词和资源。",
        "密钥（token、私钥）在任何详细级别的输出、diff、注解或错误信息中都不会出现；默认校验 TLS。",
    ],
}

TEXT = {
    "en": {"title": "# Reliability and security", "other": "中文版：[reliability.zh-CN.md](reliability.zh-CN.md)",
           "generated": "Figures below were measured on {stamp} by `make reliability-report` "
                        "(`python -m tests.reliability.report`), which runs the tests against the lab and "
                        "rewrites this page.",
           "promised": "## What is promised", "figures": "## Figures",
           "suite": "| area | tests passed |",
           "faults": "- Faults survived: **{faults_survived} of {faults}** (crashes of the API server and etcd "
                     "mid-canary, a slow API server).",
           "rows": "- Bad inputs tried against modules and roles (table rows): **{bad_rows}**, plus property-based "
                   "tests of the weight and patch logic (hypothesis) over arbitrary VirtualService specs.",
           "requests": "## API requests per operation",
           "requests_note": "Counted from the lab API server's audit log; each operation run once as a module.",
           "req_head": "| operation | requests | which |", "details": "## Every test"},
    "zh-CN": {"title": "# 可靠性与安全", "other": "English: [reliability.md](reliability.md)",
              "generated": "以下数据于 {stamp} 由 `make reliability-report`（`python -m tests.reliability.report`）"
                           "测得：该命令在实验环境中运行测试并重新生成本页。",
              "promised": "## 承诺", "figures": "## 数据", "suite": "| 方面 | 通过的测试 |",
              "faults": "- 经受住的故障：**{faults_survived} / {faults}**（灰度过程中 API server 与 etcd 崩溃、"
                        "API server 响应缓慢）。",
              "rows": "- 针对模块和角色尝试的错误输入（表格行数）：**{bad_rows}**；另有基于属性的测试（hypothesis）"
                      "对任意 VirtualService spec 检验权重与补丁逻辑。",
              "requests": "## 每个操作的 API 请求数",
              "requests_note": "根据实验环境 API server 的审计日志统计；每个操作以模块方式运行一次。",
              "req_head": "| 操作 | 请求数 | 请求 |", "details": "## 全部测试"},
}


AREA_NAMES = {
    "zh-CN": {"faults": "故障", "bad input": "错误输入", "least privilege": "最小权限",
              "secrets and TLS": "密钥与 TLS", "concurrency": "并发"},
}


def render(language, stamp, summary, totals, by_suite, requests, table) -> list[str]:
    text = TEXT[language]
    names = AREA_NAMES.get(language, {})
    lines = [text["title"], "", text["other"], "", text["generated"].format(stamp=stamp), "", text["promised"], ""]
    lines += [f"{i}. {promise}" for i, promise in enumerate(PROMISES[language], 1)]
    lines += ["", text["figures"], "", text["faults"].format(**totals), text["rows"].format(**totals), "",
              text["suite"], "| --- | --- |"]
    lines += [f"| {names.get(suite, suite)} | {passed} / {total} |" for suite, passed, total in summary]
    lines += ["", text["requests"], "", text["requests_note"], "", text["req_head"], "| --- | --- | --- |"]
    lines += [f"| {label} | {count} | {verbs} |" for label, count, verbs in requests]
    lines += ["", text["details"], ""]
    for suite in SUITES:
        lines += [f"### {suite}", "", *table(by_suite.get(suite, [])), ""]
    return lines


def main() -> int:
    ensure_collection_path()
    junit = REPO_ROOT / "build" / "reliability-junit.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    cases = run_suites(junit)
    requests = count_requests()
    write_docs(cases, requests)
    failed = [c for c in cases if c["outcome"] != "passed"]
    for case in failed:
        print(f"NOT PASSED: {case['file']}::{case['name']} ({case['outcome']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
