"""Client sessions in front of the shared stdio server, and what each client message turns into.

Both HTTP front-ends (streamable HTTP and legacy SSE) hand client messages to one ``SessionHub``. It answers
``initialize`` and ``ping`` itself from the server's own initialize result, swallows repeated
``notifications/initialized``, translates cancellations, applies the tool policy and forwards everything else.
Server notifications go to the session they concern (progress) or to every session with an open stream (the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from toolhive_apply.proxy.config import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL
from toolhive_apply.proxy.health import Health
from toolhive_apply.proxy.jsonrpc import (
    INVALID_REQUEST,
    SERVER_UNAVAILABLE,
    JsonObject,
    MessageKind,
    RequestId,
    classify,
    envelope_problem,
    error_response,
    is_request_id,
    method_of,
    negotiate_version,
    params_of,
    result_response,
)
from toolhive_apply.proxy.mux import DuplicateRequestError
from toolhive_apply.proxy.session_table import SessionTable
from toolhive_apply.proxy.sse_stream import put_dropping_oldest
from toolhive_apply.proxy.stdio_backend import (
    BackendUnavailableError,
    RequestAbandonedError,
)
from toolhive_apply.proxy.tools import ToolPolicy

OUTBOX_SIZE: Final = 1000
REQUEST_CANCELLED: Final = -32800  # LSP's code, used by several MCP implementations for cancelled requests

_log = logging.getLogger(__name__)
Outgoing = JsonObject | list[JsonObject]


class HubBackend(Protocol):
    """What the hub needs of what it fronts: the stdio backends, and the vMCP gateway."""

    listener: Callable[[str | None, JsonObject], None]

    @property
    def init_result(self) -> JsonObject | None: ...

    async def ready(self) -> bool: ...

    async def request(self, client: str, message: JsonObject) -> JsonObject: ...

    async def notify(self, message: JsonObject) -> None: ...

    def cancel(self, client: str, request_id: RequestId, reason: str) -> None: ...

    def forget_client(self, client: str) -> None: ...


@dataclass(eq=False)
class ClientSession:
    """One MCP client. ``listeners`` counts open event streams; messages are queued only while one is open."""

    id: str
    created: float = field(default_factory=time.time)
    outbox: asyncio.Queue[Outgoing | None] = field(default_factory=lambda: asyncio.Queue(OUTBOX_SIZE))
    listeners: int = 0
    protocol_version: str | None = None
    initialized: bool = False
    closed: bool = False

    def deliver(self, message: Outgoing, *, force: bool = False) -> None:
        """Queue a message for the session's stream; the oldest is dropped when a slow client lets it fill up."""
        if self.closed or (self.listeners == 0 and not force):
            return
        put_dropping_oldest(self.outbox, message, f"session {self.id[:8]}")


@dataclass(frozen=True, slots=True)
class Reply:
    message: JsonObject
    unavailable: bool = False
    """The server could not be reached: HTTP front-ends answer 503 rather than 200."""


class SessionHub:
    """Client sessions are bounded (``max_sessions``, least recently used ended first) and end after ``session_ttl``
    seconds without a request while no stream is open (ToolHive's session TTL)."""

    def __init__(
        self,
        backend: HubBackend,
        policy: ToolPolicy,
        health: Health,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self._backend = backend
        self._policy = policy
        self._health = health
        self.sessions: SessionTable[ClientSession] = SessionTable(
            session_ttl, max_sessions, on_evict=self._end, busy=lambda s: s.listeners > 0
        )
        backend.listener = self.on_server_message

    def create(self) -> ClientSession:
        session = ClientSession(secrets.token_hex(16))
        self.sessions.add(session.id, session)
        return session

    def get(self, session_id: str) -> ClientSession | None:
        return self.sessions.get(session_id)

    def touch(self, session_id: str) -> None:
        self.sessions.touch(session_id)

    def close(self, session_id: str) -> None:
        session = self.sessions.pop(session_id)
        self._end(session_id, session)

    def _end(self, session_id: str, session: ClientSession | None = None) -> None:
        if session is not None:
            session.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                session.outbox.put_nowait(None)  # wakes up and ends the session's streams
        self._backend.forget_client(session_id)

    def on_server_message(self, client: str | None, message: JsonObject) -> None:
        if client is None:
            for session in list(self.sessions.values()):
                session.deliver(message)
        elif (target := self.sessions.get(client)) is not None:
            target.deliver(message)

    async def handle(self, key: str, session: ClientSession | None, message: object) -> Reply | None:
        """The reply to one client message (None for notifications and responses). ``key`` names the client in
        the multiplexer: the session id, or a one-off key for requests sent without a session."""
        problem = envelope_problem(message)
        if problem is not None or not isinstance(message, dict):
            request_id = message.get("id") if isinstance(message, dict) else None
            safe_id = request_id if is_request_id(request_id) else None
            return Reply(error_response(safe_id, INVALID_REQUEST, f"Invalid Request: {problem}"))
        kind = classify(message)
        if kind is MessageKind.RESPONSE:
            _log.debug("dropping a client response: the proxy never forwards server requests to clients")
            return None
        if kind is MessageKind.NOTIFICATION:
            await self._notify(key, session, message)
            return None
        method = method_of(message)
        if method == "initialize":
            return await self._initialize(session, message)
        if method == "ping":
            return Reply(result_response(message["id"], {}))
        if method == "tools/call":
            forwarded, refusal = self._policy.rewrite_call(message)
            if refusal is not None or forwarded is None:
                return Reply(refusal or error_response(message["id"], INVALID_REQUEST, "refused"))
            message = forwarded
        return await self._forward(key, message)

    async def _forward(self, key: str, message: JsonObject) -> Reply:
        request_id = message["id"]
        try:
            response = await self._backend.request(key, message)
        except BackendUnavailableError as error:
            return Reply(error_response(request_id, SERVER_UNAVAILABLE, str(error)), unavailable=True)
        except DuplicateRequestError as error:
            return Reply(error_response(request_id, INVALID_REQUEST, str(error)))
        except RequestAbandonedError as error:
            return Reply(error_response(request_id, REQUEST_CANCELLED, f"request cancelled: {error}"))
        if method_of(message) == "tools/list":
            response = self._policy.rewrite_list_result(response)
        return Reply(response)

    async def _initialize(self, session: ClientSession | None, message: JsonObject) -> Reply:
        """Answer from the server's own initialize result: the server is initialized once, by the proxy."""
        ready = await self._backend.ready()
        init = self._backend.init_result
        if not ready or init is None:
            reason = f"MCP server unavailable: {self._health.detail}"
            return Reply(error_response(message["id"], SERVER_UNAVAILABLE, reason), unavailable=True)
        version = negotiate_version(params_of(message).get("protocolVersion"), str(init.get("protocolVersion")))
        result: JsonObject = {
            "protocolVersion": version,
            "capabilities": init.get("capabilities") or {},
            "serverInfo": init.get("serverInfo") or {"name": "unknown", "version": "0"},
        }
        if isinstance(init.get("instructions"), str):
            result["instructions"] = init["instructions"]
        if session is not None:
            session.protocol_version = version
        return Reply(result_response(message["id"], result))

    async def _notify(self, key: str, session: ClientSession | None, message: JsonObject) -> None:
        method = method_of(message)
        if method == "notifications/initialized":
            if session is not None:
                session.initialized = True  # the server got its one notifications/initialized from the proxy
            return
        if method == "notifications/cancelled":
            params = params_of(message)
            request_id = params.get("requestId")
            if is_request_id(request_id):
                self._backend.cancel(key, request_id, str(params.get("reason") or "cancelled by the client"))
            return
        await self._backend.notify(message)
