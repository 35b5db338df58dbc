"""The gateway's client for a stdio backend that has no proxy of its own (``serve: vmcp-only``): the workload
proxy's shared-mode stdio code, attached through the backend's docker gate, whose socket volume the gateway mounts
read-only (the gateway never holds the Docker socket; the gate lets it reach that one container only).

To the gateway it is a backend like an HTTP one (``vmcp_backends.Backend``): ``StdioBackend`` keeps one server
process attached and initialized and re-attaches with backoff when the container restarts. Each request has its
own multiplexer key, so progress comes back to the request that asked for it; notifications for every client (log
messages once a level is set, list changes) go to every request in flight, as an HTTP backend sends them on a
request's stream.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Final

from toolhive_apply.proxy.config import Mode, ProxyConfig, Transport
from toolhive_apply.proxy.health import Health
from toolhive_apply.proxy.jsonrpc import JsonObject
from toolhive_apply.proxy.stdio_backend import BackendUnavailableError, RequestAbandonedError, StdioBackend
from toolhive_apply.proxy.vmcp_backends import BackendError, OnMessage, list_pages
from toolhive_apply.proxy.vmcp_config import BackendSpec

GATEWAY_CLIENT: Final = "gateway"
"""The multiplexer key of requests whose effect outlives them (subscriptions, the log level): the gateway's own."""
STATEFUL_METHODS: Final = frozenset({"resources/subscribe", "resources/unsubscribe", "logging/setLevel"})


class StdioBackendClient:
    """One stdio backend behind its gate; the attach loop starts with the first ``connect``."""

    def __init__(self, spec: BackendSpec, gateway: str) -> None:
        assert spec.stdio
        name = f"{gateway}/{spec.name}"
        # the backend's container is the workload's own name: the one its gate lets through (by engine id)
        config = ProxyConfig(
            name=name,
            mode=Mode.STDIO,
            proxy_mode=Transport.STREAMABLE_HTTP,
            listen_port=0,
            container=spec.name,
            docker_socket=spec.docker_socket,
        )
        self.spec = spec
        self.init_result: JsonObject | None = None
        self._health = Health(name, str(Mode.STDIO))
        self._backend = StdioBackend(config, self._health)
        self._backend.listener = self._deliver
        self._relays: dict[str, OnMessage] = {}
        self._keys = itertools.count(1)
        self._ids = itertools.count(1)
        self._attach: asyncio.Task[None] | None = None

    @property
    def capabilities(self) -> dict[str, Any]:
        caps = (self.init_result or {}).get("capabilities")
        return caps if isinstance(caps, dict) else {}

    @property
    def attach_count(self) -> int:
        return self._backend.attach_count

    async def connect(self) -> None:
        """Wait (briefly: the backend's READY_WAIT) for an initialized server; BackendError says why not."""
        if self._attach is None or self._attach.done():
            self._attach = asyncio.get_running_loop().create_task(self._backend.run())
        if not await self._backend.ready():
            raise BackendError(f"container {self.spec.name} through its docker gate: {self._health.detail}")
        self.init_result = self._backend.init_result

    async def request(self, method: str, params: JsonObject | None, on_message: OnMessage | None = None) -> JsonObject:
        if self.init_result is None:
            await self.connect()
        key = GATEWAY_CLIENT if method in STATEFUL_METHODS else f"request-{next(self._keys)}"
        message: JsonObject = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        if on_message is not None and key != GATEWAY_CLIENT:
            self._relays[key] = on_message
        try:
            return await self._backend.request(key, message)
        except (BackendUnavailableError, RequestAbandonedError) as error:
            raise BackendError(str(error)) from None
        finally:
            self._relays.pop(key, None)

    async def list_all(self, method: str, key: str) -> tuple[JsonObject, ...]:
        return await list_pages(self, method, key)

    async def notify(self, method: str, params: JsonObject) -> None:
        await self._backend.notify({"jsonrpc": "2.0", "method": method, "params": params})

    def _deliver(self, client: str | None, message: JsonObject) -> None:
        relay = self._relays.get(client) if client is not None else None
        if relay is not None:
            relay(message)
        elif client is None or client == GATEWAY_CLIENT:
            for each in list(self._relays.values()):
                each(message)
