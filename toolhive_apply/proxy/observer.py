"""The one place the proxy watches its traffic: each MCP operation becomes an audit event, metric samples and a
span, whatever front-end (stdio session hub, streamable or SSE relay) answered it.

It wraps the router's handler, so it also sees what outer layers answer themselves (401/403 from authentication).
A JSON answer ends its operations at once; an SSE answer is watched as it streams, and each operation ends when
its response event passes (or when the stream ends). Nothing here can fail a request: recording is best effort.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.audit import AuditLog
from toolhive_apply.proxy.config import ProxyConfig
from toolhive_apply.proxy.httpserver import Handler, Request, Response, StreamResponse
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.metrics import CONTENT_TYPE, Metrics, prometheus_text
from toolhive_apply.proxy.operations import (
    SSE_CONNECTION,
    Ending,
    Exchange,
    Operation,
    answers,
    ending,
    id_key,
    operations,
)
from toolhive_apply.proxy.principal import principal_label, principal_subjects
from toolhive_apply.proxy.scrub import Scrubber
from toolhive_apply.proxy.sse_codec import SseDecoder
from toolhive_apply.proxy.tracing import TRACEPARENT, Span, Tracer, parse_traceparent, span_name

if TYPE_CHECKING:
    from toolhive_apply.proxy.otlp import Exporter

METRICS_PATH = "/metrics"
_log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Pending:
    operation: Operation
    span: Span | None
    started: float


class Observer:
    """Audit, metrics and traces for one proxy; ``active`` is False when the configuration asks for none."""

    def __init__(self, config: ProxyConfig, inner: Handler) -> None:
        self._inner = inner
        self._name = config.name
        audit, telemetry = config.audit, config.telemetry
        secrets = [*(audit.scrub_values if audit else ()), *(telemetry.secret_values if telemetry else ())]
        self._scrubber = Scrubber(secrets)
        self.metrics = Metrics(config.name)
        self.audit = AuditLog(audit, self._scrubber, str(config.proxy_mode)) if audit else None
        tracing = telemetry is not None and telemetry.traces_url is not None
        self._tracer = Tracer(telemetry.sampling_rate) if telemetry and tracing else None
        self._environment = dict(telemetry.environment) if telemetry else {}
        exporting = telemetry is not None and (telemetry.traces_url or telemetry.metrics_url)
        self.exporter: Exporter | None = None
        if telemetry is not None and exporting:
            from toolhive_apply.proxy.otlp import Exporter  # http.client and ssl only when something is exported

            self.exporter = Exporter(telemetry, self.metrics)
        self._prometheus = telemetry is not None and telemetry.prometheus
        self._metered = telemetry is not None
        self.active = self.audit is not None or telemetry is not None

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
        if self.audit is not None:
            self.audit.close()

    async def handle(self, request: Request) -> Response | StreamResponse:
        if self._prometheus and request.path == METRICS_PATH and request.method in ("GET", "HEAD"):
            body = prometheus_text(self.metrics.snapshot())
            return Response(HTTPStatus.OK, [("Content-Type", CONTENT_TYPE)], body)
        if (
            self.audit is not None
            and request.method == "GET"
            and request.headers.has_token("accept", "text/event-stream")
        ):
            return await self._stream_opened(request)
        if request.method != "POST" or not self.active:
            return await self._inner(request)
        started = time.monotonic()
        pending = [_Pending(op, self._start_span(request, op), started) for op in operations(request.body)]
        forwarded = self._propagate(request, pending)
        try:
            response = await self._inner(forwarded)
        except BaseException:
            self._finish_all(request, pending, Ending(HTTPStatus.INTERNAL_SERVER_ERROR))
            raise
        if isinstance(response, StreamResponse) and 200 <= response.status < 300:
            response.chunks = self._watch(request, pending, response.status, response.chunks)
            return response
        body = response.body if isinstance(response, Response) else b""
        found = answers(body)
        for item in pending:
            answer, size = found.get(id_key(item.operation.request_id), (None, 0))
            if item.operation.notification or answer is None:
                size = len(body) if len(pending) == 1 else 0
            self._finish(request, item, ending(response.status, answer, size))
        return response

    async def _stream_opened(self, request: Request) -> Response | StreamResponse:
        """ToolHive audits the opening of an event stream (sse_connection) when it is answered, not when it ends."""
        started = time.monotonic()
        response = await self._inner(request)
        operation = Operation(request.method, event=SSE_CONNECTION)
        self._finish(request, _Pending(operation, None, started), Ending(response.status))
        return response

    def _start_span(self, request: Request, operation: Operation) -> Span | None:
        if self._tracer is None:
            return None
        span = self._tracer.start(
            span_name(operation.method, operation.name), parse_traceparent(request.headers.get(TRACEPARENT))
        )
        span.attributes.update(self._environment)  # ToolHive's environment.<NAME>; scrubbed with the rest
        span.attributes.update({"mcp.method.name": operation.method or "unknown", "mcp.server.name": self._name})
        if operation.method == "tools/call" and operation.name is not None:
            span.attributes.update({"gen_ai.tool.name": operation.name, "gen_ai.operation.name": "execute_tool"})
        elif operation.name is not None and operation.method.startswith("resources/"):
            span.attributes["mcp.resource.uri"] = operation.name
        elif operation.name is not None:
            span.attributes["gen_ai.prompt.name"] = operation.name
        if operation.request_id is not None:
            span.attributes["jsonrpc.request.id"] = str(operation.request_id)
        return span

    @staticmethod
    def _propagate(request: Request, pending: list[_Pending]) -> Request:
        """The request with the proxy's span as the backend's parent (the first operation's, for a batch)."""
        span = next((p.span for p in pending if p.span is not None), None)
        if span is None:
            return request
        kept = [(k, v) for k, v in request.headers.items() if k.lower() not in (TRACEPARENT,)]
        return dataclasses.replace(request, headers=Headers([*kept, (TRACEPARENT, span.context.header())]))

    async def _watch(
        self, request: Request, pending: list[_Pending], status: int, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        """Relays the stream unchanged, ending each operation when its response event passes."""
        waiting = {id_key(p.operation.request_id): p for p in pending if not p.operation.notification}
        for item in [p for p in pending if p.operation.notification]:
            self._finish(request, item, Ending(status))
        decoder = SseDecoder()
        try:
            async for chunk in chunks:
                if waiting:
                    self._match(request, waiting, status, decoder, chunk)
                yield chunk
        finally:
            for item in waiting.values():  # the stream ended (or the client left) before an answer
                self._finish(request, item, Ending(HTTPStatus.BAD_GATEWAY))
            with contextlib.suppress(Exception):
                await chunks.aclose()

    def _match(
        self, request: Request, waiting: dict[str, _Pending], status: int, decoder: SseDecoder, chunk: bytes
    ) -> None:
        try:
            events = decoder.feed(chunk)
        except ValueError:
            return
        for event in events:
            try:
                message = strictjson.loads(event.data.encode())
            except strictjson.StrictJsonError:
                continue
            if isinstance(message, dict) and ("result" in message or "error" in message):
                item = waiting.pop(id_key(message.get("id")), None)
                if item is not None:
                    self._finish(request, item, ending(status, message, len(event.data)))

    def _finish_all(self, request: Request, pending: list[_Pending], end: Ending) -> None:
        for item in pending:
            self._finish(request, item, end)

    def _finish(self, request: Request, item: _Pending, end: Ending) -> None:
        try:
            self._record(request, Exchange(item.operation, end, time.monotonic() - item.started), item.span)
        except Exception:  # noqa: BLE001 - observing must never cost the request
            _log.warning("could not record an MCP operation", exc_info=True)

    def _record(self, request: Request, exchange: Exchange, span: Span | None) -> None:
        operation, end = exchange.operation, exchange.ending
        outcome = str(end.outcome)
        if operation.method == "tools/list" and isinstance(end.response, dict):
            self._learn(end.response)
        if self._metered and operation.event is None:
            self.metrics.record(operation.method, operation.name, outcome, exchange.duration)
        if self.audit is not None:
            self.audit.record(exchange, self._source(request), principal_subjects(request), request.path)
        if span is not None and self.exporter is not None:
            span.end_ns = span.start_ns + int(exchange.duration * 1e9)
            span.attributes["mcp.outcome"] = outcome
            span.attributes["http.response.status_code"] = end.status
            span.attributes["enduser.id"] = principal_label(request)
            if end.error_code is not None:
                span.attributes["rpc.jsonrpc.error_code"] = end.error_code
            if outcome != "success":
                span.error = end.error_message or outcome
            span.attributes = self._scrubber.value(span.attributes)
            self.exporter.submit(span)

    def _learn(self, response: dict[str, Any]) -> None:
        result = response.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if isinstance(tools, list):
            self.metrics.learn_tools(
                [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
            )

    @staticmethod
    def _source(request: Request) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        agent = request.headers.get("user-agent")
        if agent:
            extra["user_agent"] = agent[:256]
        return {"type": "network", "value": request.peer, "extra": extra}


_OPEN: list[Observer] = []


def observe(config: ProxyConfig, assembly: Any, inner: Handler) -> Observer:
    """The observer in front of ``inner``, reading the assembly's session and restart counts."""
    observer = Observer(config, inner)
    observer.metrics.sessions = assembly.sessions
    observer.metrics.restarts = assembly.restarts
    if observer.exporter is not None or observer.audit is not None:
        _OPEN.append(observer)
    return observer


def close_observers() -> None:
    """Flush exporters and close audit files at shutdown."""
    while _OPEN:
        _OPEN.pop().close()
