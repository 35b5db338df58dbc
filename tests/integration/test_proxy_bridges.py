"""Every workload over both HTTP transports (issue #14.9): the real MCP SDK client over SSE against a streamable-HTTP
server and over streamable HTTP against an SSE server, both through the proxy container and under a tool policy, and
a stdio server's shared session over both at once. The streamable endpoint also takes a legacy SSE client (an older
Gemini CLI reads `url` as SSE), so one client entry serves both readings.

One test, three proxies: the containers start together and every check runs against the running set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp.client import Client, Transport
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import Proxy, ProxyStack, ready
from tests.support.mcp_client import call_tool

proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICY: dict[str, Any] = {"tools": ["sum", "echo"], "tools_override": {"add": {"name": "sum"}}}
TIMEOUT = 20.0


def sse(url: str) -> Transport:
    return sse_client(url, timeout=TIMEOUT, sse_read_timeout=TIMEOUT)


def streamable(url: str) -> Transport:
    return streamable_http_client(url)


def session_answers(transport: Transport, tool: str, arguments: dict[str, Any]) -> tuple[list[str], str]:
    """Tool names and one call's text, over one SDK session on ``transport``."""

    async def run() -> tuple[list[str], str]:
        with anyio.fail_after(TIMEOUT):
            async with Client(transport, read_timeout_seconds=TIMEOUT) as client:
                names = sorted(tool.name for tool in (await client.list_tools()).tools)
                result = await client.call_tool(tool, arguments)
                return names, "".join(getattr(part, "text", "") for part in result.content)

    return anyio.run(run)


WAYS: list[tuple[str, Callable[[str], Transport]]] = [("/mcp", streamable), ("/sse", sse), ("/mcp", sse)]


def test_each_workload_is_served_over_streamable_http_and_sse(proxy_stack: ProxyStack) -> None:
    upstream_mcp = proxy_stack.start_http_server("streamable-http", suffix="web-mcp")
    upstream_sse = proxy_stack.start_http_server("sse", suffix="web-sse")
    time_server = proxy_stack.start_stdio_server()
    over_mcp = proxy_stack.start_proxy(
        {"name": "m", "mode": "http", "upstream_url": f"http://{upstream_mcp}:8080/mcp", **POLICY},
        socket_access=False,
        suffix="proxy-mcp",
    )
    over_sse = proxy_stack.start_proxy(
        {"name": "s", "mode": "http", "upstream_url": f"http://{upstream_sse}:8080/sse", **POLICY},
        socket_access=False,
        suffix="proxy-sse",
    )
    stdio = proxy_stack.start_proxy(
        {"name": time_server, "mode": "stdio", "container": time_server, "proxy_mode": "sse"}, socket_access=True
    )
    proxies: list[tuple[Proxy, str]] = [(over_mcp, "streamable-http"), (over_sse, "sse"), (stdio, "stdio")]
    for proxy, _ in proxies:
        ready(proxy, proxy_stack)

    for proxy, native in proxies[:2]:
        for path, transport in WAYS:  # the native transport and the bridged one give the same answers
            text = f"{native} via {transport.__name__} on {path}"
            names, echoed = session_answers(transport(proxy.url(path)), "echo", {"text": text})
            assert (names, echoed) == (["echo", "sum"], text)
        assert call_tool(proxy.url("/sse"), "sum", {"a": 2, "b": 40}) == "42"  # renamed under the bridge too
        with pytest.raises(Exception, match="tool not found: get_env"):
            call_tool(proxy.url("/sse"), "get_env", {"name": "MCP_TRANSPORT"})

    for path, transport in WAYS:  # proxy_mode sse no longer means SSE only
        names, answer = session_answers(transport(stdio.url(path)), "get_current_time", {"timezone": "UTC"})
        assert "get_current_time" in names and json.loads(answer)["timezone"] == "UTC"

    # A bridged streamable session: an unknown one is 404 (the client re-initializes); DELETE ends a known one.
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    tools = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    assert over_sse.request("POST", "/mcp", tools, {**headers, "Mcp-Session-Id": "nope"})[0] == 404
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}).encode()
    status, answer_headers, answer = over_sse.request("POST", "/mcp", body, headers)
    assert status == 200 and json.loads(answer)["result"]["serverInfo"], answer
    session = {**headers, "Mcp-Session-Id": answer_headers["mcp-session-id"]}
    assert over_sse.request("POST", "/mcp", tools, session)[0] == 200
    assert over_sse.request("DELETE", "/mcp", None, session)[0] == 200
    assert over_sse.request("POST", "/mcp", tools, session)[0] == 404
