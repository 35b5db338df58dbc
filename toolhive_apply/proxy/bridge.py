"""Both HTTP transports for every workload: each client connects with the best transport it has (issue #14.9).

A stdio workload's sessions live in the proxy, so both front-ends sit over the same ``SessionHub``. An http or remote
workload speaks one transport; the other is bridged onto the relay of the first, so the tool policy, the upstream's
credentials and its session table apply to bridged clients exactly as to direct ones:

* ``SseOverStreamable``: legacy SSE clients (``GET /sse`` + ``POST /messages?session_id=``) in front of a
  streamable-HTTP handler. Each SSE session holds the ``Mcp-Session-Id`` the handler issued; every POST is relayed
  as a streamable POST and its answer (JSON or an event stream) is written to the client's event stream, and the
  handler's own GET stream (server notifications and requests) feeds it too.
* ``StreamableOverSse`` (bridge_streamable.py): streamable-HTTP clients (``/mcp``) in front of a legacy SSE
  handler. ``initialize`` opens an SSE session on the handler; a POST is relayed to the session's message endpoint
  and answered with the responses that come back on the stream (matched by request id); everything else on the
  stream goes to the client's GET stream. DELETE (or the session TTL) ends the SSE session.

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
from toolhive_apply.proxy.config import DEFAULT_MAX_SESSIONS
from toolhive_apply.proxy.httpserver import Handler, Request, Response, StreamResponse, rpc_error
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST, SERVER_UNAVAILABLE, MessageKind, classify, error_response
from toolhive_apply.proxy.sse_codec import ServerSentEvent, SseDecoder, encode_event
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


def inner_headers(client: Headers, *extra: tuple[str, str]) -> Headers:
    """The client's headers (credentials for the proxy's own checks and the upstream) with the bridge's framing."""
    return Headers([*((k, v) for k, v in client if k.lower() not in _DROPPED), *extra])


def put_event(queue: asyncio.Queue[str | None], item: str | None) -> None:
    put_dropping_oldest(queue, item, "bridged session")


async def events_of(chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[ServerSentEvent, None]:
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
            session = _SseSession(secrets.token_hex(16), inner_headers(request.headers))
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
                    headers = inner_headers(session.headers, (SESSION_HEADER, session.inner_id))
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
        response = await self._inner(Request("POST", MCP_PATH, inner_headers(session.headers, *extra), body))
        issued = header_of(response, SESSION_HEADER)
        if issued is not None and session.inner_id is None and 200 <= response.status < 300:
            session.inner_id = issued
            session.spawn(self._listen(session, issued))
        if isinstance(response, StreamResponse):
            await self._pump(session, response.chunks)
        elif response.status >= 300:
            for answer in errors_for(body, response):  # an SSE client sees no status: answer each request
                put_event(session.queue, json.dumps(answer, separators=(",", ":")))
        elif response.body.strip():
            put_event(session.queue, response.body.decode("utf-8", "replace"))

    async def _listen(self, session: _SseSession, inner_id: str) -> None:
        """The handler's GET stream for the session (server notifications and requests), where it offers one."""
        extra = [("Accept", "text/event-stream"), (SESSION_HEADER, inner_id)]
        response = await self._inner(Request("GET", MCP_PATH, inner_headers(session.headers, *extra)))
        if isinstance(response, StreamResponse):
            if response.status == HTTPStatus.OK:
                await self._pump(session, response.chunks)
            else:
                await response.chunks.aclose()

    @staticmethod
    async def _pump(session: _SseSession, chunks: AsyncGenerator[bytes, None]) -> None:
        try:
            async for event in events_of(chunks):
                if event.event in (None, "", "message") and event.data.strip():
                    put_event(session.queue, event.data)
        except ValueError as error:
            _log.warning("bridged event stream unreadable: %s", error)
        finally:
            await chunks.aclose()


def errors_for(body: bytes, response: Response) -> list[object]:
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


def header_of(response: Response | StreamResponse, name: str) -> str | None:
    return Headers(response.headers).get(name)
