"""Assemble the proxy for its mode, serve it, and stop cleanly on SIGTERM.

Every workload is served over streamable HTTP (``/mcp``) and SSE (``/sse``) side by side (bridge.py); which one is
native depends on ``mode`` and ``proxy_mode``; ``/health``, the Origin guard, CORS and the body size
limit are the same for all of them. A background task (the stdio attach loop or the upstream probe) that dies
unexpectedly ends the process with an error, so Docker's restart policy starts a fresh proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from toolhive_apply.proxy.bridge import DualFrontend, SseOverStreamable
from toolhive_apply.proxy.bridge_streamable import StreamableOverSse
from toolhive_apply.proxy.config import Mode, ProxyConfig, SessionMode, Transport
from toolhive_apply.proxy.conformance import served_versions, strict_refusal
from toolhive_apply.proxy.endpoint_auth import EndpointAuth
from toolhive_apply.proxy.health import Health, health_response, probe_upstream
from toolhive_apply.proxy.httpclient import UpstreamUrl
from toolhive_apply.proxy.httpserver import Handler, HttpServer, Request, Response, StreamResponse
from toolhive_apply.proxy.observer import close_observers, observe
from toolhive_apply.proxy.origin import HostPolicy, OriginPolicy, combined_guard
from toolhive_apply.proxy.passthrough import StreamablePassthrough, Upstream
from toolhive_apply.proxy.passthrough_sse import SsePassthrough
from toolhive_apply.proxy.session_table import sweep_forever
from toolhive_apply.proxy.sessions import SessionHub
from toolhive_apply.proxy.sse_server import SseFrontend
from toolhive_apply.proxy.stdio_backend import StdioBackend
from toolhive_apply.proxy.stdio_per_client import PerClientBackend
from toolhive_apply.proxy.streamable import StreamableFrontend
from toolhive_apply.proxy.tools import ToolPolicy

_log = logging.getLogger(__name__)
Background = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Assembly:
    """What one configuration runs: the MCP front-end, its health, and the background loop that feeds the health."""

    frontend: Handler
    health: Health
    background: Background
    sessions: Callable[[], int] = lambda: 0
    restarts: Callable[[], int] = lambda: 0


def assemble(config: ProxyConfig) -> Assembly:
    health = Health(config.name, str(config.mode))
    if config.mode is Mode.VMCP:
        from toolhive_apply.proxy.vmcp_app import assemble_vmcp  # only this mode needs the gateway's modules

        return assemble_vmcp(config)
    policy = ToolPolicy.from_config(config)
    if config.mode is Mode.STDIO:
        per_client = config.session_mode is SessionMode.PER_CLIENT
        backend = (PerClientBackend if per_client else StdioBackend)(config, health)
        hub = SessionHub(backend, policy, health, session_ttl=config.session_ttl, max_sessions=config.max_sessions)
        backend.is_session = lambda key: key in hub.sessions
        health.details = lambda: {
            "container": config.container,
            "sessions": len(hub.sessions),
            "session_mode": str(config.session_mode),
            "attachments": backend.attach_count,
            "server": (backend.init_result or {}).get("serverInfo"),
        }
        stdio_frontend = DualFrontend(StreamableFrontend(hub).handle, SseFrontend(hub).handle)  # both, one hub

        async def stdio_background() -> None:
            await asyncio.gather(backend.run(), sweep_forever(hub.sessions))

        restarts = (lambda: 0) if per_client else (lambda: max(0, backend.attach_count - 1))
        return Assembly(stdio_frontend.handle, health, stdio_background, lambda: len(hub.sessions), restarts)
    assert config.upstream_url is not None
    url = UpstreamUrl.parse(config.upstream_url)
    health.details = lambda: {"upstream": url.origin + (url.path or "/")}  # never the query: it may hold keys
    upstream = Upstream(url, config.headers, health)
    ttl, most = config.session_ttl, config.max_sessions
    passthrough: SsePassthrough | StreamablePassthrough
    if config.proxy_mode is Transport.SSE:  # the upstream's transport, served as is; the other one bridged onto it
        passthrough = SsePassthrough(upstream, policy)
        sse = passthrough.handle
        relay = DualFrontend(StreamableOverSse(sse, session_ttl=ttl, max_sessions=most).handle, sse, sse_first=True)
    else:
        passthrough = StreamablePassthrough(upstream, policy, session_ttl=ttl, max_sessions=most)
        streamable = passthrough.handle
        relay = DualFrontend(streamable, SseOverStreamable(streamable, max_sessions=most).handle)
    sessions = getattr(passthrough, "sessions", None) or getattr(passthrough, "_sessions", {})
    probe = lambda: probe_upstream(health, url.origin, url.host, url.port)  # noqa: E731
    return Assembly(relay.handle, health, probe, lambda: len(sessions))


class Router:
    """``/health`` and CORS preflight here; everything else to the MCP front-end; CORS headers on every answer."""

    def __init__(
        self,
        assembly: Assembly,
        origins: OriginPolicy,
        auth: EndpointAuth | None = None,
        strict_versions: tuple[str, ...] | None = None,
    ) -> None:
        self._assembly = assembly
        self._origins = origins
        self._auth = auth
        self._strict_versions = strict_versions

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.method == "OPTIONS":
            cors = self._origins.cors_headers(request.headers, preflight=True)
            return Response(HTTPStatus.NO_CONTENT, cors)
        if request.path == "/health" and request.method in ("GET", "HEAD"):
            response: Response | StreamResponse = health_response(self._assembly.health)
        elif self._strict_versions is not None and (refusal := strict_refusal(request, self._strict_versions)):
            response = refusal
        elif self._auth is not None:
            response = await self._auth.handle(request, self._assembly.frontend)
        else:
            response = await self._assembly.frontend(request)
        response.headers.extend(self._origins.cors_headers(request.headers, preflight=False))
        return response


def build_server(config: ProxyConfig) -> tuple[HttpServer, Assembly]:
    """The HTTP server for ``config`` (not started) and what it serves; the Host and Origin guards come first."""
    assembly = assemble(config)
    origins = OriginPolicy(config.allowed_origins)
    guard = combined_guard(HostPolicy(config.allowed_hosts).guard, origins.guard)
    auth = EndpointAuth(config.auth) if config.auth is not None else None
    strict = served_versions(config.mode is not Mode.STDIO) if config.strict_protocol_validation else None
    router = Router(assembly, origins, auth, strict)
    observer = observe(config, assembly, router.handle)  # outermost: it also sees the 401/403 answered inside
    server = HttpServer(observer.handle, guard=guard, max_body_bytes=config.max_body_bytes)
    return server, assembly


async def serve(config: ProxyConfig) -> None:
    """Run until SIGTERM/SIGINT (or until the background loop fails, which raises)."""
    server, assembly = build_server(config)
    await server.start(config.listen_host, config.listen_port)
    _log.info(
        "proxy %s (%s, serving %s) listening on %s:%d",
        config.name,
        config.mode,
        config.proxy_mode,
        config.listen_host,
        server.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    background = asyncio.create_task(assembly.background())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({background, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        _log.info("proxy %s stopping", config.name)
        for task in (background, stopping):
            task.cancel()
        await server.close()
        close_observers()
        with contextlib.suppress(asyncio.CancelledError):
            await background
    if background.done() and not background.cancelled() and background.exception() is not None:
        raise RuntimeError("background loop failed") from background.exception()
