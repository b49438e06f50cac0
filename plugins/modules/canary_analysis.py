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
  - The error-rate comparison is a one-sided exact test on the request counts - the canary fails when
    its error rate is above (1 + O(checks[].tolerance_percent)/100) times the base's with
    O(confidence)% confidence. The p99 comparison fails when the canary's p99 exceeds the base's by
    more than the larger of O(checks[].tolerance_percent) of the base's p99 and O(checks[].tolerance_ms).
    See C(docs/analysis.md) for the test and its assumptions.
  - Custom checks take a PromQL template (Jinja, with C(service), C(namespace), C(version) and
    C(window)) that must return one number, judged against O(checks[].min) and O(checks[].max), as
    Flagger's MetricTemplates and Argo Rollouts' AnalysisTemplates do.
  - Missing data never passes - a check is V(inconclusive) when the canary saw fewer than
    O(min_requests) requests in the window, or when a query returned no data.
  - Queries use Istio's standard metrics C(istio_requests_total) and
    C(istio_request_duration_milliseconds) with the labels C(reporter), C(destination_service_name),
    C(destination_service_namespace) and C(destination_version).
  - Accepts the Kubernetes connection options of the C(canary.istio.istio) action group so that
    C(module_defaults) for the group apply, but does not use them.
author:
  - canary.istio contributors (@canary-istio)
extends_documentation_fragment:
  - canary.istio.auth
  - canary.istio.prometheus
  - canary.istio.attributes
  - canary.istio.attributes.INFO
options:
  service:
    description: The service, as Istio's C(destination_service_name) label names it (for example V(reviews)).
    type: str
    required: true
  namespace:
    description: The service's namespace (C(destination_service_namespace)).
    type: str
    default: default
  base:
    description: The base version (C(destination_version) label, for example V(v1)).
    type: str
    required: true
  canary:
    description: The canary version (for example V(v2)).
    type: str
    required: true
  window:
    description: How far back to look, as a Prometheus duration (V(30s), V(1m), V(5m)).
    type: str
    default: 1m
  min_requests:
    description:
      - The fewest requests the canary must have answered in the window for any check to pass or
        fail on its own numbers; with fewer, checks are V(inconclusive).
      - The base needs as many for a comparison with it.
    type: int
    default: 100
  confidence:
    description: Confidence, in percent, of the error-rate comparison (one-sided).
    type: float
    default: 95
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
            base's (default V(50) - up to 1.5 times the base's rate).
          - For V(request-duration), how much higher the canary's p99 may be, relative to the base's
            (default V(20)).
          - A number, 0 or more.
        type: raw
      tolerance_ms:
        description:
          - For V(request-duration), an increase of the p99 that is always allowed, in milliseconds
            (default V(25)); histogram buckets make small p99 differences noise.
          - A number, 0 or more.
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
      its thresholds, the comparison with the base (test, tolerance, p-value) and the PromQL sent.
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
      comparison: {test: exact conditional binomial test (one-sided) on error counts, tolerance_percent: 50.0,
                   confidence: 95.0, p_value: 0.0, verdict: fail}
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
requests:
  description: Requests each version answered in the window, as Prometheus counts them.
  returned: success
  type: dict
  sample: {base: 401.0, canary: 412.0}
evaluated_at:
  description: The evaluation time (Unix seconds) sent with every query, so all checks see the same instant.
  returned: success
  type: float
window:
  description: The window analysed.
  returned: success
  type: str
  sample: 1m
prometheus_requests:
  description: Number of HTTP requests made to Prometheus.
  returned: always
  type: int
"""

import time

from ansible_collections.canary.istio.plugins.module_utils._analysis import (
    REPORTERS,
    AnalysisInputError,
    Target,
    analyse,
    validate_checks,
    validate_confidence,
    validate_name,
    validate_window,
)
from ansible_collections.canary.istio.plugins.module_utils._module import full_argument_spec
from ansible_collections.canary.istio.plugins.module_utils._prometheus import PrometheusError, single_value
from ansible_collections.canary.istio.plugins.module_utils._prometheus_options import (
    PROMETHEUS_ARG_SPEC,
    run,
    run_body,
)

CHECK_OPTIONS = {
    "name": {"type": "str", "required": True},
    "query": {"type": "str"},
    # Numbers are checked by the analysis itself, whose message names the check and the value.
    "min": {"type": "raw"},
    "max": {"type": "raw"},
    "compare": {"type": "bool"},
    "tolerance_percent": {"type": "raw"},
    "tolerance_ms": {"type": "raw"},
}

ARGUMENT_SPEC = {
    "service": {"type": "str", "required": True},
    "namespace": {"type": "str", "default": "default"},
    "base": {"type": "str", "required": True},
    "canary": {"type": "str", "required": True},
    "window": {"type": "str", "default": "1m"},
    "min_requests": {"type": "int", "default": 100},
    "confidence": {"type": "float", "default": 95.0},
    "reporter": {"type": "str", "choices": list(REPORTERS), "default": "destination"},
    "checks": {"type": "list", "elements": "dict", "options": CHECK_OPTIONS},
    **PROMETHEUS_ARG_SPEC,
}


def argument_spec():
    """The module's options plus the group's Kubernetes connection options (accepted, unused)."""
    return full_argument_spec(ARGUMENT_SPEC, istio=False)


def execute(params):
    """Runs the analysis; every expected failure becomes ``failed: true`` with one clear ``msg``."""
    return run_body(params, _analyse)


def _analyse(session):
    params = session.params
    if params["min_requests"] < 1:
        raise AnalysisInputError(f"min_requests must be 1 or more, got {params['min_requests']}")
    target = Target(service=validate_name(params["service"], "service"),
                    namespace=validate_name(params["namespace"], "namespace"),
                    base=validate_name(params["base"], "base"),
                    canary=validate_name(params["canary"], "canary"),
                    window=validate_window(params["window"]), reporter=params["reporter"])
    if target.base == target.canary:
        raise AnalysisInputError(f"base and canary are both {target.base!r}; name two different versions")
    checks = validate_checks(params.get("checks"))
    confidence = validate_confidence(params["confidence"])
    client = session.client
    evaluated_at = round(time.time(), 3)

    def query(check, promql):
        try:
            return single_value(client.query(promql, evaluated_at), promql)
        except PrometheusError as exc:
            raise PrometheusError(f"{check}: {exc}") from None

    result = analyse(target, checks, params["min_requests"], confidence, query)
    result.update(evaluated_at=evaluated_at, window=target.window)
    return result


def main():
    run(argument_spec(), execute)


if __name__ == "__main__":
    main()
