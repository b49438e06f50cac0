"""Pure logic of mesh_topology: PromQL, the graph from Prometheus' answers, shares, table and picture.

Prometheus' answers are made up here in the shape of its HTTP API (``data`` of an instant query);
the lab test (tests/traffic/test_mesh_topology.py) checks the same code against real Prometheus.
"""

from __future__ import annotations

import re
import shutil
from xml.etree import ElementTree

import pytest

from ansible_collections.canary.istio.plugins.module_utils._topology import (
    COLOURS,
    EDGE_LABELS,
    GraphvizMissing,
    Scope,
    build_graph,
    queries,
    run_dot,
    summary,
    table,
    to_dot,
    to_html,
    wilson_interval,
    window_seconds,
)

pytestmark = pytest.mark.unit

NS = "bookinfo"
SCOPE = Scope(namespace=NS, window="30s")
GATEWAY = ("istio-system", "istio-ingressgateway", "unknown")


def series(source: tuple[str, str, str], service: str, destination: tuple[str, str], value: float,
           service_namespace: str = NS) -> dict:
    (src_ns, src, src_version), (dst, dst_version) = source, destination
    metric = {"source_workload_namespace": src_ns, "source_workload": src, "source_version": src_version,
              "destination_service_namespace": service_namespace, "destination_service_name": service,
              "destination_workload_namespace": service_namespace, "destination_workload": dst,
              "destination_version": dst_version}
    return {"metric": metric, "value": [1700000000.0, repr(float(value))]}


def vector(*items: dict) -> dict:
    return {"resultType": "vector", "result": list(items)}


PRODUCTPAGE = (NS, "productpage-v1", "v1")
REVIEWS_V2 = (NS, "reviews-v2", "v2")


def half_and_half(reviews_v2_errors: float = 0.0) -> dict[str, dict]:
    """Bookinfo with reviews at 50 %: 300 pages in 30 s, reviews v1 150, v2 150 (which calls ratings)."""
    requests = vector(
        series(GATEWAY, "productpage", ("productpage-v1", "v1"), 300),
        series(PRODUCTPAGE, "details", ("details-v1", "v1"), 300),
        series(PRODUCTPAGE, "reviews", ("reviews-v1", "v1"), 150),
        series(PRODUCTPAGE, "reviews", ("reviews-v2", "v2"), 150),
        series(REVIEWS_V2, "ratings", ("ratings-v1", "v1"), 150),
        # reviews-v3 was called before the window and not in it: an idle edge.
        series(PRODUCTPAGE, "reviews", ("reviews-v3", "v3"), 0),
    )
    errors = vector(series(PRODUCTPAGE, "reviews", ("reviews-v2", "v2"), reviews_v2_errors)) if reviews_v2_errors \
        else vector()
    p99 = vector(series(PRODUCTPAGE, "reviews", ("reviews-v1", "v1"), 24.5),
                 series(PRODUCTPAGE, "reviews", ("reviews-v3", "v3"), float("nan")))
    return {"requests": requests, "errors": errors, "p99": p99}


def edge(graph, source: str, destination: str) -> dict:
    found = [e for e in graph.edges if e["source"] == source and e["destination"] == destination]
    assert len(found) == 1, [(e["source"], e["destination"]) for e in graph.edges]
    return found[0]


# --------------------------------------------------------------------------- PromQL


def test_queries_use_only_istio_standard_labels_and_one_window():
    sent = queries(Scope(namespace=NS, window="1m", reporter="source"))
    assert set(sent) == {"requests", "errors", "p99"}
    standard = set(EDGE_LABELS) | {"reporter", "response_code", "le"}
    for promql in sent.values():
        labels = set(re.findall(r"([a-z_]+)=~?\"", promql)) | set(re.findall(r"by \(([^)]*)\)", promql)[0].split(", "))
        assert labels <= standard, labels - standard
        assert "[1m]" in promql and 'reporter="source"' in promql
        assert f'destination_service_namespace="{NS}"' in promql and f'source_workload_namespace="{NS}"' in promql
    assert 'response_code=~"5.."' in sent["errors"]
    assert sent["p99"].startswith("histogram_quantile(0.99,")


@pytest.mark.parametrize("window,seconds", [("30s", 30), ("1m", 60), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5)])
def test_window_seconds(window, seconds):
    assert window_seconds(window) == pytest.approx(seconds)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("successes,trials,low,high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857-872,
    # Table I, method 3 (score interval without continuity correction), 95 %.
    (81, 263, 25.53, 36.62),
    (15, 148, 6.24, 16.05),
    (0, 20, 0.0, 16.11),
    (1, 29, 0.61, 17.18),
])
def test_wilson_interval_matches_newcombe(successes, trials, low, high):
    got = wilson_interval(successes, trials, 95.0)
    assert got == pytest.approx((low, high), abs=0.01)


def test_wilson_interval_of_no_calls_is_everything():
    assert wilson_interval(0.2, 0.3, 95.0) == (0.0, 100.0)


# --------------------------------------------------------------------------- graph


def test_half_and_half_graph():
    graph = build_graph(SCOPE, half_and_half(), 95.0)
    v1, v2 = edge(graph, "productpage-v1", "reviews-v1"), edge(graph, "productpage-v1", "reviews-v2")
    for reviews in (v1, v2):
        assert reviews["share"]["percent"] == 50.0 and reviews["share"]["of"] == 300
        assert reviews["share"]["low"] < 50 < reviews["share"]["high"]
        assert reviews["requests_per_second"] == 5.0 and reviews["service"] == "reviews"
    assert v1["p99_ms"] == 24.5 and v2["p99_ms"] is None
    # Shares are per service: details takes all of productpage's calls to details.
    assert edge(graph, "productpage-v1", "details-v1")["share"]["percent"] == 100.0
    ratings = edge(graph, "reviews-v2", "ratings-v1")
    assert ratings["requests_per_second"] == 5.0 and ratings["share"]["percent"] == 100.0
    gateway = edge(graph, "istio-ingressgateway (istio-system)", "productpage-v1")
    assert gateway["requests_per_second"] == 10.0
    assert graph.idle_edges == [{"source": "productpage-v1", "destination": "reviews-v3", "service": "reviews",
                                 "service_namespace": NS, "version": "v3"}]
    nodes = {node["name"]: node for node in graph.nodes}
    assert set(nodes) == {"istio-ingressgateway (istio-system)", "productpage-v1", "details-v1", "reviews-v1",
                          "reviews-v2", "ratings-v1"}
    assert nodes["istio-ingressgateway (istio-system)"]["kind"] == "gateway"
    assert nodes["istio-ingressgateway (istio-system)"]["measured"] == "sent"
    assert nodes["productpage-v1"]["requests_per_second"] == 10.0 and nodes["productpage-v1"]["version"] == "v1"
    assert nodes["reviews-v2"]["version"] == "v2" and nodes["reviews-v2"]["measured"] == "received"
    # Callers first: the gateway leads, as the picture's left edge.
    assert graph.nodes[0]["kind"] == "gateway"


def test_errors_and_health():
    graph = build_graph(SCOPE, half_and_half(reviews_v2_errors=30), 95.0)
    v2 = edge(graph, "productpage-v1", "reviews-v2")
    assert v2["error_rate"] == 20.0 and v2["health"] == "failure" and v2["errors"] == 30
    assert edge(graph, "productpage-v1", "reviews-v1")["health"] == "healthy"
    nodes = {node["name"]: node for node in graph.nodes}
    assert nodes["reviews-v2"]["error_rate"] == 20.0
    assert nodes["productpage-v1"]["error_rate"] == 0.0  # what productpage answered, not what it got
    assert build_graph(SCOPE, half_and_half(reviews_v2_errors=1), 95.0).edges[3]["health"] == "degraded"


def test_neighbourhood_of_a_service():
    graph = build_graph(Scope(namespace=NS, window="30s", service="reviews"), half_and_half(), 95.0)
    pairs = {(e["source"], e["destination"]) for e in graph.edges}
    assert pairs == {("productpage-v1", "reviews-v1"), ("productpage-v1", "reviews-v2"),
                     ("reviews-v2", "ratings-v1")}
    assert [e["destination"] for e in graph.edges if e["service"] == "reviews"] == ["reviews-v1", "reviews-v2"]
    assert [e["destination"] for e in graph.idle_edges] == ["reviews-v3"]
    assert {node["name"] for node in graph.nodes} == {"productpage-v1", "reviews-v1", "reviews-v2", "ratings-v1"}


def test_all_at_v1_has_no_ratings_node():
    answers = {"requests": vector(series(GATEWAY, "productpage", ("productpage-v1", "v1"), 300),
                                  series(PRODUCTPAGE, "reviews", ("reviews-v1", "v1"), 300)),
               "errors": vector(), "p99": vector()}
    graph = build_graph(SCOPE, answers, 95.0)
    assert not any(node["workload"].startswith("ratings") for node in graph.nodes)
    assert edge(graph, "productpage-v1", "reviews-v1")["share"]["percent"] == 100.0


def test_unknown_callers_and_other_namespaces():
    outside = ("unknown", "unknown", "unknown")
    answers = {"requests": vector(series(outside, "productpage", ("productpage-v1", "v1"), 30),
                                  series(PRODUCTPAGE, "ratings", ("ratings-v1", "v1"), 30, service_namespace="shared")),
               "errors": vector(), "p99": vector()}
    graph = build_graph(SCOPE, answers, 95.0)
    names = {node["name"]: node for node in graph.nodes}
    assert names["unknown"]["kind"] == "unknown" and names["unknown"]["measured"] == "sent"
    assert "ratings-v1 (shared)" in names


def test_empty_answers_make_an_empty_graph_said_in_words():
    graph = build_graph(SCOPE, {"requests": vector(), "errors": vector(), "p99": vector()}, 95.0)
    assert graph.empty and graph.nodes == [] and graph.edges == []
    assert summary(graph) == "empty graph: no requests in namespace bookinfo, last 30s (reporter=destination)"
    assert "has no istio_requests_total series at all" in summary(graph, no_istio_metrics=True)
    assert "empty graph" in table(graph)
    assert "empty graph" in to_dot(graph)


def test_an_answer_that_is_not_a_vector_is_refused():
    from ansible_collections.canary.istio.plugins.module_utils._topology import TopologyError
    with pytest.raises(TopologyError, match="not an instant vector"):
        build_graph(SCOPE, {"requests": {"resultType": "matrix", "result": []}, "errors": vector(), "p99": vector()})


# --------------------------------------------------------------------------- words and picture


def test_table_is_plain_aligned_text():
    graph = build_graph(SCOPE, half_and_half(reviews_v2_errors=30), 95.0)
    text = table(graph)
    assert text.isascii()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("CALLER"))
    row = next(line for line in lines if line.startswith("productpage-v1") and "reviews-v2" in line)
    # Columns line up: the share column starts where its header does.
    assert row.index("50.0% (") == header.index("SHARE")
    assert "20.0%" in row and "5.00" in row
    assert "Left out, no traffic in the last 30s:" in text and "productpage-v1 -> reviews-v3 (reviews v3)" in text


def test_dot_source_and_svg():
    graph = build_graph(SCOPE, half_and_half(reviews_v2_errors=30), 95.0)
    dot = to_dot(graph)
    assert "rankdir=LR" in dot
    assert f'color="{COLOURS["failure"]}"' in dot and f'color="{COLOURS["healthy"]}"' in dot
    if shutil.which("dot") is None:
        pytest.fail("Graphviz' dot is not installed: run make system-deps")
    svg = run_dot(dot)
    root = ElementTree.fromstring(svg)
    texts = {"".join(element.itertext()) for element in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"productpage-v1", "reviews-v2", "ratings-v1", "istio-ingressgateway (istio-system)"} <= texts
    share = edge(graph, "productpage-v1", "reviews-v2")["share"]
    assert f"50.0% ({share['low']:.1f}-{share['high']:.1f})" in texts
    page = to_html(svg, graph, table(graph))
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "CALLER" in page


def test_no_graphviz_is_said_plainly():
    with pytest.raises(GraphvizMissing, match="not installed here"):
        run_dot("digraph {}", "/nonexistent/dot")
