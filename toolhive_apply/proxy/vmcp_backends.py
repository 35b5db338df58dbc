"""The gateway's MCP client for one backend: one shared streamable-HTTP session, re-opened when the backend forgets it.

Each request goes out with the gateway's own id and comes back with the client's; an answer may be JSON or an SSE
stream, whose notifications (progress, log messages) are handed to ``on_message`` while the answer is awaited. A
request that is cancelled (the client gave up, or the gateway's timeout struck) is cancelled at the backend too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final, Protocol

from toolhive_apply.proxy.httpclient import UpstreamError, UpstreamResponse, UpstreamUrl, send_request
from toolhive_apply.proxy.jsonrpc import LATEST_HANDSHAKE_VERSION, JsonObject, MessageKind, classify
from toolhive_apply.proxy.sse_codec import EventTooLargeError, SseDecoder
from toolhive_apply.proxy.vmcp_config import BackendSpec

MAX_ANSWER_BYTES: Final = 64 * 1024 * 1024
MAX_LIST_PAGES: Final = 100
"""Pages followed per list: a backend whose cursors never end cannot keep the gateway listing forever."""
SESSION_HEADER: Final = "Mcp-Session-Id"
VERSION_HEADER: Final = "MCP-Protocol-Version"
OnMessage = Callable[[JsonObject], None]


class BackendError(Exception):
    """The backend could not be reached, or did not answer as an MCP server; the message says which and how."""


class _SessionLostError(BackendError):
    """The backend answered 404 to our session: it restarted, or it expired the session."""


class Backend(Protocol):
    """What the gateway asks of a backend, whichever way it is reached (HTTP here, stdio in ``vmcp_stdio.py``).
    ``init_result`` is None until connected; the gateway sets it back to None to force a fresh ``connect``."""

    spec: BackendSpec
    init_result: JsonObject | None

    @property
    def capabilities(self) -> dict[str, Any]: ...

    async def connect(self) -> None: ...

    async def request(
        self, method: str, params: JsonObject | None, on_message: OnMessage | None = None
    ) -> JsonObject: ...

    async def list_all(self, method: str, key: str) -> tuple[JsonObject, ...]: ...

    async def notify(self, method: str, params: JsonObject) -> None: ...


async def list_pages(backend: Backend, method: str, key: str) -> tuple[JsonObject, ...]:
    """Every item of a paginated list (``tools/list`` and its kin), following ``nextCursor``."""
    items: list[JsonObject] = []
    cursor: object = None
    for _ in range(MAX_LIST_PAGES):
        answer = await backend.request(method, {"cursor": cursor} if cursor is not None else None)
        result = answer.get("result")
        if not isinstance(result, dict) or not isinstance(result.get(key), list):
            raise BackendError(f"{method}: {error_text(answer)}")
        items.extend(item for item in result[key] if isinstance(item, dict))
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            return tuple(items)
    raise BackendError(f"{method}: more than {MAX_LIST_PAGES} pages")


class BackendClient:
    def __init__(self, spec: BackendSpec, client_name: str) -> None:
        self.spec = spec
        self.url = UpstreamUrl.parse(spec.url)
        self._client_name = client_name
        self._ids = itertools.count(1)
        self._session: str | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self.init_result: JsonObject | None = None

    @property
    def capabilities(self) -> dict[str, Any]:
        caps = (self.init_result or {}).get("capabilities")
        return caps if isinstance(caps, dict) else {}

    async def connect(self) -> None:
        """A fresh session: ``initialize`` then ``notifications/initialized``."""
        async with self._connecting:
            self._session = None
            params = {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": self._client_name, "version": "1"},
            }
            message = {"jsonrpc": "2.0", "id": next(self._ids), "method": "initialize", "params": params}
            answer, session = await self._post(message, None)
            if answer is None or not isinstance(answer.get("result"), dict):
                raise BackendError(f"initialize failed: {error_text(answer)}")
            self.init_result = answer["result"]
            self._session = session
            await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, None)

    async def request(self, method: str, params: JsonObject | None, on_message: OnMessage | None = None) -> JsonObject:
        """The backend's answer (``result`` or ``error``) to one request; re-initializes once if the session is lost."""
        for _ in range(2):
            if self.init_result is None:
                await self.connect()
            message: JsonObject = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
            if params is not None:
                message["params"] = params
            try:
                answer, _ = await self._post(message, on_message)
            except _SessionLostError:
                self.init_result = None
                continue
            except asyncio.CancelledError:
                self._cancel_later(message["id"])
                raise
            if answer is None:
                raise BackendError(f"{method}: the backend sent no answer")
            return answer
        raise BackendError(f"{method}: the backend lost the session twice")

    async def list_all(self, method: str, key: str) -> tuple[JsonObject, ...]:
        return await list_pages(self, method, key)

    async def notify(self, method: str, params: JsonObject) -> None:
        if self._session is not None:
            with contextlib.suppress(BackendError):
                await self._post({"jsonrpc": "2.0", "method": method, "params": params}, None)

    def _cancel_later(self, request_id: object) -> None:
        params = {"requestId": request_id, "reason": "cancelled by the gateway's client or timeout"}
        task = asyncio.get_running_loop().create_task(self.notify("notifications/cancelled", params))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def _headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        if self._session is not None:
            headers.append((SESSION_HEADER, self._session))
        version = (self.init_result or {}).get("protocolVersion")
        if isinstance(version, str) and version.isascii() and version.isprintable() and len(version) < 40:
            headers.append((VERSION_HEADER, version))
        return headers

    async def _post(self, message: JsonObject, on_message: OnMessage | None) -> tuple[JsonObject | None, str | None]:
        """Send one message; the answer to it (None for a notification) and the session id the backend named."""
        body = json.dumps(message, separators=(",", ":")).encode()
        try:
            response = await send_request(self.url, "POST", self.url.target(), self._headers(), body)
        except UpstreamError as error:
            raise BackendError(str(error)) from None
        try:
            session = response.headers.get(SESSION_HEADER)
            if response.status == HTTPStatus.NOT_FOUND and self._session is not None:
                raise _SessionLostError("session not found")
            if response.status == HTTPStatus.ACCEPTED or "id" not in message:
                return None, session
            if response.content_type == "text/event-stream":
                return await _answer_from_stream(response, message["id"], on_message), session
            answer = _decode(await response.read(MAX_ANSWER_BYTES))
        except UpstreamError as error:
            raise BackendError(str(error)) from None
        finally:
            await response.close()
        if answer is None:
            raise BackendError(f"HTTP {response.status} without a JSON-RPC answer")
        if response.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            # a workload proxy whose server is down answers 502/503: the backend is unavailable, not just this call
            raise BackendError(f"HTTP {response.status}: {error_text(answer)}")
        return answer, session


_pending: set[asyncio.Task[None]] = set()


def _decode(text: bytes | str) -> JsonObject | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _answer_from_stream(
    response: UpstreamResponse, request_id: object, on_message: OnMessage | None
) -> JsonObject:
    decoder = SseDecoder()
    try:
        async for chunk in response.chunks():
            for event in decoder.feed(chunk):
                message = _decode(event.data)
                if message is None:
                    continue
                kind = classify(message)
                if kind is MessageKind.RESPONSE and message.get("id") == request_id:
                    return message
                if kind is MessageKind.NOTIFICATION and on_message is not None:
                    on_message(message)
    except EventTooLargeError as error:
        raise BackendError(str(error)) from None
    raise BackendError("the backend's event stream ended without an answer")


def error_text(answer: JsonObject | None) -> str:
    error = (answer or {}).get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return message[:200]
    return "no valid result"
