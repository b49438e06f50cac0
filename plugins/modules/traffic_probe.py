#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic_probe
short_description: Send requests to a URL and measure which version answered, with confidence intervals
version_added: 0.1.0
description:
  - Sends O(requests) HTTP requests to O(url) with O(concurrency) parallel connections, sorts each
    answer into a label by the first of O(labels) whose regex is found in the body (for Bookinfo,
    C(v2) for black stars, C(v3) for red stars), and returns counts, shares and a Wilson score
    interval per label at O(confidence) (95% by default). Errors (no answer, or HTTP status 400 and
    above) are counted apart.
  - O(expect) fails the task when an expected share lies outside its interval, which turns
    "refresh the page and look" into a check a pipeline can run. A correct split fails it with a
    probability of about 1 - O(confidence)/100, one run in 20 at the default 95 and one in 10,000 at 99.99.
  - The probe runs on the Ansible controller (an action plugin), prints a progress line every
    O(progress_interval) seconds on long probes (shares, and the running interval of each expected
    label at O(confidence)), and a last line with the verdict.
author:
  - canary.istio contributors (@canary-istio)
attributes:
  check_mode:
    description: Sends the requests in check mode too; it changes nothing.
    support: full
  diff_mode:
    description: Returns no diff.
    support: none
  idempotent:
    description: Changes nothing.
    support: full
  action:
    description: Runs on the controller as an action plugin.
    support: full
options:
  url:
    description: The URL to request, for example the ingress gateway's C(/productpage).
    type: str
    required: true
  requests:
    description: How many requests to send (1 to 1000000).
    type: int
    default: 100
  concurrency:
    description: How many requests are in flight at the same time (1 to 256), each on a connection of its own, kept alive.
    type: int
    default: 10
  labels:
    description:
      - Label to regex. Each answer gets the first label (in the order given) whose regex is found
        in its body; answers matching none count as C(unmatched).
    type: dict
    required: true
  headers:
    description: "Request headers, for example C({end-user: jason})."
    type: dict
    default: {}
  cookies:
    description: "Cookies to send, for example C({user: jason})."
    type: dict
    default: {}
  method:
    description: HTTP method.
    type: str
    default: GET
    choices: [GET, HEAD, POST]
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
  validate_certs:
    description: Verify the TLS certificate of an https URL.
    type: bool
    default: true
  expect:
    description:
      - "Expected share per label in percent, for example C({v2: 30}). The task fails when the
        expected value lies outside the label's interval at O(confidence)."
    type: dict
  confidence:
    description:
      - Two-sided confidence level of the intervals and of the O(expect) check, in percent from 50 up
        to, not including, 100 (for example V(99.99)), as O(confidence) is in M(canary.istio.canary_analysis)
        and M(canary.istio.mesh_topology).
      - A value below 1 is the old fraction form (V(0.9999) for 99.99%); it is still read as a fraction, with a
        deprecation warning, until canary.istio 2.0.0.
      - "The trade-off: a correct split fails O(expect) with a probability of about 1 - O(confidence)/100,
        and a higher level widens the interval, so a wrong split must be further off to be caught. With
        1000 answers at 50%, the interval is about +-3.1 points at 95 and +-6.1 points at 99.99."
      - The default stays 95, the usual level for a one-off look. A check that runs unattended
        many times (a test suite, a pipeline gate) should use a higher level, as this collection's own
        tests and C(make demo) do with V(99.99), and send enough requests to keep the interval narrow.
    type: float
    default: 95
  max_errors:
    description: Fail the task when more requests than this fail. No limit when not set.
    type: int
  progress_interval:
    description: Seconds between progress lines on the controller's output.
    type: float
    default: 2
seealso:
  - module: canary.istio.traffic_split
"""

EXAMPLES = r"""
- name: Measure the reviews split through the gateway
  canary.istio.traffic_probe:
    url: "http://{{ gateway }}/productpage"
    requests: 1000
    concurrency: 20
    labels:
      v3: 'color="red"'
      v2: 'color="black"'
      v1: 'class="reviews"'
    expect:
      v2: 30
    max_errors: 0

- name: A gate that runs unattended - a correct 50% split fails it once in 10,000 runs
  canary.istio.traffic_probe:
    url: "http://{{ gateway }}/productpage"
    requests: 1000
    labels: {v2: 'color="black"'}
    expect: {v2: 50}
    confidence: 99.99

- name: Signed in as jason, every page comes from the tester route
  canary.istio.traffic_probe:
    url: "http://{{ gateway }}/productpage"
    requests: 50
    cookies: {user: jason}
    labels: {v3: 'color="red"'}
    expect: {v3: 100}
"""

RETURN = r"""
counts:
  description: Answers per label (including C(unmatched)); errors are not included.
  returned: always
  type: dict
  sample: {v1: 702, v2: 298, unmatched: 0}
shares:
  description: Share per label in percent of the answered requests.
  returned: always
  type: dict
  sample: {v1: 70.2, v2: 29.8, unmatched: 0.0}
intervals:
  description:
    - Wilson score interval per label at RV(confidence), as C([low, high]) percentages, rounded
      outwards to two decimals (the interval shown is the one O(expect) is checked against).
  returned: always
  type: dict
  sample: {v2: [27.15, 32.99]}
confidence:
  description:
    - The confidence level of RV(intervals) and of the O(expect) check, in percent, as O(confidence) takes
      it (V(95) for O(confidence=95), also when O(confidence) was given in the deprecated fraction form).
    - It was a fraction (V(0.95)) on the development branch after canary.istio 0.1.0, which did not return
      it; no key keeps that form, divide by 100 where a fraction is needed.
  returned: always
  type: float
  sample: 95.0
ok:
  description: Requests that got an answer with status below 400.
  returned: always
  type: int
errors:
  description: Requests that failed (no answer, or status 400 and above).
  returned: always
  type: int
error_kinds:
  description: Failed requests by HTTP status or error type.
  returned: always
  type: dict
  sample: {"503": 2}
duration:
  description: Seconds the probe took.
  returned: always
  type: float
requests_per_second:
  description: Achieved request rate.
  returned: always
  type: float
unexpected:
  description: Labels whose expected share lies outside the interval.
  returned: always
  type: dict
"""

from ansible_collections.canary.istio.plugins.module_utils._context import ModuleFailure
from ansible_collections.canary.istio.plugins.module_utils._module import run
from ansible_collections.canary.istio.plugins.module_utils._probe import (
    CONFIDENCE_FRACTION_UNTIL,
    PROBE_ARG_SPEC,
    as_percent,
    confidence_option,
    percent,
    probe_from_params,
    progress_line,
)

ARGUMENT_SPEC = PROBE_ARG_SPEC
# Talks to no API: it sends plain HTTP requests to the URL it is given.
USES = ()


def execute(ctx):
    level, fraction_form = confidence_option(ctx.params["confidence"])
    if fraction_form:
        ctx.deprecate(f"confidence {ctx.params['confidence']!r} is read as a fraction ({percent(as_percent(level))}), "
                      "as before; write it in percent (for example 99.99), as canary_analysis and mesh_topology "
                      "take it and as the result's confidence states it. "
                      f"canary.istio {CONFIDENCE_FRACTION_UNTIL} reads every value as a percent",
                      CONFIDENCE_FRACTION_UNTIL)
    show = ctx.progress
    result, failure = probe_from_params({**ctx.params, "confidence": level},
                                        progress=(lambda snap: show(progress_line(snap))) if show else None)
    if failure:
        raise ModuleFailure(failure, **result)
    return result


def main() -> None:
    # Normally the action plugin of the same name runs the probe on the controller; this module
    # runs it where the task runs when called directly.
    run(ARGUMENT_SPEC, USES, execute)


if __name__ == "__main__":
    main()
