"""Spans for MCP requests and W3C Trace Context (``traceparent``) in and out.

A request's span continues the client's trace when it sent a valid ``traceparent`` (and follows its sampled flag),
else starts one, sampled at ``samplingRate`` by trace id as OpenTelemetry's TraceIdRatioBased sampler does; the
span's own context is what the proxy sends on to an HTTP backend, so the server's spans hang under the proxy's.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Final

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_TRACEPARENT: Final = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
SPAN_KIND_SERVER: Final = 2
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2


@dataclass(frozen=True, slots=True)
class SpanContext:
    trace_id: str
    span_id: str
    sampled: bool

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The parent context in a ``traceparent`` header, or None when it is absent or not valid W3C."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & 1))


@dataclass(slots=True)
class Span:
    name: str
    context: SpanContext
    parent_span_id: str | None
    start_ns: int = field(default_factory=time.time_ns)
    end_ns: int = 0
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    error: str | None = None


class Tracer:
    def __init__(self, sampling_rate: float) -> None:
        self._bound = int(sampling_rate * (1 << 64))

    def start(self, name: str, parent: SpanContext | None) -> Span:
        if parent is not None:
            trace_id, sampled = parent.trace_id, parent.sampled
        else:
            trace_id = os.urandom(16).hex()
            sampled = int(trace_id[16:], 16) < self._bound
        context = SpanContext(trace_id, os.urandom(8).hex(), sampled)
        return Span(name, context, parent.span_id if parent is not None else None)


def span_name(method: str, target: str | None) -> str:
    """OpenTelemetry's MCP convention: ``{mcp.method.name} {target}`` (``tools/call echo``), else the method."""
    return f"{method} {target}" if target else (method or "mcp.request")
