#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: canary_analysis
short_description: Judge a canary against its base from Istio's metrics in Prometheus
version_added: 0.1.0
description:
  - Queries Prometheus' HTTP API (C(/api/v1/query)) for two versions of a service over a window of
    time - the base and the canary - and returns a verdict, V(pass), V(fail) or V(inconclusive), for
    every check and overall. It only reads; run it after each canary step and act on RV(verdict).
  - "Built-in checks, named as in Flagger: V(request-success-rate) (share of answers that are not 5xx,
    in percent, at least O(checks[].min)) and V(request-duration) (p99 latency in milliseconds, at most
    O(checks[].max)). Each judges the canary alone and, unless O(checks[].compare=false), compared with
    the base."
  - Built-in checks are judged on confidence bounds, never on point estimates. A check V(pass)es when
    its bounds show the canary within its limits and no worse than the base within the tolerance, and
    V(fail)s when they show it outside; otherwise it is V(inconclusive) and RV(more_requests) says how
    many more canary requests would settle it if the canary kept showing what it shows.
  - The error rate is bounded with exact (Clopper-Pearson) bounds; the comparison with the base is the
    exact conditional test for two Poisson counts - it fails when the canary's error rate is shown
    above (1 + O(checks[].fail_percent)/100) times the base's (by default 1.2 times), and passes when it
    is shown below (1 + O(checks[].tolerance_percent)/100) times the base's, or below
    O(checks[].negligible_percent).
  - Latency is judged on the histogram's counts - the share of the canary's requests slower than the
    bucket boundary at or above O(checks[].max) (at most 1% for a p99 within the limit), and the
    share slower than the boundary at or above p99 + tolerance compared with the base's by the same
    count test. The result names the boundaries, and says when the tolerance is finer than the buckets.
  - "The error budget is the release's: O(confidence) bounds the chance that a canary as healthy as its
    base is failed at any of the O(looks) planned looks, O(power) the chance that a bad canary passes.
    Each look spends its share (O(looks) equal shares). With O(since), evidence accumulates from that
    time until now. See C(docs/analysis.md) for the tests, their assumptions and the request counts
    they need."
  - Custom checks take a PromQL template (Jinja, with C(service), C(namespace), C(version) and
    C(window)) that must return one number, judged against O(checks[].min) and O(checks[].max), as
    Flagger's MetricTemplates and Argo Rollouts' AnalysisTemplates do.
  - Missing data never passes - a check is V(inconclusive) when the canary answered fewer than
    O(min_requests) requests, or when a query returned no data.
  - Queries use Istio's standard metrics C(istio_requests_total) and
    C(istio_request_duration_milliseconds) with the labels C(reporter), C(destination_service_name),
    C(destination_service_namespace) and C(destination_version); with O(caller_failures), requests that
    only the caller's proxy reports (Envoy response flags C(UH), C(UF), C(UO), C(NR), C(NC), C(URX))
    count as failed requests as well.
  - Prometheus errors that may pass by themselves (no connection, timeouts, HTTP 5xx) are retried twice
    (after 0.5 s and 1 s) before the module fails.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.prometheus
  - canary.istio.prometheus.PER_VERSION_SERVICES
  - canary.istio.attributes
  - canary.istio.attributes.INFO
options:
  service:
    description: The service, as Istio's C(destination_service_name) label names it (for example V(reviews)).
    type: str
    required: true
  namespace:
    description:
      - The service's namespace (C(destination_service_namespace)).
      - Required from canary.istio 2.0.0. Not given, V(default) is read, with a deprecation warning (the
        Kubernetes modules take an omitted namespace from the kubeconfig context; these modules read no kubeconfig).
    type: str
  base:
    description: The base version (C(destination_version) label, for example V(v1)).
    type: str
    required: true
  canary:
    description: The canary version (for example V(v2)).
    type: str
    required: true
  window:
    description:
      - How far back to look, as a Prometheus duration (V(30s), V(1m), V(5m)); with O(since), the
        shortest range looked at.
    type: str
    default: 1m
  since:
    description:
      - Count the evidence from this time until now (Unix seconds, or RFC 3339 with a time zone such as
        V(2026-12-06T17:30:00Z)), so that the looks of one canary step accumulate evidence; the range
        queried is the longer of O(window) and now - O(since).
    type: raw
  scrape_interval:
    description:
      - Prometheus' scrape interval for Istio's metrics (a duration such as V(15s)). When given, a
        O(window) shorter than two scrape intervals is refused (C(increase) needs two samples).
    type: str
  look:
    description:
      - This look's number among the looks planned for the whole release (1 for the first).
    type: int
    default: 1
  looks:
    description:
      - How many looks are planned for the whole release; the error budget (O(confidence), O(power))
        is spent over them in equal shares, so the release's false-rollback and false-promotion rates
        hold for the release as a whole.
      - When the looks come is free as long as it does not depend on what they judge - every
        interval, or when a planned number of canary requests is expected at the request rate seen so
        far; a look timed by the errors or latencies it will read would spend more than its share.
    type: int
    default: 1
  min_requests:
    description:
      - The fewest requests the canary must have answered for a check to pass (a fail needs only its
        bound).
      - Default - for each built-in check, the fewest requests with which a canary without a single
        bad request could pass its absolute limit at this look's O(power) (for example 299 for V(min=99)
        at one look); 100 for custom checks.
    type: int
  confidence:
    description:
      - Confidence, in percent, against failing a canary as healthy as its base, over all the O(looks)
        of the release and all checks (the release's false-rollback rate is at most 100 - this).
    type: float
    default: 99
  power:
    description:
      - Power, in percent, against passing a bad canary (one twice as bad as the base or outside its
        limits); the release's false-promotion rate is at most 100 - this.
    type: float
    default: 95
  caller_failures:
    description:
      - With O(reporter=destination), also count the requests callers saw fail that never reached the
        destination (source-reported with Envoy response flags C(UH), C(UF), C(UO), C(NR), C(NC),
        C(URX)), as requests and as errors. A request is reported by one proxy or the other for these
        flags, never counted twice.
    type: bool
    default: true
  reporter:
    description: Which proxy's report to read (Istio's C(reporter) label); Flagger reads V(destination).
    type: str
    choices: [destination, source]
    default: destination
  checks:
    description:
      - The checks to run. Default - V(request-success-rate) and V(request-duration) with their defaults.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - V(request-success-rate), V(request-duration), or the name of a custom check (which needs O(checks[].query)).
        type: str
        required: true
      query:
        description:
          - A custom check's PromQL, a Jinja template with C(service), C(namespace), C(version) and
            C(window); it is rendered once for the canary and once for the base, and must return one number.
          - Mark it C(!unsafe) in a playbook so that Ansible leaves the braces to this module.
        type: str
      min:
        description:
          - Lowest acceptable canary value, a number. For V(request-success-rate) a percentage (default V(99)).
        type: raw
      max:
        description:
          - Highest acceptable canary value, a number. For V(request-duration) the p99 in milliseconds
            (default V(500)).
        type: raw
      compare:
        description: For a built-in check, whether to compare the canary with the base as well (default V(true)).
        type: bool
      tolerance_percent:
        description:
          - For V(request-success-rate), how much higher the canary's error rate may be, relative to the
            base's (default V(100) - up to twice the base's rate).
          - For V(request-duration), how much higher the canary's p99 may be, relative to the base's
            (default V(20)).
          - A number, 0 or more.
        type: raw
      tolerance_ms:
        description:
          - For V(request-duration), an increase of the p99 that is always allowed, in milliseconds
            (default V(25)). The comparison uses the first bucket boundary at or above p99 + tolerance;
            when that lies further, the result says so.
          - A number, 0 or more.
        type: raw
      negligible_percent:
        description:
          - For V(request-success-rate), an error rate in percent so small that it passes the comparison
            with the base whatever the base shows (default V(0.1)); without it, a base with no errors
            would block every pass.
          - For V(request-duration), the same for the share of requests slower than the comparison's
            boundary (default V(0.5)).
          - A number, 0 (off) or more, below 100.
        type: raw
      fail_percent:
        description:
          - How much worse than the base the comparison must show the canary before it fails it, in
            percent. Between this and O(checks[].tolerance_percent) a canary is passed once shown within the
            tolerance, and held (inconclusive) until then - never rolled back by the comparison.
          - For V(request-success-rate), the canary's error rate against the base's (default V(20), or
            O(checks[].tolerance_percent) when that is lower; V(0) fails a canary shown worse than the base
            at all). A number from 0 to O(checks[].tolerance_percent).
          - For V(request-duration), the canary's share of requests slower than the comparison's
            boundary against the base's (default V(100), twice the base's share, which the comparison
            tolerates). A number from 0 to 100.
          - C(docs/analysis.md) has the measured false rollbacks and detections of both error defaults.
        type: raw
notes:
  - The module returns the verdict and does not fail the task when the canary fails; use
    C(failed_when) or a role that acts on RV(verdict).
seealso:
  - module: canary.istio.traffic_split
  - module: canary.istio.canary_info
  - name: Flagger metrics analysis
    description: The built-in checks whose names this module uses.
    link: https://docs.flagger.app/usage/metrics
  - name: Istio standard metrics
    description: The metrics and labels the built-in checks query.
    link: https://istio.io/latest/docs/reference/config/metrics/
"""

EXAMPLES = r"""
- name: Judge reviews v2 against v1 over the last minute
  canary.istio.canary_analysis:
    service: reviews
    namespace: bookinfo
    base: v1
    canary: v2
    window: 1m
    prometheus_url: http://prometheus.istio-system:9090
  register: analysis

- name: Stop when the canary is not healthy
  ansible.builtin.assert:
    that: analysis.verdict == 'pass'
    fail_msg: "{{ analysis.summary }}"

- name: Stricter thresholds and a custom check (the template is left to the module with !unsafe)
  canary.istio.canary_analysis:
    service: reviews
    namespace: bookinfo
    base: v1
    canary: v2
    window: 2m
    min_requests: 500
    checks:
      - name: request-success-rate
        min: 99.5
        tolerance_percent: 0
      - name: request-duration
        max: 300
      - name: ratings-calls-per-second
        query: !unsafe >-
          sum(rate(istio_requests_total{reporter="source", source_workload_namespace="{{ namespace }}",
          source_version="{{ version }}", destination_service_name="ratings"}[{{ window }}]))
        max: 50
  register: analysis
"""

RETURN = r"""
verdict:
  description: V(pass) when every check passed, V(fail) when any failed, else V(inconclusive).
  returned: success
  type: str
  sample: fail
summary:
  description: One line saying which checks decided the verdict.
  returned: success
  type: str
  sample: "canary v2 failed: request-success-rate"
checks:
  description:
    - Every check with its verdict and reason, canary and base values (C(value), C(requests), C(errors)),
      its thresholds, the confidence C(bounds) it was judged on (C(limit) - the absolute limit, C(base) -
      the comparison, with the boundary used for latency), C(more_requests), C(min_requests), C(notes)
      and the PromQL sent.
  returned: success
  type: list
  elements: dict
  sample:
    - name: request-success-rate
      kind: builtin
      verdict: fail
      reason: "canary success rate 80.12% < min 99%; canary error rate 19.88% vs base 0.00%: worse ..."
      canary: {value: 80.12, requests: 412.0, errors: 82.0}
      base: {value: 100.0, requests: 401.0, errors: 0.0}
      min: 99.0
      max: null
      bounds:
        limit: {lower: 0.1667, upper: 0.2383, limit: 0.01, lower_confidence: 0.9975, upper_confidence: 0.95}
        base: {ratio_lower: 40.3, ratio_upper: null, ratio_limit: 2.0, fail_ratio: 1.2, canary_upper: 0.2383, negligible: 0.001,
               lower_confidence: 0.9975, upper_confidence: 0.975}
      more_requests: 0
      min_requests: 299
      notes: []
      queries:
        canary: ['sum(increase(istio_requests_total{reporter="destination",...}[1m]))']
        base: ['sum(increase(istio_requests_total{reporter="destination",...}[1m]))']
failed_checks:
  description: Names of the checks that failed.
  returned: success
  type: list
  elements: str
inconclusive_checks:
  description: Names of the checks that were inconclusive.
  returned: success
  type: list
  elements: str
more_requests:
  description:
    - Canary requests beyond those seen that would settle the inconclusive checks (the largest over the
      checks) if both versions kept showing what they show; 0 when every check is settled.
  returned: success
  type: int
  sample: 1200
look:
  description: This look's number (O(look)).
  returned: success
  type: int
looks:
  description: The looks planned for the release (O(looks)).
  returned: success
  type: int
alpha:
  description:
    - The error level each failing test used at this look - the release's alpha (100 - O(confidence),
      as a fraction) divided by O(looks) and by the number of failing tests of the built-in checks.
  returned: success
  type: float
  sample: 0.00083
beta:
  description: The error level each passing test used at this look (100 - O(power), as a fraction, / O(looks)).
  returned: success
  type: float
  sample: 0.0167
since:
  description: The start of the evidence (Unix seconds) when O(since) was given, else null.
  returned: success
  type: float
requests:
  description: Requests each version answered in the range, as Prometheus counts them.
  returned: success
  type: dict
  sample: {base: 401.0, canary: 412.0}
evaluated_at:
  description: The evaluation time (Unix seconds) sent with every query, so all checks see the same instant.
  returned: success
  type: float
window:
  description: The range analysed (O(window), or now - O(since) when longer, in seconds).
  returned: success
  type: str
  sample: 1m
prometheus_requests:
  description: Number of HTTP requests made to Prometheus.
  returned: always
  type: int
"""

import time

from ansible_collections.canary.istio.plugins.module_utils._context import PROMETHEUS
from ansible_collections.canary.istio.plugins.module_utils._logic.analysis import (
    REPORTERS,
    AnalysisInputError,
    AnalysisTarget,
    Budget,
    analyse,
    buckets_from_vector,
    evidence_range,
    validate_checks,
    validate_confidence,
    validate_looks,
    validate_power,
    validate_scrape_interval,
    validate_since,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.resources import validate_name
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._prometheus import PrometheusError, single_value
from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import service_namespace

CHECK_OPTIONS = {
    "name": {"type": "str", "required": True},
    "query": {"type": "str"},
    # Numbers are checked by the analysis itself, whose message names the check and the value.
    "min": {"type": "raw"},
    "max": {"type": "raw"},
    "compare": {"type": "bool"},
    "tolerance_percent": {"type": "raw"},
    "tolerance_ms": {"type": "raw"},
    "negligible_percent": {"type": "raw"},
    "fail_percent": {"type": "raw"},
}

ARGUMENT_SPEC = {
    "service": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "base": {"type": "str", "required": True},
    "canary": {"type": "str", "required": True},
    "window": {"type": "str", "default": "1m"},
    "since": {"type": "raw"},
    "scrape_interval": {"type": "str"},
    "look": {"type": "int", "default": 1},
    "looks": {"type": "int", "default": 1},
    "min_requests": {"type": "int"},
    "confidence": {"type": "float", "default": 99.0},
    "power": {"type": "float", "default": 95.0},
    "reporter": {"type": "str", "choices": list(REPORTERS), "default": "destination"},
    "caller_failures": {"type": "bool", "default": True},
    "checks": {"type": "list", "elements": "dict", "options": CHECK_OPTIONS},
    "per_version_services": {"type": "bool", "default": False},
}
USES = (PROMETHEUS,)


def execute(ctx):
    params = ctx.params
    now = time.time()
    if params["min_requests"] is not None and params["min_requests"] < 1:
        raise AnalysisInputError(f"min_requests must be 1 or more, got {params['min_requests']}")
    window = validate_window(params["window"])
    validate_scrape_interval(params.get("scrape_interval"), window)
    since = validate_since(params.get("since"), now)
    look, looks = validate_looks(params["look"], params["looks"])
    target = AnalysisTarget(
        service=validate_name(params["service"], "service"),
        namespace=validate_name(service_namespace(params, ctx.deprecate), "namespace"),
        base=validate_name(params["base"], "base"),
        canary=validate_name(params["canary"], "canary"),
        window=evidence_range(window, since, now), reporter=params["reporter"],
        caller_failures=params["caller_failures"],
        per_version_services=params["per_version_services"])
    if target.base == target.canary:
        raise AnalysisInputError(f"base and canary are both {target.base!r}; name two different versions")
    checks = validate_checks(params.get("checks"))
    alpha = 1.0 - validate_confidence(params["confidence"]) / 100.0
    beta = 1.0 - validate_power(params["power"]) / 100.0
    budget = Budget(alpha=alpha, beta=beta, look=look, looks=looks)
    client = ctx.prometheus
    evaluated_at = round(now, 3)

    def ask(check, promql):
        try:
            return client.query(promql, evaluated_at)
        except PrometheusError as exc:
            raise PrometheusError(f"{check}: {exc}") from None

    def query(check, promql):
        return single_value(ask(check, promql), promql)

    def query_buckets(check, promql):
        data = ask(check, promql)
        if data.get("resultType") != "vector":
            raise PrometheusError(f"{check}: expected an instant vector by le, got a {data.get('resultType')}: "
                                  f"{promql}")
        return buckets_from_vector(data.get("result") or [])

    result = analyse(target, checks, params["min_requests"], budget, query, query_buckets)
    result.update(evaluated_at=evaluated_at, window=target.window, since=since)
    return result


def main() -> None:
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
