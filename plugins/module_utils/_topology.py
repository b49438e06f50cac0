# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The mesh's topology from Istio's standard metrics: which PromQL to send, and the graph of the answers.

Everything but ``run_dot`` is a pure function, so unit tests feed it made-up Prometheus answers.
The rules, as docs/topology.md states them:

- Only Istio's standard labels are read (``reporter``, ``source_workload``,
  ``source_workload_namespace``, ``source_version``, ``destination_service_name``,
  ``destination_service_namespace``, ``destination_workload``, ``destination_workload_namespace``,
  ``destination_version``, ``response_code``), so the queries run unchanged on a real mesh.
- A node is a workload (with its version), the ingress gateway, or ``unknown`` (callers outside the
  mesh, or calls that reached no workload). An edge is caller workload -> callee workload for one
  service, counted over the window at one evaluation instant.
- Errors are 5xx answers, as canary_analysis and Flagger count them.
- An edge's share is the part of the caller's calls to that service that this callee workload
  answered, with a Wilson score interval on the counts.
- A series that exists but counted nothing in the window is an idle edge: left out of the graph,
  and listed as such.
- The neighbourhood of a service is every edge into it and every edge out of the workloads that
  answered it in the window.
"""

from __future__ import annotations

import html
import math
import re
import subprocess
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    DURATION_METRIC,
    ERROR_CODES,
    REQUESTS_METRIC,
)

# The labels an edge is told apart by (all of them Istio's standard ones).
EDGE_LABELS = ("source_workload_namespace", "source_workload", "source_version",
               "destination_service_namespace", "destination_service_name",
               "destination_workload_namespace", "destination_workload", "destination_version")
UNKNOWN = "unknown"
GATEWAY_MARKERS = ("ingressgateway", "egressgateway")
# Edge colours by 5xx rate, with Kiali's default thresholds for HTTP 5xx: degraded from 0.1 %,
# failure above 10 %.
DEGRADED_PERCENT, FAILURE_PERCENT = 0.1, 10.0
COLOURS = {"healthy": "#3e8635", "degraded": "#f0ab00", "failure": "#c9190b", "idle": "#8a8d90"}
WINDOW_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class TopologyError(Exception):
    """The graph could not be drawn or read; the message is meant for the user."""


class GraphvizMissing(TopologyError):
    """Graphviz' dot program is not installed where the module runs."""


# --------------------------------------------------------------------------- PromQL


@dataclass(frozen=True)
class Scope:
    """What one topology looks at: a namespace, or one service's neighbourhood in it, over a window."""

    namespace: str
    window: str
    service: str | None = None
    reporter: str = "destination"

    @property
    def seconds(self) -> float:
        return window_seconds(self.window)

    def describe(self) -> str:
        where = (f"service {self.service} and its neighbours in namespace {self.namespace}" if self.service
                 else f"namespace {self.namespace}")
        return f"{where}, last {self.window} (reporter={self.reporter})"


def window_seconds(window: str) -> float:
    """Seconds in a Prometheus duration such as ``1m30s``."""
    return sum(int(number) * WINDOW_UNITS[unit] for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", window))


def _selectors(scope: Scope, extra: str = "") -> list[str]:
    # Calls into the namespace's services, and calls its workloads make to other namespaces.
    tail = f",{extra}" if extra else ""
    return [f'{{reporter="{scope.reporter}",destination_service_namespace="{scope.namespace}"{tail}}}',
            f'{{reporter="{scope.reporter}",source_workload_namespace="{scope.namespace}"{tail}}}']


def queries(scope: Scope) -> dict[str, str]:
    """The three instant queries, all evaluated at the same time: requests, 5xx errors, p99 (ms)."""
    by = ", ".join(EDGE_LABELS)

    def counted(extra: str = "") -> str:
        return " or ".join(f"sum by ({by}) (increase({REQUESTS_METRIC}{selector}[{scope.window}]))"
                           for selector in _selectors(scope, extra))

    p99 = " or ".join(f"histogram_quantile(0.99, sum by (le, {by}) (rate({DURATION_METRIC}{selector}"
                      f"[{scope.window}])))" for selector in _selectors(scope))
    return {"requests": counted(), "errors": counted(f'response_code=~"{ERROR_CODES}"'), "p99": p99}


def any_istio_series_query() -> str:
    """Asked only when the graph is empty, to tell "no traffic here" from "no Istio metrics at all"."""
    return f"count({REQUESTS_METRIC})"


# --------------------------------------------------------------------------- statistics


def wilson_interval(successes: float, trials: float, confidence: float) -> tuple[float, float]:
    """Wilson score interval, in percent, for ``successes`` out of ``trials`` (rounded to whole calls)."""
    n, k = round(trials), min(round(successes), round(trials))
    if n <= 0:
        return 0.0, 100.0
    z = NormalDist().inv_cdf(0.5 + confidence / 200.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, 100 * (centre - half)), min(100.0, 100 * (centre + half))


# --------------------------------------------------------------------------- graph


@dataclass
class _Edge:
    source: tuple[str, str]
    destination: tuple[str, str]
    service: tuple[str, str]
    source_version: str
    version: str
    requests: float = 0.0
    errors: float = 0.0
    p99: float | None = None


@dataclass
class Graph:
    scope: Scope
    confidence: float
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    idle_edges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.edges


def _key(metric: dict[str, str]) -> tuple[str, ...]:
    return tuple(metric.get(label, "") or UNKNOWN for label in EDGE_LABELS)


def _number(value: Any) -> float | None:
    try:
        number = float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _series(data: dict[str, Any], what: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise TopologyError(f"Prometheus answered the {what} query with a {kind}, not an instant vector")
    return data["result"]


def node_kind(workload: str) -> str:
    if workload == UNKNOWN:
        return UNKNOWN
    return "gateway" if any(marker in workload for marker in GATEWAY_MARKERS) else "workload"


def node_name(namespace: str, workload: str, scope: Scope) -> str:
    """The workload's name; workloads of other namespaces carry theirs, as ``name (namespace)``."""
    if workload == UNKNOWN or namespace in (scope.namespace, UNKNOWN, ""):
        return workload
    return f"{workload} ({namespace})"


def build_graph(scope: Scope, answers: dict[str, dict[str, Any]], confidence: float = 95.0) -> Graph:
    """The graph from the ``data`` of the three queries of ``queries(scope)``."""
    edges: dict[tuple[str, ...], _Edge] = {}
    for series in _series(answers["requests"], "requests"):
        key = _key(series.get("metric") or {})
        count = _number(series.get("value"))
        if count is None:
            continue
        src_ns, src, src_version, svc_ns, svc, dst_ns, dst, dst_version = key
        edge_key = (src_ns, src, svc_ns, svc, dst_ns, dst)
        edge = edges.setdefault(edge_key, _Edge((src_ns, src), (dst_ns, dst), (svc_ns, svc), src_version,
                                                dst_version))
        edge.requests += count
    for kind in ("errors", "p99"):
        for series in _series(answers[kind], kind):
            key = _key(series.get("metric") or {})
            edge = edges.get((key[0], key[1], key[3], key[4], key[5], key[6]))
            value = _number(series.get("value"))
            if edge is None or value is None:
                continue
            if kind == "errors":
                edge.errors += value
            else:
                edge.p99 = value if edge.p99 is None else max(edge.p99, value)

    busy = [edge for edge in edges.values() if edge.requests > 0]
    idle = [edge for edge in edges.values() if edge.requests <= 0]
    if scope.service:
        busy, idle = _neighbourhood(scope, busy, idle)
    graph = Graph(scope, confidence)
    seconds = scope.seconds
    # The caller's calls to each service, for the shares.
    to_service: dict[tuple[tuple[str, str], tuple[str, str]], float] = {}
    for edge in busy:
        group = (edge.source, edge.service)
        to_service[group] = to_service.get(group, 0.0) + edge.requests
    for edge in sorted(busy, key=lambda e: (_order(e.source), e.service, _order(e.destination))):
        total = to_service[(edge.source, edge.service)]
        low, high = wilson_interval(edge.requests, total, confidence)
        graph.edges.append({
            "source": node_name(*edge.source, scope), "destination": node_name(*edge.destination, scope),
            "source_namespace": edge.source[0], "destination_namespace": edge.destination[0],
            "service": edge.service[1], "service_namespace": edge.service[0], "version": edge.version,
            "requests": round(edge.requests, 3), "errors": round(edge.errors, 3),
            "requests_per_second": round(edge.requests / seconds, 3),
            "error_rate": round(100 * edge.errors / edge.requests, 2),
            "p99_ms": None if edge.p99 is None else round(edge.p99, 1),
            "share": {"percent": round(100 * edge.requests / total, 2), "low": round(low, 2), "high": round(high, 2),
                      "confidence": confidence, "requests": round(edge.requests, 3), "of": round(total, 3)},
            "health": health(100 * edge.errors / edge.requests),
        })
    for edge in sorted(idle, key=lambda e: (_order(e.source), e.service, _order(e.destination))):
        graph.idle_edges.append({"source": node_name(*edge.source, scope),
                                 "destination": node_name(*edge.destination, scope),
                                 "service": edge.service[1], "service_namespace": edge.service[0],
                                 "version": edge.version})
    graph.nodes = _nodes(busy, scope)
    return graph


def _order(node: tuple[str, str]) -> tuple[int, str, str]:
    # Callers from outside first, then the gateway, then workloads by name.
    rank = {UNKNOWN: 0, "gateway": 1}.get(node_kind(node[1]), 2)
    return rank, node[1], node[0]


def _neighbourhood(scope: Scope, busy: list[_Edge], idle: list[_Edge]) -> tuple[list[_Edge], list[_Edge]]:
    service = (scope.namespace, scope.service)
    answering = {edge.destination for edge in busy if edge.service == service and edge.destination[1] != UNKNOWN}

    def near(edge: _Edge) -> bool:
        return edge.service == service or edge.source in answering

    return [e for e in busy if near(e)], [e for e in idle if near(e)]


def _depths(edges: list[_Edge]) -> dict[tuple[str, str], int]:
    """How many calls from a node that nothing calls (the gateway, outside callers): the table's row order."""
    callers: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for edge in edges:
        callers.setdefault(edge.destination, set()).add(edge.source)
        callers.setdefault(edge.source, set())
    depth = {node: 0 for node, calling in callers.items() if not calling or calling == {node}}
    frontier = sorted(depth)
    while frontier:
        following = []
        for edge in edges:
            if edge.source in frontier and edge.destination not in depth:
                depth[edge.destination] = depth[edge.source] + 1
                following.append(edge.destination)
        frontier = following
    return depth


def health(error_rate: float) -> str:
    if error_rate > FAILURE_PERCENT:
        return "failure"
    return "degraded" if error_rate >= DEGRADED_PERCENT else "healthy"


def _nodes(edges: list[_Edge], scope: Scope) -> list[dict[str, Any]]:
    seconds = scope.seconds
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def node(key: tuple[str, str], version: str) -> dict[str, Any]:
        entry = found.get(key)
        if entry is None:
            entry = found[key] = {"name": node_name(*key, scope), "workload": key[1], "namespace": key[0],
                                  "version": version, "kind": node_kind(key[1]),
                                  "received": 0.0, "received_errors": 0.0, "sent": 0.0, "sent_errors": 0.0}
        if entry["version"] == UNKNOWN and version != UNKNOWN:
            entry["version"] = version
        return entry

    for edge in edges:
        sender, receiver = node(edge.source, edge.source_version), node(edge.destination, edge.version)
        sender["sent"] += edge.requests
        sender["sent_errors"] += edge.errors
        receiver["received"] += edge.requests
        receiver["received_errors"] += edge.errors
    depth = _depths(edges)
    nodes = []
    for key in sorted(found, key=lambda k: (depth.get(k, 0), _order(k))):
        entry = found[key]
        # A node's rate is what it answered; callers that answer nothing here (the gateway, outside
        # callers) are measured by what they sent.
        measured = "received" if entry["received"] > 0 else "sent"
        requests, errors = entry[measured], entry[f"{measured}_errors"]
        nodes.append({
            "name": entry["name"], "workload": entry["workload"], "namespace": entry["namespace"],
            "version": entry["version"], "kind": entry["kind"], "measured": measured,
            "requests_per_second": round(requests / seconds, 3),
            "error_rate": round(100 * errors / requests, 2) if requests else 0.0,
            "received_per_second": round(entry["received"] / seconds, 3),
            "sent_per_second": round(entry["sent"] / seconds, 3),
        })
    return nodes


# --------------------------------------------------------------------------- words


def summary(graph: Graph, no_istio_metrics: bool = False, prometheus_url: str = "") -> str:
    """One line for the task's output; for an empty graph, why it is empty."""
    scope = graph.scope
    if graph.empty:
        if no_istio_metrics:
            return (f"empty graph: Prometheus{' at ' + prometheus_url if prometheus_url else ''} has no "
                    f"{REQUESTS_METRIC} series at all; is it scraping Istio's proxies?")
        idle = f" ({len(graph.idle_edges)} edges had none)" if graph.idle_edges else ""
        return f"empty graph: no requests in {scope.describe()}{idle}"
    return (f"{len(graph.nodes)} nodes, {len(graph.edges)} edges with traffic"
            f"{f', {len(graph.idle_edges)} idle edges left out' if graph.idle_edges else ''}: {scope.describe()}")


def _percent(value: float) -> str:
    return f"{value:.1f}%"


def _share(edge: dict[str, Any]) -> str:
    share = edge["share"]
    return f"{share['percent']:.1f}% ({share['low']:.1f}-{share['high']:.1f})"


def _p99(edge: dict[str, Any]) -> str:
    return "-" if edge["p99_ms"] is None else f"{edge['p99_ms']:.0f}"


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    return [line(header), line(tuple("-" * width for width in widths)), *(line(row) for row in rows)]


def table(graph: Graph, no_istio_metrics: bool = False, prometheus_url: str = "") -> str:
    """The graph as plain text (ASCII only, fixed columns): edges, then nodes, then what was left out."""
    lines = [f"Mesh topology: {graph.scope.describe()}"]
    if graph.empty:
        lines.append(summary(graph, no_istio_metrics, prometheus_url))
    else:
        confidence = f"{graph.confidence:g}%"
        lines.append("")
        lines += _columns(("CALLER", "", "CALLEE", "SERVICE", "REQ/S", "5XX", "P99 MS",
                           f"SHARE OF CALLER'S CALLS ({confidence} INTERVAL)"),
                          [(e["source"], "->", e["destination"], e["service"], f"{e['requests_per_second']:.2f}",
                            _percent(e["error_rate"]), _p99(e), _share(e)) for e in graph.edges], {4, 5, 6})
        lines.append("")
        lines += _columns(("NODE", "KIND", "VERSION", "REQ/S", "5XX"),
                          [(n["name"], n["kind"] + (" (sent)" if n["measured"] == "sent" else ""), n["version"],
                            f"{n['requests_per_second']:.2f}", _percent(n["error_rate"])) for n in graph.nodes],
                          {3, 4})
    if graph.idle_edges:
        lines.append("")
        lines.append(f"Left out, no traffic in the last {graph.scope.window}:")
        lines += [f"  {e['source']} -> {e['destination']} ({e['service']} {e['version']})" for e in graph.idle_edges]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- picture


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def edge_label(edge: dict[str, Any]) -> str:
    """The words on an edge of the picture: share with its interval, rate, p99, and 5xx when any."""
    parts = [_share(edge), f"{edge['requests_per_second']:.2f} req/s, p99 {_p99(edge)} ms"]
    if edge["errors"] > 0:
        parts.append(f"5xx {_percent(edge['error_rate'])}")
    return "\n".join(parts)


def node_label(node: dict[str, Any]) -> str:
    sent = " sent" if node["measured"] == "sent" else ""
    detail = f"{node['requests_per_second']:.2f} req/s{sent}, 5xx {_percent(node['error_rate'])}"
    version = f"version {node['version']}" if node["kind"] == "workload" else node["kind"]
    return f"{node['name']}\n{version}\n{detail}"


def to_dot(graph: Graph) -> str:
    """Graphviz source: callers left, callees right (``rankdir=LR``), as Kiali lays out its graph."""
    lines = ["digraph mesh {",
             '  graph [rankdir=LR, fontname="Helvetica", fontsize=12, labelloc=t, nodesep=0.5, ranksep=1.1, '
             f'bgcolor="white", pad=0.3, label={_quoted("Mesh topology: " + graph.scope.describe())}];',
             '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", fillcolor="#f0f0f0", '
             'color="#6a6e73"];',
             '  edge [fontname="Helvetica", fontsize=10, arrowsize=0.8];']
    if graph.empty:
        lines.append(f'  empty [shape=note, fillcolor="#ffffff", label={_quoted(summary(graph))}];')
    ids = {node["name"]: f"n{index}" for index, node in enumerate(graph.nodes)}
    for node in graph.nodes:
        shape = {"gateway": 'shape=cds, fillcolor="#dbe9f6", margin="0.3,0.06"',
                 UNKNOWN: 'shape=ellipse, style="dashed,filled", fillcolor="#ffffff"'}.get(node["kind"], "")
        lines.append(f"  {ids[node['name']]} [label={_quoted(node_label(node))}{', ' + shape if shape else ''}];")
    busiest = max((edge["requests_per_second"] for edge in graph.edges), default=1.0) or 1.0
    for edge in graph.edges:
        colour = COLOURS[edge["health"]]
        width = 1.0 + 2.5 * math.sqrt(edge["requests_per_second"] / busiest)
        lines.append(f"  {ids[edge['source']]} -> {ids[edge['destination']]} [label={_quoted(edge_label(edge))}, "
                     f'color="{colour}", fontcolor="{colour}", penwidth={width:.2f}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_dot(source: str, program: str = "dot", timeout: float = 30.0) -> str:
    """SVG from Graphviz' dot; GraphvizMissing when the program is not there."""
    try:
        proc = subprocess.run([program, "-Tsvg"], input=source.encode(), capture_output=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise GraphvizMissing(f"no picture: Graphviz' {program!r} program is not installed here (Debian/Ubuntu: "
                              "apt-get install graphviz; Fedora/RHEL: dnf install graphviz; execution environments: "
                              "the collection's bindep.txt declares it); the table has the same numbers") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TopologyError(f"Graphviz' {program!r} could not draw the picture: {exc}") from None
    if proc.returncode != 0:
        raise TopologyError(f"Graphviz' {program!r} could not draw the picture (exit {proc.returncode}): "
                            f"{proc.stderr.decode(errors='replace').strip()[:500]}")
    svg = proc.stdout.decode()
    # Only the <svg> element: it stands alone as a file and embeds in HTML as it is.
    start = svg.find("<svg")
    if start < 0:
        raise TopologyError(f"Graphviz' {program!r} answered something that is not SVG")
    return svg[start:]


def to_html(svg: str, graph: Graph, text: str) -> str:
    """One self-contained page: the picture, then the same numbers as the text table."""
    title = html.escape(f"Mesh topology: {graph.scope.describe()}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n"
            "<style>body{font-family:Helvetica,Arial,sans-serif;margin:16px;color:#151515}"
            "svg{max-width:100%;height:auto}pre{font-size:12px;background:#f5f5f5;padding:8px;overflow-x:auto}</style>\n"
            f"</head>\n<body>\n<figure>\n{svg}\n</figure>\n"
            f"<pre>{html.escape(text)}</pre>\n</body>\n</html>\n")
