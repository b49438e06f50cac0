#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mesh_topology
short_description: Who calls whom in the mesh, at what share, from Istio's metrics in Prometheus
version_added: 0.1.0
description:
  - Reads Istio's standard metrics from Prometheus' HTTP API over a window and returns the graph of
    one namespace, or of the neighbourhood of one service - what a mesh console such as Kiali draws.
    It only reads; run it after each canary step to see where the traffic went.
  - Nodes are workloads with their version, the ingress gateway, and V(unknown) (callers outside
    the mesh, calls that reached no workload), each with its requests per second and 5xx rate.
  - Edges are caller workload to callee workload for one service, with requests per second, 5xx
    rate, p99 latency and the share of the caller's calls to that service that this callee
    answered, with a Wilson score interval at O(confidence)%.
  - Edges whose series exist but counted nothing in the window are left out of the graph and listed
    in RV(idle_edges) and at the end of RV(text).
  - Two ways to look at it - RV(text), a plain table that reads the same in a terminal and in AWX
    job output (the action plugin prints it unless O(print_table=false)), and a picture laid out by
    Graphviz' C(dot), callers left and callees right, edges labelled with shares and coloured by
    5xx rate (Kiali's default thresholds - degraded from 0.1%, failure above 10%).
  - Only the labels C(reporter), C(source_workload), C(source_workload_namespace), C(source_version),
    C(destination_service_name), C(destination_service_namespace), C(destination_workload),
    C(destination_workload_namespace), C(destination_version) and C(response_code) of
    C(istio_requests_total) and C(istio_request_duration_milliseconds_bucket) are read, so the
    module works on any Istio mesh's Prometheus.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.prometheus
  - canary.istio.attributes
  - canary.istio.attributes.INFO
options:
  namespace:
    description:
      - The namespace whose graph to draw - calls into its services and calls its workloads make
        (C(destination_service_namespace), C(source_workload_namespace)).
      - Required from canary.istio 2.0.0. Not given, V(default) is read, with a deprecation warning (the
        Kubernetes modules take an omitted namespace from the kubeconfig context; these modules read no kubeconfig).
    type: str
  service:
    description:
      - Draw only this service's neighbourhood - every call to it (C(destination_service_name)) and
        every call made by the workloads that answered it in the window.
      - The whole namespace when not given.
    type: str
  window:
    description: How far back to look, as a Prometheus duration (V(30s), V(1m), V(5m)).
    type: str
    default: 1m
  reporter:
    description:
      - Which proxy's report to read (Istio's C(reporter) label). V(destination) sees callers from
        outside the mesh; V(source) also sees calls that reached no workload.
    type: str
    choices: [destination, source]
    default: destination
  confidence:
    description: Confidence, in percent, of the interval around each edge's share (50 up to, not including, 100).
    type: float
    default: 95
  dest:
    description:
      - Write the picture to this file (its directory must exist). A report, not a change to the mesh -
        it is written in check mode too and the task is never C(changed).
      - Written on the host the module runs on (the controller for a local connection).
    type: path
  picture_format:
    description:
      - V(svg) - the picture alone; V(html) - a self-contained page with the picture and the table.
      - By default V(html) when O(dest) ends in C(.html) or C(.htm), else V(svg).
    type: str
    choices: [svg, html]
  return_picture:
    description: Return the picture in RV(picture) as well.
    type: bool
    default: false
  graphviz_dot:
    description:
      - The Graphviz C(dot) program that lays out the picture, a name on C(PATH) or a path.
      - When it is missing, the module warns and returns the table without a picture.
    type: str
    default: dot
  print_table:
    description: Whether the action plugin prints RV(text) in the task output (on the controller).
    type: bool
    default: true
notes:
  - Why Graphviz - C(dot) is the reference implementation of layered (Sugiyama) layout, maintained
    for decades and packaged by every distribution; it routes and labels edges itself, so the
    collection draws no geometry of its own. Pure-Python layout libraries (C(grandalf)) give node
    positions only and leave edge routing and label placement to the caller.
  - "Execution environments - C(graphviz) is declared in the collection's C(bindep.txt)."
seealso:
  - module: canary.istio.canary_analysis
  - module: canary.istio.traffic_probe
  - name: Istio standard metrics
    description: The metrics and labels the module queries.
    link: https://istio.io/latest/docs/reference/config/metrics/
  - name: Kiali traffic graph
    description: The console view this module stands in for.
    link: https://kiali.io/docs/features/topology/
"""

EXAMPLES = r"""
- name: The neighbourhood of reviews over the last minute, printed as a table and saved as a page
  canary.istio.mesh_topology:
    namespace: bookinfo
    service: reviews
    window: 1m
    prometheus_url: http://prometheus.istio-system:9090
    dest: "{{ playbook_dir }}/reviews-topology.html"
  register: topology

- name: Stop when the canary answers none of productpage's calls to reviews
  ansible.builtin.assert:
    that: >-
      topology.edges | selectattr('source', 'equalto', 'productpage-v1')
      | selectattr('destination', 'equalto', 'reviews-v2') | list | length > 0
    fail_msg: "{{ topology.text }}"

- name: The whole namespace, quietly, with the SVG in the result
  canary.istio.mesh_topology:
    namespace: bookinfo
    window: 5m
    print_table: false
    return_picture: true
  register: graph
"""

RETURN = r"""
nodes:
  description:
    - Workloads that sent or answered calls in the window. C(kind) is V(workload), V(gateway) or
      V(unknown). C(requests_per_second) and C(error_rate) (5xx, percent) are what the node answered,
      or what it sent when it answered nothing (C(measured) says which).
  returned: success
  type: list
  elements: dict
  sample:
    - {name: reviews-v2, workload: reviews-v2, namespace: bookinfo, version: v2, kind: workload,
       measured: received, requests_per_second: 4.93, error_rate: 0.0, received_per_second: 4.93,
       sent_per_second: 4.93}
edges:
  description:
    - Caller to callee for one service, with traffic in the window. C(share) is the part of the
      caller's calls to C(service) that this callee answered, in percent, with its interval
      (C(low), C(high)) and the counts it comes from (C(requests) of C(of)). C(health) is
      V(healthy), V(degraded) or V(failure) by 5xx rate.
  returned: success
  type: list
  elements: dict
  sample:
    - {source: productpage-v1, destination: reviews-v2, source_namespace: bookinfo,
       destination_namespace: bookinfo, service: reviews, service_namespace: bookinfo, version: v2,
       requests: 148.0, errors: 0.0, requests_per_second: 4.93, error_rate: 0.0, p99_ms: 24.6,
       share: {percent: 49.5, low: 43.9, high: 55.1, confidence: 95.0, requests: 148.0, of: 299.0},
       health: healthy}
idle_edges:
  description: Edges whose series exist but counted no request in the window; not in RV(edges).
  returned: success
  type: list
  elements: dict
  sample:
    - {source: productpage-v1, destination: reviews-v1, service: reviews, service_namespace: bookinfo, version: v1}
text:
  description: The graph as a plain-text table (edges, nodes, idle edges), or why the graph is empty.
  returned: success
  type: str
summary:
  description: One line - how many nodes and edges, or why the graph is empty.
  returned: success
  type: str
  sample: "5 nodes, 5 edges with traffic: service reviews and its neighbours in namespace bookinfo, last 1m"
empty:
  description: Whether no edge had traffic in the window.
  returned: success
  type: bool
picture:
  description: The picture (SVG, or the HTML page), when O(return_picture=true) and Graphviz drew it.
  returned: when requested and Graphviz is installed
  type: str
dest:
  description: Where the picture was written.
  returned: when O(dest) was given and Graphviz is installed
  type: str
dot:
  description: The Graphviz source of the picture, to draw it elsewhere (C(dot -Tsvg)).
  returned: success
  type: str
queries:
  description: The PromQL sent, by name.
  returned: success
  type: dict
evaluated_at:
  description: The evaluation time (Unix seconds) sent with every query, so all numbers describe the same instant.
  returned: success
  type: float
window:
  description: The window looked at.
  returned: success
  type: str
  sample: 1m
prometheus_requests:
  description: Number of HTTP requests made to Prometheus.
  returned: always
  type: int
"""

import os
import time

from ansible_collections.canary.istio.plugins.module_utils._context import PROMETHEUS, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    REPORTERS,
    AnalysisInputError,
    validate_confidence,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._prometheus import single_value
from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import service_namespace
from ansible_collections.canary.istio.plugins.module_utils._topology import (
    GraphvizMissing,
    Scope,
    any_istio_series_query,
    build_graph,
    queries,
    run_dot,
    summary,
    table,
    to_dot,
    to_html,
)

ARGUMENT_SPEC = {
    "namespace": {"type": "str"},
    "service": {"type": "str"},
    "window": {"type": "str", "default": "1m"},
    "reporter": {"type": "str", "choices": list(REPORTERS), "default": "destination"},
    "confidence": {"type": "float", "default": 95.0},
    "dest": {"type": "path"},
    "picture_format": {"type": "str", "choices": ["svg", "html"]},
    "return_picture": {"type": "bool", "default": False},
    "graphviz_dot": {"type": "str", "default": "dot"},
    "print_table": {"type": "bool", "default": True},
}
USES = (PROMETHEUS,)


def _picture_format(params):
    if params.get("picture_format"):
        return params["picture_format"]
    dest = params.get("dest") or ""
    return "html" if dest.lower().endswith((".html", ".htm")) else "svg"


def _check_dest(dest):
    directory = os.path.dirname(os.path.abspath(dest))
    if os.path.isdir(dest):
        raise AnalysisInputError(f"dest {dest!r} is a directory; give the picture's file name")
    if not os.path.isdir(directory):
        raise AnalysisInputError(f"dest {dest!r}: the directory {directory!r} does not exist; create it first")
    if not os.access(directory, os.W_OK):
        raise AnalysisInputError(f"dest {dest!r}: the directory {directory!r} is not writable")


def execute(ctx):
    params = ctx.params
    scope = Scope(namespace=validate_name(service_namespace(params, ctx.deprecate), "namespace"),
                  service=validate_name(params["service"], "service") if params.get("service") is not None
                  else None,
                  window=validate_window(params["window"]), reporter=params["reporter"])
    if scope.seconds <= 0:
        raise AnalysisInputError(f"window must be longer than 0, got {scope.window!r}")
    confidence = validate_confidence(params["confidence"])
    if params.get("dest"):
        _check_dest(params["dest"])
    client = ctx.prometheus
    evaluated_at = round(time.time(), 3)
    sent = queries(scope)
    answers = {name: client.query(promql, evaluated_at) for name, promql in sent.items()}
    graph = build_graph(scope, answers, confidence)
    no_istio_metrics = False
    if graph.empty and not graph.idle_edges:
        promql = any_istio_series_query()
        no_istio_metrics = single_value(client.query(promql, evaluated_at), promql) is None
    text = table(graph, no_istio_metrics, client.url)
    dot = to_dot(graph)
    result = {"nodes": graph.nodes, "edges": graph.edges, "idle_edges": graph.idle_edges, "text": text,
              "summary": summary(graph, no_istio_metrics, client.url), "empty": graph.empty, "dot": dot,
              "queries": sent, "evaluated_at": evaluated_at, "window": scope.window}
    if params.get("dest") or params["return_picture"]:
        try:
            svg = run_dot(dot, params["graphviz_dot"])
        except GraphvizMissing as exc:
            ctx.warn(str(exc))
        else:
            picture = to_html(svg, graph, text) if _picture_format(params) == "html" else svg
            if params.get("dest"):
                try:
                    with open(params["dest"], "w", encoding="utf-8") as handle:
                        handle.write(picture)
                except OSError as exc:
                    raise ModuleFailure(f"cannot write the picture to {params.get('dest')!r}: {exc}") from None
                result["dest"] = params["dest"]
            if params["return_picture"]:
                result["picture"] = picture
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
