# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Traffic probe: send N requests, sort each answer into a label by regex, and measure the shares.

"Refresh the page and look at the stars" turned into numbers: counts, shares and a Wilson score
interval per label at a chosen confidence (95% unless told), with errors counted apart so they
never dilute or inflate a share.

A correct router fails an expectation with probability about ``1 - confidence/100``: at 95 one
correct split in twenty is reported as wrong, which is why the collection's own tests use 99.99.

The ``confidence`` a user writes and reads back (the option, the result, the progress snapshots) is a
percent, as everywhere in the collection; the interval arithmetic below works with the fraction
(``level``), which never leaves this file and the module.
"""

from __future__ import annotations

import http.client
import math
import re
import socket
import ssl
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.canary.istio.plugins.module_utils._logic.errors import CanaryInputError

DEFAULT_CONFIDENCE = 0.95
UNMATCHED = "unmatched"


def validate_confidence_fraction(confidence: Any) -> float:
    """A two-sided confidence level as a fraction, e.g. 0.95 or 0.9999."""
    try:
        number = float(confidence)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(confidence, bool) or not 0.5 <= number < 1:
        hint = f" (a fraction: {number / 100:g}, not {confidence!r})" if 50 <= number < 100 else ""
        raise CanaryInputError(f"confidence {confidence!r} must be a fraction from 0.5 up to, not including, 1, "
                               f"e.g. 0.95 or 0.9999{hint}")
    return number


# The confidence option is a percent in every module (as canary_analysis and mesh_topology take it);
# traffic_probe once took a fraction, still read below 1 until this version, with a deprecation.
CONFIDENCE_FRACTION_UNTIL = "2.0.0"
DEFAULT_CONFIDENCE_PERCENT = 95.0


def confidence_option(value: Any) -> tuple[float, bool]:
    """The ``confidence`` option (a percent from 50 up to, not including, 100) as the fraction the
    probe computes with, and whether it was written in the old fraction form (below 1)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not isinstance(value, bool) and 0 < number < 1:
        return validate_confidence_fraction(number), True
    if isinstance(value, bool) or not 50 <= number < 100:
        raise CanaryInputError(f"confidence {value!r} must be a percentage from 50 up to, not including, 100, "
                               "e.g. 95 or 99.99")
    return round(number / 100, 12), False


def as_percent(level: float) -> float:
    """0.9999 -> 99.99: a level as the percent users write, without float noise."""
    return round(level * 100, 10)


def z_value(confidence: float) -> float:
    """The standard normal quantile that leaves (1 - confidence) / 2 in each tail."""
    return statistics.NormalDist().inv_cdf((1 + confidence) / 2)


def percent(confidence_percent: float) -> str:
    """99.99 -> '99.99%' (as many digits as the level has)."""
    return f"{confidence_percent:.10g}%"


def wilson_interval(successes: int, total: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a share at a two-sided ``confidence``, as percentages (0..100).

    The bounds are rounded outwards to two decimals, so the interval shown is the one checked
    and rounding never turns an expected share that lies inside into one that lies outside.
    """
    if total <= 0:
        return (0.0, 100.0)
    z = z_value(confidence)
    share = successes / total
    denominator = 1 + z * z / total
    center = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, math.floor((center - half) * 10000) / 100), min(100.0, math.ceil((center + half) * 10000) / 100))


def compile_labels(labels: Any) -> list[tuple[str, re.Pattern[str]]]:
    if not isinstance(labels, dict) or not labels:
        raise CanaryInputError(f"labels {labels!r} must be a mapping of label to regex, e.g. {{v2: 'color=\"black\"'}}")
    compiled = []
    for name, pattern in labels.items():
        if not isinstance(name, str) or not name or name in (UNMATCHED, "errors"):
            raise CanaryInputError(f"label {name!r} must be a non-empty string other than 'unmatched' and 'errors'")
        if not isinstance(pattern, str) or not pattern:
            raise CanaryInputError(f"label {name!r} needs a regex string, got {pattern!r}")
        try:
            compiled.append((name, re.compile(pattern)))
        except re.error as exc:
            raise CanaryInputError(f"label {name!r} regex {pattern!r} does not compile: {exc}") from None
    return compiled


def classify(body: str, labels: list[tuple[str, re.Pattern[str]]]) -> str:
    """The first label whose regex is found in the body (order as given), else 'unmatched'."""
    for name, pattern in labels:
        if pattern.search(body):
            return name
    return UNMATCHED


def validate_expect(expect: Any, labels: list[tuple[str, re.Pattern[str]]]) -> dict[str, float]:
    if expect is None:
        return {}
    if not isinstance(expect, dict):
        raise CanaryInputError(f"expect {expect!r} must be a mapping of label to expected percentage")
    if "confidence" in expect and "confidence" not in {name for name, _pattern in labels}:
        raise CanaryInputError(f"expect.confidence {expect['confidence']!r}: the confidence level is an option "
                               "of its own, beside expect (confidence: 99.99); expect holds only label shares")
    known = {name for name, _pattern in labels} | {UNMATCHED}
    result = {}
    for name, value in expect.items():
        if name not in known:
            raise CanaryInputError(f"expect names label {name!r}, which labels do not define "
                                   f"({', '.join(sorted(known))})")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not 0 <= number <= 100:
            raise CanaryInputError(f"expect.{name} {value!r} must be a percentage between 0 and 100")
        result[name] = number
    return result


class Prober:
    """Sends the requests with a pool of threads, one kept-alive connection per thread."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float, validate_certs: bool = True,
                 method: str = "GET"):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CanaryInputError(f"url {url!r} must be an http:// or https:// URL")
        self.parsed = parsed
        self.path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        self.headers = headers
        self.timeout = timeout
        self.method = method
        self.context = None
        if parsed.scheme == "https":
            self.context = ssl.create_default_context()
            if not validate_certs:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            port = self.parsed.port
            if self.context is not None:
                conn = http.client.HTTPSConnection(self.parsed.hostname, port, timeout=self.timeout,
                                                   context=self.context)
            else:
                conn = http.client.HTTPConnection(self.parsed.hostname, port, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def one(self) -> tuple[int, str, str | None]:
        """(status, body, error); status 0 when no HTTP answer came."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(self.method, self.path, headers=self.headers)
                response = conn.getresponse()
                body = response.read().decode("utf-8", errors="replace")
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                return response.status, body, None
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                conn.close()
                self.local.conn = None
                if attempt == 2 or isinstance(exc, socket.timeout):
                    return 0, "", f"{type(exc).__name__}: {exc}"
        return 0, "", "unreachable"


def run_probe(url: str, count: int, concurrency: int, labels: Any, headers: dict[str, str] | None = None,
              cookies: dict[str, str] | None = None, timeout: float = 10.0, validate_certs: bool = True,
              method: str = "GET", expect: Any = None, progress: Callable[[dict[str, Any]], None] | None = None,
              progress_every: float = 2.0, confidence: Any = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000_000:
        raise CanaryInputError(f"requests {count!r} must be an integer between 1 and 1000000")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise CanaryInputError(f"concurrency {concurrency!r} must be an integer between 1 and 256")
    compiled = compile_labels(labels)
    expected = validate_expect(expect, compiled)
    level = validate_confidence_fraction(confidence)
    all_headers = {str(k): str(v) for k, v in (headers or {}).items()}
    if cookies:
        all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    prober = Prober(url, all_headers, timeout, validate_certs, method)
    counts: dict[str, int] = {name: 0 for name, _pattern in compiled}
    counts[UNMATCHED] = 0
    errors: dict[str, int] = {}
    lock = threading.Lock()
    done = [0]
    started = time.monotonic()
    last_report = [started]

    def snapshot() -> dict[str, Any]:
        ok = sum(counts.values())
        # The running interval of each expected label (every label when none is expected) shows
        # how far the measurement still is from a verdict.
        watched = list(expected) or list(counts)
        return {"done": done[0], "total": count, "ok": ok, "errors": sum(errors.values()),
                "shares": {k: round(100 * v / ok, 1) if ok else 0.0 for k, v in counts.items()},
                "confidence": as_percent(level), "expect": expected,
                "intervals": {k: list(wilson_interval(counts[k], ok, level)) for k in watched}}

    def work(_index: int) -> None:
        status, body, error = prober.one()
        with lock:
            if error is not None or status >= 400:
                key = error.split(":", maxsplit=1)[0] if error else str(status)
                errors[key] = errors.get(key, 0) + 1
            else:
                counts[classify(body, compiled)] += 1
            done[0] += 1
            now = time.monotonic()
            report = progress is not None and now - last_report[0] >= progress_every
            if report:
                last_report[0] = now
                current = snapshot()
        if report and progress is not None:
            progress(current)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(work, range(count)))
    elapsed = time.monotonic() - started
    ok = sum(counts.values())
    shares = {name: round(100.0 * value / ok, 2) if ok else 0.0 for name, value in counts.items()}
    intervals = {name: list(wilson_interval(value, ok, level)) for name, value in counts.items()}
    outside = {name: {"expected": value, "interval": intervals[name], "share": shares[name]}
               for name, value in expected.items() if not intervals[name][0] <= value <= intervals[name][1]}
    return {
        "requests": count, "ok": ok, "counts": counts, "shares": shares, "intervals": intervals,
        "errors": sum(errors.values()), "error_kinds": errors, "duration": round(elapsed, 3),
        "requests_per_second": round(count / elapsed, 1) if elapsed > 0 else None,
        "confidence": as_percent(level), "expect": expected, "unexpected": outside,
    }


def describe_unexpected(result: dict[str, Any]) -> str:
    level = percent(result["confidence"])
    parts = [f"{name} share {detail['share']}% ({level} interval {detail['interval'][0]}-{detail['interval'][1]}%) "
             f"does not include the expected {detail['expected']:g}%"
             for name, detail in sorted(result["unexpected"].items())]
    return f"traffic probe: {'; '.join(parts)} after {result['ok']} answered requests ({result['errors']} errors)"


PROBE_ARG_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "requests": {"type": "int", "default": 100},
    "concurrency": {"type": "int", "default": 10},
    "labels": {"type": "dict", "required": True},
    "headers": {"type": "dict", "default": {}},
    "cookies": {"type": "dict", "default": {}},
    "method": {"type": "str", "default": "GET", "choices": ["GET", "HEAD", "POST"]},
    "timeout": {"type": "float", "default": 10.0},
    "validate_certs": {"type": "bool", "default": True},
    "expect": {"type": "dict"},
    "confidence": {"type": "float", "default": DEFAULT_CONFIDENCE_PERCENT},
    "max_errors": {"type": "int"},
    "progress_interval": {"type": "float", "default": 2.0},
}


def probe_from_params(params: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None = None
                      ) -> tuple[dict[str, Any], str | None]:
    """Runs the probe for module/action parameters; returns (result, failure message or None)."""
    result = run_probe(params["url"], params["requests"], params["concurrency"], params["labels"],
                       headers=params.get("headers"), cookies=params.get("cookies"), timeout=params["timeout"],
                       validate_certs=params["validate_certs"], method=params["method"], expect=params.get("expect"),
                       progress=progress, progress_every=params.get("progress_interval") or 2.0,
                       confidence=params.get("confidence", DEFAULT_CONFIDENCE))
    if result["unexpected"]:
        return result, describe_unexpected(result)
    if params.get("max_errors") is not None and result["errors"] > params["max_errors"]:
        return result, (f"traffic probe: {result['errors']} of {result['requests']} requests failed "
                        f"({result['error_kinds']}), more than max_errors {params['max_errors']}")
    return result, None


def _interval_parts(intervals: dict[str, list[float]], expect: dict[str, float]) -> str:
    return ", ".join(f"{name} {low}-{high}%" + (f" (expected {expect[name]:g}%)" if name in expect else "")
                     for name, (low, high) in intervals.items())


def progress_line(snapshot: dict[str, Any]) -> str:
    shares = ", ".join(f"{k} {v}%" for k, v in snapshot["shares"].items())
    line = f"traffic_probe: {snapshot['done']}/{snapshot['total']} requests, {snapshot['errors']} errors; {shares}"
    if "intervals" in snapshot:
        line += (f"; {percent(snapshot['confidence'])} intervals: "
                 f"{_interval_parts(snapshot['intervals'], snapshot.get('expect') or {})}")
    return line


def summary_line(result: dict[str, Any]) -> str:
    """The verdict printed when the probe ends: shares, and the interval of each expected label."""
    shares = ", ".join(f"{k} {v}%" for k, v in result["shares"].items())
    line = f"traffic_probe: {result['ok']} answers, {result['errors']} errors; {shares}"
    if result["expect"]:
        watched = {name: result["intervals"][name] for name in result["expect"]}
        outside = sorted(result["unexpected"])
        verdict = f"outside for {', '.join(outside)}" if outside else "every expected share inside"
        line += (f"; {percent(result['confidence'])} intervals: {_interval_parts(watched, result['expect'])}"
                 f" - {verdict}")
    return line
