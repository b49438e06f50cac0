# -*- coding: utf-8 -*-
# Copyright: canary.istio contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small client for Prometheus' HTTP API (``/api/v1/query``), standard library only.

Every failure becomes ``PrometheusError`` with a message that names the URL and what to do:
unreachable, TLS verification, authentication, a query Prometheus refused (its own message), an
answer that is not Prometheus'.  Failures that may pass by themselves (no connection, a timeout,
HTTP 5xx from Prometheus or a proxy in front of it) are retried a few times before they are
reported, so that one dropped connection does not decide a release.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PROMETHEUS_URL_ENV = "CANARY_ISTIO_PROMETHEUS_URL"
PROMETHEUS_TOKEN_ENV = "CANARY_ISTIO_PROMETHEUS_TOKEN"
USER_AGENT = "canary.istio"
# Tries per request for failures that may pass (the first try included), and the pause before each
# retry in seconds, doubling: 0.5 s, 1 s.
ATTEMPTS = 3
RETRY_DELAY = 0.5


class PrometheusError(Exception):
    """Prometheus could not answer; the message is meant for the user."""


class _Transient(Exception):
    """A failure worth another try; carries the user's message for when the tries run out."""


class Prometheus:
    def __init__(self, url: str, token: str | None = None, username: str | None = None,
                 password: str | None = None, ca_cert: str | None = None, validate_certs: bool = True,
                 headers: dict[str, str] | None = None, timeout: float = 10.0):
        parsed = urllib.parse.urlsplit(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrometheusError(f"the Prometheus URL must be an http(s) URL such as http://prometheus:9090, "
                                  f"got {url!r}")
        if token and username:
            raise PrometheusError("give either a bearer token or a username and password for Prometheus, not both")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        self.headers.update({str(k): str(v) for k, v in (headers or {}).items()})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif username:
            pair = f"{username}:{password or ''}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.context: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            try:
                self.context = ssl.create_default_context(cafile=ca_cert) if ca_cert else ssl.create_default_context()
            except (OSError, ssl.SSLError) as exc:
                raise PrometheusError(f"cannot read the CA certificate {ca_cert!r} for Prometheus: {exc}") from None
            if not validate_certs:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        # urllib's standard handlers (proxies from the environment, redirects) with our TLS context.
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context))
        self.requests_made = 0
        self.attempts = ATTEMPTS
        self.retry_delay = RETRY_DELAY
        self.retried = 0

    def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        """The ``data`` of an instant query (``resultType`` and ``result``)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._post("query", params, promql)

    def query_range(self, promql: str, start: float, end: float, step: float) -> dict[str, Any]:
        """The ``data`` of a range query (``resultType: matrix``), from ``/api/v1/query_range``."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._post("query_range", params, promql)

    def _post(self, endpoint: str, params: dict[str, str], promql: str) -> dict[str, Any]:
        delay = self.retry_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return self._post_once(endpoint, params, promql)
            except _Transient as exc:
                if attempt == self.attempts:
                    suffix = f" (tried {attempt} times)" if attempt > 1 else ""
                    raise PrometheusError(f"{exc}{suffix}") from None
                self.retried += 1
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(self, endpoint: str, params: dict[str, str], promql: str) -> dict[str, Any]:
        body = urllib.parse.urlencode(params).encode()
        headers = dict(self.headers, **{"Content-Type": "application/x-www-form-urlencoded"})
        # POST: long queries do not hit URL length limits (Prometheus accepts both).
        request = urllib.request.Request(f"{self.url}/api/v1/{endpoint}", data=body, headers=headers, method="POST")
        self.requests_made += 1
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise self._failure(exc.reason) from None
        except TimeoutError as exc:
            raise self._failure(exc) from None
        except (OSError, ValueError) as exc:
            raise self._failure(exc) from None
        if status >= 500:
            try:
                return self._data(status, payload, promql)
            except PrometheusError as exc:
                raise _Transient(str(exc)) from None
        return self._data(status, payload, promql)

    def _failure(self, reason: Any) -> Exception:
        """A failure to get an answer: certificate problems stay (another try cannot fix them)."""
        message = self._unreachable(reason)
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            return PrometheusError(message)
        return _Transient(message)

    def _unreachable(self, reason: Any) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            return (f"cannot verify the TLS certificate of Prometheus at {self.url}: {reason}; give its CA with "
                    "prometheus_ca_cert (or, for a test server only, prometheus_validate_certs=false)")
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return (f"Prometheus at {self.url} did not answer within {self.timeout:g}s "
                    "(prometheus_timeout); is it overloaded or behind a firewall?")
        return (f"cannot reach Prometheus at {self.url}: {reason}; check prometheus_url "
                f"(or {PROMETHEUS_URL_ENV}) and that Prometheus is running")

    def _data(self, status: int, payload: bytes, promql: str) -> dict[str, Any]:
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        if status in (401, 403):
            return self._fail(f"Prometheus at {self.url} refused access (HTTP {status}); check prometheus_token "
                              "or prometheus_username/prometheus_password")
        if not isinstance(answer, dict) or "status" not in answer:
            snippet = payload[:200].decode(errors="replace").strip()
            return self._fail(f"the answer of {self.url}/api/v1/query (HTTP {status}) is not Prometheus' API: "
                              f"{snippet!r}; does prometheus_url point at Prometheus?")
        if answer.get("status") != "success":
            kind = answer.get("errorType") or "error"
            return self._fail(f"Prometheus refused the query ({kind}, HTTP {status}): {answer.get('error')}; "
                              f"query: {promql}")
        data = answer.get("data")
        if not isinstance(data, dict):
            return self._fail(f"Prometheus at {self.url} answered without data for query: {promql}")
        return data

    @staticmethod
    def _fail(message: str) -> dict[str, Any]:
        raise PrometheusError(message)


def single_value(data: dict[str, Any], promql: str) -> float | None:
    """The one number an instant query answered; None when it returned no series.

    NaN (a quantile over no requests, say) comes back as NaN for the caller to judge.
    """
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _float(result[1] if isinstance(result, list) and len(result) == 2 else None, promql)
    if kind != "vector":
        raise PrometheusError(f"the query must return one number (an instant vector or scalar), "
                              f"got a {kind}: {promql}")
    if not result:
        return None
    if len(result) > 1:
        labels = [series.get("metric") for series in result[:3]]
        raise PrometheusError(f"the query returned {len(result)} series, expected one (aggregate it, "
                              f"e.g. with sum(...)): {promql}; first series: {labels}")
    return _float((result[0].get("value") or [None, None])[1], promql)


def _float(raw: Any, promql: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise PrometheusError(f"Prometheus answered {raw!r}, not a number, for query: {promql}") from None
