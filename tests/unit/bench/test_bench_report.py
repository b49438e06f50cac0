"""bench/report.py and its two templates: the English and Chinese performance pages show the same figures."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import report

pytestmark = pytest.mark.unit

RESULTS = Path(__file__).parent / "data" / "bench-results.json"
NUMBER = re.compile(r"\d+(?:\.\d+)*")


def _results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def _figures(text: str) -> set[str]:
    """Numbers a page shows that its templates do not write themselves (those come from the results)."""
    static = set()
    for name in report.TEMPLATE_FILES.values():
        static |= set(NUMBER.findall((report.TEMPLATES / name).read_text()))
    return set(NUMBER.findall(text)) - static


def _variants() -> dict[str, dict[str, Any]]:
    full = _results()
    skipped = copy.deepcopy(full)
    skipped["router"] = {"skipped": "no data plane in 9.87 s"}
    skipped["one_change"]["path_problems"] = ["k8s ran 17 module processes"]
    no_module = copy.deepcopy(full)
    del no_module["one_change"][report.MODULE], no_module["router"]
    del no_module["one_change"]["ratios"]["task_module_process_over_k8s_json_patch"]
    no_scale = copy.deepcopy(full)
    del no_scale["scale"]
    no_waves = copy.deepcopy(full)
    no_waves["waves"] = {"skipped": "three clusters did not start", "date": full["date"], "load": "9.99 / 9.99"}
    return {"full": full, "router skipped, wrong path": skipped, "no module-process row, no router": no_module,
            "no lockstep scale section": no_scale, "waves not measured": no_waves}


@pytest.mark.parametrize("variant", list(_variants()))
def test_both_languages_show_the_same_figures(variant):
    results = _variants()[variant]
    english = _figures(report.render(copy.deepcopy(results), report.EN))
    chinese = _figures(report.render(copy.deepcopy(results), report.ZH))
    assert english == chinese, {"only in English": sorted(english - chinese),
                                "only in Chinese": sorted(chinese - english)}


def test_the_figures_come_from_the_results():
    # A figure the results hold shows up in both pages (the test above would pass on two empty pages).
    results = _results()
    one = results["one_change"]
    figures = {f"{one['traffic_split']['median']['task_s']:.3f}",
               f"{results['router']['added']['one hop']['p50_ms']:.3f}",
               f"{results['profile']['phases_ms']['ours.tls_context']:.1f}", results["machine"]["kernel"],
               f"{results['rule_reads']['list_ms']:.1f}", f"{results['rule_reads']['table_ms']:.1f}"}
    for lang in (report.EN, report.ZH):
        page = report.render(copy.deepcopy(results), lang)
        assert all(figure in page for figure in figures), (lang, figures)


def test_a_figure_changed_in_the_results_changes_in_both_pages():
    results = _results()
    results["one_change"]["traffic_split"]["median"]["task_s"] = 0.0123
    for lang in (report.EN, report.ZH):
        assert "0.012" in report.render(copy.deepcopy(results), lang)


def test_console_table_is_the_english_tables():
    results = _results()
    text = report.console(copy.deepcopy(results))
    page = report.render(copy.deepcopy(results), report.EN)
    tables = [block.strip() for block in re.findall(r"(?:^\|.*\n?)+", text, re.MULTILINE)]
    assert len(tables) >= 5 and all(block in page for block in tables)


def test_the_committed_pages_show_the_same_figures():
    # docs/performance*.md are written by `make bench`; a hand edit of one language shows up here.
    docs = report.TEMPLATES.parents[1] / "docs"
    english = _figures((docs / "performance.md").read_text())
    chinese = _figures((docs / "performance.zh-CN.md").read_text())
    assert english == chinese, {"only in English": sorted(english - chinese),
                                "only in Chinese": sorted(chinese - english)}


def test_the_lockstep_scale_section_shows_its_figures_in_both_pages():
    results = _results()
    thousand = results["scale"]["sizes"]["1000"]["median"]
    largest = results["scale"]["sizes"]["5000"]["median"]
    rounds = [run["task_s"] for run in results["scale"]["sizes"]["1000"]["runs"]]
    figures = {f"{thousand['task_s']:.2f}", f"{thousand['peak_rss_mib']:.1f}", f"{largest['per_service_ms']:.2f}",
               f"{thousand['requests']:.0f}", results["scale"]["load"], f"{min(rounds):.2f}\u2013{max(rounds):.2f}"}
    for lang in (report.EN, report.ZH):
        page = report.render(copy.deepcopy(results), lang)
        assert all(figure in page for figure in figures), (lang, figures - {f for f in figures if f in page})
    target = next(t for t in report.targets(results) if t["id"] == "scale")
    assert target["met"] is (thousand["task_s"] <= 5)


def test_a_partial_run_prints_its_table():
    results = _results()
    partial = {key: results[key] for key in ("date", "settings", "machine", "scale")}
    text = report.console(partial)
    assert "Thousands of services in one step" in text and "| 5,000 |" in text


def test_the_waves_section_shows_its_figures_in_both_pages():
    results = _results()
    plans = results["waves"]["plans"]
    waves, serial = plans["waves"]["median"], plans["one after another"]["median"]
    figures = {f"{waves['wall_s']:.1f}", f"{serial['wall_s']:.1f}", f"{waves['slowest_cluster_s']:.1f}",
               f"{serial['sum_clusters_s']:.1f}", f"{results['waves']['wall_ratio']:.2f}", results["waves"]["load"]}
    for lang in (report.EN, report.ZH):
        page = report.render(copy.deepcopy(results), lang)
        assert all(figure in page for figure in figures), (lang, figures - {f for f in figures if f in page})
        assert "| [1, 2, 2] |" in page and "| [1, 2, 3] |" in page
    text = report.console({key: results[key] for key in ("date", "settings", "machine", "waves")})
    assert "Three clusters: waves against one after another" in text and f"{waves['wall_s']:.1f}" in text
    skipped = _variants()["waves not measured"]
    assert "--only waves" in report.render(skipped, report.EN) and "--only waves" in report.render(skipped, report.ZH)


def test_httproute_rows_show_in_the_one_change_table_of_both_pages():
    # bench/changes.py one_change: the same step on an HTTPRoute (issue 24), in the same runs.
    results = _results()
    one = results["one_change"]
    one["traffic_split HTTPRoute"] = copy.deepcopy(one["traffic_split"])
    one["traffic_split HTTPRoute"]["median"]["task_s"] = 0.0456
    one["k8s HTTPRoute"] = copy.deepcopy(one["k8s"])
    one["k8s HTTPRoute"]["median"]["task_s"] = 0.7891
    rows = {row["id"]: row for row in report.one_change_rows(results)}
    assert rows["traffic_split HTTPRoute"]["in_worker"] and not rows["k8s HTTPRoute"]["in_worker"]
    for lang, labels in ((report.EN, ("on an HTTPRoute", "(whole HTTPRoute)")),
                         (report.ZH, ("作用于 HTTPRoute", "整个 HTTPRoute"))):
        page = report.render(copy.deepcopy(results), lang)
        lines = [line for line in page.splitlines() if "HTTPRoute" in line and line.startswith("|")]
        assert any(labels[0] in line and "| 0.046 |" in line for line in lines), (lang, lines)
        assert any(labels[1] in line and "| 0.789 |" in line for line in lines), (lang, lines)
