"""A small asyncio HTTP/1.1 server: keep-alive, request size limit, early guard, streamed responses.

It notices a client that hangs up while its request is being handled or its event stream is open, and cancels the
work, so abandoned tool calls are cancelled upstream and SSE sessions are cleaned up. Routing lives in ``app.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

from toolhive_apply.proxy import PROXY_NAME
from toolhive_apply.proxy.httpwire import (
    CRLF,
    LAST_CHUNK,
    MAX_HEAD_BYTES,
    BodyTooLargeError,
    Headers,
    HttpWireError,
    content_length,
    encode_chunk,
    encode_head,
    is_chunked,
    parse_head,
    read_body,
    read_head,
)
from toolhive_apply.proxy.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, error_response
from toolhive_apply.proxy.principal import Principal

IDLE_TIMEOUT: Final = 120.0
"""Seconds a kept-alive connection may sit without a new request."""
BODY_TIMEOUT: Final = 60.0
"""Seconds allowed to receive a request body once its head has arrived."""

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: Headers
    body: bytes = b""
    principal: Principal | None = None
    """The verified caller (``authn.py``); None when the endpoint is anonymous."""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query_string(self) -> str:
        return urlsplit(self.target).query

    @property
    def query(self) -> Mapping[str, str]:
        return dict(reversed(parse_qsl(self.query_string, keep_blank_values=True)))  # first value wins


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class StreamResponse:
    """A response whose body is produced over time (SSE). The generator is closed when the client goes away."""

    status: int
    headers: list[tuple[str, str]]
    chunks: AsyncGenerator[bytes, None]


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
Guard = Callable[[str, str, Headers], Response | None]
"""Called with method, path and headers before the body is read; a response rejects the request."""


def json_response(status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json"), *(headers or [])], body)


def rpc_error(status: int, code: int, message: str, request_id: object = None) -> Response:
    """An HTTP error whose body is a JSON-RPC error, which MCP clients surface verbatim."""
    return json_response(status, error_response(request_id, code, message))


class _Connection:
    """Per-connection state: a byte read ahead by the hang-up watcher belongs to the next request."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.prefix = b""

    async def watch(self, work: Coroutine[Any, Any, T]) -> tuple[bool, T | None]:
        """Run ``work`` until it finishes or the client hangs up (then it is cancelled): ``(finished, result)``."""
        task = asyncio.ensure_future(work)
        if self.prefix:  # a pipelined request already started: no way to watch, and no need
            return True, await task
        watcher = asyncio.ensure_future(self.reader.read(1))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not task.done():
                data = b"" if watcher.exception() else watcher.result()
                if not data:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    return False, None
            return True, await task
        finally:
            await self._stop(watcher)

    async def _stop(self, watcher: asyncio.Future[bytes]) -> None:
        if not watcher.done():
            watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            data = await watcher
            if data:
                self.prefix += data


class HttpServer:
    """Serves ``handler`` on one TCP port. ``close()`` stops listening and ends every open connection."""

    def __init__(self, handler: Handler, *, guard: Guard, max_body_bytes: int) -> None:
        self._handler = handler
        self._guard = guard
        self._max_body = max_body_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD_BYTES, reuse_address=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = _Connection(reader, writer)
        try:
            while await self._one_exchange(connection):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass  # the peer went away or broke framing: the connection ends, nothing more is read from it
        except Exception as error:  # noqa: BLE001 - one connection's failure must not reach the event loop's handler
            _log.error("connection handler failed: %s", _brief(error))
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_exchange(self, connection: _Connection) -> bool:
        """Read one request and answer it; whether the connection may carry another one."""
        try:
            head = connection.prefix + await asyncio.wait_for(read_head(connection.reader), IDLE_TIMEOUT)
        except (asyncio.IncompleteReadError, TimeoutError):
            return False
        except HttpWireError as error:
            await self._send(connection, rpc_error(431, INVALID_REQUEST, str(error)), keep_alive=False)
            return False
        connection.prefix = b""
        while head.startswith(CRLF):  # RFC 9112 §2.2: ignore empty lines before a request line
            head = head[2:]
        request_or_error = await self._read_request(connection, head)
        if isinstance(request_or_error, Response):
            await self._send(connection, request_or_error, keep_alive=False)
            return False
        request = request_or_error
        keep_alive = _keep_alive(head, request.headers)
        finished, response = await connection.watch(self._handle(request))
        if not finished or response is None:
            return False
        if isinstance(response, StreamResponse):
            return await self._stream(connection, response) and keep_alive
        await self._send(connection, response, keep_alive=keep_alive, head_only=request.method == "HEAD")
        return keep_alive

    async def _read_request(self, connection: _Connection, head: bytes) -> Request | Response:
        """Parse the head, apply the guard and the size limit, and read the body."""
        try:
            start_line, headers = parse_head(head)
            method, target, version = _request_line(start_line)
            _check_framing(version, headers)
            early = self._guard(method, urlsplit(target).path, headers)
            if early is not None:
                return early
            _check_size(content_length(headers), self._max_body)
            if headers.has_token("expect", "100-continue"):
                connection.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await asyncio.wait_for(
                read_body(connection.reader, headers, until_eof=False, limit=self._max_body), BODY_TIMEOUT
            )
        except BodyTooLargeError as error:
            return rpc_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, INVALID_REQUEST, str(error))
        except (HttpWireError, ValueError) as error:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"bad HTTP request: {error}")
        return Request(method, target, headers, body)

    async def _handle(self, request: Request) -> Response | StreamResponse:
        try:
            return await self._handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the error boundary: a bug must cost one request, not the connection
            # One line per failure: a traceback per request would let any client fill the container log.
            _log.error("internal error handling %s %s: %s", request.method, request.path[:200], _brief(error))
            _log.debug("traceback", exc_info=True)
            return rpc_error(HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR, "internal proxy error")

    async def _send(
        self, connection: _Connection, response: Response, *, keep_alive: bool, head_only: bool = False
    ) -> None:
        headers = [
            *response.headers,
            ("Content-Length", str(len(response.body))),
            ("Server", PROXY_NAME),
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]
        connection.writer.write(encode_head(_status_line(response.status), headers))
        if not head_only:
            connection.writer.write(response.body)
        await connection.writer.drain()

    async def _stream(self, connection: _Connection, response: StreamResponse) -> bool:
        """Write a streamed response; False when the client went away before it ended."""
        headers = [*response.headers, ("Transfer-Encoding", "chunked"), ("Server", PROXY_NAME)]
        connection.writer.write(encode_head(_status_line(response.status), headers))

        async def pump() -> None:
            async for chunk in response.chunks:
                connection.writer.write(encode_chunk(chunk))
                await connection.writer.drain()

        try:
            await connection.writer.drain()
            finished, _ = await connection.watch(pump())
        except (ConnectionError, RuntimeError):
            finished = False
        finally:
            await response.chunks.aclose()
        if finished:
            connection.writer.write(LAST_CHUNK)
            await connection.writer.drain()
        return finished


_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ORIGIN_FORM: Final = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
"""RFC 9112 origin-form: an absolute path and query of RFC 3986 characters, percent-escapes well formed. Not
absolute-form (the proxy is no forward proxy), not ``//host`` (which URL parsers read as an authority), no ``#``."""
VERSIONS: Final = ("HTTP/1.1", "HTTP/1.0")
SINGLETON_HEADERS: Final = (
    "host",
    "content-type",
    "authorization",
    "origin",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-name",
    "mcp-method",
    "last-event-id",
)
"""Headers that may appear once: with two, the proxy would decide on the first and a server might act on the last
(or on both joined)."""


def _request_line(start_line: str) -> tuple[str, str, str]:
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise HttpWireError("malformed request line")
    method, target, version = parts
    if version not in VERSIONS or not _METHOD.fullmatch(method):
        raise HttpWireError(f"unsupported request line {start_line[:80]!r}")
    if target == "*" and method == "OPTIONS":
        return method, target, version
    if not _ORIGIN_FORM.fullmatch(target) or target.startswith("//"):
        raise HttpWireError(f"unsupported request target {target[:80]!r}")
    return method, target, version


def _check_framing(version: str, headers: Headers) -> None:
    """What RFC 9112 makes a 400: a missing or repeated Host on HTTP/1.1, chunked framing on HTTP/1.0 (§6.1), and
    ambiguous framing (checked by ``content_length`` and ``is_chunked``)."""
    hosts = headers.get_all("host")
    for name in SINGLETON_HEADERS:
        if len(headers.get_all(name)) > 1:
            raise HttpWireError(f"more than one {name} header")
    if version == "HTTP/1.1" and not hosts:
        raise HttpWireError("HTTP/1.1 request without a Host header")
    if version == "HTTP/1.0" and "transfer-encoding" in headers:
        raise HttpWireError("Transfer-Encoding in an HTTP/1.0 request")
    is_chunked(headers)
    content_length(headers)


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"


def _check_size(length: int | None, limit: int) -> None:
    """Refuse a declared body over the limit before reading it (chunked bodies are counted while read)."""
    if length is not None and length > limit:
        raise BodyTooLargeError(f"request body of {length} bytes exceeds {limit}")


def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    return f"HTTP/1.1 {status} {reason}"


def _keep_alive(head: bytes, headers: Headers) -> bool:
    """HTTP/1.1 keeps the connection unless told to close. HTTP/1.0 never does: its keep-alive is a pre-standard
    extension that proxies disagree on, and one exchange per connection leaves nothing to disagree about."""
    http10 = head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0")
    return not http10 and not headers.has_token("connection", "close")
