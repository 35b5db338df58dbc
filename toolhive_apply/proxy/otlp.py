"""OTLP/HTTP export, protobuf (written by otlp_proto, the image has no protobuf library) or JSON, off the event loop.

Spans go into a bounded queue that a daemon thread drains in batches; a full queue drops the span and counts it, a
collector that is down or slow costs the sender thread its timeout and the batch, never a tool call its time.
Metrics are snapshots of the same registry /metrics reads, pushed every OTEL_METRIC_EXPORT_INTERVAL, cumulative.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.proxy import otlp_proto
from toolhive_apply.proxy.metrics import BUCKETS, Metrics, Snapshot
from toolhive_apply.proxy.observe_config import JSON, TelemetryConfig
from toolhive_apply.proxy.tracing import SPAN_KIND_SERVER, STATUS_ERROR, STATUS_OK, Span

QUEUE_SIZE: Final = 2048
BATCH_SIZE: Final = 256
SEND_TIMEOUT: Final = 5.0
SCOPE: Final = {"name": "toolhive-apply-proxy"}
CONTENT_TYPES: Final = {JSON: "application/json"}
PROTOBUF_CONTENT_TYPE: Final = "application/x-protobuf"
_log = logging.getLogger(__name__)


def attribute(key: str, value: object) -> dict[str, Any]:
    """One OTLP KeyValue (JSON: ints are strings, as protobuf's JSON mapping writes 64-bit numbers)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def resource(config: TelemetryConfig) -> dict[str, Any]:
    attributes = {**config.custom_attributes, "service.name": config.service_name}
    if config.service_version:
        attributes["service.version"] = config.service_version
    return {"attributes": [attribute(k, v) for k, v in sorted(attributes.items())]}


def encode_spans(config: TelemetryConfig, spans: list[Span]) -> bytes:
    def one(span: Span) -> dict[str, Any]:
        encoded: dict[str, Any] = {
            "traceId": span.context.trace_id,
            "spanId": span.context.span_id,
            "name": span.name,
            "kind": SPAN_KIND_SERVER,
            "startTimeUnixNano": str(span.start_ns),
            "endTimeUnixNano": str(span.end_ns),
            "attributes": [attribute(k, v) for k, v in span.attributes.items()],
            "status": {"code": STATUS_ERROR, "message": span.error} if span.error else {"code": STATUS_OK},
        }
        if span.parent_span_id:
            encoded["parentSpanId"] = span.parent_span_id
        return encoded

    payload = {
        "resourceSpans": [
            {"resource": resource(config), "scopeSpans": [{"scope": SCOPE, "spans": [one(s) for s in spans]}]}
        ]
    }
    return _encoded(config, "ExportTraceServiceRequest", payload)


def encode_metrics(config: TelemetryConfig, snapshot: Snapshot, now_ns: int) -> bytes:
    start = str(int(snapshot.start * 1e9))
    now = str(now_ns)

    def points(series: Mapping[Any, Any], value_key: str) -> list[dict[str, Any]]:
        return [
            {
                "attributes": [attribute(k, v) for k, v in labels],
                "startTimeUnixNano": start,
                "timeUnixNano": now,
                value_key: str(value),
            }
            for labels, value in sorted(series.items())
        ]

    metrics: list[dict[str, Any]] = []
    for name, series in snapshot.counters.items():
        sum_ = {"dataPoints": points(series, "asInt"), "aggregationTemporality": 2, "isMonotonic": True}
        metrics.append({"name": name, "sum": sum_})
    for name, series in snapshot.gauges.items():
        metrics.append({"name": name, "gauge": {"dataPoints": points(series, "asInt")}})
    for name, histograms in snapshot.histograms.items():
        data = [
            {
                "attributes": [attribute(k, v) for k, v in labels],
                "startTimeUnixNano": start,
                "timeUnixNano": now,
                "count": str(h.count),
                "sum": h.total,
                "bucketCounts": [str(c) for c in [*h.counts, h.count - sum(h.counts)]],
                "explicitBounds": list(BUCKETS),
            }
            for labels, h in sorted(histograms.items())
        ]
        metrics.append({"name": name, "unit": "s", "histogram": {"dataPoints": data, "aggregationTemporality": 2}})
    scope = {"scope": SCOPE, "metrics": metrics}
    payload = {"resourceMetrics": [{"resource": resource(config), "scopeMetrics": [scope]}]}
    return _encoded(config, "ExportMetricsServiceRequest", payload)


def _encoded(config: TelemetryConfig, message: str, payload: dict[str, Any]) -> bytes:
    """One payload, two encodings: OTLP/JSON as built, or the same message in protobuf."""
    if config.protocol == JSON:
        return json.dumps(payload, separators=(",", ":")).encode()
    return otlp_proto.encode(message, payload)


def content_type(config: TelemetryConfig) -> str:
    return CONTENT_TYPES.get(config.protocol, PROTOBUF_CONTENT_TYPE)


def tls_context(config: TelemetryConfig) -> ssl.SSLContext:
    """Verifies the collector: against the configured CA bundle when there is one, else the system store."""
    return ssl.create_default_context(cadata=config.ca_pem) if config.ca_pem else ssl.create_default_context()


def post(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float = SEND_TIMEOUT,
    kind: str = "application/json",
    context: ssl.SSLContext | None = None,
) -> int:
    """One POST; the status, or raises OSError / http.client.HTTPException."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = context or ssl.create_default_context()
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", parts.path or "/", body, {**headers, "Content-Type": kind})
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()


class Exporter:
    """The background sender. ``submit`` never blocks; ``close`` flushes what is queued (bounded by the timeout)."""

    def __init__(self, config: TelemetryConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self._tls = tls_context(config)
        self._spans: queue.Queue[Span | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send_spans, name="otlp-spans", daemon=True)]
        if config.metrics_url:
            self._threads.append(threading.Thread(target=self._send_metrics, name="otlp-metrics", daemon=True))
        for thread in self._threads:
            thread.start()

    def submit(self, span: Span) -> None:
        if self.config.traces_url is None or not span.context.sampled:
            return
        try:
            self._spans.put_nowait(span)
        except queue.Full:
            self.metrics.dropped("spans")

    def close(self, timeout: float = SEND_TIMEOUT) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._spans.put(None, timeout=0.1)
        for thread in self._threads:
            thread.join(timeout)

    def _send(self, url: str, body: Callable[[], bytes]) -> bool:
        """Encode and post; any failure (an encoding bug included) costs the batch, never the sender thread."""
        try:
            status = post(url, self.config.headers, body(), kind=content_type(self.config), context=self._tls)
        except (OSError, http.client.HTTPException, ValueError) as error:
            _log.debug("OTLP export to %s failed: %s", url, type(error).__name__)
            return False
        return 200 <= status < 300

    def _send_spans(self) -> None:
        while True:
            first = self._spans.get()
            batch = [first] if first is not None else []
            while len(batch) < BATCH_SIZE:
                try:
                    item = self._spans.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    first = None
                    break
                batch.append(item)
            if (
                batch
                and self.config.traces_url
                and not self._send(self.config.traces_url, partial(encode_spans, self.config, batch))
            ):
                self.metrics.dropped("spans", len(batch))
            if first is None and self._stop.is_set():
                return

    def _send_metrics(self) -> None:
        assert self.config.metrics_url is not None
        while True:
            stopping = self._stop.wait(self.config.metric_interval)
            body = partial(encode_metrics, self.config, self.metrics.snapshot(), time.time_ns())
            if not self._send(self.config.metrics_url, body):
                self.metrics.dropped("metrics")
            if stopping:
                return
