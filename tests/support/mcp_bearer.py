"""The real MCP SDK client carrying a bearer token (and a cookie, which must never reach the server): lists the
tools, then makes each call, recording ``ok <text>`` or ``denied <error>``."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

Calls = list[tuple[str, dict[str, Any]]]


async def _session(url: str, token: str, calls: Calls, timeout: float) -> tuple[list[str], list[str]]:
    credentials = {"Authorization": f"Bearer {token}", "Cookie": "sid=abc"}
    async with (
        httpx2.AsyncClient(headers=credentials, timeout=httpx2.Timeout(timeout)) as http_client,
        Client(streamable_http_client(url, http_client=http_client)) as client,
    ):
        names = [tool.name for tool in (await client.list_tools()).tools]
        outcomes = []
        for name, arguments in calls:
            try:
                result = await client.call_tool(name, arguments)
            except Exception as error:  # noqa: BLE001 - the SDK raises MCPError for the JSON-RPC error
                outcomes.append(f"denied {error}")
                continue
            first = result.content[0] if result.content else None
            outcomes.append(f"ok {first.text}" if isinstance(first, TextContent) else f"ok {result.content!r}")
        return names, outcomes


def run_session(url: str, token: str, calls: Calls, timeout: float = 60.0) -> tuple[list[str], list[str]]:
    async def bounded() -> tuple[list[str], list[str]]:
        with anyio.fail_after(timeout):
            return await _session(url, token, calls, timeout)

    return anyio.run(bounded)
