# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The release report: one self-contained HTML page with inline SVG charts (pure functions).

Three charts share one time axis - the canary's weight from the ``canary.istio/history``
annotation, base and canary success rate, base and canary p99 - with every analysis marked
(green pass, red fail, grey inconclusive, black error) and the final decision; then the table of
analyses with their numbers, and the neighbourhood before and after (mesh_topology's SVG).
Nothing is fetched by the page: no script, no style sheet, no font from the network.
"""

from __future__ import annotations

import html
import math
import re
from datetime import datetime, timezone
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    DURATION_METRIC,
    ERROR_CODES,
    REQUESTS_METRIC,
    AnalysisTarget,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.release import bounds_text

COLOURS = {"base": "#0066cc", "canary": "#ec7a08"}
VERDICT_COLOURS = {"pass": "#3e8635", "fail": "#c9190b", "inconclusive": "#8a8d90", "error": "#151515"}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 860, 190, 60, 20, 16, 28
# The most a ConfigMap's data may hold: Kubernetes' MaxSecretSize, checked on the bytes of its values.
CONFIGMAP_LIMIT = 1024 * 1024


def range_queries(target: AnalysisTarget) -> dict[str, str]:
    """PromQL for the charts, by version: requests/s, 5xx/s and p99 (Istio's standard metrics).

    Each version is read with canary_analysis' own selector, so the charts draw the series the
    analyses read - on an HTTPRoute (``per_version_services``) each version's own Service's."""
    def by_version(metric: str, extra: str = "", by: str = "destination_version") -> str:
        return " or ".join(f"sum by ({by}) (rate({metric}{target.selector(version, extra)}[{target.window}]))"
                           for version in (target.base, target.canary))

    return {
        "requests": by_version(REQUESTS_METRIC),
        "errors": by_version(REQUESTS_METRIC, f'response_code=~"{ERROR_CODES}"'),
        "p99": f"histogram_quantile(0.99, {by_version(DURATION_METRIC, by='le, destination_version')})",
    }


def _matrix(data: dict[str, Any]) -> dict[str, dict[float, float]]:
    series: dict[str, dict[float, float]] = {}
    for item in data.get("result") or []:
        version = (item.get("metric") or {}).get("destination_version", "")
        points = series.setdefault(version, {})
        for stamp, value in item.get("values") or []:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isnan(number):
                points[float(stamp)] = number
    return series


def build_series(answers: dict[str, dict[str, Any]], base: str, canary: str) -> dict[str, dict[str, list]]:
    """Success rate (%) and p99 (ms) over time for base and canary, from the range answers."""
    requests, errors, p99 = (_matrix(answers[name]) for name in ("requests", "errors", "p99"))
    out: dict[str, dict[str, list]] = {"success_rate": {}, "p99": {}}
    for role, version in (("base", base), ("canary", canary)):
        rates = []
        for stamp, total in sorted(requests.get(version, {}).items()):
            if total > 0:
                failed = errors.get(version, {}).get(stamp, 0.0)
                rates.append([stamp, round(100.0 * (1.0 - failed / total), 3)])
        out["success_rate"][role] = rates
        out["p99"][role] = [[stamp, round(value, 3)] for stamp, value in sorted(p99.get(version, {}).items())]
    return out


def parse_time(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def weights_over_time(history: list[dict[str, Any]], canary: str, start: float, end: float) -> list[list[float]]:
    """The canary's share as a step line, from the traffic steps of the history (analysis entries skipped)."""
    steps = [(parse_time(entry.get("time")), entry) for entry in history
             if isinstance(entry, dict) and "to" in entry and isinstance(entry.get("to"), dict)]
    steps = [(moment, entry) for moment, entry in steps if moment is not None]
    before = [entry for moment, entry in steps if moment < start]
    share = float(before[-1]["to"].get(canary) or 0) if before else 0.0
    points = [[start, share]]
    for moment, entry in steps:
        if moment < start:
            continue
        points.append([moment, share])
        share = float(entry["to"].get(canary) or 0)
        points.append([moment, share])
    points.append([end, share])
    return points


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high <= low:
        return (out_low + out_high) / 2
    return out_low + (value - low) * (out_high - out_low) / (high - low)


def _clock(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%H:%M:%S")


def chart(title: str, unit: str, lines: dict[str, list[list[float]]], start: float, end: float,
          marks: list[dict[str, Any]], low: float | None = None, high: float | None = None, kind: str = "") -> str:
    """One SVG line chart; ``lines`` maps a label to [[time, value], ...]."""
    values = [value for points in lines.values() for _stamp, value in points]
    low = min([*values, 0.0]) if low is None else low
    high = max([*values, 1.0]) * 1.1 if high is None else high
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{kind}" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
             f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafafa" stroke="#d2d2d2"/>',
             f'<text x="{x0}" y="11" font-size="12" font-weight="bold">{html.escape(title)}</text>']
    for fraction in (0.0, 0.5, 1.0):
        value = low + fraction * (high - low)
        y = _scale(value, low, high, y0, y1)
        parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{value:.4g}{unit}</text>')
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for fraction in (0.0, 0.5, 1.0):
        stamp = start + fraction * (end - start)
        x = _scale(stamp, start, end, x0, x1)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle">{_clock(stamp)}</text>')
    for mark in marks:
        x = _scale(mark["time"], start, end, x0, x1)
        colour = VERDICT_COLOURS.get(mark["verdict"], "#151515")
        parts.append(f'<line class="verdict" data-verdict="{mark["verdict"]}" x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" '
                     f'y2="{y0}" stroke="{colour}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{y1 + 10}" font-size="10" fill="{colour}">'
                     f'{html.escape(mark["label"])}</text>')
    for label, points in lines.items():
        colour = COLOURS.get(label, "#6a6e73")
        if not points:
            continue
        path = " ".join(f"{_scale(t, start, end, x0, x1):.1f},{_scale(v, low, high, y0, y1):.1f}" for t, v in points)
        # The base is drawn wider, under the canary, so that equal values still show both.
        width = 4 if label == "base" else 2
        parts.append(f'<polyline data-line="{label}" fill="none" stroke="{colour}" stroke-width="{width}" '
                     f'points="{path}"/>')
    legend_x = x1 - 150
    for index, label in enumerate(lines):
        colour = COLOURS.get(label, "#6a6e73")
        parts.append(f'<rect x="{legend_x + index * 75}" y="2" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + index * 75 + 14}" y="11" font-size="11">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _inline_svg(picture: str | None) -> str:
    if not picture:
        return "<p>(no picture: no Prometheus, or Graphviz missing)</p>"
    svg = re.sub(r"<\?xml[^>]*\?>", "", picture)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    return svg.strip()


def _value(side: dict[str, Any]) -> str:
    value = side.get("value") if isinstance(side, dict) else None
    return "no data" if value is None else f"{value:.2f}"


def _look(analysis: dict[str, Any]) -> str:
    """``2 of 6``: the look's number among the looks planned for the release, and its alpha when given."""
    look, looks = analysis.get("look"), analysis.get("looks")
    if not look:
        return ""
    alpha = analysis.get("alpha")
    spent = f" (alpha {float(alpha):.2g})" if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else ""
    return html.escape(f"{look} of {looks}{spent}" if looks else f"{look}{spent}")


def _bounds_cell(analysis: dict[str, Any]) -> str:
    """Each check's confidence bounds at this look, one line per check."""
    lines = []
    for check in analysis.get("checks") or []:
        text = bounds_text(check.get("bounds"))
        if text:
            lines.append(html.escape(f"{check.get('name')}: {text}"))
    return "<br>".join(lines)


def render(service: str, namespace: str, base: str, canary: str, start: float, end: float,
           weights: list[list[float]], series: dict[str, dict[str, list]], analyses: list[dict[str, Any]],
           decision: str, reason: str, topology_before: str | None, topology_after: str | None) -> str:
    """The whole page."""
    marks = [{"time": float(a.get("evaluated_at") or end), "verdict": a.get("verdict", "error"),
              "label": f"#{index} {a.get('verdict')}"} for index, a in enumerate(analyses, 1)]
    charts = [
        chart(f"Canary {canary}'s share of traffic (from the canary.istio/history annotation)", "%",
              {"canary": weights}, start, end, marks, 0, 100, "weights"),
        chart("Success rate (non-5xx answers)", "%", series["success_rate"], start, end, marks,
              min([v for points in series["success_rate"].values() for _t, v in points] + [90.0]), 100.5,
              "success_rate"),
        chart("p99 latency", " ms", series["p99"], start, end, marks, 0, None, "p99"),
    ]
    rows = []
    for index, analysis in enumerate(analyses, 1):
        checks = {check.get("name"): check for check in analysis.get("checks") or []}
        success, duration = checks.get("request-success-rate", {}), checks.get("request-duration", {})
        requests = analysis.get("requests") or {}
        rows.append(
            f'<tr class="analysis" data-verdict="{html.escape(str(analysis.get("verdict")))}">'
            f"<td>{index}</td><td>{_clock(float(analysis.get('evaluated_at') or end))}</td>"
            f"<td>{analysis.get('step')}%</td><td class=\"verdict-{html.escape(str(analysis.get('verdict')))}\">"
            f"{html.escape(str(analysis.get('verdict')))}</td>"
            f"<td class=\"canary-success\">{_value(success.get('canary', {}))}</td>"
            f"<td class=\"base-success\">{_value(success.get('base', {}))}</td>"
            f"<td class=\"canary-p99\">{_value(duration.get('canary', {}))}</td>"
            f"<td class=\"base-p99\">{_value(duration.get('base', {}))}</td>"
            f"<td class=\"canary-requests\">{float(requests.get('canary') or 0):.0f}</td>"
            f"<td class=\"look\">{_look(analysis)}</td>"
            f"<td class=\"bounds\">{_bounds_cell(analysis)}</td>"
            f"<td>{html.escape(str(analysis.get('msg') or analysis.get('summary') or ''))}</td></tr>")
    colour = {"promote": "#3e8635", "rollback": "#c9190b"}.get(decision, "#8a8d90")
    title = html.escape(f"Canary release of {namespace}/{service}: {base} → {canary}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n<style>body{{font-family:Helvetica,Arial,sans-serif;margin:16px;color:#151515}}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d2d2d2;padding:3px 6px;text-align:right}"
        "td:last-child,td.bounds{text-align:left}.decision{font-size:20px;font-weight:bold}"
        "svg{max-width:100%;height:auto}figure{margin:8px 0}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        f'<p class="decision" style="color:{colour}">Decision: <span id="decision">{html.escape(decision)}</span></p>\n'
        f'<p id="reason">{html.escape(reason)}</p>\n'
        f"<p>From {_clock(start)} to {_clock(end)} UTC. Dashed lines mark the analyses "
        "(green pass, red fail, grey inconclusive, black could not run).</p>\n"
        + "\n".join(f"<figure>{svg}</figure>" for svg in charts)
        + "\n<h2>Analyses</h2>\n<table id=\"analyses\"><tr><th>#</th><th>time</th><th>share</th><th>verdict</th>"
        "<th>canary success %</th><th>base success %</th><th>canary p99 ms</th><th>base p99 ms</th>"
        "<th>canary requests</th><th>look</th><th>confidence bounds</th><th>summary</th></tr>\n"
        + "\n".join(rows) + "\n</table>\n"
        f"<h2>Neighbourhood of {html.escape(service)} before the release</h2>\n<figure id=\"topology-before\">"
        f"{_inline_svg(topology_before)}</figure>\n"
        f"<h2>Neighbourhood of {html.escape(service)} at the end of the run</h2>\n<figure id=\"topology-after\">"
        f"{_inline_svg(topology_after)}</figure>\n</body>\n</html>\n")


def report_configmap(name: str, namespace: str, service: str, canary: str, page: str, written_at: str
                     ) -> dict[str, Any]:
    """The ConfigMap that keeps the page beside the route: ``report.html`` is the page, or empty when the
    page is over a ConfigMap's limit (the ConfigMap still says which canary and when, so an older
    report is not taken for this one)."""
    fits = len(page.encode("utf-8")) <= CONFIGMAP_LIMIT
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "canary.istio", "canary.istio/service": service},
                         "annotations": {"canary.istio/canary": canary, "canary.istio/written-at": written_at}},
            "data": {"report.html": page if fits else ""}}
