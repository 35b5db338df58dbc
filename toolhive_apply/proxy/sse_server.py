"""The legacy HTTP+SSE transport (MCP 2024-11-05, ToolHive ``proxy_mode: sse``) in front of the shared stdio session.

GET ``/sse`` opens a session whose first event, ``endpoint``, names ``/messages?session_id=...``; clients POST their
messages there (202 Accepted) and every reply arrives on the event stream. The session ends with the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, rpc_error
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST
from toolhive_apply.proxy.sessions import ClientSession, Reply, SessionHub
from toolhive_apply.proxy.sse_codec import ServerSentEvent, encode_event
from toolhive_apply.proxy.streamable import SSE_HEADERS, is_json, parse_messages, session_events, unsupported_media_type

SSE_PATH: Final = "/sse"
MESSAGES_PATH: Final = "/messages"


class SseFrontend:
    def __init__(self, hub: SessionHub) -> None:
        self._hub = hub
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, request: Request) -> Response | StreamResponse:
        path = request.path.rstrip("/")
        if path == SSE_PATH:
            if request.method != "GET":
                return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET")])
            return self._open()
        if path == MESSAGES_PATH:
            if request.method != "POST":
                return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "POST")])
            return self._post(request)
        return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; the SSE endpoint is {SSE_PATH}")

    def _open(self) -> StreamResponse:
        session = self._hub.create()
        return StreamResponse(HTTPStatus.OK, list(SSE_HEADERS), self._events(session))

    async def _events(self, session: ClientSession) -> AsyncGenerator[bytes, None]:
        endpoint = f"{MESSAGES_PATH}?session_id={session.id}"
        try:
            yield encode_event(ServerSentEvent(endpoint, event="endpoint"))
            async for chunk in session_events(session):
                yield chunk
        finally:
            self._hub.close(session.id)

    def _post(self, request: Request) -> Response:
        session_id = request.query.get("session_id") or request.query.get("sessionId")
        if not session_id:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "session_id query parameter is required")
        session = self._hub.get(session_id)
        if session is None:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Could not find session")
        if not is_json(request):
            return unsupported_media_type()
        parsed = parse_messages(request.body)
        if isinstance(parsed, Response):
            return parsed
        messages, batch = parsed
        # Replies go to the stream, so the POST is acknowledged at once and the work continues in a task.
        task = asyncio.create_task(self._process(session, messages, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Response(HTTPStatus.ACCEPTED, [("Content-Type", "text/plain")], b"Accepted")

    async def _process(self, session: ClientSession, messages: list[object], batch: bool) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            results = await asyncio.gather(*(self._hub.handle(session.id, session, m) for m in messages))
            replies = [r.message for r in results if isinstance(r, Reply)]
            if replies:
                session.deliver(replies if batch else replies[0], force=True)
