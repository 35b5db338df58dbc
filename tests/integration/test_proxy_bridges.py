"""Every workload over both HTTP transports (issue #14.9): the real MCP SDK client over SSE against a streamable-HTTP
server and over streamable HTTP against an SSE server, both through the proxy container and under a tool policy, and
a stdio server's shared session over both at once.

One test, three proxies: the containers start together and every check runs against the running set.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import ProxyStack, ready
from tests.support.mcp_client import call_tool

proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICY: dict[str, Any] = {"tools": ["sum", "echo"], "tools_override": {"add": {"name": "sum"}}}


def test_each_workload_is_served_over_streamable_http_and_sse(proxy_stack: ProxyStack) -> None:
    streamable = proxy_stack.start_http_server("streamable-http", suffix="web-mcp")
    sse = proxy_stack.start_http_server("sse", suffix="web-sse")
    time_server = proxy_stack.start_stdio_server()
    over_mcp = proxy_stack.start_proxy(
        {"name": "m", "mode": "http", "upstream_url": f"http://{streamable}:8080/mcp", **POLICY},
        socket_access=False,
        suffix="proxy-mcp",
    )
    over_sse = proxy_stack.start_proxy(
        {"name": "s", "mode": "http", "upstream_url": f"http://{sse}:8080/sse", **POLICY},
        socket_access=False,
        suffix="proxy-sse",
    )
    stdio = proxy_stack.start_proxy(
        {"name": time_server, "mode": "stdio", "container": time_server, "proxy_mode": "sse"}, socket_access=True
    )

    for proxy, native in ((over_mcp, "streamable-http"), (over_sse, "sse")):
        for path in ("/mcp", "/sse"):  # the native transport and the bridged one give the same answers
            url = proxy.url(path)
            assert sorted(ready(proxy, proxy_stack, path=path)) == ["echo", "sum"], (native, path)
            assert call_tool(url, "sum", {"a": 2, "b": 40}) == "42"
            assert call_tool(url, "echo", {"text": f"{native} via {path}"}) == f"{native} via {path}"
            with pytest.raises(Exception, match="tool not found: get_env"):
                call_tool(url, "get_env", {"name": "MCP_TRANSPORT"})

    for path in ("/mcp", "/sse"):  # proxy_mode sse no longer means SSE only
        assert "get_current_time" in ready(stdio, proxy_stack, path=path)
        answer = json.loads(call_tool(stdio.url(path), "get_current_time", {"timezone": "UTC"}))
        assert answer["timezone"] == "UTC"

    # A bridged streamable session: unknown ids are 404 (the client re-initializes), DELETE ends it.
    status, _, _ = over_sse.request(
        "POST",
        "/mcp",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        {"Content-Type": "application/json", "Mcp-Session-Id": "nope"},
    )
    assert status == 404
