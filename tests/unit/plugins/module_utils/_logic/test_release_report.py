# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The release report's pure parts: weights from the history, the range queries, series from Prometheus' matrix
answers."""

from __future__ import annotations

import re
from datetime import UTC

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic import report as _report
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import AnalysisTarget

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0


def stamp(seconds: float) -> str:
    from datetime import datetime
    return datetime.fromtimestamp(T0 + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_weights_follow_the_traffic_steps_and_pass_analysis_entries_by():
    history = [{"time": stamp(-100), "from": {"v1": 100}, "to": {"v1": 100}},
               {"time": stamp(10), "from": {"v1": 100}, "to": {"v1": 90, "v2": 10}},
               {"time": stamp(20), "actor": "x", "analysis": {"verdict": "fail"}},
               {"time": stamp(21), "from": {"v1": 90, "v2": 10}, "to": {"v1": 100}}]
    points = _report.weights_over_time(history, "v2", T0, T0 + 60)
    assert points == [[T0, 0.0], [T0 + 10, 0.0], [T0 + 10, 10.0], [T0 + 21, 10.0], [T0 + 21, 0.0], [T0 + 60, 0.0]]


def matrix(*series):
    return {"resultType": "matrix", "result": [{"metric": {"destination_version": version},
                                                "values": [[T0 + t, str(v)] for t, v in values]}
                                               for version, values in series]}


def test_success_rate_is_computed_from_requests_and_errors_and_nan_is_dropped():
    answers = {"requests": matrix(("v1", [(0, 10), (1, 10)]), ("v2", [(0, 5), (1, 0)])),
               "errors": matrix(("v2", [(0, 1)])),
               "p99": matrix(("v1", [(0, 20), (1, "NaN")]), ("v2", [(0, 700)]))}
    series = _report.build_series(answers, "v1", "v2")
    assert series["success_rate"] == {"base": [[T0, 100.0], [T0 + 1, 100.0]], "canary": [[T0, 80.0]]}
    assert series["p99"] == {"base": [[T0, 20.0]], "canary": [[T0, 700.0]]}


def test_the_page_is_self_contained_and_lists_the_analyses():
    analyses = [{"step": 10, "verdict": "fail", "evaluated_at": T0 + 20, "requests": {"canary": 50.0},
                 "summary": "canary v2 failed: request-success-rate",
                 "checks": [{"name": "request-success-rate", "canary": {"value": 80.0}, "base": {"value": 100.0}},
                            {"name": "request-duration", "canary": {"value": 40.5}, "base": {"value": 20.25}}]}]
    page = _report.render("reviews", "bookinfo", "v1", "v2", T0, T0 + 60, [[T0, 0.0], [T0 + 60, 10.0]],
                          {"success_rate": {"base": [], "canary": []}, "p99": {"base": [], "canary": []}},
                          analyses, "rollback", "analysis 1 failed", '<?xml version="1.0"?><svg><text>x</text></svg>',
                          None)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert '<tr class="analysis" data-verdict="fail">' in page
    assert '<td class="canary-success">80.00</td>' in page and '<td class="base-p99">20.25</td>' in page
    assert '<span id="decision">rollback</span>' in page and "<?xml" not in page
    assert page.count('class="verdict" data-verdict="fail"') == 3


def test_each_look_shows_its_number_and_the_bounds_it_was_judged_on():
    analyses = [{"step": 10, "verdict": "inconclusive", "evaluated_at": T0 + 20, "look": 2, "looks": 6, "alpha": 0.004,
                 "requests": {"canary": 120.0}, "summary": "not settled",
                 "checks": [{"name": "request-success-rate", "canary": {"value": 99.2}, "base": {"value": 99.5},
                             "bounds": {"limit": {"lower": 0.0015, "upper": 0.043, "limit": 0.01},
                                        "base": {"ratio_lower": 0.21, "ratio_upper": None}}},
                            {"name": "request-duration", "canary": {"value": 240.0}, "base": {"value": 230.0},
                             "bounds": {"limit": {"lower": 0.0, "upper": 0.031, "fail_boundary_ms": 500},
                                        "base": {"ratio_lower": 0.5, "ratio_upper": 1.8, "boundary_ms": 250}}}]},
                {"step": 10, "verdict": "error", "evaluated_at": T0 + 40, "msg": "cannot reach Prometheus"}]
    page = _report.render("reviews", "bookinfo", "v1", "v2", T0, T0 + 60, [[T0, 0.0], [T0 + 60, 10.0]],
                          {"success_rate": {"base": [], "canary": []}, "p99": {"base": [], "canary": []}},
                          analyses, "hold", "held", None, None)
    assert '<td class="look">2 of 6 (alpha 0.004)</td>' in page
    # Shares in percent, the canary/base ratio as a number (unbounded above: inf), the latency boundary used.
    assert ('<td class="bounds">request-success-rate: limit 0.15%..4.3%; base ratio 0.21..inf<br>'
            "request-duration: limit 0%..3.1% slower than 500 ms; base ratio 0.5..1.8 slower than 250 ms</td>") in page
    # An analysis that could not run has no look and no bounds.
    assert '<td class="look"></td><td class="bounds"></td><td>cannot reach Prometheus</td>' in page


def service_of_each_version(promql: str) -> set[tuple[str, str]]:
    return set(re.findall(r'destination_service_name="([^"]+)",[^}]*destination_version="([^"]+)"', promql))


@pytest.mark.parametrize("per_version_services,expected", [
    # On an HTTPRoute whose backendRefs are reviews-v1 and reviews-v2 (Istio's route-reviews-90-10.yaml), Istio's
    # metrics name the backend Service as destination_service_name.
    (True, {("reviews-v1", "v1"), ("reviews-v2", "v2")}),
    (False, {("reviews", "v1"), ("reviews", "v2")}),
])
def test_the_charts_read_each_version_where_istio_counts_it(per_version_services, expected):
    target = AnalysisTarget("reviews", "bookinfo", "v1", "v2", "30s", per_version_services=per_version_services)
    queries = _report.range_queries(target)
    assert set(queries) == {"requests", "errors", "p99"}
    for promql in queries.values():
        assert service_of_each_version(promql) == expected, promql
