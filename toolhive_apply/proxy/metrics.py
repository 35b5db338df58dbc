"""The proxy's metrics, kept once and read two ways: Prometheus text at ``/metrics`` and OTLP data points.

Labels are bounded by construction: the method is one of the MCP methods the proxy knows (else "other"), the tool
one of the names the server itself listed in ``tools/list`` (at most MAX_TOOLS of them, else "other"); session ids,
arguments and request ids never become labels. Names follow ToolHive's ``toolhive_mcp_*`` family.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from toolhive_apply.proxy.operations import KNOWN_METHODS

MAX_TOOLS: Final = 256
OTHER: Final = "other"
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REQUESTS: Final = "toolhive_mcp_requests_total"
DURATION: Final = "toolhive_mcp_request_duration_seconds"
SESSIONS: Final = "toolhive_mcp_active_sessions"
RESTARTS: Final = "toolhive_mcp_backend_restarts_total"
DROPPED: Final = "toolhive_mcp_telemetry_dropped_total"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(BUCKETS, value)
        if index < len(BUCKETS):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[int]:
        running, out = 0, []
        for count in self.counts:
            running += count
            out.append(running)
        return out


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of every series, for one export."""

    counters: dict[str, dict[Labels, int]]
    gauges: dict[str, dict[Labels, int]]
    histograms: dict[str, dict[Labels, Histogram]]
    start: float


class Metrics:
    """Thread-safe: the event loop records, the OTLP sender thread counts its drops and reads snapshots."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.start = time.time()
        self.sessions: Callable[[], int] = lambda: 0
        self.restarts: Callable[[], int] = lambda: 0
        self._lock = threading.Lock()
        self._tools: set[str] = set()
        self._requests: dict[Labels, int] = {}
        self._durations: dict[Labels, Histogram] = {}
        self._dropped: dict[Labels, int] = {}

    def learn_tools(self, names: list[str]) -> None:
        """Tool names from the server's own ``tools/list`` answer: the only values the tool label takes."""
        with self._lock:
            for name in names:
                if len(self._tools) >= MAX_TOOLS:
                    return
                self._tools.add(name)

    def tool_label(self, method: str, name: str | None) -> str:
        if method != "tools/call":
            return ""
        return name if name is not None and name in self._tools else OTHER

    def record(self, method: str, name: str | None, outcome: str, seconds: float) -> None:
        method_label = method if method in KNOWN_METHODS else OTHER
        tool = self.tool_label(method, name)
        base = (("server", self.server), ("mcp_method", method_label), ("tool", tool))
        with self._lock:
            key = (*base, ("outcome", outcome))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._durations.setdefault(base, Histogram()).observe(seconds)

    def dropped(self, signal: str, count: int = 1) -> None:
        key = (("server", self.server), ("signal", signal))
        with self._lock:
            self._dropped[key] = self._dropped.get(key, 0) + count

    def snapshot(self) -> Snapshot:
        server = (("server", self.server),)
        with self._lock:
            histograms = {k: Histogram(list(h.counts), h.total, h.count) for k, h in self._durations.items()}
            return Snapshot(
                counters={
                    REQUESTS: dict(self._requests),
                    DROPPED: dict(self._dropped),
                    RESTARTS: {server: self.restarts()},
                },
                gauges={SESSIONS: {server: self.sessions()}},
                histograms={DURATION: histograms},
                start=self.start,
            )


HELP: Final = {
    REQUESTS: "MCP operations by method, tool and outcome",
    DURATION: "Time from a request reaching the proxy to its answer, by method and tool",
    SESSIONS: "Client sessions the proxy holds",
    RESTARTS: "Times the backend server was attached again after it stopped",
    DROPPED: "Telemetry items dropped (queue full or collector unreachable)",
}


def _labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in (*labels, *extra)) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_text(snapshot: Snapshot) -> bytes:
    """The text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for kind, series in (("counter", snapshot.counters), ("gauge", snapshot.gauges)):
        for name, values in series.items():
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(labels)} {value}" for labels, value in sorted(values.items())]
    for name, histograms in snapshot.histograms.items():
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} histogram"]
        for labels, histogram in sorted(histograms.items()):
            for bound, count in zip(BUCKETS, histogram.cumulative(), strict=True):
                lines.append(f"{name}_bucket{_labels(labels, (('le', _number(bound)),))} {count}")
            lines.append(f"{name}_bucket{_labels(labels, (('le', '+Inf'),))} {histogram.count}")
            lines.append(f"{name}_sum{_labels(labels)} {_number(histogram.total)}")
            lines.append(f"{name}_count{_labels(labels)} {histogram.count}")
    return ("\n".join(lines) + "\n").encode()
