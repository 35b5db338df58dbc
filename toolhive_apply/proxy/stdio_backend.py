"""The stdio server behind the proxy, shared by every client: attach, initialize once, multiplex, re-attach.

The proxy reaches the server's stdin/stdout through its docker gate (``docker_gate.py``), which speaks the Docker
API's attach and inspect for this one container only. When the attach stream ends (container restarted or stopped)
pending requests fail at once and the proxy re-attaches with backoff, and subscribes the new process to what clients
are still subscribed to.

A stdio server cannot say whom a notification is for, so in this shared mode its notifications go to every client,
except where the protocol lets the proxy know better (progress by token, log messages and resource updates by what
each client asked for: ``shared_interest.py``). Servers that must not share use ``session_mode: per-client``
(``stdio_per_client.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from toolhive_apply.proxy.config import ProxyConfig
from toolhive_apply.proxy.docker_attach import DockerApiError, DockerEndpoint, attach_container, inspect_container
from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    JsonObject,
    RequestId,
    error_response,
    method_of,
    params_of,
    result_response,
)
from toolhive_apply.proxy.shared_interest import LOG_LEVELS, SharedInterest
from toolhive_apply.proxy.stdio_connection import (
    BackendUnavailableError,
    RequestAbandonedError,
    ServerConnection,
    ServerListener,
    raise_if_cancelling,
)

__all__ = ["BackendUnavailableError", "RequestAbandonedError", "StdioBackend"]

READY_WAIT: Final = 5.0
"""Seconds a request waits for a server that is (re)starting before it gets a 'server unavailable' error."""
BACKOFF_MIN: Final = 0.25
BACKOFF_MAX: Final = 2.0
"""Cap of the re-attach backoff; one inspect call every 2 s while the container is down costs nothing."""

_log = logging.getLogger(__name__)


class StdioBackend:
    """The attach/initialize/re-attach loop plus request routing. ``listener`` gets notifications for clients."""

    def __init__(self, config: ProxyConfig, health: Health) -> None:
        assert config.container is not None
        self._endpoint = DockerEndpoint(config.docker_socket, config.docker_api_version)
        self._container = config.container
        self._health = health
        self._connection: ServerConnection | None = None
        self._interest = SharedInterest()
        self.init_result: JsonObject | None = None
        self.listener: ServerListener = lambda _client, _message: None
        self.is_session: Callable[[str], bool] = lambda _client: True
        """Whether a multiplexer key is an initialized session (set by the assembly); per-client mode serves only
        sessions, since a one-off request has no process of its own."""
        self.attach_count = 0
        self._container_down = False
        """The last look at the container found it stopped or missing: fail requests at once, do not wait."""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Forever: wait for the container, attach, initialize, serve until the stream ends, back off, repeat."""
        backoff = BACKOFF_MIN
        while True:
            raise_if_cancelling()
            try:
                await self._check_container()
                stream = await attach_container(self._endpoint, self._container)
            except DockerApiError as error:
                self._health.set(Status.UNHEALTHY, _hint(str(error)))
            else:
                if await self._serve(ServerConnection(stream, f"container {self._container}", self._on_message)):
                    backoff = BACKOFF_MIN
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _check_container(self) -> None:
        """Raises DockerApiError unless the container runs, with stdin open and no TTY."""
        self._container_down = True
        info = await inspect_container(self._endpoint, self._container)
        state, config = info.get("State") or {}, info.get("Config") or {}
        if not state.get("Running") or state.get("Paused") or state.get("Restarting"):
            raise DockerApiError(f"container {self._container} is not running (status {state.get('Status')!r})")
        if config.get("Tty"):
            raise DockerApiError(f"container {self._container} has a TTY; stdio servers need tty=false")
        if not config.get("OpenStdin"):
            raise DockerApiError(f"container {self._container} was created without stdin open (docker run -i)")
        self._container_down = False

    async def _serve(self, connection: ServerConnection) -> bool:
        """Initialize over a fresh attach and route messages until it ends; whether initialization succeeded."""
        self.attach_count += 1
        self._connection = connection
        self._health.set(Status.UNHEALTHY, f"attached to container {self._container}; initializing the server")
        initialized: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(connection.serve(initialized))
        try:
            self.init_result = await initialized
        except BackendUnavailableError as error:
            self._health.set(Status.UNHEALTHY, str(error))
            await serving  # a server that refused initialize stays unusable: detach and retry
            return False
        finally:
            if not initialized.done():
                serving.cancel()
        info = self.init_result.get("serverInfo") or {}
        self._health.set(Status.RUNNING, f"attached to {self._container}; server {info.get('name')} initialized")
        for uri in self._interest.subscriptions():  # a restarted server lost the subscriptions clients still hold
            connection.call_later("resources/subscribe", {"uri": uri})
        try:
            await serving
        finally:
            self._connection = None
            self._health.set(Status.UNHEALTHY, f"detached from container {self._container}; re-attaching")
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
        method = method_of(message)
        if method == "logging/setLevel":
            return self._set_level(client, message)
        uri = params_of(message).get("uri")
        if method in ("resources/subscribe", "resources/unsubscribe") and not isinstance(uri, str):
            return error_response(message["id"], INVALID_PARAMS, f"{method} needs params.uri")
        if method == "resources/subscribe" and isinstance(uri, str):
            if not self._interest.subscribe(client, uri):
                return result_response(message["id"], {})  # the server already sends this URI's updates
            response = await self._call(client, message)
            if "error" in response:
                self._interest.unsubscribe(client, uri)
            return response
        if method == "resources/unsubscribe" and isinstance(uri, str) and not self._interest.unsubscribe(client, uri):
            return result_response(message["id"], {})  # other clients still want this URI's updates
        return await self._call(client, message)

    def _set_level(self, client: str, message: JsonObject) -> JsonObject:
        """Answered here, never forwarded: the level is this client's alone (shared_interest.py)."""
        if "logging" not in ((self.init_result or {}).get("capabilities") or {}):
            return error_response(message["id"], METHOD_NOT_FOUND, "this server does not offer logging")
        if not self._interest.set_level(client, params_of(message).get("level")):
            return error_response(message["id"], INVALID_PARAMS, f"level must be one of {', '.join(LOG_LEVELS)}")
        return result_response(message["id"], {})

    async def _call(self, client: str, message: JsonObject) -> JsonObject:
        connection = self._connection
        if connection is None or not connection.open:
            raise BackendUnavailableError(f"MCP server unavailable: not attached to container {self._container}")
        return await connection.call(client, message)

    async def notify(self, message: JsonObject) -> None:
        """Forward a client notification; dropped while detached (notifications have no answer to fail)."""
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(OSError, BackendUnavailableError):
                await connection.send(message)

    def cancel(self, client: str, request_id: RequestId, reason: str) -> None:
        """A client gave up on a request: tell the server (with the proxy's id) and fail the local waiter."""
        if self._connection is not None:
            self._connection.cancel(client, request_id, reason)

    def forget_client(self, client: str) -> None:
        """A session ended: cancel everything it still waits for, and drop what it was subscribed to."""
        orphaned = self._interest.forget(client)
        connection = self._connection
        if connection is not None:
            connection.forget_client(client)
            for uri in orphaned:
                connection.call_later("resources/unsubscribe", {"uri": uri})

    def _on_message(self, client: str | None, message: JsonObject) -> None:
        if client is not None:
            self.listener(client, message)
            return
        recipients = self._interest.recipients(message)
        if recipients is None:
            self.listener(None, message)
        for recipient in recipients or ():
            self.listener(recipient, message)


def _hint(message: str) -> str:
    if "Permission denied" in message or "PermissionError" in message:
        return f"{message} (the docker gate and the proxy must run as the same user)"
    if "No such file" in message or "FileNotFoundError" in message or "Connection refused" in message:
        return f"{message} (is the workload's docker gate container running?)"
    return message
