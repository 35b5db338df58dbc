"""The group gateway (``"mode": "vmcp"``): one MCP endpoint aggregating the workloads of a group.

It plugs into the proxy's own session hub and streamable-HTTP front-end as their backend, so sessions, the Origin and
Host checks, the body limit and ``/health`` are the proxy's. Each backend is watched on its own: listed at start, re-
listed every ``refresh_interval`` while up and on a short backoff while down. A backend that is down or slow has its
tools omitted while the others keep answering; a call routed to it fails with a JSON-RPC error within the timeout;
when it answers again its tools come back, and clients are told with ``notifications/*/list_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SERVER_UNAVAILABLE,
    JsonObject,
    RequestId,
    error_response,
    method_of,
    params_of,
    result_response,
)
from toolhive_apply.proxy.stdio_backend import RequestAbandonedError
from toolhive_apply.proxy.vmcp_aggregate import Catalog, CursorError, Listing, Route, aggregate, page
from toolhive_apply.proxy.vmcp_backends import Backend, BackendClient, BackendError
from toolhive_apply.proxy.vmcp_config import BackendSpec, VmcpConfig
from toolhive_apply.proxy.vmcp_stdio import StdioBackendClient

if TYPE_CHECKING:
    from toolhive_apply.proxy.app import Assembly
    from toolhive_apply.proxy.config import ProxyConfig

_log = logging.getLogger(__name__)
SERVER_VERSION: Final = "2025-06-18"
MAX_BACKOFF: Final = 10.0
LISTS: Final = (
    ("tools", "tools/list", "tools"),
    ("prompts", "prompts/list", "prompts"),
    ("resources", "resources/list", "resources"),
    ("resources", "resources/templates/list", "resourceTemplates"),
)
"""(capability, list method, result key) the gateway aggregates."""
LIST_METHODS: Final = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("templates", "resourceTemplates"),
}
"""Client list method -> (catalog attribute, result key)."""
URI_METHODS: Final = ("resources/read", "resources/subscribe", "resources/unsubscribe")
ROUTED_METHODS: Final = ("tools/call", "prompts/get", "completion/complete", *URI_METHODS)


@dataclass(eq=False)
class BackendState:
    client: Backend
    listing: Listing | None = None
    detail: str = "not yet listed"
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def up(self) -> bool:
        return self.listing is not None


class Gateway:
    """The backend of the session hub for vMCP mode (it has the hub's backend interface: ready, request, notify,
    cancel, forget_client, listener, init_result)."""

    def __init__(self, name: str, vmcp: VmcpConfig, health: Health) -> None:
        self.name = name
        self.config = vmcp
        self.health = health
        self.backends = {spec.name: BackendState(backend_client(spec, name)) for spec in vmcp.backends}
        self.catalog = Catalog()
        self.listener: Callable[[str | None, JsonObject], None] = lambda _client, _message: None
        capabilities = {kind: {"listChanged": True} for kind in ("tools", "prompts", "resources")}
        self.init_result: JsonObject = {
            "protocolVersion": SERVER_VERSION,
            "capabilities": {**capabilities, "logging": {}},
            "serverInfo": {"name": name, "version": "1"},
        }
        self._first_round = asyncio.Event()
        self._inflight: dict[tuple[str, RequestId], asyncio.Task[JsonObject]] = {}

    # ------------------------------------------------------------------ watching backends

    async def run(self) -> None:
        self.health.set(Status.RUNNING, f"{len(self.backends)} backend(s)")
        if not self.backends:
            self._first_round.set()
        await asyncio.gather(*(self._watch(state) for state in self.backends.values()))

    async def _watch(self, state: BackendState) -> None:
        backoff = 0.5
        while True:
            listing = await self._list(state)
            was_up = state.up
            state.listing = listing
            if listing is not None or was_up:
                self._rebuild()
            if all(s.listing is not None or s.detail != "not yet listed" for s in self.backends.values()):
                self._first_round.set()
            backoff = 0.5 if listing is not None else min(backoff * 2, MAX_BACKOFF)
            delay = self.config.refresh_interval if listing is not None else backoff
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), delay)

    async def _list(self, state: BackendState) -> Listing | None:
        client = state.client
        try:
            async with asyncio.timeout(self.config.list_timeout):
                if client.init_result is None:  # one session per backend, kept across re-lists
                    await client.connect()
                found: dict[str, tuple[JsonObject, ...]] = {}
                for capability, method, key in LISTS:
                    if capability in client.capabilities:
                        found[method] = await client.list_all(method, key)
        except (BackendError, TimeoutError) as error:
            client.init_result = None  # the next attempt starts a fresh session
            detail = str(error) or f"no answer within {self.config.list_timeout:g} s"
            if state.up or state.detail != detail:
                _log.warning("backend %s unavailable: %s", client.spec.name, detail)
            state.detail = detail
            return None
        if not state.up:
            _log.info("backend %s is up", client.spec.name)
        state.detail = "up"
        return Listing(
            client.spec.name,
            found.get("tools/list", ()),
            found.get("prompts/list", ()),
            found.get("resources/list", ()),
            found.get("resources/templates/list", ()),
        )

    def _rebuild(self) -> None:
        listings = [s.listing for s in self.backends.values() if s.listing is not None]
        old, new = self.catalog, aggregate(listings, self.config.aggregation)
        self.catalog = new
        for warning in sorted(set(new.warnings) - set(old.warnings)):
            _log.warning("%s", warning)
        for kind, attribute in (("tools", "tools"), ("prompts", "prompts"), ("resources", "resources")):
            if getattr(old, attribute) != getattr(new, attribute) or (
                kind == "resources" and old.templates != new.templates
            ):
                self.listener(None, {"jsonrpc": "2.0", "method": f"notifications/{kind}/list_changed"})

    def mark_down(self, backend: str, detail: str) -> None:
        """A call failed to reach ``backend``: its tools go at once, and its watcher retries now."""
        state = self.backends[backend]
        if state.up:
            state.listing = None
            state.detail = detail
            self._rebuild()
        state.wake.set()

    def describe(self) -> dict[str, Any]:
        return {
            "backends": {name: state.detail for name, state in self.backends.items()},
            "tools": len(self.catalog.tools),
        }

    # ------------------------------------------------------------------ the hub's backend interface

    async def ready(self) -> bool:
        """Always ready (a gateway with every backend down still answers, with empty lists); the first answer
        waits, bounded, for the first listing of every backend."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_round.wait(), self.config.list_timeout)
        return True

    async def request(self, client: str, message: JsonObject) -> JsonObject:
        await self.ready()
        method, params, request_id = method_of(message), params_of(message), message["id"]
        if method in LIST_METHODS:
            attribute, key = LIST_METHODS[method]
            try:
                items, cursor = page(getattr(self.catalog, attribute), params.get("cursor"))
            except CursorError as error:
                return error_response(request_id, INVALID_PARAMS, str(error))
            result: JsonObject = {key: items}
            if cursor is not None:
                result["nextCursor"] = cursor
            return result_response(request_id, result)
        if method == "logging/setLevel":
            return await self._set_level(message)
        routed = self._route(method, params)
        if isinstance(routed, str):
            code = INVALID_PARAMS if method in ROUTED_METHODS else METHOD_NOT_FOUND
            return error_response(request_id, code, routed)
        backend, forwarded = routed
        return await self._forward(client, request_id, backend, method, forwarded)

    def _route(self, method: str, params: JsonObject) -> tuple[str, JsonObject] | str:
        """(backend, params for it) of a routed request, or why it cannot be routed."""
        catalog = self.catalog
        if method in ("tools/call", "prompts/get"):
            routes = catalog.tool_routes if method == "tools/call" else catalog.prompt_routes
            name = params.get("name")
            route = routes.get(name) if isinstance(name, str) else None
            if route is None:
                kind = "tool" if method == "tools/call" else "prompt"
                return f"unknown {kind} {str(name)[:130]!r} (or its backend is unavailable)"
            return route.backend, {**params, "name": route.name}
        if method in URI_METHODS:
            uri = params.get("uri")
            backend = catalog.backend_of_uri(uri) if isinstance(uri, str) else None
            return (backend, params) if backend else f"no backend offers resource {str(uri)[:200]!r}"
        if method == "completion/complete":
            return self._route_completion(params)
        return f"method {method[:100]!r} is not offered by this gateway"

    def _route_completion(self, params: JsonObject) -> tuple[str, JsonObject] | str:
        ref = params.get("ref")
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
            route: Route | None = self.catalog.prompt_routes.get(str(ref.get("name")))
            if route is not None:
                return route.backend, {**params, "ref": {**ref, "name": route.name}}
        if isinstance(ref, dict) and ref.get("type") == "ref/resource":
            backend = self.catalog.backend_of_uri(str(ref.get("uri")))
            if backend is not None:
                return backend, params
        return "completion/complete: unknown prompt or resource reference"

    async def _forward(
        self, client: str, request_id: RequestId, backend: str, method: str, params: JsonObject
    ) -> JsonObject:
        state = self.backends[backend]
        if not state.up:
            return error_response(request_id, SERVER_UNAVAILABLE, f"backend {backend} is unavailable: {state.detail}")
        relay = self._relay(client, backend)
        task = asyncio.get_running_loop().create_task(state.client.request(method, params, relay))
        self._inflight[(client, request_id)] = task
        try:
            async with asyncio.timeout(self.config.call_timeout):
                answer = await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            message = f"backend {backend} did not answer {method} within {self.config.call_timeout:g} s"
            return error_response(request_id, SERVER_UNAVAILABLE, message)
        except BackendError as error:
            self.mark_down(backend, str(error))
            return error_response(request_id, SERVER_UNAVAILABLE, f"backend {backend} is unavailable: {error}")
        except asyncio.CancelledError:
            if task.cancelled() and not _cancelling():
                raise RequestAbandonedError("cancelled by the client") from None
            task.cancel()
            raise
        finally:
            self._inflight.pop((client, request_id), None)
        if "error" in answer:
            return {"jsonrpc": "2.0", "id": request_id, "error": answer["error"]}
        result = answer.get("result")
        return result_response(request_id, result if isinstance(result, dict) else {})

    def _relay(self, client: str, backend: str) -> Callable[[JsonObject], None]:
        """Notifications on a request's stream: progress and log messages go to the client that asked; a
        backend's list_changed makes its watcher re-list now."""

        def deliver(message: JsonObject) -> None:
            if method_of(message).endswith("/list_changed"):
                self.backends[backend].wake.set()
            else:
                self.listener(client, message)

        return deliver

    async def _set_level(self, message: JsonObject) -> JsonObject:
        params = params_of(message)
        up = [s.client for s in self.backends.values() if s.up and "logging" in s.client.capabilities]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.list_timeout):
                await asyncio.gather(*(c.request("logging/setLevel", params) for c in up), return_exceptions=True)
        return result_response(message["id"], {})

    async def notify(self, message: JsonObject) -> None:
        """Client notifications other than initialized and cancelled (roots changes) concern no one backend."""

    def cancel(self, client: str, request_id: RequestId, reason: str) -> None:
        task = self._inflight.get((client, request_id))
        if task is not None:
            _log.debug("client cancelled request: %s", reason[:100])
            task.cancel()

    def forget_client(self, client: str) -> None:
        for (owner, request_id), task in list(self._inflight.items()):
            if owner == client:
                task.cancel()
                self._inflight.pop((owner, request_id), None)


def backend_client(spec: BackendSpec, gateway: str) -> Backend:
    """An HTTP backend's MCP client, or a stdio backend's attach through its docker gate."""
    if spec.stdio:
        return StdioBackendClient(spec, gateway)
    return BackendClient(spec, f"vmcp-{gateway}")


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def assemble_vmcp(config: ProxyConfig) -> Assembly:
    """The gateway's front-end (the proxy's session hub and streamable-HTTP transport), health and watch loop."""
    from toolhive_apply.proxy.app import Assembly
    from toolhive_apply.proxy.session_table import sweep_forever
    from toolhive_apply.proxy.sessions import SessionHub
    from toolhive_apply.proxy.streamable import StreamableFrontend
    from toolhive_apply.proxy.tools import ToolPolicy

    assert config.vmcp is not None
    health = Health(config.name, str(config.mode))
    gateway = Gateway(config.name, config.vmcp, health)
    hub = SessionHub(gateway, ToolPolicy(), health, session_ttl=config.session_ttl, max_sessions=config.max_sessions)
    health.details = lambda: {**gateway.describe(), "sessions": len(hub.sessions)}

    async def background() -> None:
        await asyncio.gather(gateway.run(), sweep_forever(hub.sessions))

    return Assembly(StreamableFrontend(hub).handle, health, background)
