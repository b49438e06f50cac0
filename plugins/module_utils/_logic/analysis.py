# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Canary analysis: the options, the PromQL to send, and the answers turned into counts.

Nothing here does I/O: ``analyse`` takes a ``query`` callable (PromQL in, a number or ``None`` for
"no data" out) and a ``query_buckets`` callable (PromQL in, ``(le, count)`` pairs out), so unit
tests drive it with made-up answers and the module drives it with Prometheus. The verdicts
themselves come from the pure statistics in ``_logic/evidence.py``; the rules are documented in
docs/analysis.md:

- Every built-in check is judged on confidence bounds (pass, fail, or inconclusive with the canary
  requests that would settle it), spending the release's error budget over its planned looks.
- Custom checks compare one number with ``min``/``max``, as Flagger's ``thresholdRange`` does.
- The overall verdict is ``fail`` if any check fails, else ``inconclusive`` if any check is,
  else ``pass``. Missing data never passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError
from ansible_collections.canary.istio.plugins.module_utils._logic.evidence import (
    DURATION,
    FAIL,
    INCONCLUSIVE,
    LATENCY_RATIO,
    PASS,
    SUCCESS_RATE,
    Budget,
    Check,
    Counts,
    combine,
    failing_parts,
    histogram_quantile,
    judge,
    normalise_buckets,
)

BUILTIN_CHECKS = (SUCCESS_RATE, DURATION)
# Istio's own names (https://istio.io/latest/docs/reference/config/metrics/).
REQUESTS_METRIC = "istio_requests_total"
DURATION_METRIC = "istio_request_duration_milliseconds_bucket"
# Server errors, as Flagger's built-in request-success-rate counts them.
ERROR_CODES = "5.."
# Envoy's response flags for requests that never reached the destination's proxy, so that only the
# caller's proxy (reporter="source") reports them: no healthy upstream, upstream connection failure,
# upstream overflow (circuit breaker), no route, no cluster, retry/connect attempts exhausted.
# https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage
SOURCE_ONLY_FLAGS = ("UH", "UF", "UO", "NR", "NC", "URX")
# The label holds one flag or several joined by commas ("UF,URX"); "-" is no flag.
SOURCE_ONLY_FLAGS_REGEX = "(.*,)?(" + "|".join(SOURCE_ONLY_FLAGS) + ")(,.*)?"

# Defaults of the built-in checks (Flagger's documented examples: >= 99 %, p99 <= 500 ms). The
# error comparison tolerates up to twice the base's rate (the "bad canary" starts there),
# and a canary shown below 0.1 % errors passes the comparison whatever the base shows; for latency,
# below 0.5 % of its requests slower than the boundary (its p99.5 within base p99 + tolerance).
DEFAULTS: dict[str, dict[str, float]] = {
    SUCCESS_RATE: {"min": 99.0, "tolerance_percent": 100.0, "negligible_percent": 0.1},
    DURATION: {"max": 500.0, "tolerance_percent": 20.0, "tolerance_ms": 25.0, "negligible_percent": 0.5},
}
CHECK_KEYS = {"name", "query", "min", "max", "compare", "tolerance_percent", "tolerance_ms", "negligible_percent",
              "fail_percent"}
# The comparisons' numeric options (fail_percent's default is the evidence code's: Check.fail_ratio).
COMPARE_KEYS = ("tolerance_percent", "tolerance_ms", "negligible_percent", "fail_percent")
# The latency comparison passes up to LATENCY_RATIO times the base's share of slow requests.
LATENCY_TOLERANCE_PERCENT = (LATENCY_RATIO - 1.0) * 100.0
# Prometheus durations: one or more number+unit pairs, largest unit first ("1m30s").
WINDOW_PATTERN = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# Kubernetes names (RFC 1123): safe to put inside a PromQL string literal as they are.
REPORTERS = ("destination", "source")
# A custom check has no bounds to tell how much evidence it needs: without min_requests, this many.
CUSTOM_MIN_REQUESTS = 100


class AnalysisInputError(CanaryInputError):
    """A bad option value of an analysis; the message names it and the rule it broke. One of the
    collection's input errors (:class:`CanaryInputError`), so every module reports it the same way."""


class AnalysisQueryError(Exception):
    """A query could not be answered (bad template, or an answer that is not one number)."""


# --------------------------------------------------------------------------- inputs


def _number(raw: Any, what: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise AnalysisInputError(f"{what} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise AnalysisInputError(f"{what} must be a number, got {raw!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise AnalysisInputError(f"{what} must be a finite number, got {raw!r}")
    return value


def validate_checks(raw_checks: Any) -> list[Check]:
    """The checks to run, with the built-ins' defaults filled in; refuses what cannot be meant."""
    if raw_checks is None:
        raw_checks = [{"name": SUCCESS_RATE}, {"name": DURATION}]
    if not isinstance(raw_checks, list) or not raw_checks:
        raise AnalysisInputError("checks must be a non-empty list of checks")
    checks: list[Check] = []
    seen: set[str] = set()
    for index, given in enumerate(raw_checks):
        if not isinstance(given, dict):
            raise AnalysisInputError(f"checks[{index}] must be a mapping with at least a name, got {given!r}")
        # Ansible's suboptions fill every key it knows with None: None means "not given".
        raw = {key: value for key, value in given.items() if value is not None}
        unknown = sorted(set(raw) - CHECK_KEYS)
        if unknown:
            raise AnalysisInputError(f"checks[{index}] has unknown keys {unknown}; known keys: {sorted(CHECK_KEYS)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AnalysisInputError(f"checks[{index}] needs a name")
        label = f"check {name!r}"
        if name in seen:
            raise AnalysisInputError(f"{label} is listed twice; give each check its own name")
        seen.add(name)
        query = raw.get("query")
        if query is None and name not in BUILTIN_CHECKS:
            raise AnalysisInputError(
                f"{label} is not a built-in check ({', '.join(BUILTIN_CHECKS)}) and has no query; "
                "give a custom check a PromQL template in 'query'")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise AnalysisInputError(f"{label}: query must be a non-empty PromQL template")
        if query is not None and name in BUILTIN_CHECKS:
            raise AnalysisInputError(f"{label} is a built-in check and takes no query; name a custom check differently")
        defaults = DEFAULTS.get(name, {}) if query is None else {}
        values = {key: _number(raw.get(key, defaults.get(key)), f"{label}: {key}")
                  for key in ("min", "max", *COMPARE_KEYS)}
        compare = raw.get("compare", True)
        if not isinstance(compare, bool):
            raise AnalysisInputError(f"{label}: compare must be true or false, got {compare!r}")
        if query is None:
            _validate_builtin(name, label, raw, values)
        else:
            extra = sorted(key for key in ("compare", *COMPARE_KEYS) if key in raw)
            if extra:
                raise AnalysisInputError(f"{label}: {extra} apply to the built-in checks only; a custom check "
                                         "is judged by min and max")
            if values["min"] is None and values["max"] is None:
                raise AnalysisInputError(f"{label} needs min, max or both")
            compare = False
        if values["min"] is not None and values["max"] is not None and values["min"] > values["max"]:
            raise AnalysisInputError(f"{label}: min {values['min']:g} is above max {values['max']:g}")
        checks.append(Check(name=name, query=query, min=values["min"], max=values["max"], compare=compare,
                            tolerance_percent=values["tolerance_percent"] or 0.0,
                            tolerance_ms=values["tolerance_ms"] or 0.0,
                            negligible_percent=values["negligible_percent"] or 0.0,
                            fail_percent=values["fail_percent"]))
    return checks


def _validate_builtin(name: str, label: str, raw: dict[str, Any], values: dict[str, float | None]) -> None:
    for key in COMPARE_KEYS:
        if values[key] is not None and values[key] < 0:
            raise AnalysisInputError(f"{label}: {key} must be 0 or more, got {values[key]:g}")
    _validate_fail_percent(name, label, values)
    if values["negligible_percent"] is not None and values["negligible_percent"] >= 100:
        raise AnalysisInputError(f"{label}: negligible_percent is a share of requests in percent below 100, "
                                 f"got {values['negligible_percent']:g}")
    if name == SUCCESS_RATE:
        if "max" in raw or "tolerance_ms" in raw:
            raise AnalysisInputError(f"{label} takes min (lowest success rate in %), tolerance_percent and "
                                     "negligible_percent; max and tolerance_ms belong to request-duration")
        if values["min"] is not None and not 0 <= values["min"] < 100:
            raise AnalysisInputError(f"{label}: min is a success rate in percent from 0 up to (not including) 100 "
                                     f"(no count of requests shows a rate of exactly 100%), got {values['min']:g}")
    else:
        if "min" in raw:
            raise AnalysisInputError(f"{label} takes max (highest p99 in milliseconds), tolerance_percent, "
                                     "tolerance_ms and negligible_percent; min belongs to request-success-rate")
        if values["max"] is not None and values["max"] <= 0:
            raise AnalysisInputError(f"{label}: max is a p99 latency in milliseconds above 0, got {values['max']:g}")


def _validate_fail_percent(name: str, label: str, values: dict[str, float | None]) -> None:
    """fail_percent may not lie beyond what the comparison passes: a canary shown outside the
    tolerance must be able to fail."""
    fail = values["fail_percent"]
    if fail is None:
        return
    if name == SUCCESS_RATE:
        tolerance = values["tolerance_percent"] or 0.0
        if fail > tolerance:
            raise AnalysisInputError(
                f"{label}: fail_percent {fail:g} is above tolerance_percent {tolerance:g}; the comparison passes "
                "a canary shown within the tolerance, so it must be able to fail one shown beyond it: give "
                f"fail_percent from 0 to {tolerance:g}")
    elif fail > LATENCY_TOLERANCE_PERCENT:
        raise AnalysisInputError(
            f"{label}: fail_percent {fail:g} is above {LATENCY_TOLERANCE_PERCENT:g}; the latency comparison passes "
            f"a canary shown with up to {LATENCY_RATIO:g} times the base's share of slow requests, so it must be "
            f"able to fail one shown beyond that: give fail_percent from 0 to {LATENCY_TOLERANCE_PERCENT:g}")


def validate_window(window: Any) -> str:
    if not isinstance(window, str) or not window or not WINDOW_PATTERN.match(window):
        raise AnalysisInputError(f"window must be a Prometheus duration such as 30s, 1m or 1m30s, got {window!r}")
    return window


def validate_confidence(value: Any) -> float:
    confidence = _number(value, "confidence")
    if confidence is None or not 50 <= confidence < 100:
        raise AnalysisInputError(f"confidence is a percentage from 50 up to (not including) 100, got {value!r}")
    return confidence


def validate_power(value: Any) -> float:
    power = _number(value, "power")
    if power is None or not 50 <= power < 100:
        raise AnalysisInputError(f"power is a percentage from 50 up to (not including) 100, got {value!r}")
    return power


def validate_looks(look: Any, looks: Any) -> tuple[int, int]:
    for what, value in (("look", look), ("looks", looks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AnalysisInputError(f"{what} must be a whole number, 1 or more, got {value!r}")
    if look > looks:
        raise AnalysisInputError(f"look {look} is beyond looks {looks}: looks is the number of looks planned for "
                                 "the whole release, this look's number included")
    return look, looks


def duration_seconds(window: str) -> float:
    """Seconds in a Prometheus duration that ``validate_window`` accepted: ``1m30s`` -> 90.0."""
    return float(sum(int(number) * UNIT_SECONDS[unit] for number, unit in DURATION_PART.findall(window)))


def validate_scrape_interval(scrape_interval: Any, window: str) -> float | None:
    """The scrape interval in seconds (None when not given); the window must span two of them."""
    if scrape_interval is None:
        return None
    if not isinstance(scrape_interval, str) or not scrape_interval or not WINDOW_PATTERN.match(scrape_interval) \
            or duration_seconds(scrape_interval) <= 0:
        raise AnalysisInputError(f"scrape_interval must be a Prometheus duration above 0 such as 15s or 1m, "
                                 f"got {scrape_interval!r}")
    seconds = duration_seconds(scrape_interval)
    if duration_seconds(window) < 2 * seconds:
        raise AnalysisInputError(f"window {window} is shorter than two scrape intervals (scrape_interval "
                                 f"{scrape_interval}): increase() needs two samples in the window; use a window "
                                 f"of at least {2 * seconds:g}s")
    return seconds


def validate_since(since: Any, now: float) -> float | None:
    """Unix seconds of ``since`` (Unix seconds, or RFC 3339 with a time zone); None when not given."""
    if since is None or since == "":
        return None
    seconds: float | None = None
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        seconds = float(since)
    elif isinstance(since, str):
        text = since.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is not None:
                seconds = moment.timestamp()
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        raise AnalysisInputError(f"since must be Unix seconds or an RFC 3339 time with a time zone "
                                 f"(2026-12-06T17:30:00Z), got {since!r}")
    if seconds > now + 1:
        raise AnalysisInputError(f"since {since!r} is in the future (now is {now:.0f} Unix seconds): evidence is "
                                 "counted from since until now")
    return seconds


def evidence_range(window: str, since: float | None, now: float) -> str:
    """The PromQL range of the evidence: from ``since`` until now, never shorter than ``window``."""
    if since is None:
        return window
    seconds = math.ceil(now - since)
    return f"{seconds}s" if seconds > duration_seconds(window) else window


# --------------------------------------------------------------------------- PromQL


@dataclass(frozen=True)
class AnalysisTarget:
    """What one analysis looks at: a service in a namespace, two versions, a range of time.

    ``window`` is the PromQL range actually queried (``evidence_range``). With
    ``caller_failures`` (and the destination reporter), the requests callers saw fail that never
    reached the destination (Envoy response flags in SOURCE_ONLY_FLAGS, reported by the source
    only) are added to the destination's counts."""

    service: str
    namespace: str
    base: str
    canary: str
    window: str
    reporter: str = "destination"
    caller_failures: bool = True
    # On a Gateway API HTTPRoute each version is a Service of its own (``<service>-<version>``, Istio's
    # bookinfo-versions.yaml), and Istio's metrics name that Service as the destination service.
    per_version_services: bool = False

    def service_of(self, version: str) -> str:
        return f"{self.service}-{version.lower()}" if self.per_version_services else self.service

    def selector(self, version: str, extra: str = "", reporter: str | None = None) -> str:
        labels = (f'reporter="{reporter or self.reporter}",destination_service_name="{self.service_of(version)}",'
                  f'destination_service_namespace="{self.namespace}",destination_version="{version}"')
        return "{" + labels + (f",{extra}" if extra else "") + "}"

    @property
    def adds_source_failures(self) -> bool:
        return self.caller_failures and self.reporter == "destination"


def _increase(selector: str, window: str) -> str:
    return f"sum(increase({REQUESTS_METRIC}{selector}[{window}]))"


def _source_failures(target: AnalysisTarget, version: str) -> str:
    # A request that got no answer is labelled by the caller's proxy from the endpoint's metadata
    # (istio/proxy istio_stats, populatePeerInfo): workload and canonical revision, but no app or
    # version (destination_version="unknown"). The canonical revision is the version label unless a
    # service.istio.io/canonical-revision or app.kubernetes.io/version label says otherwise.
    selector = ("{" + f'reporter="source",destination_service_name="{target.service_of(version)}",'
                f'destination_service_namespace="{target.namespace}",destination_canonical_revision="{version}",'
                f'response_flags=~"{SOURCE_ONLY_FLAGS_REGEX}"' + "}")
    return f"({_increase(selector, target.window)} or vector(0))"


def requests_query(target: AnalysisTarget, version: str) -> str:
    own = _increase(target.selector(version), target.window)
    if not target.adds_source_failures:
        return own
    # Either part may have no series (a canary that refuses every connection has no destination
    # report at all): each counts 0 then, and the sum of two zeros is still "no requests".
    return f"({own} or vector(0)) + {_source_failures(target, version)}"


def errors_query(target: AnalysisTarget, version: str) -> str:
    # No 5xx series at all means no errors: "or vector(0)" answers 0 then instead of no data.
    server_errors = target.selector(version, 'response_code=~"' + ERROR_CODES + '"')
    own = f"({_increase(server_errors, target.window)} or vector(0))"
    if not target.adds_source_failures:
        return own
    return f"{own} + {_source_failures(target, version)}"


def buckets_query(target: AnalysisTarget, version: str) -> str:
    """The latency histogram's counts per boundary over the range (the destination's view)."""
    return f"sum by (le) (increase({DURATION_METRIC}{target.selector(version)}[{target.window}]))"


def render_template(check: Check, target: AnalysisTarget, version: str) -> str:
    """The custom check's PromQL for one version (Jinja, variables service/namespace/version/window)."""
    try:
        from jinja2 import StrictUndefined, TemplateError
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 comes with ansible-core
        raise AnalysisQueryError(f"check {check.name!r}: custom checks need the jinja2 Python package") from None
    try:
        template = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False).from_string(check.query or "")
        return template.render(service=target.service, namespace=target.namespace, version=version,
                               window=target.window).strip()
    except TemplateError as exc:
        raise AnalysisQueryError(
            f"check {check.name!r}: the query template does not render: {type(exc).__name__}: {exc} "
            f"(variables: service, namespace, version, window); template: {check.query}") from None


def parse_le(raw: Any) -> float:
    """A histogram boundary label as Prometheus writes it ("100", "+Inf")."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise AnalysisQueryError(f"the histogram boundary le={raw!r} is not a number") from None


# --------------------------------------------------------------------------- analysis


Query = Callable[[str, str], "float | None"]  # (check name, PromQL) -> value, None when there is no data
BucketsQuery = Callable[[str, str], "list[tuple[float, float]]"]  # (check name, PromQL) -> [(le, count)]


@dataclass
class Side:
    """What one version showed in one check."""

    value: float | None = None
    requests: float | None = None
    errors: float | None = None
    queries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"value": _rounded(self.value), "requests": _rounded(self.requests), "errors": _rounded(self.errors)}


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


class _Evidence:
    """Counts per version, each asked of Prometheus once per analysis."""

    def __init__(self, target: AnalysisTarget, query: Query, query_buckets: BucketsQuery):
        self.target, self.query, self.query_buckets = target, query, query_buckets
        self._requests: dict[str, tuple[float | None, float | None, list[str]]] = {}
        self._buckets: dict[str, tuple[list[tuple[float, float]], str]] = {}

    def requests(self, version: str, check: str) -> tuple[float | None, float | None, list[str]]:
        if version not in self._requests:
            queries = [requests_query(self.target, version), errors_query(self.target, version)]
            requests = self.query(check, queries[0])
            errors = self.query(check, queries[1]) if requests is not None else None
            self._requests[version] = (requests, errors, queries)
        return self._requests[version]

    def buckets(self, version: str, check: str) -> tuple[list[tuple[float, float]], str]:
        if version not in self._buckets:
            promql = buckets_query(self.target, version)
            self._buckets[version] = (list(self.query_buckets(check, promql)), promql)
        return self._buckets[version]


def analyse(target: AnalysisTarget, checks: list[Check], min_requests: int | None, budget: Budget, query: Query,
            query_buckets: BucketsQuery) -> dict[str, Any]:
    """Runs every check and returns the module's result (verdict, checks, request counts, budget)."""
    for check in checks:  # a bad template is refused before any query is sent
        if not check.builtin:
            render_template(check, target, target.canary)
    evidence = _Evidence(target, query, query_buckets)
    canary_requests = evidence.requests(target.canary, "request counts")[0]
    base_requests = evidence.requests(target.base, "request counts")[0]
    parts = failing_parts([check for check in checks if check.builtin])
    results = []
    for check in checks:
        if check.builtin:
            results.append(_builtin(check, target, evidence, budget, parts, min_requests))
        else:
            results.append(_custom(check, target, evidence, query, min_requests))
    verdict = combine([r["verdict"] for r in results])
    failed = [r["name"] for r in results if r["verdict"] == FAIL]
    unsure = [r["name"] for r in results if r["verdict"] == INCONCLUSIVE]
    more = max((r["more_requests"] for r in results), default=0)
    if verdict == FAIL:
        summary = f"canary {target.canary} failed: {', '.join(failed)}"
    elif verdict == INCONCLUSIVE:
        summary = (f"inconclusive for canary {target.canary}: {', '.join(unsure)} (never counted as a pass); "
                   f"about {more} more canary requests would settle it")
    else:
        summary = f"canary {target.canary} passed every check against base {target.base}"
    return {"verdict": verdict, "summary": summary, "checks": results,
            "requests": {"base": _rounded(base_requests, 1), "canary": _rounded(canary_requests, 1)},
            "failed_checks": failed, "inconclusive_checks": unsure, "more_requests": more,
            "look": budget.look, "looks": budget.looks, "alpha": budget.alpha_look / parts,
            "alpha_look": budget.alpha_look, "beta": budget.beta_look,
            "release_alpha": budget.alpha, "release_beta": budget.beta}


def _builtin(check: Check, target: AnalysisTarget, evidence: _Evidence, budget: Budget, parts: int,
             min_requests: int | None) -> dict[str, Any]:
    canary, base = Side(), Side()
    if check.name == SUCCESS_RATE:
        canary.requests, canary.errors, canary.queries = evidence.requests(target.canary, check.name)
        base.requests, base.errors, base.queries = evidence.requests(target.base, check.name)
        for side in (canary, base):
            if side.requests and side.errors is not None:
                side.value = 100.0 * (1.0 - min(side.errors, side.requests) / side.requests)
        canary_counts = Counts(canary.requests, canary.errors)
        base_counts = Counts(base.requests, base.errors)
    else:
        canary_buckets, canary_query = evidence.buckets(target.canary, check.name)
        base_buckets, base_query = evidence.buckets(target.base, check.name)
        canary.queries, base.queries = [canary_query], [base_query]
        for side, buckets in ((canary, canary_buckets), (base, base_buckets)):
            # Shown as Prometheus' histogram_quantile() reads the same counts (not rounded).
            raw = sorted(buckets)
            side.requests = round(raw[-1][1], 4) if raw else None
            side.value = histogram_quantile(0.99, raw) if normalise_buckets(buckets) else None
        canary_counts, base_counts = Counts(buckets=tuple(canary_buckets)), Counts(buckets=tuple(base_buckets))
    verdict = judge(check, base_counts, canary_counts, budget, parts, min_requests)
    comparison = verdict.bounds.get("base")
    return {"name": check.name, "kind": "builtin", "verdict": verdict.verdict, "reason": verdict.reason,
            "canary": canary.as_dict(), "base": base.as_dict(), "min": check.min, "max": check.max,
            "bounds": verdict.bounds, "comparison": comparison, "more_requests": verdict.more_requests,
            "min_requests": verdict.min_requests, "notes": verdict.notes,
            "queries": {"canary": canary.queries, "base": base.queries}}


def _enough(requests: float | None, min_requests: int) -> bool:
    return requests is not None and requests >= min_requests and requests > 0


def _too_few(who: str, version: str, requests: float | None, min_requests: int) -> str:
    if requests is None:
        return f"no data for the {who} ({version}): Prometheus has no matching series in the window"
    return f"the {who} ({version}) saw {requests:.0f} requests in the window, fewer than min_requests {min_requests}"


def _custom(check: Check, target: AnalysisTarget, evidence: _Evidence, query: Query, min_requests: int | None
            ) -> dict[str, Any]:
    floor = CUSTOM_MIN_REQUESTS if min_requests is None else min_requests
    canary, base = Side(), Side()
    canary.requests = evidence.requests(target.canary, check.name)[0]
    base.requests = evidence.requests(target.base, check.name)[0]
    for side, version in ((canary, target.canary), (base, target.base)):
        promql = render_template(check, target, version)
        side.queries = [promql]
        value = query(check.name, promql)
        side.value = None if value is None or math.isnan(value) else value
    parts, reasons = [], []
    more = 0
    if not _enough(canary.requests, floor):
        parts.append(INCONCLUSIVE)
        reasons.append(_too_few("canary", target.canary, canary.requests, floor))
        more = max(1, floor - round(canary.requests or 0))
    elif canary.value is None:
        parts.append(INCONCLUSIVE)
        reasons.append(f"the query returned no data for the canary ({target.canary})")
    else:
        if check.min is not None:
            ok = canary.value >= check.min
            parts.append(PASS if ok else FAIL)
            reasons.append(f"canary value {canary.value:g} {'>=' if ok else '<'} min {check.min:g}")
        if check.max is not None:
            ok = canary.value <= check.max
            parts.append(PASS if ok else FAIL)
            reasons.append(f"canary value {canary.value:g} {'<=' if ok else '>'} max {check.max:g}")
    return {"name": check.name, "kind": "custom", "verdict": combine(parts), "reason": "; ".join(reasons),
            "canary": canary.as_dict(), "base": base.as_dict(), "min": check.min, "max": check.max,
            "bounds": {}, "comparison": None, "more_requests": more, "min_requests": floor,
            "notes": ["a custom check compares one number with min/max: it has no confidence bounds and "
                      "spends no error budget"],
            "queries": {"canary": canary.queries, "base": base.queries}}


def buckets_from_vector(result: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """``(le, count)`` pairs from an instant vector grouped by ``le`` (Prometheus' JSON)."""
    pairs = []
    for series in result:
        le = parse_le((series.get("metric") or {}).get("le"))
        raw = (series.get("value") or [None, None])[1]
        try:
            count = float(raw)
        except (TypeError, ValueError):
            raise AnalysisQueryError(f"Prometheus answered {raw!r}, not a number, for the bucket le={le}") from None
        pairs.append((le, 0.0 if math.isnan(count) else count))
    return sorted(pairs)
