"""The release rules the decision benchmark compares, each run over the same simulated telemetry.

Every rule walks a release through the plan's steps and ends in one of three outcomes per
replication: ``PROMOTE``, ``ROLLBACK`` or ``HOLD`` (no decision by the end of the plan: the step
stays where it is and a person decides). A rule also reports how many intervals it used at each
step, from which the harness counts the seconds and canary requests until its decision.

The peers are written from their documentation (cited at each rule), with the same absolute limits
as ours (``min`` success rate, ``max`` p99), so that only the decision rule differs:

- Flagger: ``analysis.interval``, ``threshold`` (failed checks before rollback) and per-check
  ``thresholdRange`` on the point values of each interval's window.
- Argo Rollouts: a background AnalysisRun with the documented success-rate template
  (``successCondition: result[0] >= 0.99`` on ``irate``), ``failureLimit`` and
  ``consecutiveErrorLimit``; the rollout promotes when its steps end without a failed run.
- Kayenta (Spinnaker's NetflixACAJudge): each metric's per-scrape series, canary against baseline,
  classified by the Mann-Whitney confidence interval (High / Low / Pass), scored 0-100, judged
  against ``scoreThresholds`` (``marginal``, ``pass``) at every interval of a step's analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from bench.decision_sim import Telemetry, histogram_quantile

PROMOTE, ROLLBACK, HOLD = 1, -1, 0


@dataclass(frozen=True)
class Limits:
    """The absolute limits every rule applies: success rate in percent, p99 in milliseconds."""

    min_success: float = 99.0
    max_p99_ms: float = 500.0
    latency: bool = True  # judge latency as well as errors


@dataclass(frozen=True)
class Plan:
    """How a release runs: seconds between looks, looks per step, scrape resolution."""

    interval: int = 60
    looks_per_step: int = 5
    scrape: int = 10
    flagger_threshold: int = 5
    argo_failure_limit: int = 3
    argo_consecutive_error_limit: int = 4
    kayenta_marginal: float = 75.0
    kayenta_pass: float = 95.0
    kayenta_confidence: float = 0.98
    kayenta_fraction: float = 0.25
    # Ours with looks planned in requests (the driver's ``look_requests``): None - a look every interval.
    look_requests: int | None = None
    window: int = 20  # seconds: two scrapes, the shortest range a look reads

    @property
    def scrapes(self) -> int:
        return self.interval // self.scrape

    @property
    def slots(self) -> int:
        """Intervals drawn per step: enough for every rule (Flagger may retry a step)."""
        return max(self.looks_per_step, self.flagger_threshold)


@dataclass
class Outcome:
    """Per replication: the decision and the intervals used at each step (shape [replication, step])."""

    decision: np.ndarray
    used: np.ndarray
    least_pass: float = math.inf  # fewest canary requests a step passed on (ours only)
    # Per replication, when looks do not fall on whole intervals (ours with look_requests): the
    # seconds and canary requests until the last look of the release. None: counted from ``used``.
    seconds: np.ndarray | None = None
    requests: np.ndarray | None = None


# --------------------------------------------------------------------------- Flagger


def flagger(data: Telemetry, limits: Limits, plan: Plan) -> Outcome:
    """Flagger's canary analysis, from https://docs.flagger.app/usage/deployment-strategies and
    https://docs.flagger.app/usage/metrics (``analysis.interval``, ``threshold``: "max number of failed
    metric checks before rollback", ``stepWeights``, built-in ``request-success-rate`` with
    ``thresholdRange.min`` and ``request-duration`` (p99) with ``thresholdRange.max``, each over the
    metric ``interval`` window).

    Every interval Flagger runs the checks over the last interval: all pass - the canary moves to the
    next weight (after the last weight, it is promoted); one fails, or returns no value - the
    failed-checks counter goes up and the weight stays; the counter reaching ``threshold`` rolls back.
    """
    requests = data.canary_requests.sum(axis=3)
    errors = data.canary_errors.sum(axis=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        success = 100.0 * (1.0 - errors / requests)
    ok = success >= limits.min_success  # NaN (no requests) compares False: a failed check
    if limits.latency:
        p99 = histogram_quantile(0.99, data.canary_buckets.sum(axis=3))
        ok &= p99 <= limits.max_p99_ms
    replications, steps, slots = ok.shape
    step = np.zeros(replications, dtype=int)
    slot = np.zeros(replications, dtype=int)
    failed = np.zeros(replications, dtype=int)
    decision = np.full(replications, HOLD)
    used = np.zeros((replications, steps), dtype=int)
    rows = np.arange(replications)
    for _tick in range(steps * slots):
        live = decision == HOLD
        if not live.any():
            break
        live_rows = rows[live]
        passed = ok[live_rows, step[live], slot[live]]
        used[live_rows, step[live]] += 1
        failed[live_rows] += ~passed
        slot[live_rows] += 1
        advance = live_rows[passed]
        step[advance] += 1
        slot[advance] = 0
        decision[advance[step[advance] == steps]] = PROMOTE
        step[advance[step[advance] == steps]] = steps - 1  # keep indexable; decided anyway
        decision[live_rows[failed[live_rows] >= plan.flagger_threshold]] = ROLLBACK
    return Outcome(decision, used)


# --------------------------------------------------------------------------- Argo Rollouts


def argo(data: Telemetry, limits: Limits, plan: Plan) -> Outcome:
    """Argo Rollouts' background analysis, from https://argoproj.github.io/argo-rollouts/features/analysis/
    (the documented success-rate AnalysisTemplate: ``successCondition: result[0] >= 0.99`` on
    ``sum(irate(...non-5xx...[5m])) / sum(irate(...[5m]))``, ``interval``, ``failureLimit``,
    ``consecutiveErrorLimit`` (default 4)); a p99 metric beside it with ``result[0] <= max``.

    A measurement is taken every interval while the steps pause (``looks_per_step`` intervals per
    step). ``irate`` reads the last two samples, so the success rate is the last scrape's. A value
    outside the condition is a failed measurement; no value (no requests in that scrape, the query
    returns NaN) is an error. The run fails - and the rollout aborts (rolls back) - when a metric's
    failed measurements exceed ``failureLimit`` or its errors in a row exceed
    ``consecutiveErrorLimit``; otherwise the rollout is promoted when its last step ends.
    """
    looks = plan.looks_per_step
    last_requests = data.canary_requests[:, :, :looks, -1]
    last_errors = data.canary_errors[:, :, :looks, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = 1.0 - last_errors / last_requests
    metrics = [(ratio, ratio >= limits.min_success / 100.0)]
    if limits.latency:
        p99 = histogram_quantile(0.99, data.canary_buckets[:, :, :looks].sum(axis=3))
        metrics.append((p99, p99 <= limits.max_p99_ms))
    replications, steps = ratio.shape[:2]
    measurements = steps * looks
    first_failure = np.full(replications, measurements)  # index of the measurement that fails the run
    for value, condition in metrics:
        error = np.isnan(value.reshape(replications, measurements))
        failed = ~condition.reshape(replications, measurements) & ~error
        too_many = np.cumsum(failed, axis=1) > plan.argo_failure_limit
        run = np.zeros(replications, dtype=int)
        too_many_errors = np.zeros_like(error)
        for index in range(measurements):
            run = np.where(error[:, index], run + 1, 0)
            too_many_errors[:, index] = run > plan.argo_consecutive_error_limit
        ends = too_many | too_many_errors
        first_failure = np.minimum(first_failure, np.where(ends.any(axis=1), ends.argmax(axis=1), measurements))
    decision = np.where(first_failure < measurements, ROLLBACK, PROMOTE)
    taken = np.minimum(first_failure + 1, measurements)
    used = np.clip(taken[:, None] - looks * np.arange(steps)[None, :], 0, looks)
    return Outcome(decision, used)


# --------------------------------------------------------------------------- Kayenta


def mann_whitney_interval(canary: np.ndarray, base: np.ndarray, confidence: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the confidence interval and Hodges-Lehmann estimate of the shift canary - base.

    Distribution-free interval from the Mann-Whitney statistic (Hollander and Wolfe, Nonparametric
    Statistical Methods, 4.3; the interval R's ``wilcox.test(conf.int=TRUE)`` and Kayenta's port of
    it compute), normal approximation without tie correction: the ``k``-th smallest and largest of
    the ``m x n`` pairwise differences, ``k = floor(mn/2 - z sqrt(mn(m+n+1)/12))``. NaN values (no
    data) are left out; rows without data on either side get ``has_data = False``.
    """
    m = np.sum(~np.isnan(canary), axis=1)
    n = np.sum(~np.isnan(base), axis=1)
    pairs = (canary[:, :, None] - base[:, None, :]).reshape(canary.shape[0], -1)
    pairs.sort(axis=1)  # NaN last
    total = m * n
    has_data = total > 0
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    k = np.floor(total / 2.0 - z * np.sqrt(total * (m + n + 1) / 12.0)).astype(int)
    safe_k = np.clip(k, 1, None)
    lower_index = np.clip(safe_k - 1, 0, pairs.shape[1] - 1)
    upper_index = np.clip(total - safe_k, 0, pairs.shape[1] - 1)
    lower = np.where(k >= 1, np.take_along_axis(pairs, lower_index[:, None], 1)[:, 0], -math.inf)
    upper = np.where(k >= 1, np.take_along_axis(pairs, upper_index[:, None], 1)[:, 0], math.inf)
    with np.errstate(invalid="ignore"):
        middle_low = np.take_along_axis(pairs, np.clip((total - 1) // 2, 0, None)[:, None], 1)[:, 0]
        middle_high = np.take_along_axis(pairs, np.clip(total // 2, 0, None)[:, None], 1)[:, 0]
    estimate = (middle_low + middle_high) / 2.0
    return lower, upper, estimate, has_data


def kayenta_high(canary: np.ndarray, base: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Kayenta's MannWhitneyClassifier for a metric whose increase is bad (``direction: increase``):
    High when the interval's lower end is above ``fraction x |estimate|``; identical data pass.
    Returns (high, has_data) per row."""
    lower, _upper, estimate, has_data = mann_whitney_interval(canary, base, plan.kayenta_confidence)
    high = has_data & (lower > plan.kayenta_fraction * np.abs(estimate))
    return high, has_data


def kayenta(data: Telemetry, limits: Limits, plan: Plan) -> Outcome:
    """Spinnaker/Kayenta canary analysis per step, from https://spinnaker.io/docs/guides/user/canary/judge/
    (NetflixACAJudge: data validation, NaN removal, Mann-Whitney classification Pass/High/Low per
    metric, score = share of metrics classified Pass, NODATA metrics left out) and
    https://spinnaker.io/docs/guides/user/canary/config/ (``scoreThresholds``: ``marginal`` and ``pass``),
    with the values NetflixACAJudge.scala gives spinnaker/kayenta's ``MannWhitneyClassifier``
    (confidence 0.98, fraction 0.25) and ``direction: increase`` for both metrics. The judge's
    outlier removal (an IQR detector, factor 3) is left out: every scrape's value is kept.

    Each step is one canary analysis over ``looks_per_step`` intervals with a growing lookback; a
    judgment at every interval. A score below ``marginal`` ends the analysis as failed (rollback); a
    last score below ``pass`` fails it too; otherwise the release moves on. The metrics are each
    scrape's error ratio and p99 (NaN without requests), canary against base.
    """
    looks = plan.looks_per_step
    replications, steps = data.canary_requests.shape[:2]
    with np.errstate(invalid="ignore", divide="ignore"):
        canary_ratio = data.canary_errors / data.canary_requests
        base_ratio = data.base_errors / data.base_requests
    series = [(canary_ratio, base_ratio)]
    if limits.latency:
        series.append((histogram_quantile(0.99, data.canary_buckets), histogram_quantile(0.99, data.base_buckets)))
    decision = np.full(replications, HOLD)
    used = np.zeros((replications, steps), dtype=int)
    live = np.ones(replications, dtype=bool)
    for step in range(steps):
        failed_at = np.full(replications, -1)
        for look in range(looks):
            passes = np.zeros(replications)
            with_data = np.zeros(replications)
            for canary_values, base_values in series:
                canary_window = canary_values[:, step, : look + 1].reshape(replications, -1)
                base_window = base_values[:, step, : look + 1].reshape(replications, -1)
                high, has_data = kayenta_high(canary_window, base_window, plan)
                passes += has_data & ~high
                with_data += has_data
            with np.errstate(invalid="ignore", divide="ignore"):
                score = np.where(with_data > 0, 100.0 * passes / with_data, 0.0)
            threshold = plan.kayenta_marginal if look < looks - 1 else plan.kayenta_pass
            fails_now = live & (failed_at < 0) & (score < threshold)
            failed_at[fails_now] = look
        finished = live.copy()
        used[finished, step] = np.where(failed_at[finished] >= 0, failed_at[finished] + 1, looks)
        decision[live & (failed_at >= 0)] = ROLLBACK
        live &= failed_at < 0
    decision[live] = PROMOTE
    return Outcome(decision, used)


# --------------------------------------------------------------------------- ours


# judge(base_requests, base_errors, canary_requests, canary_errors, base_buckets, canary_buckets,
#       limits, look, looks) -> "pass" | "fail" | "inconclusive"
Judge = Callable[[int, int, int, int, "np.ndarray | None", "np.ndarray | None", Limits, int, int], str]


@dataclass
class Running:
    """Counts since the step began, indexed [replication, step, look position] (+ [bucket])."""

    base_requests: np.ndarray
    base_errors: np.ndarray
    canary_requests: np.ndarray
    canary_errors: np.ndarray
    base_buckets: np.ndarray | None
    canary_buckets: np.ndarray | None

    def verdict(self, judge: Judge, at: tuple[int, int, int], limits: Limits, look: int, looks: int) -> str:
        """The judge's verdict on the counts at ``at`` = (replication, step, position)."""
        return judge(int(self.base_requests[at]), int(self.base_errors[at]), int(self.canary_requests[at]),
                     int(self.canary_errors[at]), None if self.base_buckets is None else self.base_buckets[at],
                     None if self.canary_buckets is None else self.canary_buckets[at], limits, look, looks)


def ours(data: Telemetry, limits: Limits, plan: Plan, judge: Judge) -> Outcome:
    """canary.istio's ``decision: auto`` release: at every look the analysis judges the evidence
    accumulated since the step began (``since``); ``fail`` rolls back, ``pass`` moves to the next step
    (after the last one, promotes), ``inconclusive`` looks again; a step still inconclusive at its
    last planned look holds (``inconclusive: hold``, the default). Looks are numbered over the whole
    release (``look`` of ``looks`` = steps x looks per step), over which the error budget is spent.
    """
    if plan.look_requests:
        return ours_planned(data, limits, plan, judge)
    looks = plan.looks_per_step
    replications, steps = data.canary_requests.shape[:2]
    planned = steps * looks
    decision = np.full(replications, HOLD)
    used = np.zeros((replications, steps), dtype=int)
    def per_look(values: np.ndarray) -> np.ndarray:
        return values[:, :, :looks].sum(axis=3).cumsum(axis=2)

    counts = Running(per_look(data.base_requests), per_look(data.base_errors), per_look(data.canary_requests),
                     per_look(data.canary_errors), per_look(data.base_buckets) if limits.latency else None,
                     per_look(data.canary_buckets) if limits.latency else None)
    least_pass = math.inf
    for replication in range(replications):
        look_number = 0
        outcome = PROMOTE
        for step in range(steps):
            verdict = "inconclusive"
            for slot in range(looks):
                look_number += 1
                used[replication, step] += 1
                verdict = counts.verdict(judge, (replication, step, slot), limits, look_number, planned)
                if verdict != "inconclusive":
                    break
            if verdict == "pass":
                least_pass = min(least_pass, int(counts.canary_requests[replication, step, slot]))
            else:
                outcome = ROLLBACK if verdict == "fail" else HOLD
                break
        decision[replication] = outcome
    return Outcome(decision, used, least_pass)


def next_look(plan: Plan, start: int, origin: int, looks_here: int, rate: float | None) -> int:
    """The driver's ``look_time`` (plugins/module_utils/_logic/driver.py) in seconds since the step
    began, rounded up to a whole scrape (a look reads the counts Prometheus has): ``look_requests``
    per look at the measured canary rate, no sooner than ``window`` and no later than ``interval``
    after the look before (``start``); at the earliest while no rate is measured."""
    earliest, latest = start + plan.window, start + plan.interval
    if rate is None:
        wanted = earliest
    elif rate <= 0:
        wanted = latest
    else:
        wanted = min(max(origin + (looks_here + 1) * plan.look_requests / rate, earliest), latest)
    return min(math.ceil(wanted / plan.scrape - 1e-9) * plan.scrape, latest)


def ours_planned(data: Telemetry, limits: Limits, plan: Plan, judge: Judge) -> Outcome:
    """``ours`` with looks planned in requests (``look_requests``): as :func:`ours`, but each look comes
    when :func:`next_look` says, at scrape resolution, and reads the counts since the step began up to
    then. The rate the driver plans from is the last look's: the canary's requests over the seconds
    read at the same share, the service's requests times the new share at the next."""
    looks = plan.looks_per_step
    replications, steps = data.canary_requests.shape[:2]
    planned = steps * looks
    horizon = data.canary_requests.shape[2] * data.canary_requests.shape[3]

    def running(values: np.ndarray) -> np.ndarray:  # [replication, step, scrape since the step began]
        return values.reshape(replications, steps, horizon, *values.shape[4:]).cumsum(axis=2)

    counts = Running(running(data.base_requests), running(data.base_errors), running(data.canary_requests),
                     running(data.canary_errors), running(data.base_buckets) if limits.latency else None,
                     running(data.canary_buckets) if limits.latency else None)
    decision = np.full(replications, HOLD)
    used = np.zeros((replications, steps), dtype=int)
    seconds = np.zeros(replications)
    requests = np.zeros(replications)
    least_pass = math.inf
    # The canary's share at each step (the plan's, as the driver knows it), read back from the traffic drawn.
    total = data.canary_requests.sum(axis=(0, 2, 3)) + data.base_requests.sum(axis=(0, 2, 3))
    shares = data.canary_requests.sum(axis=(0, 2, 3)) / np.maximum(total, 1)
    for replication in range(replications):
        look_number, outcome, rate, service_rate = 0, PROMOTE, None, None
        for step in range(steps):
            verdict, at, looks_here = "inconclusive", 0, 0
            if service_rate is not None:
                rate = service_rate * shares[step]
            for _look in range(looks):
                at = next_look(plan, at, 0, looks_here, rate)
                index = at // plan.scrape - 1
                look_number += 1
                looks_here += 1
                used[replication, step] += 1
                seen = int(counts.canary_requests[replication, step, index])
                rate = seen / at
                service_rate = (seen + int(counts.base_requests[replication, step, index])) / at
                verdict = counts.verdict(judge, (replication, step, index), limits, look_number, planned)
                if verdict != "inconclusive":
                    break
            seen = int(counts.canary_requests[replication, step, at // plan.scrape - 1])
            seconds[replication] += at
            requests[replication] += seen
            if verdict == "pass":
                least_pass = min(least_pass, seen)
            else:
                outcome = ROLLBACK if verdict == "fail" else HOLD
                break
        decision[replication] = outcome
    return Outcome(decision, used, least_pass, seconds, requests)
