"""Synchronous helpers that talk to MCP servers with the real MCP Python SDK client.

The tests assert on what an actual MCP client sees (tool names, tool results)
rather than on hand-rolled JSON-RPC, so a server or proxy that only looks
right on the wire still fails them.  They target the ``mcp`` 2.x SDK, whose
client API differs from 1.x:

* ``mcp.Client`` / ``mcp.client.Client`` wraps a transport, negotiates the
  protocol era (``mode="auto"``: ``server/discover``, falling back to the
  ``initialize`` handshake) and exposes ``list_tools()`` / ``call_tool()``;
* the transports are async context managers yielding ``(read, write)``
  streams: ``mcp.client.streamable_http.streamable_http_client(url)``,
  ``mcp.client.sse.sse_client(url, timeout=..., sse_read_timeout=...)`` and
  ``mcp.client.stdio.stdio_client(StdioServerParameters(command=..., args=...))``.

Every public helper runs its own event loop (``anyio.run``) under an
``anyio.fail_after`` deadline, so a hung server fails a test with
``TimeoutError`` instead of hanging the suite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urldefrag, urlsplit

import anyio
from mcp.client import Client, Transport
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

__all__ = [
    "DEFAULT_TIMEOUT",
    "ToolCallError",
    "call_tool",
    "call_tool_stdio",
    "list_tools",
    "list_tools_stdio",
    "transport_for_url",
    "wait_until_ready",
]

DEFAULT_TIMEOUT = 20.0
"""Seconds allowed for one whole helper call: connect, negotiate, request, close."""

_MAX_PAGES = 100
"""Bound on ``tools/list`` pagination, so a buggy server cannot loop a test forever."""

_T = TypeVar("_T")
_logger = logging.getLogger(__name__)


class ToolCallError(RuntimeError):
    """The server answered a tool call with ``isError: true``.

    Raised instead of returning the error text so an unexpected failure reads
    as such in a test report; ``text`` keeps the server's message for tests
    that expect the error.
    """

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"tool {name!r} returned an error: {text}")
        self.name = name
        self.text = text


def _clean_url(url: str) -> str:
    """Drop a ``#fragment``: it never reaches the server and would confuse the transport choice."""
    return urldefrag(url).url


def transport_for_url(url: str, timeout: float = DEFAULT_TIMEOUT) -> Transport:
    """The SDK transport for ``url``: SSE when the path ends with ``/sse``, else streamable HTTP.

    That is the convention ToolHive uses in the URLs it hands to clients
    (``.../sse#name`` for SSE servers, ``.../mcp`` for streamable HTTP).
    """
    clean = _clean_url(url)
    if urlsplit(clean).path.rstrip("/").endswith("/sse"):
        transport: Transport = sse_client(clean, timeout=timeout, sse_read_timeout=timeout)
        return transport
    return streamable_http_client(clean)


def _unwrap(error: BaseException) -> BaseException:
    """Reduce nested single-member exception groups (from SDK task groups) to their one cause."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _run(action: Callable[[], Awaitable[_T]], timeout: float, what: str) -> _T:
    """Run ``action`` in a fresh event loop under a hard deadline of ``timeout`` seconds.

    A lone exception wrapped in exception groups by the SDK's task groups is
    re-raised bare so test failures show the actual cause.
    """

    async def bounded() -> _T:
        with anyio.fail_after(timeout):
            return await action()

    try:
        return anyio.run(bounded)
    except TimeoutError as error:
        raise TimeoutError(f"{what}: no answer within {timeout:g}s") from error
    except BaseExceptionGroup as group:
        cause = _unwrap(group)
        if cause is group:
            raise
        if isinstance(cause, TimeoutError):
            raise TimeoutError(f"{what}: no answer within {timeout:g}s") from cause
        raise cause from group


async def _tool_names(client: Client) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        names.extend(tool.name for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return names


def _first_text(name: str, result: CallToolResult) -> str:
    texts = [item.text for item in result.content[:1] if isinstance(item, TextContent)]
    if result.is_error:
        raise ToolCallError(name, texts[0] if texts else repr(result.content))
    if not texts:
        raise ValueError(f"tool {name!r} returned no text as its first content item: {result.content!r}")
    return texts[0]


def list_tools(url: str, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Names of the tools the MCP server at ``url`` offers (all pages)."""

    async def action() -> list[str]:
        async with Client(transport_for_url(url, timeout), read_timeout_seconds=timeout) as client:
            return await _tool_names(client)

    return _run(action, timeout, f"list_tools({url})")


def call_tool(url: str, name: str, arguments: dict[str, Any], timeout: float = DEFAULT_TIMEOUT) -> str:
    """Call tool ``name`` on the server at ``url``; return the text of the first content item.

    Raises ``ToolCallError`` when the server flags the result as an error.
    """

    async def action() -> str:
        async with Client(transport_for_url(url, timeout), read_timeout_seconds=timeout) as client:
            return _first_text(name, await client.call_tool(name, arguments))

    return _run(action, timeout, f"call_tool({url}, {name})")


def wait_until_ready(url: str, timeout: float = 60.0, interval: float = 0.3) -> list[str]:
    """Retry ``list_tools(url)`` until it succeeds; return the tool names.

    A freshly started container accepts TCP on its published port (docker-proxy)
    well before the server inside listens, so the first attempts fail with
    connection errors; those are retried until ``timeout`` has passed, then
    ``TimeoutError`` names the URL and the last error.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"MCP server at {url} not ready after {timeout:g}s (last error: {last_error!r})"
            ) from last_error
        try:
            return list_tools(url, timeout=min(remaining, DEFAULT_TIMEOUT))
        except Exception as error:  # any failure means "not ready yet"
            last_error = error
            _logger.debug("MCP server at %s not ready yet", url, exc_info=True)
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))


def _stdio_params(command: Sequence[str], env: dict[str, str] | None) -> StdioServerParameters:
    if not command:
        raise ValueError("command must not be empty")
    return StdioServerParameters(command=command[0], args=list(command[1:]), env=env)


def list_tools_stdio(
    command: Sequence[str], timeout: float = DEFAULT_TIMEOUT, env: dict[str, str] | None = None
) -> list[str]:
    """Tool names of a stdio MCP server started as ``command`` (e.g. ``docker run -i --rm IMAGE``).

    The SDK closes the server's stdin on exit and kills it if it lingers, so
    ``docker run -i --rm`` containers are removed afterwards.
    """

    async def action() -> list[str]:
        async with Client(stdio_client(_stdio_params(command, env)), read_timeout_seconds=timeout) as client:
            return await _tool_names(client)

    return _run(action, timeout, f"list_tools_stdio({' '.join(command)})")


def call_tool_stdio(
    command: Sequence[str],
    name: str,
    arguments: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
    env: dict[str, str] | None = None,
) -> str:
    """Like ``call_tool`` for a stdio MCP server started as ``command``."""

    async def action() -> str:
        async with Client(stdio_client(_stdio_params(command, env)), read_timeout_seconds=timeout) as client:
            return _first_text(name, await client.call_tool(name, arguments))

    return _run(action, timeout, f"call_tool_stdio({' '.join(command)}, {name})")
