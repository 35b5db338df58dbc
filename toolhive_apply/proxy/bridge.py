"""Both HTTP transports for every workload: each client connects with the best transport it has (issue #14.9).

A stdio workload's sessions live in the proxy, so both front-ends sit over the same ``SessionHub``. An http or remote
workload speaks one transport; the other is bridged onto the relay of the first, so the tool policy, the upstream's
credentials and its session table apply to bridged clients exactly as to direct ones:

* ``SseOverStreamable``: legacy SSE clients (``GET /sse`` + ``POST /messages?session_id=``) in front of a
  streamable-HTTP handler. Each SSE session holds the ``Mcp-Session-Id`` the handler issued; every POST is relayed
  as a streamable POST and its answer (JSON or an event stream) is written to the client's event stream, and the
  handler's own GET stream (server notifications and requests) feeds it too.
* ``StreamableOverSse``: streamable-HTTP clients (``/mcp``) in front of a legacy SSE handler. ``initialize`` opens an
  SSE session on the handler; a POST is relayed to the session's message endpoint and answered with the responses
  that come back on the stream (matched by request id); everything else on the stream goes to the client's GET
  stream. DELETE (or the session TTL) ends the SSE session.

ToolHive's paths are kept: ``/mcp`` for streamable HTTP, ``/sse`` and ``/messages`` for SSE. A ``GET /mcp`` without a
session that asks for an event stream opens a legacy SSE session too, as the MCP specification's backwards-compatibility
section allows, so an entry written for streamable HTTP also serves clients that read its ``url`` as SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.config import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL
from toolhive_apply.proxy.httpserver import Handler, Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST, SERVER_UNAVAILABLE, MessageKind, classify, error_response
from toolhive_apply.proxy.session_table import SessionTable
from toolhive_apply.proxy.sse_codec import KEEPALIVE, ServerSentEvent, SseDecoder, encode_event
from toolhive_apply.proxy.sse_stream import put_dropping_oldest, queued_events
from toolhive_apply.proxy.streamable import (
    SESSION_HEADER,
    SSE_HEADERS,
    is_json,
    parse_messages,
    unsupported_media_type,
)

MCP_PATH: Final = "/mcp"
SSE_PATH: Final = "/sse"
MESSAGES_PATH: Final = "/messages"
SSE_ONLY_PATHS: Final = frozenset({SSE_PATH, MESSAGES_PATH})
ENDPOINT_TIMEOUT: Final = 30.0
"""Seconds a bridged ``initialize`` waits for the SSE handler's ``endpoint`` event."""
QUEUE_SIZE: Final = 1000
_DROPPED: Final = frozenset({"content-type", "accept", "content-length", "transfer-encoding", "mcp-session-id"})
_log = logging.getLogger(__name__)


def _inner_headers(client: Headers, *extra: tuple[str, str]) -> Headers:
    """The client's headers (credentials for the proxy's own checks and the upstream) with the bridge's framing."""
    return Headers([*((k, v) for k, v in client if k.lower() not in _DROPPED), *extra])


def _put(queue: asyncio.Queue[str | None], item: str | None) -> None:
    put_dropping_oldest(queue, item, "bridged session")


async def _events_of(chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[ServerSentEvent, None]:
    decoder = SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event


class DualFrontend:
    """Routes ToolHive's SSE paths to one handler and everything else to the other."""

    def __init__(self, streamable: Handler, sse: Handler, *, sse_first: bool = False) -> None:
        self._streamable = streamable
        self._sse = sse
        self._sse_first = sse_first

    async def handle(self, request: Request) -> Response | StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == MCP_PATH and _legacy_open(request):
            return await self._sse(Request("GET", SSE_PATH, request.headers))
        if self._sse_first:  # the SSE upstream's message endpoints may be any path: only /mcp is streamable here
            return await (self._streamable if path == MCP_PATH else self._sse)(request)
        return await (self._sse if path in SSE_ONLY_PATHS else self._streamable)(request)


def _legacy_open(request: Request) -> bool:
    """A legacy SSE client opening its stream on the streamable endpoint: GET for an event stream without a session.

    A client that reads a ``url`` as SSE (Gemini CLI before ``type``, Qwen Code) connects with the same entry as one
    that reads it as streamable HTTP. A streamable client never sends this: its GET carries the session it was given
    (and a server that issues no session gets no GET stream of its own, so nothing is lost by answering it).
    """
    return (
        request.method == "GET"
        and SESSION_HEADER not in request.headers
        and request.headers.has_token("accept", "text/event-stream")
    )


# -------------------------------------------------------------------------------------------- SSE clients
@dataclass(eq=False)
class _SseSession:
    id: str
    headers: Headers
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    inner_id: str | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class SseOverStreamable:
    """Legacy SSE sessions relayed onto a streamable-HTTP handler (see the module docstring)."""

    def __init__(self, inner: Handler, *, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self._inner = inner
        self._max_sessions = max_sessions
        self._sessions: dict[str, _SseSession] = {}

    async def handle(self, request: Request) -> Response | StreamResponse:
        path = request.path.rstrip("/")
        if path == SSE_PATH:
            if request.method != "GET":
                return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET")])
            if len(self._sessions) >= self._max_sessions:
                return rpc_error(HTTPStatus.SERVICE_UNAVAILABLE, SERVER_UNAVAILABLE, "too many SSE sessions")
            session = _SseSession(secrets.token_hex(16), _inner_headers(request.headers))
            self._sessions[session.id] = session
            return StreamResponse(HTTPStatus.OK, list(SSE_HEADERS), self._events(session))
        if path == MESSAGES_PATH:
            if request.method != "POST":
                return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "POST")])
            return self._post(request)
        return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; the SSE endpoint is {SSE_PATH}")

    async def _events(self, session: _SseSession) -> AsyncGenerator[bytes, None]:
        try:
            yield encode_event(ServerSentEvent(f"{MESSAGES_PATH}?session_id={session.id}", event="endpoint"))
            async for chunk in queued_events(session.queue, str):
                yield chunk
        finally:
            self._sessions.pop(session.id, None)
            for task in list(session.tasks):
                task.cancel()
            if session.inner_id is not None:
                with contextlib.suppress(Exception):
                    headers = _inner_headers(session.headers, (SESSION_HEADER, session.inner_id))
                    await self._inner(Request("DELETE", MCP_PATH, headers))

    def _post(self, request: Request) -> Response:
        session_id = request.query.get("session_id") or request.query.get("sessionId")
        if not session_id:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "session_id query parameter is required")
        session = self._sessions.get(session_id)
        if session is None:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Could not find session")
        if not is_json(request):
            return unsupported_media_type()
        parsed = parse_messages(request.body)
        if isinstance(parsed, Response):
            return parsed
        session.spawn(self._relay(session, request.body))
        return Response(HTTPStatus.ACCEPTED, [("Content-Type", "text/plain")], b"Accepted")

    async def _relay(self, session: _SseSession, body: bytes) -> None:
        """One client POST as a streamable POST; whatever it answers goes to the client's event stream."""
        extra = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        if session.inner_id is not None:
            extra.append((SESSION_HEADER, session.inner_id))
        response = await self._inner(Request("POST", MCP_PATH, _inner_headers(session.headers, *extra), body))
        issued = _header(response, SESSION_HEADER)
        if issued is not None and session.inner_id is None and 200 <= response.status < 300:
            session.inner_id = issued
            session.spawn(self._listen(session, issued))
        if isinstance(response, StreamResponse):
            await self._pump(session, response.chunks)
        elif response.status >= 300:
            for answer in _errors_for(body, response):  # an SSE client sees no status: answer each request
                _put(session.queue, json.dumps(answer, separators=(",", ":")))
        elif response.body.strip():
            _put(session.queue, response.body.decode("utf-8", "replace"))

    async def _listen(self, session: _SseSession, inner_id: str) -> None:
        """The handler's GET stream for the session (server notifications and requests), where it offers one."""
        extra = [("Accept", "text/event-stream"), (SESSION_HEADER, inner_id)]
        response = await self._inner(Request("GET", MCP_PATH, _inner_headers(session.headers, *extra)))
        if isinstance(response, StreamResponse):
            if response.status == HTTPStatus.OK:
                await self._pump(session, response.chunks)
            else:
                await response.chunks.aclose()

    @staticmethod
    async def _pump(session: _SseSession, chunks: AsyncGenerator[bytes, None]) -> None:
        try:
            async for event in _events_of(chunks):
                if event.event in (None, "", "message") and event.data.strip():
                    _put(session.queue, event.data)
        except ValueError as error:
            _log.warning("bridged event stream unreadable: %s", error)
        finally:
            await chunks.aclose()


def _errors_for(body: bytes, response: Response) -> list[object]:
    """The JSON-RPC errors an SSE client gets for a POST the streamable handler refused with an HTTP error status:
    the handler's own error where it answers one of the requests, else one naming the status, per request."""
    try:
        sent = strictjson.loads(body)
        answer = strictjson.loads(response.body) if response.body.strip() else None
    except strictjson.StrictJsonError:
        answer = None
        sent = []
    requests = [m for m in (sent if isinstance(sent, list) else [sent]) if isinstance(m, dict)]
    ids = [m["id"] for m in requests if classify(m) is MessageKind.REQUEST]
    error = answer.get("error") if isinstance(answer, dict) else None
    details = error if isinstance(error, dict) else {}
    code = details["code"] if isinstance(details.get("code"), int) else INVALID_REQUEST
    message = details.get("message")
    text = message if isinstance(message, str) else f"the MCP server answered HTTP {response.status}"
    return [error_response(request_id, code, text) for request_id in ids]


def _header(response: Response | StreamResponse, name: str) -> str | None:
    return Headers(response.headers).get(name)


# ------------------------------------------------------------------------------------- streamable clients
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
        _put(self.outbox, None)


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
        headers = _inner_headers(request.headers, ("Content-Type", "application/json"))
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
        headers = _inner_headers(request.headers, ("Accept", "text/event-stream"))
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
            async for event in _events_of(session.chunks):
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
                _put(session.outbox, json.dumps(item, separators=(",", ":")))

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
