"""The proxy's own view of whether its MCP server is usable, served as ``GET /health`` and used by HEALTHCHECK.

"running" means clients can be served now: in stdio mode the container is attached and the server initialized, in
http/remote mode the upstream accepts TCP connections. Anything else is "starting" (never been up) or "unhealthy".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final

from toolhive_apply.proxy.httpserver import Response, json_response

PROBE_INTERVAL: Final = 5.0
PROBE_TIMEOUT: Final = 3.0

_log = logging.getLogger(__name__)


class Status(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"


class Health:
    """Current status plus a reason; ``wait_running`` lets requests wait briefly for a server that is coming up."""

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode
        self.status = Status.STARTING
        self.detail = "starting"
        self.since = time.time()
        self._running = asyncio.Event()
        self.details: Callable[[], dict[str, Any]] = dict

    def set(self, status: Status, detail: str) -> None:
        if status is Status.UNHEALTHY and self.status is Status.STARTING:
            status = Status.STARTING  # never been up: still starting, whatever went wrong
        if (status, detail) != (self.status, self.detail):
            level = logging.WARNING if status is Status.UNHEALTHY else logging.INFO
            _log.log(level, "health: %s (%s)", status, detail)
        if status is not self.status:
            self.since = time.time()
        self.status, self.detail = status, detail
        if status is Status.RUNNING:
            self._running.set()
        else:
            self._running.clear()

    @property
    def running(self) -> bool:
        return self.status is Status.RUNNING

    async def wait_running(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._running.wait(), timeout)
        return self.running

    def report(self) -> dict[str, Any]:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        base = {"status": str(self.status), "name": self.name, "mode": self.mode, "detail": self.detail}
        return {**base, "since": since, **self.details()}


def health_response(health: Health) -> Response:
    return json_response(200 if health.running else 503, health.report(), [("Cache-Control", "no-store")])


def mark_upstream(health: Health, origin: str, error: BaseException | None) -> None:
    """Record what a probe or a relayed request just learned about the upstream (same wording for both)."""
    if error is None:
        health.set(Status.RUNNING, f"upstream {origin} reachable")
    else:
        health.set(Status.UNHEALTHY, f"upstream {origin} unreachable: {error}")


async def probe_upstream(health: Health, origin: str, host: str, port: int) -> None:
    """Forever: check that the upstream accepts TCP connections (http/remote modes). Relayed requests update the
    health too, so it follows reality between probes."""
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
        except (OSError, TimeoutError) as error:
            mark_upstream(health, origin, error)
        else:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            mark_upstream(health, origin, None)
        await asyncio.sleep(PROBE_INTERVAL if health.running else 0.5)
