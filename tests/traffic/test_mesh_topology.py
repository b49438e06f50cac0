"""mesh_topology against the lab's real Prometheus, with real traffic through the lab's gateway.

Bookinfo in a namespace of its own, bound to its own host on the shared gateway. First everything
at v1 under load: the graph has no ratings node (reviews v1 never calls ratings). Then reviews v2
beside v1 with half of reviews' traffic: productpage-v1 -> reviews-v1 and -> reviews-v2 each carry
a share whose interval contains 50, and reviews-v2 -> ratings-v1 appears. Then all of it to v2:
no edge reaches reviews-v1 in the last window, and its idle edge is said. Expected numbers come
from Prometheus itself (the test's own PromQL at the module's evaluation time) and from a
traffic_probe run that is the only traffic of its window (its answers counted by version in the page
against the graph's shares); headless Chromium draws the module's picture and the test reads back
which words it laid out, and where.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import duration_seconds
from lab import prometheus
from lab.kube import KubeClient
from tests.helpers.ansible import run_module, run_playbook, task_results
from tests.helpers.collection import REPO_ROOT
from tests.helpers.split_checks import MAX_FALSE_FAILURE, false_failure_rate
from tests.traffic.conftest import BOOKINFO, LABELS, TrafficLab, take_down
from tests.traffic.test_canary_analysis import (
    _closed_port,
    ask_prometheus,
    gateway_manifests,
    load,
    reviews_half_and_half,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES_PER_SECOND = 10.0
ALL_V1_SECONDS, ALL_V1_WINDOW = 7.0, "6s"
HALF_SECONDS, HALF_WINDOW = 16.0, "15s"
PROMOTED_SECONDS, PROMOTED_WINDOW = 7.0, "6s"
# The share's interval is checked to contain 50 %. Prometheus' increase() scales a window's counts
# by up to EXTRAPOLATION (the window over the span its samples cover), which narrows the interval;
# at 99.999 % a fair split still misses it less than once in 10,000 runs for every total the test
# can see (docs/testing.md; the last test of this file computes it).
CONFIDENCE = 99.999
EXTRAPOLATION = 1.2
MOST_CALLS = 400
# The probe's window: traffic_probe alone, after the last loaded page was scraped.
PROBE_REQUESTS, PROBE_QUIET = 400, 3.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
KEEP = REPO_ROOT / "build" / "screenshots"


@dataclass
class Seen:
    prometheus_url: str
    namespace: str
    all_v1: dict[str, Any]
    half: dict[str, Any]
    printed: str
    picture: Path
    promoted: dict[str, Any]
    probed: dict[str, Any]
    probed_topology: dict[str, Any]


def all_to(namespace: str, version: str) -> dict[str, Any]:
    """reviews' VirtualService with every call to one version (the tutorial's promotion)."""
    service = reviews_half_and_half(namespace)
    service["spec"]["http"][0]["route"] = [{"destination": {"host": "reviews", "subset": version}, "weight": 100}]
    return service


def topology_args(url: str, namespace: str, window: str, **extra: Any) -> dict[str, Any]:
    return {"namespace": namespace, "window": window, "prometheus_url": url, **extra}


@pytest.fixture(scope="module")
def seen(traffic_lab: TrafficLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    record = prometheus.wait_ready(Path(traffic_lab.state["dir"]))
    namespace = f"topology-{uuid.uuid4().hex[:5]}"
    host = f"{namespace}.bookinfo.test"
    KubeClient.from_state(traffic_lab.state).create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    try:
        traffic_lab.module("manifest", namespace, wait=True, wait_timeout=90,
                           src=[str(BOOKINFO / "platform/kube/bookinfo-reviews-v1.yaml")],
                           definition=gateway_manifests(namespace, host))
        time.sleep(1.0)  # the router takes the new routes from its watch
        load(traffic_lab.gateway, [host], ALL_V1_SECONDS, PAGES_PER_SECOND)
        time.sleep(1.5)  # the last requests are scraped
        # As Ansible runs a module on a remote host: its own process.
        all_v1 = run_module("mesh_topology", topology_args(record["url"], namespace, ALL_V1_WINDOW))

        traffic_lab.module("manifest", namespace, wait=True, wait_timeout=90,
                           src=[str(BOOKINFO / "platform/kube/bookinfo-reviews-v2.yaml"),
                                str(BOOKINFO / "networking/destination-rule-v1-v2.yaml")],
                           definition=[reviews_half_and_half(namespace)])
        time.sleep(1.0)
        load(traffic_lab.gateway, [host], HALF_SECONDS, PAGES_PER_SECOND)
        loaded_until = time.time()
        time.sleep(1.5)
        # As a playbook runs it on the controller: in process, check mode, the group's defaults.
        picture = tmp_path_factory.mktemp("topology") / "reviews-50.html"
        args = topology_args(record["url"], namespace, HALF_WINDOW, service="reviews", confidence=CONFIDENCE,
                             dest=str(picture))
        playbook = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "module_defaults": {"group/canary.istio.istio": {"kubeconfig": traffic_lab.state["kubeconfig"]}},
                     "tasks": [{"name": "topology", "canary.istio.mesh_topology": args, "check_mode": True}]}]
        proc = run_playbook(playbook, traffic_lab.state)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        half = task_results(proc)[0]

        probed, probed_topology = probe_alone(traffic_lab, record["url"], namespace, host, loaded_until)

        traffic_lab.module("manifest", namespace, definition=[all_to(namespace, "v2")])
        time.sleep(1.0)
        load(traffic_lab.gateway, [host], PROMOTED_SECONDS, PAGES_PER_SECOND)
        time.sleep(1.5)
        promoted = run_module("mesh_topology", topology_args(record["url"], namespace, PROMOTED_WINDOW,
                                                             service="reviews"))
        yield Seen(record["url"], namespace, all_v1, half, proc.stdout, picture, promoted, probed, probed_topology)
    finally:
        take_down(traffic_lab.kube, namespace)


REVIEWS_FROM_PRODUCTPAGE = ('reporter="destination",source_workload="productpage-v1",'
                            'destination_service_name="reviews"')


def probe_alone(lab: TrafficLab, url: str, namespace: str, host: str,
                loaded_until: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """traffic_probe's pages at half and half, then the graph over a window that holds them and nothing else.

    The window starts after the last loaded page was scraped and before the probe's first request,
    so both reviews series have a sample at its start and the same scrape times after: Prometheus
    extrapolates both by the same factor, and the shares it gives are the probe's own counts.
    Prometheus' own answer to the test's query at the module's evaluation time goes with the graph
    (``prometheus_of``), and what its raw samples say the probe added (``sampled``).
    """
    time.sleep(max(0.0, loaded_until + PROBE_QUIET - time.time()))
    started = time.time()
    probe = {"url": f"{lab.gateway}/productpage", "requests": PROBE_REQUESTS, "concurrency": 4,
             "headers": {"Host": host}, "labels": LABELS, "max_errors": 0}
    probed = run_module("traffic_probe", probe)
    assert not probed.get("failed"), probed.get("msg")
    selector = f'{REVIEWS_FROM_PRODUCTPAGE},destination_service_namespace="{namespace}"'
    sampled = added_since(url, selector, started, PROBE_REQUESTS)
    time.sleep(1.5)  # the last answers are scraped
    # A scrape stored just after the module asked changes increase() at a time already queried
    # (a sample more in the window moves Prometheus' extrapolation). Then the graph is asked again,
    # over a window that still starts before the probe: its numbers must then be Prometheus' own.
    for _attempt in range(3):
        # Whole seconds back to just before the probe's first request (the module starts within a second).
        window = int(time.time() + 1.0 - started) + 1
        graph = run_module("mesh_topology", topology_args(url, namespace, f"{window}s", service="reviews"))
        assert not graph.get("failed"), graph.get("msg")
        opened = graph["evaluated_at"] - window
        # After the load's last page was scraped (1 s interval), before the probe's first request.
        assert loaded_until + 1.0 < opened < started, (loaded_until, opened, started)
        answered = sum(float(series["value"][1]) for series in ask_prometheus(
            url, f"increase(istio_requests_total{{{selector}}}[{window}s])", graph["evaluated_at"]))
        of = next(e["share"]["of"] for e in graph["edges"] if e["destination"] == "reviews-v1")
        if of == pytest.approx(answered, abs=0.01):
            break
        time.sleep(1.0)
    graph.update(probe_window=window, prometheus_of=answered, sampled=sampled)
    return probed, graph


def added_since(url: str, selector: str, since: float, expected: float, timeout: float = 10.0) -> float:
    """What Prometheus' raw samples say the series gained after ``since``: each series' last sample
    less its last sample before ``since``, summed (no extrapolation). Asked again until it reaches
    ``expected`` or ``timeout`` passes, as scrapes can lag on a busy machine."""
    deadline = time.time() + timeout
    while True:
        now = time.time()
        span = int(now - since) + 5
        added = 0.0
        for series in ask_prometheus(url, f"istio_requests_total{{{selector}}}[{span}s]", now):
            before = [float(value) for at, value in series["values"] if float(at) < since]
            assert before, ("a series with no sample before the probe", series["metric"])
            added += float(series["values"][-1][1]) - before[-1]
        if added >= expected or time.time() > deadline:
            return added
        time.sleep(0.5)


def edges_of(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    assert not result.get("failed"), result.get("msg")
    return {(edge["source"], edge["destination"]): edge for edge in result["edges"]}


def test_all_at_v1_has_no_ratings_node(seen: Seen):
    result = seen.all_v1
    edges = edges_of(result)
    names = {node["name"] for node in result["nodes"]}
    assert not any(name.startswith("ratings") for name in names), result["text"]
    assert {"productpage-v1", "reviews-v1", "details-v1", "istio-ingressgateway (istio-system)"} <= names
    assert edges[("productpage-v1", "reviews-v1")]["share"]["percent"] == 100.0
    gateway = edges[("istio-ingressgateway (istio-system)", "productpage-v1")]
    assert gateway["requests_per_second"] > PAGES_PER_SECOND / 3, result["text"]
    assert gateway["error_rate"] == 0.0 and gateway["health"] == "healthy"


def test_half_and_half_shares_contain_50_and_agree_with_prometheus(seen: Seen):
    result = seen.half
    edges = edges_of(result)
    v1, v2 = edges[("productpage-v1", "reviews-v1")], edges[("productpage-v1", "reviews-v2")]
    for edge in (v1, v2):
        share = edge["share"]
        assert share["confidence"] == CONFIDENCE
        assert share["low"] <= 50 <= share["high"], (edge, result["text"])
    assert ("reviews-v2", "ratings-v1") in edges, result["text"]
    assert ("reviews-v1", "ratings-v1") not in edges
    # The neighbourhood of reviews: its callers, its versions, and what they call.
    assert {node["name"] for node in result["nodes"]} == {"productpage-v1", "reviews-v1", "reviews-v2", "ratings-v1"}

    # Prometheus' own answer, to the test's own query, at the module's evaluation time.
    selector = f'{REVIEWS_FROM_PRODUCTPAGE},destination_service_namespace="{seen.namespace}"'
    answered = {series["metric"]["destination_workload"]: float(series["value"][1]) for series in ask_prometheus(
        seen.prometheus_url, f"sum by (destination_workload) (increase(istio_requests_total{{{selector}}}"
                             f"[{HALF_WINDOW}]))", result["evaluated_at"])}
    total = sum(answered.values())
    assert set(answered) == {"reviews-v1", "reviews-v2"}
    # A scrape that began before evaluated_at but was appended after the module's query (a loaded machine: a
    # CI run saw 61.14 requests from the module, 56.77 from the same query asked later) is in this answer and
    # not in the module's: the two agree up to what two of the window's scrapes change in increase().
    # A share moves at most half as much as its two counts.
    scrapes = 2 * duration_seconds(prometheus.SCRAPE_INTERVAL) / duration_seconds(HALF_WINDOW)
    for workload, edge in (("reviews-v1", v1), ("reviews-v2", v2)):
        assert edge["share"]["percent"] == pytest.approx(100 * answered[workload] / total, abs=50 * scrapes)
        assert edge["requests"] == pytest.approx(answered[workload], rel=scrapes)
        assert edge["share"]["of"] == pytest.approx(total, rel=scrapes)
    assert HALF_SECONDS * PAGES_PER_SECOND / 3 <= total <= MOST_CALLS, total


def test_shares_agree_with_traffic_probes_count_for_the_same_window(seen: Seen):
    probed, result = seen.probed, seen.probed_topology
    counts = probed["counts"]
    assert probed["errors"] == 0 and counts["unmatched"] == 0 and counts["v3"] == 0, probed
    assert counts["v1"] + counts["v2"] == PROBE_REQUESTS
    edges = edges_of(result)
    v1, v2 = edges[("productpage-v1", "reviews-v1")], edges[("productpage-v1", "reviews-v2")]
    # Each page the probe counted is one call from productpage to reviews: the graph's share of each
    # version is the probe's, far closer than the sampling error of either (about 5 points here).
    for version, edge in (("v1", v1), ("v2", v2)):
        assert edge["share"]["percent"] == pytest.approx(100 * counts[version] / PROBE_REQUESTS, abs=0.25), (
            counts, result["text"])
    # Prometheus' raw samples: the probe's pages and nothing else reached reviews in the window.
    assert result["sampled"] == PROBE_REQUESTS, result["sampled"]
    # The graph's total is Prometheus' increase() over the window, extrapolated to its edges as
    # Prometheus does (by how much depends on when the scrapes fell), never less than what was sampled.
    for edge in (v1, v2):
        assert edge["share"]["of"] == pytest.approx(result["prometheus_of"], abs=0.01), (result["probe_window"], edge)
    assert v1["share"]["of"] >= PROBE_REQUESTS - 0.5, (result["probe_window"], v1)
    gateway = [e for e in result["edges"] if e["destination"] == "productpage-v1"]
    assert not gateway, "the neighbourhood of reviews starts at its callers"


def test_after_promotion_no_edge_reaches_reviews_v1_and_its_idle_edge_is_said(seen: Seen):
    result = seen.promoted
    edges = edges_of(result)
    assert not any(destination == "reviews-v1" for _source, destination in edges), result["text"]
    assert edges[("productpage-v1", "reviews-v2")]["share"]["percent"] == 100.0
    assert ("reviews-v2", "ratings-v1") in edges
    assert {"source": "productpage-v1", "destination": "reviews-v1", "service": "reviews",
            "service_namespace": seen.namespace, "version": "v1"} in result["idle_edges"]
    assert f"Left out, no traffic in the last {PROMOTED_WINDOW}:" in result["text"]
    assert "  productpage-v1 -> reviews-v1 (reviews v1)" in result["text"].splitlines()


def test_the_table_is_printed_as_a_table(seen: Seen):
    result = seen.half
    assert result["changed"] is False and result["dest"] == str(seen.picture)
    printed = seen.printed.splitlines()
    for line in result["text"].rstrip("\n").splitlines():
        if line.strip():
            assert line in printed, (line, seen.printed)
    assert any(line.startswith("productpage-v1") and "reviews-v2" in line for line in printed)


def rendered_words(page: Path, workdir: Path) -> tuple[list[dict[str, Any]], Path]:
    """What Chromium laid out: every <text> of the picture with its box, and a screenshot."""
    probe = workdir / "probe.html"
    script = ("<script>const out=document.createElement('pre');out.id='laid-out';document.body.append(out);"
              "out.textContent=JSON.stringify([...document.querySelectorAll("
              "'svg text')].map(t=>{const r=t.getBoundingClientRect();"
              "return {text:t.textContent,left:r.left,right:r.right,top:r.top,bottom:r.bottom,"
              "fill:t.getAttribute('fill')}}));</script>")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
              f"--user-data-dir={workdir / 'profile'}", "--window-size=1400,1000"]
    dom = subprocess.run([*common, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    shot = workdir / "reviews-50.png"
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60, check=True)
    found = re.search(r'<pre id="laid-out">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    import html
    return json.loads(html.unescape(found.group(1))), shot


def test_chromium_draws_the_modules_nodes_and_edge_labels(seen: Seen, tmp_path: Path):
    result = seen.half
    words, shot = rendered_words(seen.picture, tmp_path)
    laid_out = {word["text"] for word in words}
    for word in words:  # on the page, with a size
        assert word["right"] > word["left"] >= 0 and word["bottom"] > word["top"] >= 0, word
        assert word["right"] <= 1400, word
    assert {node["name"] for node in result["nodes"]} <= laid_out, laid_out
    for edge in result["edges"]:
        share = edge["share"]
        assert f"{share['percent']:.1f}% ({share['low']:.1f}-{share['high']:.1f})" in laid_out, (edge, laid_out)
        label = next(w for w in words if w["text"].startswith(f"{share['percent']:.1f}% ("))
        assert label["fill"] == "#3e8635", label  # healthy: green
    # Nothing in the picture that the module did not say: every word is a node's or an edge's.
    for text in laid_out:
        if not text.startswith(("Mesh topology", "version ", "gateway")) and "req/s" not in text:
            assert text in result["text"], text
    # Callers left, callees right.
    left = {w["text"]: w["left"] for w in words}
    assert left["productpage-v1"] < left["reviews-v2"] < left["ratings-v1"]
    from PIL import Image
    green = sum(1 for r, g, b in Image.open(shot).convert("RGB").getdata()
                if abs(r - 0x3e) < 20 and abs(g - 0x86) < 20 and abs(b - 0x35) < 20)
    assert green > 300, green
    KEEP.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, KEEP / "topology-reviews-50.png")
    shutil.copy(seen.picture, KEEP / "topology-reviews-50.html")


def test_no_traffic_and_no_graphviz_are_said_in_words(seen: Seen, tmp_path: Path):
    # The module as a separate process behind its action plugin (CANARY_ISTIO_IN_PROCESS=0), which still prints.
    quiet_namespace = f"quiet-{uuid.uuid4().hex[:5]}"
    args = topology_args(seen.prometheus_url, quiet_namespace, "30s", dest=str(tmp_path / "quiet.svg"))
    proc = run_playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                          "tasks": [{"name": "quiet", "canary.istio.mesh_topology": args}]}],
                        env={"CANARY_ISTIO_IN_PROCESS": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    quiet = task_results(proc)[0]
    assert quiet["empty"] is True and quiet["edges"] == [] and quiet["nodes"] == []
    assert quiet["summary"].startswith(f"empty graph: no requests in namespace {quiet_namespace}")
    assert quiet["summary"] in proc.stdout.splitlines()
    assert "empty graph" in (tmp_path / "quiet.svg").read_text()
    no_dot = run_module("mesh_topology", topology_args(seen.prometheus_url, seen.namespace, HALF_WINDOW,
                                                       service="reviews", graphviz_dot="/nonexistent/dot",
                                                       dest=str(tmp_path / "none.svg")))
    assert not no_dot.get("failed") and "reviews-v2" in no_dot["text"], no_dot.get("msg")
    # ansible-core 2.19 returns warnings as structured records, older ones as strings.
    assert "Graphviz' '/nonexistent/dot' program is not installed" in json.dumps(no_dot["warnings"])
    assert not (tmp_path / "none.svg").exists() and "Traceback" not in no_dot["_stderr"]


def test_unreachable_or_empty_prometheus(seen: Seen, tmp_path: Path):
    closed = f"http://127.0.0.1:{_closed_port()}"
    unreachable = run_module("mesh_topology", topology_args(closed, seen.namespace, "30s"))
    assert unreachable.get("failed") is True and "edges" not in unreachable
    assert f"cannot reach Prometheus at {closed}" in unreachable["msg"]
    assert "Traceback" not in unreachable["_stderr"] and "exception" not in unreachable
    # A real Prometheus that scrapes nothing: no Istio metrics at all.
    record = prometheus.start(tmp_path, f"http://127.0.0.1:{_closed_port()}/metrics")
    try:
        prometheus.wait_ready(tmp_path, scraped=False)
        empty = run_module("mesh_topology", topology_args(record["url"], seen.namespace, "30s"))
    finally:
        prometheus.stop(tmp_path)
    assert not empty.get("failed") and empty["empty"] is True, empty.get("msg")
    assert "has no istio_requests_total series at all" in empty["summary"], empty["summary"]
    assert "has no istio_requests_total series at all" in empty["text"]


def test_the_half_and_half_check_fails_a_correct_router_at_most_once_in_10000_runs():
    from ansible_collections.canary.istio.plugins.module_utils._topology import wilson_interval

    least = int(HALF_SECONDS * PAGES_PER_SECOND / 3)
    for factor in (1.0, EXTRAPOLATION):
        worst = max(false_failure_rate(calls, {"v1": 0.5, "v2": 0.5},
                                       lambda k, n, f=factor: wilson_interval(k * f, n * f, CONFIDENCE), {"v2": 50})
                    for calls in range(least, MOST_CALLS + 1))
        assert worst <= MAX_FALSE_FAILURE, (factor, worst)
