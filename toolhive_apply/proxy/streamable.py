"""The streamable-HTTP transport (MCP 2025-03-26 / 2025-06-18) in front of the shared stdio session.

POST ``/mcp`` answers requests with JSON (202 when a POST holds only notifications or responses). ``initialize``
issues an ``Mcp-Session-Id`` that later requests must carry (unknown ids get 404, so clients re-initialize). GET opens
an SSE stream of server notifications for the session; DELETE ends the session. Requests without a session are
accepted only for methods outside the session-bound families, so a client probing a newer method such as
``server/discover`` gets the server's own JSON-RPC error and falls back to ``initialize``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncGenerator, Callable
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.jsonrpc import (
    HANDSHAKE_VERSIONS,
    INVALID_REQUEST,
    PARSE_ERROR,
    MessageKind,
    classify,
    method_of,
)
from toolhive_apply.proxy.sessions import ClientSession, Reply, SessionHub
from toolhive_apply.proxy.sse_codec import KEEPALIVE
from toolhive_apply.proxy.sse_stream import queued_events

SESSION_HEADER: Final = "Mcp-Session-Id"
VERSION_HEADER: Final = "MCP-Protocol-Version"
SESSION_BOUND_PREFIXES: Final = ("tools/", "resources/", "prompts/", "completion/", "logging/")
"""Method families that only make sense inside an initialized session; sent without one they get 400."""
SSE_HEADERS: Final = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]


def unsupported_media_type() -> Response:
    return rpc_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, INVALID_REQUEST, "Content-Type must be application/json")


def _missing_session() -> Response:
    return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"Bad Request: {SESSION_HEADER} header is required")


def parse_messages(body: bytes) -> tuple[list[object], bool] | Response:
    """The messages of a POST body and whether it was a batch, or the 400 answer for an unreadable body."""
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError as error:
        return rpc_error(HTTPStatus.BAD_REQUEST, PARSE_ERROR, f"Parse error: {error}")
    if isinstance(payload, list):
        if not payload:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "empty batch")
        return payload, True
    return [payload], False


def is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    return content_type is None or content_type.split(";")[0].strip().lower() == "application/json"


class StreamableFrontend:
    def __init__(self, hub: SessionHub, path: str = "/mcp") -> None:
        self._hub = hub
        self._path = path

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.path.rstrip("/") != self._path:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; the MCP endpoint is {self._path}")
        if request.method == "POST":
            return await self._post(request)
        if request.method == "GET":
            return self._get(request)
        if request.method == "DELETE":
            return self._delete(request)
        return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, POST, DELETE")])

    async def _post(self, request: Request) -> Response:
        if not is_json(request):
            return unsupported_media_type()
        parsed = parse_messages(request.body)
        if isinstance(parsed, Response):
            return parsed
        messages, batch = parsed
        if any(isinstance(m, dict) and method_of(m) == "initialize" for m in messages):
            if batch:
                return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "initialize must not be part of a batch")
            return await self._initialize(messages[0])
        located = self._locate(request, messages)
        if isinstance(located, Response):
            return located
        key, session = located
        try:
            replies = [r for r in await asyncio.gather(*(self._hub.handle(key, session, m) for m in messages)) if r]
        finally:
            if session is None:
                self._hub.close(key)
        return _reply_response(replies, batch)

    async def _initialize(self, message: object) -> Response:
        session = self._hub.create()
        reply = await self._hub.handle(session.id, session, message)
        if reply is None or reply.unavailable or "error" in reply.message:
            self._hub.close(session.id)
            return _reply_response([reply] if reply else [], batch=False)
        return json_response(HTTPStatus.OK, reply.message, [(SESSION_HEADER, session.id)])

    def _locate(self, request: Request, messages: list[object]) -> tuple[str, ClientSession | None] | Response:
        """The multiplexer key and session for a POST, or the error answer (400 missing, 404 unknown session)."""
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            if all(_sessionless(m) for m in messages):
                return f"nosession-{secrets.token_hex(8)}", None
            return _missing_session()
        session = self._hub.get(session_id)
        if session is None:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Session not found")
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_VERSIONS:
            supported = ", ".join(HANDSHAKE_VERSIONS)
            message = f"Bad Request: unsupported {VERSION_HEADER} {version!r}; supported: {supported}"
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, message)
        return session_id, session

    def _get(self, request: Request) -> Response | StreamResponse:
        session = self._session_of(request)
        if isinstance(session, Response):
            return session
        if not request.headers.has_token("accept", "text/event-stream"):
            return rpc_error(HTTPStatus.NOT_ACCEPTABLE, INVALID_REQUEST, "Accept must include text/event-stream")
        events = session_events(session, on_end=lambda: self._hub.touch(session.id))
        return StreamResponse(HTTPStatus.OK, [*SSE_HEADERS, (SESSION_HEADER, session.id)], events)

    def _delete(self, request: Request) -> Response:
        session = self._session_of(request)
        if isinstance(session, Response):
            return session
        self._hub.close(session.id)
        return Response(HTTPStatus.OK)

    def _session_of(self, request: Request) -> ClientSession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return _missing_session()
        session = self._hub.get(session_id)
        return session if session is not None else rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Session not found")


def _sessionless(message: object) -> bool:
    """Whether a message may be sent without a session: a request outside the session-bound method families."""
    if not isinstance(message, dict) or classify(message) is not MessageKind.REQUEST:
        return False
    return not method_of(message).startswith(SESSION_BOUND_PREFIXES)


def _reply_response(replies: list[Reply], batch: bool) -> Response:
    if not replies:
        return Response(HTTPStatus.ACCEPTED)
    if batch:
        return json_response(HTTPStatus.OK, [r.message for r in replies])
    if replies[0].unavailable:
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, replies[0].message, [("Retry-After", "1")])
    return json_response(HTTPStatus.OK, replies[0].message)


async def session_events(
    session: ClientSession, on_end: Callable[[], None] = lambda: None
) -> AsyncGenerator[bytes, None]:
    """The session's server messages as SSE, with keep-alive comments, until the session or the client ends;
    ``on_end`` runs when the stream ends (the session's idle time starts then, not when it was opened)."""
    session.listeners += 1
    try:
        yield KEEPALIVE  # sends the response head at once, so the client knows the stream is open
        async for chunk in queued_events(session.outbox, _compact_json, lambda: session.closed):
            yield chunk
    finally:
        session.listeners -= 1
        on_end()


def _compact_json(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))
