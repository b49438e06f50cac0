"""Istio's standard HTTP metrics, kept in memory and rendered in Prometheus text format."""

from __future__ import annotations

import threading
from collections.abc import Mapping

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                       300000, 600000, 1800000, 3600000)

LABEL_NAMES = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "response_flags",
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """Thread-safe counters and histograms keyed by the full label set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], int] = {}
        self._durations: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def record(self, labels: Mapping[str, str], duration_ms: float) -> None:
        key = tuple(str(labels.get(name, "unknown")) for name in LABEL_NAMES)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            histogram = self._durations.get(key)
            if histogram is None:
                histogram = [0.0] * (len(DURATION_BUCKETS_MS) + 2)
                self._durations[key] = histogram
            for index, bound in enumerate(DURATION_BUCKETS_MS):
                if duration_ms <= bound:
                    histogram[index] += 1
            histogram[-2] += duration_ms
            histogram[-1] += 1

    def render(self) -> str:
        with self._lock:
            requests = dict(self._requests)
            durations = {key: list(value) for key, value in self._durations.items()}
        lines = ["# HELP istio_requests_total Total requests.",
                 "# TYPE istio_requests_total counter"]
        for key, count in sorted(requests.items()):
            lines.append(f"istio_requests_total{{{self._labels(key)}}} {count}")
        lines += ["# HELP istio_request_duration_milliseconds Request duration in milliseconds.",
                  "# TYPE istio_request_duration_milliseconds histogram"]
        for key, histogram in sorted(durations.items()):
            labels = self._labels(key)
            for index, bound in enumerate(DURATION_BUCKETS_MS):
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="{_format_number(bound)}"}} '
                             f"{int(histogram[index])}")
            lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} {int(histogram[-1])}')
            lines.append(f"istio_request_duration_milliseconds_sum{{{labels}}} {histogram[-2]:.3f}")
            lines.append(f"istio_request_duration_milliseconds_count{{{labels}}} {int(histogram[-1])}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _labels(key: tuple[str, ...]) -> str:
        return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(LABEL_NAMES, key, strict=True))
