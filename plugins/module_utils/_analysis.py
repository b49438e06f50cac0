# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Canary analysis: which PromQL to send, and the verdict on the answers (pure functions).

Nothing here does I/O: ``analyse`` takes a ``query`` callable (PromQL in, a number or ``None`` for
"no data" out), so unit tests drive it with made-up answers and the module drives it with
Prometheus.  The rules, as documented in docs/analysis.md:

- A check's verdict is ``fail`` when any of its parts fails, else ``inconclusive`` when any part
  had too little data, else ``pass``.  Missing data never passes.
- The canary is judged alone against ``min``/``max`` (as Flagger's ``thresholdRange``) and, for the
  built-in checks, against the base: error rates by a one-sided exact test on the request counts,
  p99 latency by a tolerance.
- The overall verdict is ``fail`` if any check fails, else ``inconclusive`` if any check is,
  else ``pass``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
SUCCESS_RATE, DURATION = "request-success-rate", "request-duration"
BUILTIN_CHECKS = (SUCCESS_RATE, DURATION)
# Istio's own names (https://istio.io/latest/docs/reference/config/metrics/).
REQUESTS_METRIC = "istio_requests_total"
DURATION_METRIC = "istio_request_duration_milliseconds_bucket"
# Server errors, as Flagger's built-in request-success-rate counts them.
ERROR_CODES = "5.."

# Defaults of the built-in checks (Flagger's documented examples: >= 99 %, p99 <= 500 ms).
DEFAULTS: dict[str, dict[str, float]] = {
    SUCCESS_RATE: {"min": 99.0, "tolerance_percent": 50.0},
    DURATION: {"max": 500.0, "tolerance_percent": 20.0, "tolerance_ms": 25.0},
}
CHECK_KEYS = {"name", "query", "min", "max", "compare", "tolerance_percent", "tolerance_ms"}
# Prometheus durations: one or more number+unit pairs, largest unit first ("1m30s").
WINDOW_PATTERN = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
# Kubernetes names (RFC 1123): safe to put inside a PromQL string literal as they are.
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
REPORTERS = ("destination", "source")


class AnalysisInputError(Exception):
    """A bad option value; the message names it and the rule it broke."""


class AnalysisQueryError(Exception):
    """A query could not be answered (bad template, or an answer that is not one number)."""


# --------------------------------------------------------------------------- statistics


def binomial_upper_tail(successes: int, trials: int, probability: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, probability), summed in log space."""
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    if probability <= 0.0:
        return 0.0
    if probability >= 1.0:
        return 1.0
    log_p, log_q = math.log(probability), math.log1p(-probability)
    log_terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p
                 + (trials - k) * log_q for k in range(successes, trials + 1)]
    peak = max(log_terms)
    return min(1.0, math.exp(peak) * math.fsum(math.exp(t - peak) for t in log_terms))


@dataclass(frozen=True)
class ErrorRateTest:
    """Outcome of the one-sided test "the canary's error rate is above ``ratio`` x the base's"."""

    p_value: float
    worse: bool
    ratio: float  # 1 + tolerance_percent / 100
    null_share: float  # the canary's expected share of all errors if it were exactly ``ratio`` x worse


def error_rate_test(base_requests: float, base_errors: float, canary_requests: float, canary_errors: float,
                    tolerance_percent: float, confidence: float) -> ErrorRateTest:
    """Exact conditional test that the canary's error rate exceeds ``(1 + tolerance) x`` the base's.

    Errors are counted as Poisson events with rates ``n_base * p_base`` and ``n_canary * p_canary``;
    given their total ``x``, the canary's errors are Binomial(x, pi) with
    ``pi = r * n_canary / (r * n_canary + n_base)`` when ``p_canary = r * p_base`` (the edge of the null
    hypothesis ``p_canary <= r * p_base``).  The p-value is ``P(X >= canary_errors)`` under that pi;
    the canary is worse when it is at most ``1 - confidence``.  Counts are rounded to whole requests
    (Prometheus' ``increase`` extrapolates to fractions).
    """
    n_base, n_canary = round(base_requests), round(canary_requests)
    x_base, x_canary = round(base_errors), round(canary_errors)
    ratio = 1.0 + tolerance_percent / 100.0
    if n_base <= 0 or n_canary <= 0:
        raise ValueError("both versions need requests to be compared")
    null_share = ratio * n_canary / (ratio * n_canary + n_base)
    p_value = binomial_upper_tail(x_canary, x_base + x_canary, null_share)
    return ErrorRateTest(p_value=p_value, worse=p_value <= 1.0 - confidence / 100.0, ratio=ratio,
                         null_share=null_share)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Check:
    name: str
    query: str | None = None
    min: float | None = None
    max: float | None = None
    compare: bool = True
    tolerance_percent: float = 0.0
    tolerance_ms: float = 0.0

    @property
    def builtin(self) -> bool:
        return self.query is None


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
                  for key in ("min", "max", "tolerance_percent", "tolerance_ms")}
        compare = raw.get("compare", True)
        if not isinstance(compare, bool):
            raise AnalysisInputError(f"{label}: compare must be true or false, got {compare!r}")
        if query is None:
            _validate_builtin(name, label, raw, values)
        else:
            extra = sorted(key for key in ("compare", "tolerance_percent", "tolerance_ms") if key in raw)
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
                            tolerance_ms=values["tolerance_ms"] or 0.0))
    return checks


def _validate_builtin(name: str, label: str, raw: dict[str, Any], values: dict[str, float | None]) -> None:
    for key in ("tolerance_percent", "tolerance_ms"):
        if values[key] is not None and values[key] < 0:
            raise AnalysisInputError(f"{label}: {key} must be 0 or more, got {values[key]:g}")
    if name == SUCCESS_RATE:
        if "max" in raw or "tolerance_ms" in raw:
            raise AnalysisInputError(f"{label} takes min (lowest success rate in %) and tolerance_percent; "
                                     "max and tolerance_ms belong to request-duration")
        if values["min"] is not None and not 0 <= values["min"] <= 100:
            raise AnalysisInputError(f"{label}: min is a success rate in percent (0-100), got {values['min']:g}")
    else:
        if "min" in raw:
            raise AnalysisInputError(f"{label} takes max (highest p99 in milliseconds), tolerance_percent and "
                                     "tolerance_ms; min belongs to request-success-rate")
        if values["max"] is not None and values["max"] <= 0:
            raise AnalysisInputError(f"{label}: max is a p99 latency in milliseconds above 0, got {values['max']:g}")


def validate_window(window: Any) -> str:
    if not isinstance(window, str) or not window or not WINDOW_PATTERN.match(window):
        raise AnalysisInputError(f"window must be a Prometheus duration such as 30s, 1m or 1m30s, got {window!r}")
    return window


def validate_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise AnalysisInputError(f"{what} must be a Kubernetes name (lower case letters, digits, '-' and '.'), "
                                 f"got {value!r}")
    return value


def validate_confidence(value: Any) -> float:
    confidence = _number(value, "confidence")
    if confidence is None or not 50 <= confidence < 100:
        raise AnalysisInputError(f"confidence is a percentage from 50 up to (not including) 100, got {value!r}")
    return confidence


# --------------------------------------------------------------------------- PromQL


@dataclass(frozen=True)
class Target:
    """What one analysis looks at: a service in a namespace, two versions, a window."""

    service: str
    namespace: str
    base: str
    canary: str
    window: str
    reporter: str = "destination"

    def selector(self, version: str, extra: str = "") -> str:
        labels = (f'reporter="{self.reporter}",destination_service_name="{self.service}",'
                  f'destination_service_namespace="{self.namespace}",destination_version="{version}"')
        return "{" + labels + (f",{extra}" if extra else "") + "}"


def requests_query(target: Target, version: str) -> str:
    return f"sum(increase({REQUESTS_METRIC}{target.selector(version)}[{target.window}]))"


def errors_query(target: Target, version: str) -> str:
    # No 5xx series at all means no errors: "or vector(0)" answers 0 then instead of no data.
    selector = target.selector(version, f'response_code=~"{ERROR_CODES}"')
    return f"sum(increase({REQUESTS_METRIC}{selector}[{target.window}])) or vector(0)"


def p99_query(target: Target, version: str) -> str:
    return (f"histogram_quantile(0.99, sum by (le) (rate({DURATION_METRIC}{target.selector(version)}"
            f"[{target.window}])))")


def render_template(check: Check, target: Target, version: str) -> str:
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


# --------------------------------------------------------------------------- analysis


Query = Callable[[str, str], "float | None"]  # (check name, PromQL) -> value, None when there is no data


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
    return None if value is None else round(value, digits)


def combine(verdicts: list[str]) -> str:
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts or not verdicts:
        return INCONCLUSIVE
    return PASS


class _Counts:
    """Requests and errors per version, each asked of Prometheus once per analysis."""

    def __init__(self, target: Target, query: Query):
        self.target, self.query = target, query
        self._cache: dict[str, tuple[float | None, float | None, list[str]]] = {}

    def get(self, version: str, check: str) -> tuple[float | None, float | None, list[str]]:
        if version not in self._cache:
            queries = [requests_query(self.target, version), errors_query(self.target, version)]
            requests = self.query(check, queries[0])
            errors = self.query(check, queries[1]) if requests is not None else None
            self._cache[version] = (requests, errors, queries)
        return self._cache[version]


def analyse(target: Target, checks: list[Check], min_requests: int, confidence: float, query: Query) -> dict[str, Any]:
    """Runs every check and returns the module's result (verdict, checks, request counts)."""
    for check in checks:  # a bad template is refused before any query is sent
        if not check.builtin:
            render_template(check, target, target.canary)
    counts = _Counts(target, query)
    canary_requests, _errors, _queries = counts.get(target.canary, "request counts")
    base_requests, _errors, _queries = counts.get(target.base, "request counts")
    results = []
    for check in checks:
        if check.name == SUCCESS_RATE:
            results.append(_success_rate(check, target, counts, min_requests, confidence))
        elif check.name == DURATION:
            results.append(_duration(check, target, counts, query, min_requests))
        else:
            results.append(_custom(check, target, counts, query, min_requests))
    verdict = combine([r["verdict"] for r in results])
    failed = [r["name"] for r in results if r["verdict"] == FAIL]
    unsure = [r["name"] for r in results if r["verdict"] == INCONCLUSIVE]
    if verdict == FAIL:
        summary = f"canary {target.canary} failed: {', '.join(failed)}"
    elif verdict == INCONCLUSIVE:
        summary = f"inconclusive for canary {target.canary}: {', '.join(unsure)} (never counted as a pass)"
    else:
        summary = f"canary {target.canary} passed every check against base {target.base}"
    return {"verdict": verdict, "summary": summary, "checks": results,
            "requests": {"base": _rounded(base_requests, 1), "canary": _rounded(canary_requests, 1)},
            "failed_checks": failed, "inconclusive_checks": unsure}


def _enough(requests: float | None, min_requests: int) -> bool:
    return requests is not None and requests >= min_requests and requests > 0


def _too_few(who: str, version: str, requests: float | None, min_requests: int) -> str:
    if requests is None:
        return f"no data for the {who} ({version}): Prometheus has no matching series in the window"
    return f"the {who} ({version}) saw {requests:.0f} requests in the window, fewer than min_requests {min_requests}"


def _result(check: Check, kind: str, canary: Side, base: Side, verdict: str, reasons: list[str],
            comparison: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": check.name, "kind": kind, "verdict": verdict, "reason": "; ".join(reasons),
            "canary": canary.as_dict(), "base": base.as_dict(), "min": check.min, "max": check.max,
            "comparison": comparison, "queries": {"canary": canary.queries, "base": base.queries}}


def _success_rate(check: Check, target: Target, counts: _Counts, min_requests: int,
                  confidence: float) -> dict[str, Any]:
    canary, base = Side(), Side()
    canary.requests, canary.errors, canary.queries = counts.get(target.canary, check.name)
    base.requests, base.errors, base.queries = counts.get(target.base, check.name)
    for side in (canary, base):
        if side.requests and side.errors is not None:
            side.value = 100.0 * (1.0 - side.errors / side.requests)
    parts, reasons, comparison = [], [], None
    if not _enough(canary.requests, min_requests):
        parts.append(INCONCLUSIVE)
        reasons.append(_too_few("canary", target.canary, canary.requests, min_requests))
    elif canary.value is not None and check.min is not None:
        ok = canary.value >= check.min
        parts.append(PASS if ok else FAIL)
        reasons.append(f"canary success rate {canary.value:.2f}% {'>=' if ok else '<'} min {check.min:g}%")
    if check.compare and _enough(canary.requests, min_requests):
        if not _enough(base.requests, min_requests):
            parts.append(INCONCLUSIVE)
            reasons.append(_too_few("base", target.base, base.requests, min_requests) + "; cannot compare")
        else:
            test = error_rate_test(base.requests or 0, base.errors or 0, canary.requests or 0, canary.errors or 0,
                                   check.tolerance_percent, confidence)
            parts.append(FAIL if test.worse else PASS)
            comparison = {"test": "exact conditional binomial test (one-sided) on error counts",
                          "tolerance_percent": check.tolerance_percent, "confidence": confidence,
                          "p_value": round(test.p_value, 6), "verdict": FAIL if test.worse else PASS}
            base_rate = 100 - (base.value or 0)
            canary_rate = 100 - (canary.value or 0)
            reasons.append(f"canary error rate {canary_rate:.2f}% vs base {base_rate:.2f}%: "
                           + ("worse than the base by more than the tolerance" if test.worse else
                              "not shown to be worse than the base by more than the tolerance")
                           + f" (p={test.p_value:.4f}, tolerance {check.tolerance_percent:g}%, "
                           f"confidence {confidence:g}%)")
    return _result(check, "builtin", canary, base, combine(parts), reasons, comparison)


def _latency(query: Query, check: Check, side: Side, promql: str) -> None:
    side.queries = [*side.queries, promql]
    value = query(check.name, promql)
    side.value = None if value is None or math.isnan(value) else value


def _duration(check: Check, target: Target, counts: _Counts, query: Query, min_requests: int) -> dict[str, Any]:
    canary, base = Side(), Side()
    canary.requests, _errors, requests_queries = counts.get(target.canary, check.name)
    canary.queries = requests_queries[:1]
    base.requests, _errors, requests_queries = counts.get(target.base, check.name)
    base.queries = requests_queries[:1]
    parts, reasons, comparison = [], [], None
    if not _enough(canary.requests, min_requests):
        parts.append(INCONCLUSIVE)
        reasons.append(_too_few("canary", target.canary, canary.requests, min_requests))
        return _result(check, "builtin", canary, base, combine(parts), reasons, comparison)
    _latency(query, check, canary, p99_query(target, target.canary))
    if canary.value is None:
        parts.append(INCONCLUSIVE)
        reasons.append(f"no latency data for the canary ({target.canary})")
    elif check.max is not None:
        ok = canary.value <= check.max
        parts.append(PASS if ok else FAIL)
        reasons.append(f"canary p99 {canary.value:.1f} ms {'<=' if ok else '>'} max {check.max:g} ms")
    if check.compare:
        if not _enough(base.requests, min_requests):
            parts.append(INCONCLUSIVE)
            reasons.append(_too_few("base", target.base, base.requests, min_requests) + "; cannot compare")
        else:
            _latency(query, check, base, p99_query(target, target.base))
            if base.value is None:
                parts.append(INCONCLUSIVE)
                reasons.append(f"no latency data for the base ({target.base}); cannot compare")
            elif canary.value is not None:
                allowed = max(base.value * check.tolerance_percent / 100.0, check.tolerance_ms)
                worse = canary.value - base.value > allowed
                parts.append(FAIL if worse else PASS)
                comparison = {"test": "p99 difference against a tolerance",
                              "tolerance_percent": check.tolerance_percent, "tolerance_ms": check.tolerance_ms,
                              "allowed_increase_ms": round(allowed, 3), "verdict": FAIL if worse else PASS}
                reasons.append(f"canary p99 {canary.value:.1f} ms vs base {base.value:.1f} ms: "
                               f"{'more' if worse else 'no more'} than the allowed increase of {allowed:.1f} ms")
    return _result(check, "builtin", canary, base, combine(parts), reasons, comparison)


def _custom(check: Check, target: Target, counts: _Counts, query: Query, min_requests: int) -> dict[str, Any]:
    canary, base = Side(), Side()
    canary.requests = counts.get(target.canary, check.name)[0]
    base.requests = counts.get(target.base, check.name)[0]
    canary_promql = render_template(check, target, target.canary)
    base_promql = render_template(check, target, target.base)
    parts, reasons = [], []
    _latency(query, check, canary, canary_promql)
    _latency(query, check, base, base_promql)
    if not _enough(canary.requests, min_requests):
        parts.append(INCONCLUSIVE)
        reasons.append(_too_few("canary", target.canary, canary.requests, min_requests))
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
    return _result(check, "custom", canary, base, combine(parts), reasons, None)
