"""Own the single stdio session with the MCP server: attach, initialize once, multiplex, re-attach after restarts.

The server behind stdio has one session, so the proxy initializes it itself (declaring no client capabilities, since
no single HTTP client could answer the server's sampling/roots/elicitation requests) and shares it. When the attach
stream ends (container restarted or stopped) pending requests fail at once and the proxy re-attaches with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Final

from toolhive_apply.proxy import PROXY_NAME, PROXY_VERSION
from toolhive_apply.proxy.config import ProxyConfig
from toolhive_apply.proxy.docker_attach import (
    AttachedStream,
    DockerApiError,
    DockerEndpoint,
    attach_container,
    inspect_container,
)
from toolhive_apply.proxy.framing import FramingError, LineSplitter, StreamDemuxer, StreamType
from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import (
    LATEST_HANDSHAKE_VERSION,
    METHOD_NOT_FOUND,
    JsonObject,
    MessageKind,
    RequestId,
    classify,
    error_response,
    method_of,
    result_response,
)
from toolhive_apply.proxy.mux import IdMultiplexer, Pending, cancel_notice

READY_WAIT: Final = 5.0
"""Seconds a request waits for a server that is (re)starting before it gets a 'server unavailable' error."""
INIT_TIMEOUT: Final = 60.0
BACKOFF_MIN: Final = 0.25
BACKOFF_MAX: Final = 2.0
"""Cap of the re-attach backoff; one inspect call every 2 s while the container is down costs nothing."""
INTERNAL_CLIENT: Final = ""
"""Multiplexer client key of the proxy's own requests (initialize)."""

_log = logging.getLogger(__name__)
ServerListener = Callable[[str | None, JsonObject], None]
"""Receives server messages for clients: (session id, message), or (None, message) for every client."""


class BackendUnavailableError(Exception):
    """The MCP server cannot take requests now (detached, restarting, not initialized)."""


class RequestAbandonedError(Exception):
    """The request was cancelled by its client or its session ended before the server answered."""


class StdioBackend:
    """The attach/initialize/re-attach loop plus request routing. ``listener`` gets notifications for clients."""

    def __init__(self, config: ProxyConfig, health: Health) -> None:
        assert config.container is not None
        self._endpoint = DockerEndpoint(config.docker_socket, config.docker_api_version)
        self._container = config.container
        self._health = health
        self._mux: IdMultiplexer[asyncio.Future[JsonObject]] = IdMultiplexer()
        self._stream: AttachedStream | None = None
        self.init_result: JsonObject | None = None
        self.listener: ServerListener = lambda _client, _message: None
        self.attach_count = 0
        self._container_down = False
        """The last look at the container found it stopped or missing: fail requests at once, do not wait."""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Forever: wait for the container, attach, initialize, serve until the stream ends, back off, repeat."""
        backoff = BACKOFF_MIN
        while True:
            try:
                self._container_down = True
                await self._check_container()
                self._container_down = False
                stream = await attach_container(self._endpoint, self._container)
            except DockerApiError as error:
                self._health.set(Status.UNHEALTHY, _hint(str(error)))
            else:
                if await self._serve(stream):
                    backoff = BACKOFF_MIN
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _check_container(self) -> None:
        info = await inspect_container(self._endpoint, self._container)
        state, config = info.get("State") or {}, info.get("Config") or {}
        if not state.get("Running") or state.get("Paused") or state.get("Restarting"):
            raise DockerApiError(f"container {self._container} is not running (status {state.get('Status')!r})")
        if config.get("Tty"):
            raise DockerApiError(f"container {self._container} has a TTY; stdio servers need tty=false")
        if not config.get("OpenStdin"):
            raise DockerApiError(f"container {self._container} was created without stdin open (docker run -i)")

    async def _serve(self, stream: AttachedStream) -> bool:
        """Initialize over a fresh attach and route messages until it ends; whether initialization succeeded."""
        self.attach_count += 1
        self._stream = stream
        reader = asyncio.create_task(self._read(stream))
        initialized = False
        try:
            initialized = await self._initialize(reader)
            if initialized:  # otherwise detach and retry: a server that refused initialize stays unusable
                await reader
        finally:
            self._stream = None
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._fail_pending(f"connection to the MCP server in container {self._container} was lost")
            await stream.close()
            if initialized:
                self._health.set(Status.UNHEALTHY, f"detached from container {self._container}; re-attaching")
        return initialized

    async def _initialize(self, reader: asyncio.Task[None]) -> bool:
        self._health.set(Status.UNHEALTHY, f"attached to container {self._container}; initializing the server")
        request: JsonObject = {
            "jsonrpc": "2.0",
            "id": "initialize",
            "method": "initialize",
            "params": {
                "protocolVersion": LATEST_HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": PROXY_NAME, "version": PROXY_VERSION},
            },
        }
        call = asyncio.create_task(asyncio.wait_for(self._call(INTERNAL_CLIENT, request), INIT_TIMEOUT))
        await asyncio.wait({call, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            return False
        problem = call.exception()
        response = None if problem else call.result()
        result = response.get("result") if response else None
        if not isinstance(result, dict):
            detail = repr(problem) if problem else json.dumps(response)[:500]
            self._health.set(Status.UNHEALTHY, f"initialize failed: {detail}")
            return False
        self.init_result = result
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        info = result.get("serverInfo") or {}
        self._health.set(Status.RUNNING, f"attached to {self._container}; server {info.get('name')} initialized")
        return True

    # ------------------------------------------------------------------ requests from clients

    async def ready(self) -> bool:
        """Whether the server can take requests, waiting up to READY_WAIT while it is being attached/initialized."""
        if self._health.running:
            return True
        if self._container_down:
            return False
        return await self._health.wait_running(READY_WAIT)

    async def request(self, client: str, message: JsonObject) -> JsonObject:
        """Forward a client's request and wait for the server's answer (with the client's own id)."""
        if not await self.ready():
            raise BackendUnavailableError(f"MCP server unavailable: {self._health.detail}")
        return await self._call(client, message)

    async def _call(self, client: str, message: JsonObject) -> JsonObject:
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        outbound = self._mux.begin(client, message, future)
        try:
            await self._send(outbound)
            return await future
        except asyncio.CancelledError:
            self.cancel(client, message["id"], "the client went away")
            raise
        except (OSError, BackendUnavailableError) as error:
            self._mux.abandon(client, message["id"])
            raise BackendUnavailableError(f"MCP server unavailable: {error}") from None

    async def notify(self, message: JsonObject) -> None:
        """Forward a client notification; dropped while detached (notifications have no answer to fail)."""
        with contextlib.suppress(OSError, BackendUnavailableError):
            await self._send(message)

    def cancel(self, client: str, request_id: RequestId, reason: str) -> None:
        """A client gave up on a request: tell the server (with the proxy's id) and fail the local waiter."""
        pending = self._mux.abandon(client, request_id)
        if pending is not None:
            self._abandon(pending, reason)

    def forget_client(self, client: str) -> None:
        """A session ended: cancel everything it still waits for."""
        for pending in self._mux.abandon_client(client):
            self._abandon(pending, "the client session ended")

    def _abandon(self, pending: Pending[asyncio.Future[JsonObject]], reason: str) -> None:
        self._write_nowait(cancel_notice(pending, reason))
        if not pending.waiter.done():
            pending.waiter.set_exception(RequestAbandonedError(reason))

    def _fail_pending(self, reason: str) -> None:
        for pending in self._mux.drain():
            if not pending.waiter.done():
                pending.waiter.set_exception(BackendUnavailableError(reason))

    # ------------------------------------------------------------------ wire

    async def _send(self, message: JsonObject) -> None:
        stream = self._stream
        if stream is None:
            raise BackendUnavailableError(f"not attached to container {self._container}")
        stream.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await stream.writer.drain()

    def _write_nowait(self, message: JsonObject) -> None:
        if self._stream is not None and not self._stream.writer.is_closing():
            self._stream.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _read(self, stream: AttachedStream) -> None:
        """Demultiplex the attach stream until it ends; stdout lines are JSON-RPC, stderr lines are logged."""
        demuxer = StreamDemuxer()
        stdout, stderr = LineSplitter(), LineSplitter(max_line_bytes=64 * 1024)
        try:
            while chunk := await stream.reader.read(65536):
                for kind, payload in demuxer.feed(chunk):
                    if kind is StreamType.STDOUT:
                        for line in stdout.feed(payload):
                            self._on_line(line)
                    else:
                        for line in stderr.feed(payload):
                            _log.info("server stderr: %s", line[:2000].decode("utf-8", errors="replace"))
        except FramingError as error:
            _log.error("attach stream of %s is unusable: %s", self._container, error)
        except (OSError, asyncio.IncompleteReadError) as error:
            _log.warning("attach stream of %s failed: %r", self._container, error)
        if stdout.dropped:
            _log.error("dropped %d oversized lines from the server's stdout", stdout.dropped)

    def _on_line(self, line: bytes) -> None:
        try:
            payload = json.loads(line)
        except ValueError:
            _log.warning("server wrote a non-JSON line to stdout: %s", line[:200].decode("utf-8", errors="replace"))
            return
        for message in payload if isinstance(payload, list) else [payload]:
            self._dispatch(message)

    def _dispatch(self, message: JsonObject) -> None:
        kind = classify(message)
        if kind is MessageKind.RESPONSE:
            routed = self._mux.complete(message)
            if routed is None:
                _log.debug("response for unknown or abandoned id %r dropped", message.get("id"))
            elif not routed[0].waiter.done():
                routed[0].waiter.set_result(routed[1])
        elif kind is MessageKind.NOTIFICATION:
            self._route_notification(message)
        elif kind is MessageKind.REQUEST:
            self._answer_server_request(message)
        else:
            _log.warning("server sent an invalid JSON-RPC message: %s", json.dumps(message)[:200])

    def _route_notification(self, message: JsonObject) -> None:
        method = method_of(message)
        if method == "notifications/progress":
            routed = self._mux.route_progress(message)
            if routed is not None:
                self.listener(routed[0], routed[1])
        elif method != "notifications/cancelled":  # the server cancelling its own requests: none were forwarded
            self.listener(None, message)

    def _answer_server_request(self, message: JsonObject) -> None:
        """Server-to-client requests: ping is answered here; nothing else can be, since clients are shared."""
        method = method_of(message)
        if method == "ping":
            self._write_nowait(result_response(message["id"], {}))
            return
        _log.warning("server request %s refused: it cannot be routed to one of several shared clients", method)
        reason = f"{method} is not available: the proxy shares this server between clients and declared no capability"
        self._write_nowait(error_response(message["id"], METHOD_NOT_FOUND, reason))


def _hint(message: str) -> str:
    if "Permission denied" in message or "PermissionError" in message:
        return f"{message} (run the proxy container with group_add set to the Docker socket's group id)"
    if "No such file" in message or "FileNotFoundError" in message:
        return f"{message} (bind-mount the Docker socket into the proxy container)"
    return message
