#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: release_report
short_description: Write a self-contained HTML picture of a canary release
version_added: 0.1.0
description:
  - Writes one HTML page with inline SVG (no script, nothing fetched from the network) - the canary's
    share of traffic over time (from the C(canary.istio/history) steps given in O(history)), base and
    canary success rate and p99 over time (Prometheus range queries, C(/api/v1/query_range), on Istio's
    standard metrics), each analysis verdict marked on the time axis and listed with its numbers, the
    final decision, and the service's neighbourhood before and after (pictures of M(canary.istio.mesh_topology)).
  - A module rather than an option of M(canary.istio.canary_analysis) - the report covers a whole run
    (many analyses, the weights, the decision), while an analysis judges one window; and a separate
    module keeps canary_analysis read-only and its result small.
  - When Prometheus cannot answer, the page is still written, without the metric charts, and the
    module warns.
  - With O(configmap), the page is also kept in a ConfigMap beside the service, which outlives the machine the
    file was written on (an AWX job's container). The file is the report - a ConfigMap that cannot be written is a
    warning, as a Prometheus that cannot answer is.
  - Writes a file, not the mesh - the file is written in check mode too, and the task is C(changed) only when it
    writes the ConfigMap.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.prometheus
  - canary.istio.prometheus.PER_VERSION_SERVICES
  - canary.istio.auth
  - canary.istio.attributes
attributes:
  check_mode:
    description:
      - The page is written in check mode too (a file where the task runs); the ConfigMap (O(configmap)) is
        validated by a server-side dry run and not stored.
    support: full
  diff_mode:
    description: Returns no diff; the ConfigMap's content is the page.
    support: none
  idempotent:
    description:
      - Without O(configmap) nothing in the cluster changes. The ConfigMap is written again on every run, its
        C(canary.istio/written-at) annotation saying when, so the task is C(changed) each time.
    support: partial
options:
  service:
    description: The service (C(destination_service_name)).
    type: str
    required: true
  namespace:
    description:
      - Its namespace.
      - Required from canary.istio 2.0.0. Not given, V(default) is read, with a deprecation warning (the
        Kubernetes modules take an omitted namespace from the kubeconfig context; these modules read no kubeconfig).
    type: str
  base:
    description: The base version.
    type: str
    required: true
  canary:
    description: The canary version.
    type: str
    required: true
  dest:
    description: The HTML file to write (its directory must exist).
    type: path
    required: true
  history:
    description: The C(canary.istio/history) entries (RV(canary.istio.canary_info#module:history)).
    type: list
    elements: dict
    default: []
  analyses:
    description: The analyses of the run, each with C(step), C(verdict), C(evaluated_at), C(checks), C(requests).
    type: list
    elements: dict
    default: []
  decision:
    description: The final decision (promote, rollback, hold, stop).
    type: str
    default: ""
  reason:
    description: Why, in one line.
    type: str
    default: ""
  started_at:
    description: Start of the time axis (Unix seconds). Default - 60 seconds before the first analysis.
    type: float
  ended_at:
    description: End of the time axis (Unix seconds). Default - now.
    type: float
  window:
    description: The rate window of the charts, a Prometheus duration.
    type: str
    default: 30s
  reporter:
    description: Which proxy's report to read (Istio's C(reporter) label).
    type: str
    choices: [destination, source]
    default: destination
  topology_before:
    description: The neighbourhood before the release, an SVG (mesh_topology's RV(canary.istio.mesh_topology#module:picture)).
    type: str
  topology_after:
    description: The neighbourhood after the release, an SVG.
    type: str
  configmap:
    description:
      - Also keep the page in the ConfigMap of this name in O(namespace), under the key C(report.html). Empty - no
        ConfigMap, and no connection to Kubernetes.
      - The ConfigMap is labelled C(app.kubernetes.io/managed-by=canary.istio) and C(canary.istio/service=<service>)
        and annotated with C(canary.istio/canary) (O(canary)) and C(canary.istio/written-at) (when, in UTC). It is
        written by server-side apply (field manager C(canary.istio)).
      - A ConfigMap holds at most 1 MiB; a larger page is left out - the ConfigMap is written with an empty
        C(report.html) and the module warns (RV(configmap.kept) is V(false)).
    type: str
    default: ""
    version_added: 0.3.0
seealso:
  - module: canary.istio.canary_analysis
  - module: canary.istio.mesh_topology
"""

EXAMPLES = r"""
- name: Picture the release, and keep the picture in a ConfigMap beside the route
  canary.istio.release_report:
    service: reviews
    namespace: bookinfo
    base: v1
    canary: v2
    history: "{{ info.history }}"
    analyses: "{{ canary_release_result.analyses }}"
    decision: "{{ canary_release_result.decision }}"
    dest: /tmp/reviews-release.html
    configmap: canary-report-reviews
    # Only on a Gateway API HTTPRoute, whose backends are per-version Services (reviews-v1, reviews-v2).
    per_version_services: true
"""

RETURN = r"""
dest:
  description: Where the report was written.
  returned: success
  type: str
weights:
  description: The canary's share over time, C([[unix seconds, percent], ...]).
  returned: success
  type: list
series:
  description: C(success_rate) and C(p99), each with C(base) and C(canary) lists of C([unix seconds, value]).
  returned: success
  type: dict
queries:
  description: The PromQL of the range queries.
  returned: success
  type: dict
configmap:
  description: The ConfigMap written with O(configmap) (in check mode - that would be written).
  returned: when O(configmap) is set and the ConfigMap was written (else a warning says why not)
  type: dict
  contains:
    name:
      description: Its name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    written_at:
      description: Its C(canary.istio/written-at) annotation, when it was written (ISO 8601, UTC).
      type: str
    bytes:
      description: The page's size in UTF-8.
      type: int
    kept:
      description:
        - V(true) when its C(report.html) holds the page; V(false) when the page is over a ConfigMap's 1 MiB and was
          left out (C(report.html) is empty).
      type: bool
  sample: {name: canary-report-reviews, namespace: bookinfo, kept: true, bytes: 48213,
           written_at: "2026-03-01T10:00:00.123456+00:00"}
prometheus_requests:
  description: Number of HTTP requests made to Prometheus.
  returned: always
  type: int
api_requests:
  description: Number of requests made to the Kubernetes API server (to write the ConfigMap).
  returned: always
  type: int
"""

import os
import time
from datetime import datetime, timezone

from ansible_collections.canary.istio.plugins.module_utils._client import (
    ApiError,
    ConnectionFailed,
    KubeConfigError,
    describe_api_error,
)
from ansible_collections.canary.istio.plugins.module_utils._context import KUBERNETES, PROMETHEUS, ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    REPORTERS,
    AnalysisInputError,
    AnalysisTarget,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.report import (
    CONFIGMAP_LIMIT,
    build_series,
    range_queries,
    render,
    report_configmap,
    weights_over_time,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._manifest import server_side_apply
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._prometheus import PrometheusError
from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import service_namespace

ARGUMENT_SPEC = {
    "service": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "base": {"type": "str", "required": True},
    "canary": {"type": "str", "required": True},
    "dest": {"type": "path", "required": True},
    "history": {"type": "list", "elements": "dict", "default": []},
    "analyses": {"type": "list", "elements": "dict", "default": []},
    "decision": {"type": "str", "default": ""},
    "reason": {"type": "str", "default": ""},
    "started_at": {"type": "float"},
    "ended_at": {"type": "float"},
    "window": {"type": "str", "default": "30s"},
    "reporter": {"type": "str", "choices": list(REPORTERS), "default": "destination"},
    "per_version_services": {"type": "bool", "default": False},
    "topology_before": {"type": "str"},
    "topology_after": {"type": "str"},
    "configmap": {"type": "str", "default": ""},
}
# Kubernetes only for the ConfigMap: its client connects on first use, so without one no kubeconfig is read.
USES = (PROMETHEUS, KUBERNETES)
# A chart needs no more points than it has pixels.
MAX_POINTS = 400


def execute(ctx):
    params = ctx.params
    service = validate_name(params["service"], "service")
    namespace = validate_name(service_namespace(params, ctx.deprecate), "namespace")
    base, canary = validate_name(params["base"], "base"), validate_name(params["canary"], "canary")
    window = validate_window(params["window"])
    dest = params["dest"]
    configmap = validate_name(params["configmap"], "configmap") if params["configmap"] else ""
    directory = os.path.dirname(os.path.abspath(dest))
    if os.path.isdir(dest) or not os.path.isdir(directory):
        raise AnalysisInputError(f"dest {dest!r} must be a file in an existing directory")
    end = params.get("ended_at") or time.time()
    stamps = [float(a["evaluated_at"]) for a in params["analyses"] if a.get("evaluated_at")]
    start = params.get("started_at") or ((min(stamps) if stamps else end) - 60)
    if start >= end:
        raise AnalysisInputError(f"started_at ({start}) must be before ended_at ({end})")
    step = max(1.0, round((end - start) / MAX_POINTS, 3))
    sent = range_queries(AnalysisTarget(service, namespace, base, canary, window, params["reporter"],
                                        per_version_services=params["per_version_services"]))
    series = {"success_rate": {"base": [], "canary": []}, "p99": {"base": [], "canary": []}}
    try:
        answers = {name: ctx.prometheus.query_range(promql, start, end, step) for name, promql in sent.items()}
        series = build_series(answers, base, canary)
    except PrometheusError as exc:
        ctx.warn(f"the report has no metric charts: {exc}")
    weights = weights_over_time(params["history"], canary, start, end)
    page = render(service, namespace, base, canary, start, end, weights, series, params["analyses"],
                  params["decision"], params["reason"], params.get("topology_before"),
                  params.get("topology_after"))
    try:
        with open(dest, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as exc:
        raise ModuleFailure(f"cannot write the report to {dest!r}: {exc}") from None
    result = {"dest": dest, "weights": weights, "series": series, "queries": sent,
              "started_at": start, "ended_at": end}
    if configmap:
        written_at = datetime.now(timezone.utc).isoformat()
        result.update(keep(ctx, report_configmap(configmap, namespace, service, canary, page, written_at), page))
    return result


def keep(ctx, configmap, page):
    """Writes the report's ConfigMap by server-side apply; returns what it kept, or warns why nothing was kept."""
    metadata = configmap["metadata"]
    where = f"ConfigMap {metadata['namespace']}/{metadata['name']}"
    try:
        server_side_apply(ctx.client, f"/api/v1/namespaces/{metadata['namespace']}/configmaps/{metadata['name']}",
                          configmap, ctx.check_mode)
    except (ApiError, ConnectionFailed, KubeConfigError) as exc:
        reason = describe_api_error(exc) if isinstance(exc, ApiError) else str(exc)
        ctx.warn(f"the report is not kept in {where}: {reason}; it is only in the file")
        return {}
    size, kept = len(page.encode("utf-8")), configmap["data"]["report.html"] == page
    if not kept:
        ctx.warn(f"the report ({size} bytes) is over a ConfigMap's {CONFIGMAP_LIMIT} bytes, so {where} holds an "
                 "empty report.html; it is only in the file")
    return {"changed": True, "configmap": {"name": metadata["name"], "namespace": metadata["namespace"],
                                           "written_at": metadata["annotations"]["canary.istio/written-at"],
                                           "bytes": size, "kept": kept}}


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
