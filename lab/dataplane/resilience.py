"""What Envoy does with Istio's resilience fields: retries, timeouts, circuit breakers, outlier
detection and local rate limiting, for the lab's router (lab/dataplane/proxy.py).

Written from Istio's code and API reference (istio/istio ``pilot/pkg/networking/core/route/retry/retry.go``
for how an ``HTTPRetry`` becomes Envoy's retry policy, istio/api ``networking/v1alpha3/*.proto`` for
the fields and defaults) and Envoy's documentation (router filter ``x-envoy-retry-on``, circuit
breaking, outlier detection, local rate limit filter, access-log response flags), never from the
collection's code.

- Retries: a route without ``retries`` gets Istio's default policy (2 retries on
  ``connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes``, with no status
  code listed); ``attempts: 0`` turns retries off; ``retryOn`` replaces the conditions and status
  codes in it imply ``retriable-status-codes``.  A retry goes to another endpoint when there is one
  (``retryIgnorePreviousHosts`` defaults to true) after Envoy's back-off (25 ms base, exponential,
  jittered).
- Conditions: ``5xx`` (any 5xx answer, no answer, a per-try timeout), ``gateway-error`` (502, 503,
  504, a per-try timeout), ``reset`` (no answer or a per-try timeout), ``connect-failure``,
  ``retriable-4xx`` (409), ``retriable-status-codes`` (the codes listed).  gRPC and HTTP/2-only
  conditions match nothing here: the lab speaks HTTP/1.1.
- Timeouts: the route ``timeout`` bounds the request with all its retries (504, flag UT, not
  retried); ``perTryTimeout`` bounds one attempt (504, flag UT, retried by the conditions above).
- Connection pool (``trafficPolicy.connectionPool``, per client proxy and cluster, as Envoy keeps
  circuit breakers per cluster in each proxy): HTTP/1.1 carries one request per connection, so at
  most ``tcp.maxConnections`` (and ``http.http2MaxRequests``) requests are in flight, at most
  ``http.http1MaxPendingRequests`` wait for one, and any further request is answered 503 with
  flag UO at once.
- Outlier detection (per client proxy and cluster): an endpoint that answers
  ``consecutive5xxErrors`` (default 5) 5xx in a row, or ``consecutiveGatewayErrors`` 502/503/504 in
  a row, is ejected for ``baseEjectionTime`` (default 30 s) times the number of its ejections, as
  long as the ejected share stays within ``maxEjectionPercent`` (default 10).  Connection failures
  and timeouts count as 5xx (``splitExternalLocalOriginErrors`` false).  Ejection ends when its
  time is up (Envoy checks at each ``interval``; the lab checks on every request).
- Local rate limiting: an EnvoyFilter that inserts ``envoy.filters.http.local_ratelimit`` on
  ``SIDECAR_INBOUND`` of the workloads it selects (Istio's "local rate limiting" task, both its
  filter-wide and its per-route EnvoyFilter) gives each selected workload's inbound side a token
  bucket (``max_tokens``, ``tokens_per_fill`` every ``fill_interval``); with no token left the
  request is answered 429 ``local_rate_limited`` with flag RL and never reaches the application.
  Not modelled: ``filter_enforced`` / ``filter_enabled`` below 100 (taken as 100) and descriptors
  (the per-path buckets of samples/ratelimit/local-rate-limit-service.yaml).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Istio's default retry policy (retry.go: defaultNumRetries, defaultRetryOn).
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
BACKOFF_BASE_SECONDS = 0.025  # Envoy: 25 ms base interval, at most ten times that
# Envoy's short response flags in the order its access log writes them.
FLAG_ORDER = ("LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
              "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM")
OVERFLOW_BODY = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
RATE_LIMITED_BODY = "local_rate_limited"
TIMEOUT_BODY = "upstream request timeout"
UNLIMITED = 2**32 - 1
LOCAL_RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"


def join_flags(flags: Iterable[str]) -> str:
    """Envoy's ``%RESPONSE_FLAGS%``: the set flags joined with "," in Envoy's order, "-" for none."""
    wanted = {f for flag in flags for f in str(flag).split(",") if f and f != "-"}
    ordered = [f for f in FLAG_ORDER if f in wanted] + sorted(wanted - set(FLAG_ORDER))
    return ",".join(ordered) or "-"


def duration_seconds(value: Any) -> float | None:
    """Durations as Istio's CRDs take them ("2s", "0.5s", "100ms", "1m30s"; a bare number is seconds);
    None when absent or unreadable. The router reads route timeouts and fault delays with it too."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", text):
        return float(text)
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int  # retries after the first try
    conditions: frozenset[str]
    status_codes: frozenset[int]
    per_try_timeout: float | None
    ignore_previous_hosts: bool = True
    backoff: float = BACKOFF_BASE_SECONDS

    @classmethod
    def from_route(cls, retries: Mapping[str, Any] | None) -> RetryPolicy:
        """ConvertPolicy (retry.go): none given is Istio's default; attempts <= 0 disables retries."""
        if retries is None:
            return cls._parsed(DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_ON, None, True, None)
        try:
            attempts = int(retries.get("attempts") or 0)
        except (TypeError, ValueError):
            attempts = 0
        if attempts <= 0:
            return cls(0, frozenset(), frozenset(), None)
        retry_on = str(retries.get("retryOn") or DEFAULT_RETRY_ON)
        ignore = retries.get("retryIgnorePreviousHosts")
        return cls._parsed(attempts, retry_on, duration_seconds(retries.get("perTryTimeout")),
                           True if ignore is None else bool(ignore), duration_seconds(retries.get("backoff")))

    @classmethod
    def _parsed(cls, attempts: int, retry_on: str, per_try: float | None, ignore: bool,
                backoff: float | None) -> RetryPolicy:
        conditions, codes = set(), set()
        for token in (t.strip() for t in retry_on.split(",")):
            if token.isdigit():
                codes.add(int(token))
            elif token:
                conditions.add(token)
        if codes:
            conditions.add("retriable-status-codes")
        return cls(attempts, frozenset(conditions), frozenset(codes), per_try, ignore,
                   backoff or BACKOFF_BASE_SECONDS)

    def retries_answer(self, status: int) -> bool:
        """Whether an upstream answer with ``status`` is retried."""
        c = self.conditions
        return (("5xx" in c and 500 <= status <= 599)
                or ("gateway-error" in c and status in (502, 503, 504))
                or ("retriable-4xx" in c and status == 409)
                or ("retriable-status-codes" in c and status in self.status_codes))

    def retries_connect_failure(self) -> bool:
        return bool(self.conditions & {"5xx", "gateway-error", "reset", "connect-failure"})

    def retries_timeout(self) -> bool:
        """A per-try timeout is retried by the conditions that take "no answer" (Envoy router filter)."""
        return bool(self.conditions & {"5xx", "gateway-error", "reset"})

    def backoff_seconds(self, retry_number: int, rng: random.Random) -> float:
        """Envoy's fully jittered exponential back-off: random in [0, (2^n - 1) * base], capped at 10 * base."""
        ceiling = min((2 ** retry_number - 1) * self.backoff, 10 * self.backoff)
        return rng.random() * ceiling


# --------------------------------------------------------------------------- traffic policy


def merged_traffic_policy(rule: Mapping[str, Any] | None, subset: str | None) -> dict[str, Any]:
    """The DestinationRule's trafficPolicy, with the subset's own policy replacing it field by field
    (Istio's MergeTrafficPolicy: a subset's connectionPool / outlierDetection / ... wins whole)."""
    spec = (rule or {}).get("spec") or {}
    policy = dict(spec.get("trafficPolicy") or {})
    if subset:
        for entry in spec.get("subsets") or []:
            if entry.get("name") == subset:
                policy.update({k: v for k, v in (entry.get("trafficPolicy") or {}).items() if v is not None})
    return policy


def _integer(mapping: Mapping[str, Any], key: str, default: int) -> int:
    try:
        value = mapping.get(key)
        return default if value is None else int(value)
    except (TypeError, ValueError):
        return default


@dataclass
class _Pool:
    active: int = 0
    pending: int = 0
    condition: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))


class ConnectionPools:
    """Envoy's circuit breakers per (client proxy, cluster): active requests and the pending queue."""

    def __init__(self) -> None:
        self._pools: dict[tuple[Any, ...], _Pool] = {}
        self._lock = threading.Lock()

    @staticmethod
    def limits(policy: Mapping[str, Any]) -> tuple[int, int] | None:
        pool = policy.get("connectionPool") or {}
        if not pool:
            return None
        tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
        # An HTTP/1.1 connection carries one request at a time: connections bound the requests in flight.
        active = min(_integer(tcp, "maxConnections", UNLIMITED) or UNLIMITED,
                     _integer(http, "http2MaxRequests", UNLIMITED) or UNLIMITED)
        pending = _integer(http, "http1MaxPendingRequests", UNLIMITED) or UNLIMITED
        return active, pending

    def acquire(self, key: tuple[Any, ...], limits: tuple[int, int], timeout: float) -> bool:
        """Takes a slot (waiting in the pending queue if there is room); False: overflow (503 UO)."""
        max_active, max_pending = limits
        with self._lock:
            pool = self._pools.setdefault(key, _Pool())
        with pool.condition:
            if pool.active < max_active:
                pool.active += 1
                return True
            if pool.pending >= max_pending:
                return False
            pool.pending += 1
            try:
                deadline = time.monotonic() + timeout
                while pool.active >= max_active:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    pool.condition.wait(remaining)
                pool.active += 1
                return True
            finally:
                pool.pending -= 1

    def release(self, key: tuple[Any, ...]) -> None:
        pool = self._pools.get(key)
        if pool is None:
            return
        with pool.condition:
            pool.active = max(0, pool.active - 1)
            pool.condition.notify()


@dataclass
class _HostState:
    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    ejections: int = 0
    ejected_until: float = 0.0


class OutlierDetector:
    """Consecutive-error ejection per (client proxy, cluster, endpoint)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._hosts: dict[tuple[Any, ...], _HostState] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def ejected(self, cluster: tuple[Any, ...], endpoints: Iterable[str]) -> set[str]:
        now = self._clock()
        with self._lock:
            return {name for name in endpoints
                    if (state := self._hosts.get((*cluster, name))) is not None and state.ejected_until > now}

    def record(self, cluster: tuple[Any, ...], endpoint: str, all_endpoints: list[str], status: int,
               outlier: Mapping[str, Any]) -> bool:
        """Counts one answer (0 for no answer); True when it ejects ``endpoint``."""
        limit_5xx = _integer(outlier, "consecutive5xxErrors", 5)
        limit_gateway = _integer(outlier, "consecutiveGatewayErrors", 0)
        base = duration_seconds(outlier.get("baseEjectionTime")) or 30.0
        max_percent = _integer(outlier, "maxEjectionPercent", 10)
        failed = status == 0 or status >= 500
        gateway = status == 0 or status in (502, 503, 504)
        now = self._clock()
        with self._lock:
            state = self._hosts.setdefault((*cluster, endpoint), _HostState())
            if state.ejected_until > now:
                return False
            state.consecutive_5xx = state.consecutive_5xx + 1 if failed else 0
            state.consecutive_gateway = state.consecutive_gateway + 1 if gateway else 0
            tripped = ((limit_5xx > 0 and state.consecutive_5xx >= limit_5xx)
                       or (limit_gateway > 0 and state.consecutive_gateway >= limit_gateway))
            if not tripped:
                return False
            ejected_now = sum(1 for name in all_endpoints
                              if (other := self._hosts.get((*cluster, name))) is not None
                              and other.ejected_until > now)
            # Envoy: eject only while (ejected + 1) / hosts stays within max_ejection_percent.
            if 100.0 * (ejected_now + 1) / max(1, len(all_endpoints)) > max_percent:
                return False
            state.ejections += 1
            state.ejected_until = now + base * state.ejections
            state.consecutive_5xx = state.consecutive_gateway = 0
            return True


# --------------------------------------------------------------------------- local rate limiting


@dataclass(frozen=True)
class Bucket:
    max_tokens: int
    tokens_per_fill: int
    fill_interval: float


def _typed_value(typed: Mapping[str, Any]) -> Mapping[str, Any]:
    """The filter's own config: inside a udpa TypedStruct (``value``) or given directly."""
    return typed["value"] if isinstance(typed.get("value"), Mapping) else typed


def _bucket(config: Mapping[str, Any]) -> Bucket | None:
    bucket = config.get("token_bucket") or config.get("tokenBucket")
    if not bucket:
        return None
    fill = duration_seconds(bucket.get("fill_interval") or bucket.get("fillInterval")) or 1.0
    max_tokens = _integer(bucket, "max_tokens", _integer(bucket, "maxTokens", 1))
    per_fill = _integer(bucket, "tokens_per_fill", _integer(bucket, "tokensPerFill", 1))
    return Bucket(max_tokens, per_fill, fill)


def local_rate_limits(envoy_filters: Iterable[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, str], str, Bucket]]:
    """(namespace, workload selector, filter key, bucket) for each EnvoyFilter that inserts the local
    rate limit HTTP filter on SIDECAR_INBOUND, with its token bucket given on the filter (the task's
    first EnvoyFilter) or in the inbound routes' ``typed_per_filter_config`` (its per-route variant,
    which wins).  An EnvoyFilter in the root namespace ``istio-system`` applies in every namespace."""
    found = []
    for envoy_filter in envoy_filters:
        meta = envoy_filter.get("metadata") or {}
        spec = envoy_filter.get("spec") or {}
        selector = ((spec.get("workloadSelector") or {}).get("labels")) or {}
        inserted, filter_bucket, route_bucket = False, None, None
        for patch in spec.get("configPatches") or []:
            if ((patch.get("match") or {}).get("context")) not in ("SIDECAR_INBOUND", "ANY", None):
                continue
            value = ((patch.get("patch") or {}).get("value")) or {}
            if patch.get("applyTo") == "HTTP_FILTER" and value.get("name") == LOCAL_RATE_LIMIT_FILTER:
                inserted = True
                filter_bucket = _bucket(_typed_value(value.get("typed_config") or value.get("typedConfig") or {}))
            elif patch.get("applyTo") == "HTTP_ROUTE":
                per_filter = value.get("typed_per_filter_config") or value.get("typedPerFilterConfig") or {}
                if isinstance(per_filter.get(LOCAL_RATE_LIMIT_FILTER), Mapping):
                    route_bucket = _bucket(_typed_value(per_filter[LOCAL_RATE_LIMIT_FILTER]))
        bucket = route_bucket or filter_bucket
        if inserted and bucket is not None:
            key = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
            found.append((str(meta.get("namespace") or "default"), dict(selector), key, bucket))
    return found


class TokenBuckets:
    """One token bucket per (filter, workload): Envoy's local rate limit is per proxy."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._state: dict[tuple[str, str, str, Bucket], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def take(self, key: tuple[str, str, str], bucket: Bucket) -> bool:
        now = self._clock()
        with self._lock:
            tokens, filled_at = self._state.get((*key, bucket), (float(bucket.max_tokens), now))
            if bucket.fill_interval > 0:
                fills = int((now - filled_at) / bucket.fill_interval)
                if fills:
                    tokens = min(float(bucket.max_tokens), tokens + fills * bucket.tokens_per_fill)
                    filled_at += fills * bucket.fill_interval
            allowed = tokens >= 1
            self._state[(*key, bucket)] = (tokens - 1 if allowed else tokens, filled_at)
            return allowed
