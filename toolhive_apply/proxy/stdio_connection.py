"""One JSON-RPC conversation with one stdio server process over one Docker stream (an attach or a per-client exec).

The proxy initializes the process itself (declaring no client capabilities, since no HTTP client could answer the
server's sampling/roots/elicitation requests), rewrites request ids so several clients can share it (``mux.py``),
routes answers and progress back, answers the server's pings and refuses its other requests. Server notifications
go to ``deliver(client, message)``: ``client`` is the one a progress notification belongs to, None for the rest;
who receives those is the backend's decision (every client, or the only one, or the interested ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Final

from toolhive_apply.proxy import PROXY_NAME, PROXY_VERSION
from toolhive_apply.proxy.docker_attach import AttachedStream
from toolhive_apply.proxy.framing import FramingError, LineSplitter, StreamDemuxer, StreamType
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

INIT_TIMEOUT: Final = 60.0
INTERNAL_CLIENT: Final = ""
"""Multiplexer client key of the proxy's own requests (initialize, re-subscriptions)."""

_log = logging.getLogger("toolhive_apply.proxy.stdio_backend")
ServerListener = Callable[[str | None, JsonObject], None]
"""Receives server messages for clients: (session id, message), or (None, message) for every client."""
_internal_ids = itertools.count(1)


class BackendUnavailableError(Exception):
    """The MCP server cannot take requests now (detached, restarting, not initialized)."""


class RequestAbandonedError(Exception):
    """The request was cancelled by its client or its session ended before the server answered."""


class ServerConnection:
    """Requests out, answers and notifications in, over ``stream``; ``serve`` reads until the stream ends."""

    def __init__(self, stream: AttachedStream, label: str, deliver: ServerListener) -> None:
        self._stream: AttachedStream | None = stream
        self.label = label
        self._deliver = deliver
        self._mux: IdMultiplexer[asyncio.Future[JsonObject]] = IdMultiplexer()
        self.last_used = time.monotonic()

    @property
    def pending(self) -> int:
        return len(self._mux)

    @property
    def open(self) -> bool:
        return self._stream is not None

    async def serve(self, initialized: asyncio.Future[JsonObject]) -> None:
        """Initialize (its result or exception goes to ``initialized``), then route messages until the stream
        ends; pending requests then fail at once."""
        reader = asyncio.create_task(self._read())
        call = asyncio.create_task(asyncio.wait_for(self._initialize(), INIT_TIMEOUT))
        try:
            await asyncio.wait({call, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not call.done():
                _settle(initialized, BackendUnavailableError(f"the output of {self.label} ended during initialize"))
                return
            problem = call.exception()
            _settle(initialized, problem or call.result())
            if problem is None:
                await reader
        finally:
            _settle(initialized, BackendUnavailableError(f"connection to {self.label} was lost"))
            for task in (call, reader):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self.close(f"connection to the MCP server ({self.label}) was lost")

    async def close(self, reason: str) -> None:
        stream, self._stream = self._stream, None
        for pending in self._mux.drain():
            if not pending.waiter.done():
                pending.waiter.set_exception(BackendUnavailableError(reason))
        if stream is not None:
            await stream.close()

    async def _initialize(self) -> JsonObject:
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
        response = await self.call(INTERNAL_CLIENT, request)
        result = response.get("result")
        if not isinstance(result, dict):
            raise BackendUnavailableError(f"initialize failed: {json.dumps(response)[:500]}")
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    # ------------------------------------------------------------------ requests

    async def call(self, client: str, message: JsonObject) -> JsonObject:
        """Send a request and wait for the server's answer (with the client's own id)."""
        self.last_used = time.monotonic()
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        outbound = self._mux.begin(client, message, future)
        try:
            await self.send(outbound)
            return await future
        except asyncio.CancelledError:
            self.cancel(client, message["id"], "the client went away")
            raise
        except (OSError, BackendUnavailableError) as error:
            self._mux.abandon(client, message["id"])
            raise BackendUnavailableError(f"MCP server unavailable: {error}") from None
        finally:
            self.last_used = time.monotonic()

    def call_later(self, method: str, params: JsonObject) -> None:
        """A request of the proxy's own whose answer nobody waits for (re-subscribing, unsubscribing)."""
        message: JsonObject = {"jsonrpc": "2.0", "id": f"proxy-{next(_internal_ids)}", "method": method}
        message["params"] = params
        task = asyncio.ensure_future(self.call(INTERNAL_CLIENT, message))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

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
        self.write_nowait(cancel_notice(pending, reason))
        if not pending.waiter.done():
            pending.waiter.set_exception(RequestAbandonedError(reason))

    # ------------------------------------------------------------------ wire

    async def send(self, message: JsonObject) -> None:
        stream = self._stream
        if stream is None:
            raise BackendUnavailableError(f"not connected to {self.label}")
        stream.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await stream.writer.drain()

    def write_nowait(self, message: JsonObject) -> None:
        if self._stream is not None and not self._stream.writer.is_closing():
            self._stream.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _read(self) -> None:
        """Demultiplex the stream until it ends; stdout lines are JSON-RPC, stderr lines are logged."""
        stream = self._stream
        if stream is None:
            return
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
            _log.error("stream of %s is unusable: %s", self.label, error)
        except (OSError, asyncio.IncompleteReadError) as error:
            _log.warning("stream of %s failed: %r", self.label, error)
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
            if routed is not None and routed[0] != INTERNAL_CLIENT:
                self._deliver(routed[0], routed[1])
        elif method != "notifications/cancelled":  # the server cancelling its own requests: none were forwarded
            self._deliver(None, message)

    def _answer_server_request(self, message: JsonObject) -> None:
        """Server-to-client requests: ping is answered here; nothing else can be, as the proxy declared nothing."""
        method = method_of(message)
        if method == "ping":
            self.write_nowait(result_response(message["id"], {}))
            return
        _log.warning("server request %s refused: the proxy declared no client capability", method)
        reason = f"{method} is not available: the proxy initialized this server and declared no capability"
        self.write_nowait(error_response(message["id"], METHOD_NOT_FOUND, reason))


def raise_if_cancelling() -> None:
    """For loops that run forever: Python 3.11's ``wait_for`` swallows a cancellation that races the completion of
    what it waits for (CPython gh-86296), so such a loop re-raises it itself and SIGTERM always stops the proxy."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _settle(future: asyncio.Future[JsonObject], outcome: JsonObject | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
