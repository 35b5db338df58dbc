"""``session_mode: per-client``: one server process per client session, so clients share nothing but the container.

A stdio server cannot say whom a notification is for, so a server that must not mix clients (log messages with
another client's arguments, a log level, subscriptions, per-connection state) gets one process per MCP session. The
docker gate starts each one (an exec of the container's own command, ``docker_gate.py``); the proxy initializes it
like the shared one and routes everything it says to its own session only. A session's process starts with the
session's first request after ``initialize`` (which the proxy answers from a probe process started once), ends when
the session ends (its stdin closes) or after IDLE_TIMEOUT without requests (the next request starts a fresh one),
and at most ``max_processes`` run at once. Client notifications other than cancellations are dropped: nothing says
which process they are for, and forwarding one client's to all would be the very leak this mode prevents.

The processes share the container: its filesystem, network and limits. Isolation is between processes, not
between containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from toolhive_apply.proxy.config import ProxyConfig
from toolhive_apply.proxy.docker_attach import DockerApiError, open_session
from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import METHOD_NOT_FOUND, JsonObject, RequestId, error_response, method_of
from toolhive_apply.proxy.stdio_backend import StdioBackend, _hint
from toolhive_apply.proxy.stdio_connection import BackendUnavailableError, ServerConnection, raise_if_cancelling

IDLE_TIMEOUT: Final = 1800.0
"""Seconds without a request after which a session's process is stopped (clients that vanish never say so)."""
WATCH_INTERVAL: Final = 5.0
"""How often the container is looked at while it runs (a stopped one is noticed at once by the streams ending)."""

_log = logging.getLogger(__name__)


class PerClientBackend(StdioBackend):
    """Same interface as the shared backend; ``attach_count`` counts the processes started."""

    def __init__(self, config: ProxyConfig, health: Health) -> None:
        super().__init__(config, health)
        self._limit = config.max_processes
        self._connections: dict[str, ServerConnection] = {}
        self._starting: dict[str, asyncio.Task[ServerConnection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    @property
    def processes(self) -> int:
        return len(self._connections)

    async def run(self) -> None:
        """Watch the container; once it runs, learn the server's initialize result from one probe process."""
        while True:
            raise_if_cancelling()
            try:
                await self._check_container()
                if self.init_result is None:
                    await self._probe()
                self._health.set(Status.RUNNING, self._running_detail())
            except (DockerApiError, BackendUnavailableError) as error:
                self._health.set(Status.UNHEALTHY, _hint(str(error)))
            self._reap_idle()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), WATCH_INTERVAL if self._health.running else 1.0)

    def _running_detail(self) -> str:
        name = (self.init_result or {}).get("serverInfo", {}).get("name")
        return f"container {self._container} runs; server {name}; per-client, {self.processes} process(es)"

    async def _probe(self) -> None:
        """The server's initialize result, which the proxy gives every session: the processes are all alike."""
        connection, init_result = await self._start_process(None)
        self.init_result = init_result
        await connection.close("probe done")

    async def _start_process(self, owner: str | None) -> tuple[ServerConnection, JsonObject]:
        """A fresh server process, initialized; what it says goes to ``owner`` only (nobody for the probe)."""
        stream = await open_session(self._endpoint, self._container)
        self.attach_count += 1
        label = f"the process of session {owner[:8]}" if owner else "the initialize probe"
        connection = ServerConnection(
            stream, f"{label} in container {self._container}", lambda _client, message: self._deliver(owner, message)
        )
        initialized: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(connection.serve(initialized))
        self._tasks.add(serving)
        serving.add_done_callback(lambda task: self._ended(owner, connection, task))
        try:
            return connection, await initialized
        except BaseException:
            serving.cancel()
            raise

    def _deliver(self, owner: str | None, message: JsonObject) -> None:
        if owner is not None:
            self.listener(owner, message)

    def _ended(self, owner: str | None, connection: ServerConnection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if owner is not None and self._connections.get(owner) is connection:
            del self._connections[owner]
            _log.info("the server process of session %s ended", owner[:8])
            self._wake.set()  # a process that ended on its own may mean the container stopped: look now

    # ------------------------------------------------------------------ requests from clients

    async def request(self, client: str, message: JsonObject) -> JsonObject:
        """Forward to the client's own process, starting it first when this is the session's first request."""
        if not self.is_session(client):  # e.g. a server/discover probe: clients then fall back to initialize
            reason = f"{method_of(message)} needs a session here: each session has its own server process"
            return error_response(message["id"], METHOD_NOT_FOUND, reason)
        if not await self.ready():
            raise BackendUnavailableError(f"MCP server unavailable: {self._health.detail}")
        connection = await self._connection_for(client)
        return await connection.call(client, message)

    async def _connection_for(self, client: str) -> ServerConnection:
        connection = self._connections.get(client)
        if connection is not None and connection.open:
            return connection
        starting = self._starting.get(client)
        if starting is None:
            if len(self._connections) + len(self._starting) >= self._limit:
                raise BackendUnavailableError(f"all {self._limit} per-client server processes are in use")
            starting = asyncio.create_task(self._start_for(client))
            self._starting[client] = starting
            starting.add_done_callback(lambda _task: self._starting.pop(client, None))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            if starting.cancelled():  # the session ended while its process was starting
                raise BackendUnavailableError("the client session ended") from None
            raise

    async def _start_for(self, client: str) -> ServerConnection:
        try:
            connection, _ = await self._start_process(client)
        except (DockerApiError, OSError) as error:
            self._wake.set()
            raise BackendUnavailableError(f"MCP server unavailable: {error}") from None
        self._connections[client] = connection
        _log.info("started a server process for session %s (%d running)", client[:8], len(self._connections))
        return connection

    async def notify(self, message: JsonObject) -> None:
        """Dropped: a client notification does not say which session (process) it belongs to."""
        _log.debug("client notification %s dropped in per-client mode", message.get("method"))

    def cancel(self, client: str, request_id: RequestId, reason: str) -> None:
        connection = self._connections.get(client)
        if connection is not None:
            connection.cancel(client, request_id, reason)

    def forget_client(self, client: str) -> None:
        """The session ended: its process's stdin closes, which ends a well-behaved stdio server."""
        starting = self._starting.pop(client, None)
        if starting is not None:
            starting.cancel()
        connection = self._connections.pop(client, None)
        if connection is not None:
            connection.forget_client(client)
            self._close(connection)

    def _close(self, connection: ServerConnection) -> None:
        task = asyncio.ensure_future(connection.close("the client session ended"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reap_idle(self) -> None:
        now = time.monotonic()
        for client, connection in list(self._connections.items()):
            if connection.pending == 0 and now - connection.last_used > IDLE_TIMEOUT:
                _log.info("stopping the idle server process of session %s", client[:8])
                del self._connections[client]
                self._close(connection)
