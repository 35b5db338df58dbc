"""Reverse proxy to an upstream that speaks the legacy HTTP+SSE transport (http and remote modes).

The upstream's ``endpoint`` event is relayed as a path on the proxy, and POSTs to that path are forwarded to the same
path upstream. Answers travel on the event stream, so a refused tool call is answered by injecting an error event into
that session's stream, and ``tools/list`` answers are filtered as they pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import urljoin, urlsplit

from toolhive_apply.proxy.httpclient import UpstreamError, UpstreamResponse
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST
from toolhive_apply.proxy.passthrough import (
    Upstream,
    encode_event_json,
    response_headers,
    routing_headers,
    unreachable,
)
from toolhive_apply.proxy.rewrite import plan_request, rewrite_event
from toolhive_apply.proxy.sse_codec import KEEPALIVE, ServerSentEvent, SseDecoder, encode_event
from toolhive_apply.proxy.streamable import SSE_HEADERS
from toolhive_apply.proxy.tools import ToolPolicy

MAX_POST_RESPONSE: Final = 1024 * 1024
_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Session:
    """One relayed SSE session, keyed by the message endpoint (path and query) the client was given."""

    endpoint: str = ""
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class SsePassthrough:
    def __init__(self, upstream: Upstream, policy: ToolPolicy) -> None:
        self._upstream = upstream
        self._url = upstream.url
        self._policy = policy
        self._sessions: dict[str, _Session] = {}
        self.paths = frozenset({(upstream.url.path or "/sse").rstrip("/") or "/", "/sse"})

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.method == "GET" and request.path.rstrip("/") in self.paths:
            return await self._open(request)
        if request.method == "POST":
            return await self._post(request)
        return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; the SSE endpoint is {sorted(self.paths)}")

    async def _open(self, request: Request) -> Response | StreamResponse:
        accept = {"Accept": "text/event-stream"}
        try:
            upstream = await self._upstream.send(
                "GET", self._url.target(request.query_string), request.headers, b"", accept
            )
        except UpstreamError as error:
            return unreachable(error)
        if upstream.status != HTTPStatus.OK or upstream.content_type != "text/event-stream":
            try:
                body = await upstream.read(MAX_POST_RESPONSE)
            except UpstreamError as error:
                return unreachable(error)
            finally:
                await upstream.close()
            return Response(upstream.status, response_headers(upstream), body)
        return StreamResponse(HTTPStatus.OK, list(SSE_HEADERS), self._events(upstream))

    async def _events(self, upstream: UpstreamResponse) -> AsyncGenerator[bytes, None]:
        session = _Session()
        pump = asyncio.create_task(self._pump(upstream, session))
        try:
            while (item := await session.queue.get()) is not None:
                yield item
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            self._sessions.pop(session.endpoint, None)
            await upstream.close()

    async def _pump(self, upstream: UpstreamResponse, session: _Session) -> None:
        """Decode upstream events into the session queue; a None item ends the client's stream."""
        decoder = SseDecoder()
        try:
            async for chunk in upstream.chunks():
                events = decoder.feed(chunk)
                if decoder.take_comments():
                    session.queue.put_nowait(KEEPALIVE)
                for event in events:
                    if (relayed := self._relay_event(session, event)) is not None:
                        session.queue.put_nowait(encode_event(relayed))
        except (UpstreamError, ValueError) as error:
            _log.warning("upstream event stream failed: %s", error)
        finally:
            session.queue.put_nowait(None)

    def _relay_event(self, session: _Session, event: ServerSentEvent) -> ServerSentEvent | None:
        """The event as the client gets it; None drops it (unreadable while the policy must filter it)."""
        if event.event == "endpoint":
            return self._register(session, event)
        if self._policy.active:
            return rewrite_event(self._policy, event)
        return event

    def _register(self, session: _Session, event: ServerSentEvent) -> ServerSentEvent:
        """Turn the upstream's message endpoint into a proxy path and remember it for the POSTs to come."""
        absolute = urljoin(self._url.origin + (self._url.path or "/"), event.data.strip())
        parts = urlsplit(absolute)
        if f"{parts.scheme}://{parts.netloc}" != self._url.origin:
            raise ValueError(f"upstream announced a message endpoint on another origin: {absolute}")
        self._sessions.pop(session.endpoint, None)
        session.endpoint = parts.path + (f"?{parts.query}" if parts.query else "")
        self._sessions[session.endpoint] = session
        return ServerSentEvent(session.endpoint, "endpoint", event.id, event.retry)

    async def _post(self, request: Request) -> Response:
        endpoint = request.path + (f"?{request.query_string}" if request.query_string else "")
        session = self._sessions.get(endpoint)
        if session is None:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Could not find session")
        plan = plan_request(self._policy, request.body)
        if plan.rejection is not None:
            return json_response(HTTPStatus.BAD_REQUEST, plan.rejection)
        for refusal in plan.refusals:
            session.queue.put_nowait(encode_event_json(refusal))
        if not plan.forward:
            return Response(HTTPStatus.ACCEPTED, [("Content-Type", "text/plain")], b"Accepted")
        replace = routing_headers(self._policy, plan, request.headers)
        try:
            upstream = await self._upstream.send("POST", endpoint, request.headers, plan.body, replace)
        except UpstreamError as error:
            return unreachable(error)
        try:
            body = await upstream.read(MAX_POST_RESPONSE)
        except UpstreamError as error:
            return unreachable(error)
        finally:
            await upstream.close()
        return Response(upstream.status, response_headers(upstream), body)
