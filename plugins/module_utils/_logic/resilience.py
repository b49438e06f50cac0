# -*- coding: utf-8 -*-
# Copyright (c) canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Resilience policies of one service: validation of the options and the surgical patches that set them.

The pure logic of the ``canary.istio.resilience`` module. Nothing here talks to Kubernetes or
imports Ansible; every function refuses bad input with :class:`CanaryInputError` naming the value
and the rule, before anything is written.

Where each policy goes (Istio's fields, written from istio/api ``networking/v1alpha3/*.proto`` and
istio/istio ``pkg/config/validation``):

==================  ========================================================================
option              Istio field
==================  ========================================================================
``timeout``         ``spec.http[i].timeout`` of the chosen VirtualService route, or
                    ``spec.rules[i].timeouts.request`` of an HTTPRoute rule
``retries``         ``spec.http[i].retries`` (``HTTPRetry``); on an HTTPRoute rule only
                    ``per_try_timeout``, as ``timeouts.backendRequest``
``fault``           ``spec.http[i].fault`` (``HTTPFaultInjection``); with ``match``, a tester route
                    of its own just above the chosen route (same destinations, the match, the fault)
``circuit_breaker`` ``spec.trafficPolicy.connectionPool`` / ``.outlierDetection`` of the
                    DestinationRule, or ``spec.subsets[j].trafficPolicy...`` of one subset
``rate_limit``      an EnvoyFilter inserting ``envoy.filters.http.local_ratelimit`` on the
                    selected workloads' SIDECAR_INBOUND, shaped as Istio's "local rate limit" task
==================  ========================================================================

Local rate limiting is sidecar-only: Istio does not apply EnvoyFilters to waypoint proxies
(ambient mode), so the EnvoyFilter has no effect on a service served through a waypoint.

API (all options in snake_case, as the module takes them):

- ``route_fields(timeout=None, retries=None, fault=None)`` -> ``{"timeout": ..., "retries": {...},
  "fault": {...}}`` in Istio's camelCase, only the options given; ``fault["match"]`` is not part of
  it (see ``fault_match``).
- ``fault_match(fault)`` -> the tester route's ``match`` list, or None.
- ``traffic_policy_fields(circuit_breaker)`` -> ``{"connectionPool": {...}, "outlierDetection": {...}}``.
- ``token_bucket(rate_limit)`` -> Envoy's ``token_bucket`` (``max_tokens``, ``tokens_per_fill``, ``fill_interval``).
- ``removal_paths(names)`` -> ``{"route": [...], "traffic_policy": [...], "rate_limit": bool}``: the
  Istio paths (tuples) that ``state: absent`` removes for option names such as ``"retries"``,
  ``"fault.delay"``, ``"circuit_breaker.connection_pool.http.http1_max_pending_requests"``.
- ``build_route_policy_patch(vs_object, route_index, fields)`` / ``build_route_policy_removal(vs_object,
  route_index, paths)`` -> JSON Patch ops on ``/spec/http/<i>`` only; ``[]`` when nothing changes.
- ``plan_fault_tester_route(spec, route_index, name, match, fault)`` / ``remove_fault_tester_route(spec,
  name)`` -> a new ``spec.http`` list, for ``patches.build_http_list_patch``.
- ``build_traffic_policy_patch(dr_object, subset, fields)`` / ``build_traffic_policy_removal(dr_object,
  subset, paths)`` -> JSON Patch ops on ``/spec/trafficPolicy`` or ``/spec/subsets/<j>/trafficPolicy``.
- ``http_route_fields(timeout=None, retries=None, fault=None)`` -> ``{"timeouts": {"request", "backendRequest"}}``
  for an HTTPRoute rule; ``build_http_route_rule_patch(route, rule_index, fields)`` /
  ``build_http_route_rule_removal(route, rule_index, names)`` -> ops on ``/spec/rules/<i>/timeouts`` only.
- ``local_rate_limit_envoy_filter(name, namespace, workload_labels, bucket)`` -> the whole EnvoyFilter;
  ``build_token_bucket_patch(envoy_filter, bucket)`` -> ops changing only its ``token_bucket``.

Setting merges: the leaves given replace those stored, the leaves not given stay (setting
``retries.attempts`` keeps a stored ``perTryTimeout``). Every patch starts with ``test`` ops (the
resourceVersion, the value it replaces, or the whole mapping a member is added to) so a concurrent
edit fails the PATCH instead of being lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import (
    CanaryConflictError,
    CanaryInputError,
    is_int,
    json_copy,
    require_mapping,
    require_text,
    show,
)
from ansible_collections.canary.istio.plugins.module_utils._logic.routes import http_list, route_label

# The retryOn policies Envoy accepts and Istio's validation lists (pkg/config/validation/agent/
# validation.go, supportedRetryOnPolicies); HTTP status codes are accepted as well.
RETRY_ON_POLICIES = (
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure",
    # x-envoy-retry-grpc-on
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
)
# Istio's defaults, as its API reference and pilot document them; the module's documentation shows them.
ISTIO_DEFAULTS = {
    "timeout": "disabled (no route timeout)",
    "retries": "attempts 2, retryOn connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "retries.per_try_timeout": "the route timeout",
    "retries.backoff": "25ms",
    "retries.retry_ignore_previous_hosts": "true",
    "fault.delay.percentage": "none: without it no request is delayed",
    "fault.abort.percentage": "none: without it no request is aborted",
    "connection_pool.tcp.max_connections": "2^32-1",
    "connection_pool.tcp.connect_timeout": "10s",
    "connection_pool.http.http1_max_pending_requests": "2^32-1",
    "connection_pool.http.http2_max_requests": "2^32-1",
    "connection_pool.http.max_requests_per_connection": "0 (unlimited)",
    "connection_pool.http.max_retries": "2^32-1",
    "connection_pool.http.idle_timeout": "1h",
    "outlier_detection.consecutive_5xx_errors": "5",
    "outlier_detection.consecutive_gateway_errors": "0 (disabled)",
    "outlier_detection.interval": "10s",
    "outlier_detection.base_ejection_time": "30s",
    "outlier_detection.max_ejection_percent": "10",
    "outlier_detection.min_health_percent": "0",
    "rate_limit.tokens_per_fill": "1 (Envoy's TokenBucket)",
}
SIDECAR_ONLY = ("local rate limiting is applied by an EnvoyFilter, which Istio applies to sidecars only, not to "
                "waypoint proxies")
LOCAL_RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
MIN_FILL_INTERVAL_SECONDS = 0.05  # Envoy: a token bucket's fill_interval must be >= 50ms
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# The HTTP status codes Go's net/http names (StatusText): Istio accepts these in retryOn.
HTTP_STATUS_CODES = frozenset([100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302,
                               303, 304, 305, 307, 308, *range(400, 419), 421, 422, 423, 424, 425, 426, 428, 429, 431,
                               451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511])


# --------------------------------------------------------------------------------------
# single values


def duration_seconds(value: Any, what: str, *, allow_zero: bool = False) -> float:
    """Seconds of a duration as Istio's CRDs take it ("2s", "0.5s", "100ms", "1m30s").

    Istio's rule (ValidateDuration): at least 1ms, in whole milliseconds; ``allow_zero`` admits
    "0s" where Istio lets it mean "disabled" (an idle timeout).
    """
    hint = "write a duration with a unit, e.g. '500ms', '2s' or '1m30s'"
    if not isinstance(value, str) or not value.strip():
        raise CanaryInputError(f"{what} {show(value)} is not a duration; {hint}")
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise CanaryInputError(f"{what} {show(value)} is not a duration; {hint}")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    milliseconds = seconds * 1000
    if allow_zero and seconds == 0:
        return 0.0
    if milliseconds < 1 - 1e-9:
        raise CanaryInputError(f"{what} {show(value)} is shorter than 1ms; Istio requires durations of at least 1ms")
    if abs(milliseconds - round(milliseconds)) > 1e-6:
        raise CanaryInputError(f"{what} {show(value)} is not a whole number of milliseconds; Istio supports "
                               "durations to millisecond precision only")
    return seconds


def _duration(value: Any, what: str, allow_zero: bool = False) -> str:
    duration_seconds(value, what, allow_zero=allow_zero)
    return value.strip()


def percentage(value: Any, what: str) -> float:
    """A percentage of requests as Istio takes it (validatePercentage): 0, or 0.0001 to 100."""
    number = None
    if (is_int(value) or isinstance(value, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not (number == 0 or 0.0001 <= number <= 100):
        raise CanaryInputError(f"{what} {show(value)} is not a percentage of requests; Istio takes 0, or a number "
                               "from 0.0001 to 100")
    return int(number) if number.is_integer() else number


def _integer(value: Any, what: str, low: int, high: int, rule: str) -> int:
    number = None
    if is_int(value):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,20}\s*", value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise CanaryInputError(f"{what} {show(value)} is not an integer from {low} to {high}; {rule}")
    return number


def _boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise CanaryInputError(f"{what} {show(value)} is not true or false")
    return value


def retry_on(value: Any, what: str = "retries.retry_on") -> str:
    """Istio's ``retryOn``: Envoy retry policies and HTTP status codes, comma separated (a list is joined)."""
    tokens = value if isinstance(value, list) else (value.split(",") if isinstance(value, str) else None)
    if not tokens or not all(isinstance(token, (str, int)) and not isinstance(token, bool) for token in tokens):
        raise CanaryInputError(f"{what} {show(value)} is not a comma-separated list of retry policies; e.g. "
                               "'gateway-error,connect-failure,refused-stream' or '5xx,503'")
    cleaned = []
    for token in tokens:
        text = str(token).strip()
        known = text in RETRY_ON_POLICIES or (text.isdigit() and int(text) in HTTP_STATUS_CODES)
        if not known:
            raise CanaryInputError(
                f"{what} token {show(text)} is not a retry policy Envoy accepts; use HTTP status codes (e.g. 503) or "
                f"{', '.join(RETRY_ON_POLICIES)}")
        cleaned.append(text)
    return ",".join(cleaned)


# --------------------------------------------------------------------------------------
# option groups: snake_case options in, Istio's camelCase fields out


def _known_keys(options: Mapping, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(str(key) for key in options if key not in allowed)
    if unknown:
        raise CanaryInputError(f"{what} has unknown option(s) {', '.join(map(repr, unknown))}; "
                               f"known: {', '.join(allowed)}")


def _options(value: Any, what: str, allowed: tuple[str, ...]) -> Mapping:
    require_mapping(value, what, f"give a mapping with any of {', '.join(allowed)}")
    _known_keys(value, allowed, what)
    return value


def _retries(value: Any) -> dict[str, Any]:
    options = _options(value, "retries", ("attempts", "per_try_timeout", "retry_on", "retry_remote_localities",
                                          "retry_ignore_previous_hosts", "backoff"))
    out: dict[str, Any] = {}
    if options.get("attempts") is not None:
        out["attempts"] = _integer(options["attempts"], "retries.attempts", 0, INT32_MAX,
                                   "Istio requires attempts >= 0 (0 disables retries)")
    if options.get("per_try_timeout") is not None:
        out["perTryTimeout"] = _duration(options["per_try_timeout"], "retries.per_try_timeout")
    if options.get("retry_on") is not None:
        out["retryOn"] = retry_on(options["retry_on"])
    if options.get("retry_remote_localities") is not None:
        out["retryRemoteLocalities"] = _boolean(options["retry_remote_localities"], "retries.retry_remote_localities")
    if options.get("retry_ignore_previous_hosts") is not None:
        out["retryIgnorePreviousHosts"] = _boolean(options["retry_ignore_previous_hosts"],
                                                   "retries.retry_ignore_previous_hosts")
    if options.get("backoff") is not None:
        out["backoff"] = _duration(options["backoff"], "retries.backoff")
    if not out:
        raise CanaryInputError("retries {} sets nothing; give attempts (and per_try_timeout, retry_on, ...)")
    if out.get("attempts") == 0 and len(out) > 1:
        raise CanaryInputError(f"retries {show(dict(options))} sets attempts 0 (retries disabled) together with other "
                               "retry settings; Istio refuses that: give attempts >= 1 or only attempts 0")
    return out


def _fault(value: Any) -> dict[str, Any]:
    options = _options(value, "fault", ("delay", "abort", "match"))
    out: dict[str, Any] = {}
    if options.get("delay") is not None:
        delay = _options(options["delay"], "fault.delay", ("fixed_delay", "percentage"))
        if delay.get("fixed_delay") is None or delay.get("percentage") is None:
            raise CanaryInputError(f"fault.delay {show(dict(delay))} needs fixed_delay and percentage (Istio delays "
                                   "no request when percentage is not given)")
        out["delay"] = {"fixedDelay": _duration(delay["fixed_delay"], "fault.delay.fixed_delay"),
                        "percentage": {"value": percentage(delay["percentage"], "fault.delay.percentage")}}
    if options.get("abort") is not None:
        abort = _options(options["abort"], "fault.abort", ("http_status", "grpc_status", "percentage"))
        if abort.get("percentage") is None:
            raise CanaryInputError(f"fault.abort {show(dict(abort))} needs percentage (Istio aborts no request when "
                                   "percentage is not given)")
        given = [key for key in ("http_status", "grpc_status") if abort.get(key) is not None]
        if len(given) != 1:
            raise CanaryInputError(f"fault.abort {show(dict(abort))} needs exactly one of http_status and grpc_status")
        out["abort"] = {}
        if given[0] == "http_status":
            # Istio's validateHTTPStatus accepts 200..599.
            out["abort"]["httpStatus"] = _integer(abort["http_status"], "fault.abort.http_status", 200, 599,
                                                  "Istio aborts with an HTTP status from 200 to 599")
        else:
            out["abort"]["grpcStatus"] = require_text(abort["grpc_status"], "fault.abort.grpc_status",
                                                      "give a gRPC status name such as 'UNAVAILABLE'")
        out["abort"]["percentage"] = {"value": percentage(abort["percentage"], "fault.abort.percentage")}
    if not out:
        raise CanaryInputError(f"fault {show(dict(options))} has neither delay nor abort; Istio requires at least one")
    return out


def route_fields(timeout: Any = None, retries: Any = None, fault: Any = None) -> dict[str, Any]:
    """The route fields to set, in Istio's form, for the options given (None: not given)."""
    fields: dict[str, Any] = {}
    if timeout is not None:
        fields["timeout"] = _duration(timeout, "timeout")
    if retries is not None:
        fields["retries"] = _retries(retries)
    if fault is not None:
        fields["fault"] = _fault(fault)
    return fields


def fault_match(fault: Any) -> list | None:
    """The tester route's ``match`` (Istio HTTPMatchRequest list) when ``fault.match`` is given."""
    if not isinstance(fault, Mapping) or fault.get("match") is None:
        return None
    match = fault["match"]
    if not isinstance(match, list) or not match or not all(isinstance(item, Mapping) and item for item in match):
        raise CanaryInputError(f"fault.match {show(match)} is not a non-empty list of non-empty match mappings; "
                               "e.g. [{'headers': {'end-user': {'exact': 'jason'}}}] (an empty match would inject "
                               "the fault for everyone)")
    return json_copy(match)


_COUNT = (1, INT32_MAX, "Istio treats 0 as unset (no limit); give 1 or more")
_CONNECTION_POOL_TCP = {
    "max_connections": ("maxConnections", _COUNT),
    "connect_timeout": ("connectTimeout", "duration"),
    "max_connection_duration": ("maxConnectionDuration", "duration"),
    "idle_timeout": ("idleTimeout", "duration-or-zero"),
}
_CONNECTION_POOL_HTTP = {
    "http1_max_pending_requests": ("http1MaxPendingRequests", _COUNT),
    "http2_max_requests": ("http2MaxRequests", _COUNT),
    "max_requests_per_connection": ("maxRequestsPerConnection", (0, INT32_MAX, "Istio requires it non-negative "
                                                                               "(0 means unlimited)")),
    "max_retries": ("maxRetries", _COUNT),
    "idle_timeout": ("idleTimeout", "duration"),
    "max_concurrent_streams": ("maxConcurrentStreams", _COUNT),
    "h2_upgrade_policy": ("h2UpgradePolicy", ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")),
    "use_client_protocol": ("useClientProtocol", "bool"),
}
_OUTLIER_DETECTION = {
    "consecutive_5xx_errors": ("consecutive5xxErrors", (0, UINT32_MAX, "0 disables it")),
    "consecutive_gateway_errors": ("consecutiveGatewayErrors", (0, UINT32_MAX, "0 disables it")),
    "consecutive_local_origin_failures": ("consecutiveLocalOriginFailures", (0, UINT32_MAX, "a count")),
    "split_external_local_origin_errors": ("splitExternalLocalOriginErrors", "bool"),
    "interval": ("interval", "duration"),
    "base_ejection_time": ("baseEjectionTime", "duration"),
    "max_ejection_percent": ("maxEjectionPercent", (0, 100, "Istio takes a percentage from 0 to 100")),
    "min_health_percent": ("minHealthPercent", (0, 100, "Istio takes a percentage from 0 to 100")),
}


def _table(value: Any, what: str, table: Mapping[str, tuple[str, Any]]) -> dict[str, Any]:
    options = _options(value, what, tuple(table))
    out: dict[str, Any] = {}
    for option, (field, rule) in table.items():
        given = options.get(option)
        if given is None:
            continue
        name = f"{what}.{option}"
        if rule == "duration":
            out[field] = _duration(given, name)
        elif rule == "duration-or-zero":
            out[field] = _duration(given, name, allow_zero=True)
        elif rule == "bool":
            out[field] = _boolean(given, name)
        elif isinstance(rule, tuple) and isinstance(rule[0], str):
            if given not in rule:
                raise CanaryInputError(f"{name} {show(given)} is not one of {', '.join(rule)}")
            out[field] = given
        else:
            low, high, text = rule
            out[field] = _integer(given, name, low, high, text)
    if not out:
        raise CanaryInputError(f"{what} {show(dict(options))} sets nothing; give at least one of {', '.join(table)}")
    return out


def traffic_policy_fields(circuit_breaker: Any) -> dict[str, Any]:
    """``connectionPool`` and ``outlierDetection`` in Istio's form for the ``circuit_breaker`` options."""
    options = _options(circuit_breaker, "circuit_breaker", ("connection_pool", "outlier_detection"))
    fields: dict[str, Any] = {}
    if options.get("connection_pool") is not None:
        pool = _options(options["connection_pool"], "circuit_breaker.connection_pool", ("tcp", "http"))
        built: dict[str, Any] = {}
        if pool.get("tcp") is not None:
            built["tcp"] = _table(pool["tcp"], "circuit_breaker.connection_pool.tcp", _CONNECTION_POOL_TCP)
        if pool.get("http") is not None:
            built["http"] = _table(pool["http"], "circuit_breaker.connection_pool.http", _CONNECTION_POOL_HTTP)
        if not built:
            raise CanaryInputError("circuit_breaker.connection_pool sets nothing; Istio requires tcp or http settings")
        if (built.get("http") or {}).get("useClientProtocol") and built["http"].get("h2UpgradePolicy") == "UPGRADE":
            raise CanaryInputError("circuit_breaker.connection_pool.http sets use_client_protocol with "
                                   "h2_upgrade_policy UPGRADE; Istio refuses the two together")
        fields["connectionPool"] = built
    if options.get("outlier_detection") is not None:
        outlier = _table(options["outlier_detection"], "circuit_breaker.outlier_detection", _OUTLIER_DETECTION)
        if outlier.get("consecutiveLocalOriginFailures", 0) > 0 and not outlier.get("splitExternalLocalOriginErrors"):
            raise CanaryInputError("circuit_breaker.outlier_detection.consecutive_local_origin_failures needs "
                                   "split_external_local_origin_errors: true; Istio refuses it otherwise")
        fields["outlierDetection"] = outlier
    if not fields:
        raise CanaryInputError("circuit_breaker sets nothing; give connection_pool and/or outlier_detection")
    return fields


def token_bucket(rate_limit: Any) -> dict[str, Any]:
    """Envoy's ``token_bucket`` for the ``rate_limit`` options (max_tokens, tokens_per_fill, fill_interval)."""
    options = _options(rate_limit, "rate_limit", ("max_tokens", "tokens_per_fill", "fill_interval"))
    if options.get("max_tokens") is None or options.get("fill_interval") is None:
        raise CanaryInputError(f"rate_limit {show(dict(options))} needs max_tokens and fill_interval "
                               "(e.g. 4 tokens every 60s)")
    bucket = {"max_tokens": _integer(options["max_tokens"], "rate_limit.max_tokens", 1, UINT32_MAX,
                                     "Envoy requires a bucket of at least 1 token")}
    per_fill = 1 if options.get("tokens_per_fill") is None else options["tokens_per_fill"]
    bucket["tokens_per_fill"] = _integer(per_fill, "rate_limit.tokens_per_fill", 1, UINT32_MAX,
                                         "Envoy adds at least 1 token per fill")
    seconds = duration_seconds(options["fill_interval"], "rate_limit.fill_interval")
    if seconds < MIN_FILL_INTERVAL_SECONDS:
        raise CanaryInputError(f"rate_limit.fill_interval {show(options['fill_interval'])} is shorter than 50ms; "
                               "Envoy requires a token bucket's fill_interval of at least 50ms")
    bucket["fill_interval"] = options["fill_interval"].strip()
    return bucket


# --------------------------------------------------------------------------------------
# what state: absent removes

_ROUTE_OPTIONS = {
    "timeout": ("timeout",),
    "retries": ("retries",),
    "retries.per_try_timeout": ("retries", "perTryTimeout"),
    "retries.retry_on": ("retries", "retryOn"),
    "retries.retry_remote_localities": ("retries", "retryRemoteLocalities"),
    "retries.retry_ignore_previous_hosts": ("retries", "retryIgnorePreviousHosts"),
    "retries.backoff": ("retries", "backoff"),
    "fault": ("fault",),
    "fault.delay": ("fault", "delay"),
    "fault.abort": ("fault", "abort"),
}


def _policy_options() -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {
        "circuit_breaker.connection_pool": ("connectionPool",),
        "circuit_breaker.connection_pool.tcp": ("connectionPool", "tcp"),
        "circuit_breaker.connection_pool.http": ("connectionPool", "http"),
        "circuit_breaker.outlier_detection": ("outlierDetection",),
    }
    for group, table in (("tcp", _CONNECTION_POOL_TCP), ("http", _CONNECTION_POOL_HTTP)):
        for option, (field, _rule) in table.items():
            names[f"circuit_breaker.connection_pool.{group}.{option}"] = ("connectionPool", group, field)
    for option, (field, _rule) in _OUTLIER_DETECTION.items():
        names[f"circuit_breaker.outlier_detection.{option}"] = ("outlierDetection", field)
    return names


_POLICY_OPTIONS = _policy_options()


def removal_paths(names: Any) -> dict[str, Any]:
    """The Istio paths ``state: absent`` removes for the option names given.

    ``"circuit_breaker"`` names both DestinationRule fields; ``"rate_limit"`` the EnvoyFilter
    (``rate_limit`` True: the module deletes it). ``"retries.attempts"`` alone is refused: Istio
    refuses a retry policy with other settings and no attempts; remove ``retries`` whole.
    """
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise CanaryInputError(f"names to remove {show(names)} is not a non-empty list of option names; "
                               "e.g. ['retries', 'fault.delay', 'circuit_breaker.outlier_detection']")
    result: dict[str, Any] = {"route": [], "traffic_policy": [], "rate_limit": False}
    for name in names:
        if name in _ROUTE_OPTIONS:
            result["route"].append(_ROUTE_OPTIONS[name])
        elif name == "circuit_breaker":
            result["traffic_policy"] += [("connectionPool",), ("outlierDetection",)]
        elif name in _POLICY_OPTIONS:
            result["traffic_policy"].append(_POLICY_OPTIONS[name])
        elif name == "rate_limit":
            result["rate_limit"] = True
        elif name == "retries.attempts":
            raise CanaryInputError("'retries.attempts' cannot be removed alone: Istio refuses a retry policy whose "
                                   "attempts are 0 while other retry settings stay; remove 'retries' instead")
        else:
            known = [*_ROUTE_OPTIONS, "circuit_breaker", *_POLICY_OPTIONS, "rate_limit"]
            raise CanaryInputError(f"option name {name!r} is not one that state=absent can remove; known: "
                                   f"{', '.join(known)}")
    return result


# --------------------------------------------------------------------------------------
# patches


def _merged(current: Any, wanted: Any) -> Any:
    """``wanted``'s leaves over ``current``: mappings merge key by key, anything else is replaced."""
    if isinstance(current, Mapping) and isinstance(wanted, Mapping):
        out = {key: json_copy(value) for key, value in current.items()}
        for key, value in wanted.items():
            out[key] = _merged(current.get(key), value)
        return out
    return json_copy(wanted)


def _pointer(*tokens: Any) -> str:
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in tokens)


def _version_test(resource: Mapping) -> list[dict]:
    version = (resource.get("metadata") or {}).get("resourceVersion")
    if isinstance(version, str) and version:
        return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
    return []


def _set_ops(base: str, holder: Mapping, fields: Mapping[str, Any], guard_path: str, guard: Any) -> list[dict]:
    """Ops that merge ``fields`` into the mapping ``holder`` at ``base``; ``guard`` pins it when a member is added."""
    changes = []
    adds = False
    for field, wanted in fields.items():
        value = _merged(holder.get(field), wanted)
        if holder.get(field) == value and field in holder:
            continue
        if field in holder:
            changes.append({"op": "test", "path": f"{base}/{field}", "value": json_copy(holder[field])})
            changes.append({"op": "replace", "path": f"{base}/{field}", "value": value})
        else:
            adds = True
            changes.append({"op": "add", "path": f"{base}/{field}", "value": value})
    if not changes:
        return []
    # JSON Patch cannot test that a member is absent; pinning the mapping it joins does.
    return ([{"op": "test", "path": guard_path, "value": json_copy(guard)}] if adds else []) + changes


def _remove_ops(base: str, holder: Mapping, paths: list[tuple[str, ...]]) -> tuple[list[dict], dict]:
    """Ops removing each present path under ``holder`` (a parent left empty goes too), and the result."""
    after = json_copy(holder)
    for path in paths:
        parents = [after]
        for token in path[:-1]:
            child = parents[-1].get(token)
            if not isinstance(child, dict):
                break
            parents.append(child)
        else:
            if path[-1] in parents[-1]:
                del parents[-1][path[-1]]
                # An emptied parent means nothing (and Istio refuses an empty fault): it goes too.
                for depth in range(len(parents) - 1, 0, -1):
                    if parents[depth]:
                        break
                    del parents[depth - 1][path[depth - 1]]
    if after == holder:
        return [], after
    ops = []
    for field in holder:
        if field not in after:
            ops += [{"op": "test", "path": f"{base}/{_pointer(field)[1:]}", "value": json_copy(holder[field])},
                    {"op": "remove", "path": f"{base}/{_pointer(field)[1:]}"}]
        elif after[field] != holder[field]:
            ops += [{"op": "test", "path": f"{base}/{_pointer(field)[1:]}", "value": json_copy(holder[field])},
                    {"op": "replace", "path": f"{base}/{_pointer(field)[1:]}", "value": after[field]}]
    return ops, after


def route_with_fields(route: Mapping, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the http route ``route`` with ``fields`` merged in as :func:`build_route_policy_patch`
    merges them (for a route list that is written whole, with a fault tester route)."""
    out = json_copy(dict(route))
    for field, wanted in fields.items():
        out[field] = _merged(route.get(field), wanted)
    return out


def route_without(route: Mapping, paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """A copy of ``route`` without ``paths`` (emptied parents go too), as :func:`build_route_policy_removal`."""
    return _remove_ops("", route, paths)[1]


def removal_names(options: Mapping[str, Any]) -> list[str]:
    """The option names that ``state: absent`` removes, read from the options as given for ``present``.

    Each leaf given names its field (``circuit_breaker: {outlier_detection: {interval: 1s}}`` names
    ``circuit_breaker.outlier_detection.interval``); an empty mapping, ``true`` or ``null`` inside a
    group names the whole group (``outlier_detection: {}``). ``retries`` naming ``attempts`` names the
    whole retry policy (Istio refuses retries without attempts); ``fault`` names ``fault.delay`` and/or
    ``fault.abort`` (each is one unit in Istio), or the whole fault; ``timeout`` and ``rate_limit``
    name themselves whatever their value.
    """
    names: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if not isinstance(value, Mapping) or not value:
            names.append(prefix)
            return
        for key, child in value.items():
            walk(f"{prefix}.{key}", child)

    for option in ("timeout", "rate_limit"):
        if option in options and options[option] is not None:
            names.append(option)
    retries = options.get("retries")
    if retries is not None:
        if not isinstance(retries, Mapping) or not retries or "attempts" in retries:
            names.append("retries")
        else:
            names += [f"retries.{key}" for key in retries]
    fault = options.get("fault")
    if fault is not None:
        fault = fault if isinstance(fault, Mapping) else {}
        parts = [key for key in ("delay", "abort") if key in fault]
        unknown = [key for key in fault if key not in ("delay", "abort", "match")]
        if unknown:
            raise CanaryInputError(f"fault has unknown option(s) {', '.join(map(repr, sorted(unknown)))}; known: "
                                   "delay, abort, match")
        names += [f"fault.{key}" for key in parts] if parts else ["fault"]
    circuit_breaker = options.get("circuit_breaker")
    if circuit_breaker is not None:
        walk("circuit_breaker", circuit_breaker)
    return names


def _route_at(vs_object: Any, route_index: Any) -> tuple[Mapping, str]:
    require_mapping(vs_object, "VirtualService", "pass the VirtualService object as read from the API server")
    http = http_list(vs_object.get("spec") or {})
    if not is_int(route_index) or not 0 <= route_index < len(http):
        raise CanaryInputError(f"route index {show(route_index)} is not an index of spec.http (0..{len(http) - 1}); "
                               "use find_http_route to locate the route")
    return http[route_index], f"/spec/http/{route_index}"


def _route_guards(route: Mapping, base: str) -> list[dict]:
    if "name" in route:
        return [{"op": "test", "path": f"{base}/name", "value": json_copy(route["name"])}]
    return []


def build_route_policy_patch(vs_object: Any, route_index: Any, fields: Mapping[str, Any]) -> list[dict]:
    """JSON Patch setting ``fields`` (from :func:`route_fields`) on ``spec.http[route_index]`` only.

    Other routes and the route's other members (its destinations and weights, match, name) stay.
    Returns ``[]`` when the route already holds every leaf given (idempotent).
    """
    route, base = _route_at(vs_object, route_index)
    ops = _set_ops(base, route, fields, base, route)
    if not ops:
        return []
    return _version_test(vs_object) + _route_guards(route, base) + ops


def build_route_policy_removal(vs_object: Any, route_index: Any, paths: list[tuple[str, ...]]) -> list[dict]:
    """JSON Patch removing the ``paths`` (from :func:`removal_paths`) that the route holds; ``[]`` if none."""
    route, base = _route_at(vs_object, route_index)
    ops, _after = _remove_ops(base, route, paths)
    if not ops:
        return []
    return _version_test(vs_object) + _route_guards(route, base) + ops


def _policy_holder(dr_object: Any, subset: Any) -> tuple[Mapping, str, list[dict]]:
    """The mapping that holds ``trafficPolicy`` (the spec, or one subset), its path and guards."""
    require_mapping(dr_object, "DestinationRule", "pass the DestinationRule object as read from the API server")
    spec = dr_object.get("spec")
    require_mapping(spec, "DestinationRule spec", "pass the DestinationRule object as read from the API server")
    if subset is None:
        return spec, "/spec", []
    require_text(subset, "subset", "name one subset of the DestinationRule, or omit it for the whole rule")
    subsets = spec.get("subsets") or []
    found = [index for index, entry in enumerate(subsets) if isinstance(entry, Mapping) and entry.get("name") == subset]
    if not found:
        names = [str(entry.get("name")) for entry in subsets if isinstance(entry, Mapping)]
        raise CanaryInputError(f"subset {subset!r} is not defined in the DestinationRule (subsets: "
                               f"{', '.join(names) or 'none'}); add the subset first or name one of those")
    if len(found) > 1:
        raise CanaryConflictError(f"subset {subset!r} is defined {len(found)} times in the DestinationRule "
                                  f"(indexes {found}); Istio uses one of them, remove the duplicates")
    base = f"/spec/subsets/{found[0]}"
    return subsets[found[0]], base, [{"op": "test", "path": f"{base}/name", "value": subset}]


def build_traffic_policy_patch(dr_object: Any, subset: Any, fields: Mapping[str, Any]) -> list[dict]:
    """JSON Patch merging ``fields`` (from :func:`traffic_policy_fields`) into the DestinationRule's
    ``trafficPolicy`` (or subset ``subset``'s); loadBalancer, tls, other subsets stay. ``[]`` if unchanged."""
    holder, base, guards = _policy_holder(dr_object, subset)
    policy = holder.get("trafficPolicy")
    if policy is None:
        ops = [{"op": "test", "path": base, "value": json_copy(holder)},
               {"op": "add", "path": f"{base}/trafficPolicy", "value": json_copy(dict(fields))}]
    else:
        require_mapping(policy, f"{base[1:]}/trafficPolicy", "the DestinationRule is malformed")
        ops = _set_ops(f"{base}/trafficPolicy", policy, fields, f"{base}/trafficPolicy", policy)
        if not ops:
            return []
    return _version_test(dr_object) + guards + ops


def build_traffic_policy_removal(dr_object: Any, subset: Any, paths: list[tuple[str, ...]]) -> list[dict]:
    """JSON Patch removing ``paths`` from the trafficPolicy (a trafficPolicy left empty goes too).

    ``[]`` when the trafficPolicy holds none of them.
    """
    holder, base, guards = _policy_holder(dr_object, subset)
    policy = holder.get("trafficPolicy")
    if not isinstance(policy, Mapping):
        return []
    ops, after = _remove_ops(f"{base}/trafficPolicy", policy, paths)
    if not ops:
        return []
    if not after:
        ops = [{"op": "test", "path": f"{base}/trafficPolicy", "value": json_copy(policy)},
               {"op": "remove", "path": f"{base}/trafficPolicy"}]
    return _version_test(dr_object) + guards + ops


# --------------------------------------------------------------------------------------
# HTTPRoute rules (Gateway API)

# GEP-2257 durations, as the HTTPRoute CRD's schema checks them; "0s" disables the timeout.
_GATEWAY_API_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


def _gateway_api_seconds(value: Any, what: str) -> float:
    if not isinstance(value, str) or not _GATEWAY_API_DURATION.match(value):
        raise CanaryInputError(f"{what} {show(value)} is not a Gateway API duration (GEP-2257: up to four "
                               "whole numbers with h, m, s or ms, e.g. '500ms', '10s', '1m30s'; '0s' disables it)")
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in re.findall(r"([0-9]+)(ms|h|m|s)", value))


def http_route_fields(timeout: Any = None, retries: Any = None, fault: Any = None) -> dict[str, Any]:
    """The ``timeouts`` of an HTTPRoute rule for the options given.

    ``timeout`` is ``timeouts.request``; ``retries.per_try_timeout`` is ``timeouts.backendRequest``
    (Istio makes it the per-try timeout when the rule has a retry, the route timeout otherwise:
    pilot/pkg/config/kube/gateway/conversion.go). Gateway API's standard channel has no retry
    attempts and no fault injection, so those are refused (Istio's tasks use a VirtualService for faults).
    """
    if fault is not None:
        raise CanaryInputError("fault cannot be set on an HTTPRoute: Gateway API has no fault injection (Istio's "
                               "Request Timeouts task adds faults with a VirtualService); use a VirtualService route")
    timeouts: dict[str, Any] = {}
    if timeout is not None:
        _gateway_api_seconds(timeout, "timeout")
        timeouts["request"] = timeout
    if retries is not None:
        require_mapping(retries, "retries", "give retries.per_try_timeout")
        if set(retries) - {"per_try_timeout"} or retries.get("per_try_timeout") is None:
            raise CanaryInputError(f"retries {show(dict(retries))} on an HTTPRoute can only set per_try_timeout "
                                   "(timeouts.backendRequest); Gateway API's standard channel has no retry attempts "
                                   "or conditions")
        _gateway_api_seconds(retries["per_try_timeout"], "retries.per_try_timeout")
        timeouts["backendRequest"] = retries["per_try_timeout"]
    return {"timeouts": timeouts} if timeouts else {}


def _refuse_backend_longer(timeouts: Mapping[str, Any], where: str) -> None:
    request, backend = timeouts.get("request"), timeouts.get("backendRequest")
    if request is None or backend is None:
        return
    request_seconds = _gateway_api_seconds(request, f"{where}.request")
    if request_seconds and _gateway_api_seconds(backend, f"{where}.backendRequest") > request_seconds:
        raise CanaryInputError(f"{where}.backendRequest {backend!r} is longer than request {request!r}; Gateway API "
                               "refuses a backendRequest timeout longer than the request timeout")


def _rule_at(route_object: Any, rule_index: Any) -> tuple[Mapping, str]:
    require_mapping(route_object, "HTTPRoute", "pass the HTTPRoute object as read from the API server")
    spec = route_object.get("spec") or {}
    rules = spec.get("rules") if isinstance(spec, Mapping) else None
    if not isinstance(rules, list) or not is_int(rule_index) or not 0 <= rule_index < len(rules):
        count = len(rules) if isinstance(rules, list) else 0
        raise CanaryInputError(f"rule index {show(rule_index)} is not an index of spec.rules (0..{count - 1}); "
                               "use httproutes.find_rule to locate the rule")
    require_mapping(rules[rule_index], f"HTTPRoute spec.rules[{rule_index}]", "the HTTPRoute is malformed")
    return rules[rule_index], f"/spec/rules/{rule_index}"


def build_http_route_rule_patch(route_object: Any, rule_index: Any, fields: Mapping[str, Any]) -> list[dict]:
    """JSON Patch merging ``fields`` (from :func:`http_route_fields`) into rule ``rule_index``'s timeouts only."""
    rule, base = _rule_at(route_object, rule_index)
    if fields.get("timeouts"):
        _refuse_backend_longer(_merged(rule.get("timeouts") or {}, fields["timeouts"]), f"rules[{rule_index}].timeouts")
    ops = _set_ops(base, rule, fields, base, rule)
    if not ops:
        return []
    guards = [{"op": "test", "path": f"{base}/name", "value": rule["name"]}] if "name" in rule else []
    return _version_test(route_object) + guards + ops


def build_http_route_rule_removal(route_object: Any, rule_index: Any, names: Any) -> list[dict]:
    """JSON Patch removing ``timeout`` (timeouts.request) and/or ``retries`` / ``retries.per_try_timeout``
    (timeouts.backendRequest) from rule ``rule_index``; ``[]`` when it holds none of them."""
    paths = []
    for name in names if isinstance(names, list) else [names]:
        if name == "timeout":
            paths.append(("timeouts", "request"))
        elif name in ("retries", "retries.per_try_timeout"):
            paths.append(("timeouts", "backendRequest"))
        else:
            raise CanaryInputError(f"option name {show(name)} is not one an HTTPRoute rule holds; known: timeout, "
                                   "retries, retries.per_try_timeout")
    rule, base = _rule_at(route_object, rule_index)
    ops, _after = _remove_ops(base, rule, paths)
    if not ops:
        return []
    guards = [{"op": "test", "path": f"{base}/name", "value": rule["name"]}] if "name" in rule else []
    return _version_test(route_object) + guards + ops


# --------------------------------------------------------------------------------------
# the fault tester route


def plan_fault_tester_route(spec: Any, route_index: Any, name: Any, match: Any, fault: Mapping[str, Any]) -> list:
    """A new ``spec.http`` list with tester route ``name`` just above route ``route_index``.

    The tester route carries ``match``, the ``fault`` fields and a copy of the chosen route's
    destinations, so requests that match get the fault and go where everyone else goes. An existing
    route of that name is updated (and moved just above the chosen route if it sat below it). Its
    destinations are a copy: after a later weight change, setting the fault again refreshes them.
    """
    require_text(name, "fault tester route name", "name the route, e.g. 'reviews-fault-testers'")
    http = [json_copy(route) for route in http_list(spec)]
    chosen, _base = _route_at({"spec": {"http": http}}, route_index)
    if chosen.get("name") == name:
        raise CanaryConflictError(f"fault tester route name {name!r} is the name of the chosen route; choose another")
    named = [index for index, route in enumerate(http) if route.get("name") == name]
    if len(named) > 1:
        raise CanaryConflictError(f"route name {name!r} is carried by {len(named)} http routes (indexes {named}); "
                                  "give the routes unique names")
    tester = {"name": name, "match": json_copy(match), "fault": json_copy(dict(fault)),
              "route": json_copy(chosen.get("route") or [])}
    if named:
        current = http[named[0]]
        if not current.get("match"):
            raise CanaryConflictError(f"http route {route_label(named[0], current)} has no match, so it is not a "
                                      "tester route; choose another name")
        updated = {**current, **tester}
        if named[0] < route_index:
            http[named[0]] = updated
            return http
        del http[named[0]]
        http.insert(route_index, updated)
        return http
    http.insert(route_index, tester)
    return http


def remove_fault_tester_route(spec: Any, name: Any) -> list:
    """``spec.http`` without tester route ``name`` (unchanged when there is none)."""
    require_text(name, "fault tester route name", "name the tester route to remove")
    http = [json_copy(route) for route in http_list(spec)]
    for index, route in enumerate(http):
        if route.get("name") == name:
            if not route.get("match"):
                raise CanaryConflictError(f"http route {route_label(index, route)} has no match, so it is not a tester "
                                          "route; refusing to remove a route that serves everyone")
            del http[index]
            break
    return http


# --------------------------------------------------------------------------------------
# the local rate limit EnvoyFilter


def local_rate_limit_envoy_filter(name: Any, namespace: Any, workload_labels: Any,
                                  bucket: Mapping[str, Any]) -> dict[str, Any]:
    """The EnvoyFilter of Istio's "local rate limit" task (docs/tasks/policy-enforcement/rate-limit),
    for the workloads ``workload_labels`` selects in ``namespace``: Envoy's local rate limit HTTP filter
    inserted on their SIDECAR_INBOUND listener with ``bucket``, enabled and enforced for every request,
    adding ``x-local-rate-limit: true`` to the 429s it answers. Sidecar-only (see ``SIDECAR_ONLY``).

    Kept in the service's namespace (not istio-system as in the task), so it selects that
    namespace's workloads only.
    """
    require_text(name, "EnvoyFilter name", "name the EnvoyFilter, e.g. 'reviews-local-ratelimit'")
    require_text(namespace, "namespace", "give the namespace of the service")
    if (not isinstance(workload_labels, Mapping) or not workload_labels
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in workload_labels.items())):
        raise CanaryInputError(f"workload labels {show(workload_labels)} are not a non-empty mapping of strings; an "
                               "EnvoyFilter without a workload selector would limit every workload of the namespace")
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "workloadSelector": {"labels": dict(workload_labels)},
            "configPatches": [{
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_INBOUND",
                          "listener": {"filterChain": {"filter": {
                              "name": "envoy.filters.network.http_connection_manager"}}}},
                "patch": {"operation": "INSERT_BEFORE", "value": {
                    "name": LOCAL_RATE_LIMIT_FILTER,
                    "typed_config": {
                        "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                        "type_url": LOCAL_RATE_LIMIT_TYPE,
                        "value": {
                            "stat_prefix": "http_local_rate_limiter",
                            "token_bucket": json_copy(dict(bucket)),
                            "filter_enabled": {"runtime_key": "local_rate_limit_enabled",
                                               "default_value": dict(percent)},
                            "filter_enforced": {"runtime_key": "local_rate_limit_enforced",
                                                "default_value": dict(percent)},
                            "response_headers_to_add": [{"append": False, "header": {
                                "key": "x-local-rate-limit", "value": "true"}}],
                        }}}},
            }],
        },
    }


_BUCKET_PATH = ("spec", "configPatches", 0, "patch", "value", "typed_config", "value", "token_bucket")


def build_token_bucket_patch(envoy_filter: Any, bucket: Mapping[str, Any]) -> list[dict]:
    """JSON Patch changing only the token bucket of an EnvoyFilter made by :func:`local_rate_limit_envoy_filter`."""
    require_mapping(envoy_filter, "EnvoyFilter", "pass the EnvoyFilter object as read from the API server")
    current: Any = envoy_filter
    for token in _BUCKET_PATH:
        try:
            current = current[token]
        except (KeyError, IndexError, TypeError):
            raise CanaryConflictError(
                f"EnvoyFilter {show((envoy_filter.get('metadata') or {}).get('name'))} has no local rate limit token "
                "bucket where this collection writes it; it was not made by this module: rename ours or remove it"
            ) from None
    if current == dict(bucket):
        return []
    path = _pointer(*_BUCKET_PATH)
    return [*_version_test(envoy_filter), {"op": "test", "path": path, "value": json_copy(current)},
            {"op": "replace", "path": path, "value": json_copy(dict(bucket))}]
