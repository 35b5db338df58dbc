"""Streamable-HTTP clients (``/mcp``) in front of a legacy SSE handler (``StreamableOverSse``; see bridge.py).

``initialize`` opens an SSE session on the handler; a POST is relayed to the session's message endpoint and answered
with the responses that come back on the stream (matched by request id); everything else on the stream goes to the
client's GET stream. DELETE (or the session TTL) ends the SSE session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from http import HTTPStatus

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.bridge import (
    ENDPOINT_TIMEOUT,
    MCP_PATH,
    QUEUE_SIZE,
    SSE_PATH,
    events_of,
    inner_headers,
    put_event,
)
from toolhive_apply.proxy.config import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL
from toolhive_apply.proxy.httpserver import Handler, Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST, SERVER_UNAVAILABLE, MessageKind, classify, error_response
from toolhive_apply.proxy.session_table import SessionTable
from toolhive_apply.proxy.sse_codec import KEEPALIVE
from toolhive_apply.proxy.sse_stream import queued_events
from toolhive_apply.proxy.streamable import (
    SESSION_HEADER,
    SSE_HEADERS,
    is_json,
    parse_messages,
    unsupported_media_type,
)

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _LegacySession:
    id: str
    chunks: AsyncGenerator[bytes, None]
    endpoint: asyncio.Future[str]
    pending: dict[str, asyncio.Future[object]] = field(default_factory=dict)
    outbox: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    listeners: int = 0
    pump: asyncio.Task[None] | None = None
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pump is not None:
            self.pump.cancel()
        for future in self.pending.values():
            if not future.done():
                future.cancel()
        put_event(self.outbox, None)


def _id_key(request_id: object) -> str:
    return json.dumps(request_id, sort_keys=True)


class StreamableOverSse:
    """Streamable-HTTP sessions relayed onto a legacy SSE handler (see the module docstring)."""

    def __init__(
        self,
        inner: Handler,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self._inner = inner
        self.sessions: SessionTable[_LegacySession] = SessionTable(
            session_ttl, max_sessions, on_evict=lambda _, s: s.close(), busy=lambda s: s.listeners > 0
        )

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.path.rstrip("/") != MCP_PATH:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; the MCP endpoint is {MCP_PATH}")
        if request.method == "POST":
            return await self._post(request)
        if request.method == "GET":
            return self._get(request)
        if request.method == "DELETE":
            session = self._session_of(request)
            if isinstance(session, Response):
                return session
            self.sessions.pop(session.id)
            session.close()
            return Response(HTTPStatus.OK)
        return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, POST, DELETE")])

    def _session_of(self, request: Request) -> _LegacySession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"Bad Request: {SESSION_HEADER} is required")
        session = self.sessions.get(session_id)
        if session is None or session.closed:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Session not found")
        return session

    async def _post(self, request: Request) -> Response | StreamResponse:
        if not is_json(request):
            return unsupported_media_type()
        parsed = parse_messages(request.body)
        if isinstance(parsed, Response):
            return parsed
        messages, batch = parsed
        initialize = any(isinstance(m, dict) and m.get("method") == "initialize" for m in messages)
        located = await self._locate(request, initialize, batch)
        if not isinstance(located, _LegacySession):
            return located
        session = located
        ids = [m["id"] for m in messages if isinstance(m, dict) and classify(m) is MessageKind.REQUEST]
        futures = [session.pending.setdefault(_id_key(i), asyncio.get_running_loop().create_future()) for i in ids]
        headers = inner_headers(request.headers, ("Content-Type", "application/json"))
        try:
            relayed = await self._inner(Request("POST", session.endpoint.result(), headers, request.body))
            if isinstance(relayed, StreamResponse) or relayed.status >= 300:
                if initialize:
                    self.sessions.pop(session.id)
                    session.close()
                return relayed
            if not futures:
                return Response(HTTPStatus.ACCEPTED)
            try:
                answers = await asyncio.gather(*futures)
            except asyncio.CancelledError:
                if not session.closed:
                    raise
                message = "the MCP server's event stream ended"
                return json_response(HTTPStatus.BAD_GATEWAY, error_response(None, SERVER_UNAVAILABLE, message))
        finally:
            for request_id in ids:
                session.pending.pop(_id_key(request_id), None)
        extra = [(SESSION_HEADER, session.id)] if initialize else []
        return json_response(HTTPStatus.OK, list(answers) if batch else answers[0], extra)

    async def _locate(
        self, request: Request, initialize: bool, batch: bool
    ) -> _LegacySession | Response | StreamResponse:
        """A new session for ``initialize``, else the request's own; or the error answer."""
        if not initialize:
            return self._session_of(request)
        if batch:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "initialize must not be part of a batch")
        return await self._open(request)

    async def _open(self, request: Request) -> _LegacySession | Response | StreamResponse:
        """A new SSE session on the handler, once its message endpoint is known."""
        headers = inner_headers(request.headers, ("Accept", "text/event-stream"))
        opened = await self._inner(Request("GET", SSE_PATH, headers))
        if not isinstance(opened, StreamResponse):
            return opened
        if opened.status != HTTPStatus.OK:
            await opened.chunks.aclose()
            return rpc_error(HTTPStatus.BAD_GATEWAY, SERVER_UNAVAILABLE, f"the MCP server answered {opened.status}")
        loop = asyncio.get_running_loop()
        session = _LegacySession(secrets.token_hex(16), opened.chunks, loop.create_future())
        session.pump = asyncio.create_task(self._pump(session))
        try:
            await asyncio.wait_for(asyncio.shield(session.endpoint), ENDPOINT_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            session.close()
            message = "the MCP server's event stream named no message endpoint"
            return rpc_error(HTTPStatus.BAD_GATEWAY, SERVER_UNAVAILABLE, message)
        self.sessions.add(session.id, session)
        return session

    async def _pump(self, session: _LegacySession) -> None:
        try:
            async for event in events_of(session.chunks):
                if event.event == "endpoint":
                    if not session.endpoint.done():
                        session.endpoint.set_result(event.data.strip())
                    continue
                self._route(session, event.data)
        except ValueError as error:
            _log.warning("bridged event stream unreadable: %s", error)
        finally:
            with contextlib.suppress(Exception):
                await session.chunks.aclose()
            if not session.endpoint.done():
                session.endpoint.cancel()
            self.sessions.pop(session.id)
            session.pump = None
            session.close()

    @staticmethod
    def _route(session: _LegacySession, data: str) -> None:
        """A response to one of the client's pending requests answers its POST; the rest go to its GET stream."""
        try:
            message = strictjson.loads(data.encode())
        except strictjson.StrictJsonError:
            return
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and classify(item) is MessageKind.RESPONSE:
                future = session.pending.get(_id_key(item.get("id")))
                if future is not None and not future.done():
                    future.set_result(item)
                    continue
            if session.listeners:
                put_event(session.outbox, json.dumps(item, separators=(",", ":")))

    def _get(self, request: Request) -> Response | StreamResponse:
        session = self._session_of(request)
        if isinstance(session, Response):
            return session
        if not request.headers.has_token("accept", "text/event-stream"):
            return rpc_error(HTTPStatus.NOT_ACCEPTABLE, INVALID_REQUEST, "Accept must include text/event-stream")
        return StreamResponse(HTTPStatus.OK, [*SSE_HEADERS, (SESSION_HEADER, session.id)], self._stream(session))

    async def _stream(self, session: _LegacySession) -> AsyncGenerator[bytes, None]:
        session.listeners += 1
        try:
            yield KEEPALIVE
            async for chunk in queued_events(session.outbox, str, lambda: session.closed):
                yield chunk
        finally:
            session.listeners -= 1
            self.sessions.touch(session.id)
