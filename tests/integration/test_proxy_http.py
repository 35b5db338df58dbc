"""The proxy container relaying to MCP servers that already speak HTTP (http mode) or sit elsewhere (remote mode).

The upstream is the FastMCP test server on the test's private network, never published; the SDK client reaches it
only through the proxy, so the tool policy and header injection are checked where a client sees them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import Proxy, ProxyStack, ready
from tests.support.mcp_client import call_tool

# The shared fixtures, bound here so pytest finds them for this module.
proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICY: dict[str, Any] = {
    "tools": ["sum", "say"],
    "tools_override": {"add": {"name": "sum", "description": "Add two integers."}, "echo": {"name": "say"}},
}

# An upstream that answers every POST with the headers it received, as a JSON-RPC result (stdlib only).
HEADER_ECHO = """
import http.server, json
class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = {"jsonrpc": "2.0", "id": body.get("id"),
                  "result": {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Echo).serve_forever()
"""


def assert_policy_applies(proxy: Proxy, stack: ProxyStack, path: str) -> None:
    url = proxy.url(path)
    assert sorted(ready(proxy, stack, path=path)) == ["say", "sum"]
    assert call_tool(url, "sum", {"a": 2, "b": 40}) == "42"
    assert call_tool(url, "say", {"text": "through the proxy"}) == "through the proxy"
    for hidden in ("get_env", "add", "echo"):
        with pytest.raises(Exception, match=f"tool not found: {hidden}"):
            call_tool(url, hidden, {"name": "PATH"})


def test_http_mode_relays_streamable_http_and_applies_the_tool_policy(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("streamable-http")
    config = {"name": web, "mode": "http", "upstream_url": f"http://{web}:8080/mcp", **POLICY}
    proxy = proxy_stack.start_proxy(config, socket_access=False)
    assert_policy_applies(proxy, proxy_stack, "/mcp")
    status, health = proxy.health()
    assert (status, health["status"], health["upstream"]) == (200, "running", f"http://{web}:8080/mcp")
    assert proxy_stack.api.inspect_container(proxy.name)["HostConfig"]["Binds"] in (None, [])  # no socket needed


def test_http_mode_relays_legacy_sse_and_applies_the_tool_policy(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("sse")
    config = {"name": web, "mode": "http", "upstream_url": f"http://{web}:8080/sse", **POLICY}
    proxy = proxy_stack.start_proxy(config, socket_access=False)
    assert_policy_applies(proxy, proxy_stack, "/sse")


def test_http_mode_without_a_policy_is_a_plain_relay_and_reports_a_missing_upstream(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("streamable-http")
    proxy = proxy_stack.start_proxy(
        {"name": web, "mode": "http", "upstream_url": f"http://{web}:8080/mcp"}, socket_access=False
    )
    assert sorted(ready(proxy, proxy_stack)) == ["add", "echo", "get_env"]
    assert call_tool(proxy.url(), "get_env", {"name": "MCP_TRANSPORT"}) == "streamable-http"
    proxy_stack.api.stop(web, timeout=5)
    proxy.wait_health("unhealthy", timeout=20)
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).encode()
    status, _, answer = proxy.request("POST", "/mcp", body, {"Content-Type": "application/json"})
    assert status == 502 and json.loads(answer)["id"] == 3


def test_remote_mode_adds_configured_and_secret_headers_and_drops_the_browser_origin(proxy_stack: ProxyStack) -> None:
    echo = proxy_stack.start_python(HEADER_ECHO, "echo")
    config = {
        "name": "remote-echo",
        "mode": "remote",
        "upstream_url": f"http://{echo}:8080/api/mcp?tenant=blue",
        "headers": {"X-Team": "platform"},
        "header_env": {"X-Api-Key": "REMOTE_API_KEY"},
        "bearer_token_env": "REMOTE_TOKEN",
    }
    proxy = proxy_stack.start_proxy(
        config, socket_access=False, env={"REMOTE_API_KEY": "key-123", "REMOTE_TOKEN": "token-456"}
    )
    proxy.wait_health("running", timeout=30)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    headers = {"Content-Type": "application/json", "Origin": "http://localhost:6274", "Authorization": "Bearer client"}
    status, _, answer = proxy.request("POST", "/api/mcp", body, headers)
    assert status == 200, answer
    seen = json.loads(answer)["result"]
    assert seen["path"] == "/api/mcp?tenant=blue"  # the remote URL's query is kept
    assert seen["headers"]["authorization"] == "Bearer token-456"  # the configured credential wins
    assert seen["headers"]["x-api-key"] == "key-123"
    assert seen["headers"]["x-team"] == "platform"
    assert "origin" not in seen["headers"]
    env = proxy_stack.api.inspect_container(proxy.name)["Config"]["Env"]
    assert not any("key-123" in item for item in env if item.startswith("THV_PROXY_CONFIG="))


def test_remote_mode_serves_a_real_mcp_server_to_the_sdk_client(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("streamable-http")
    config = {"name": "remote", "mode": "remote", "upstream_url": f"http://{web}:8080/mcp", **POLICY}
    proxy = proxy_stack.start_proxy(config, socket_access=False, env={})
    assert_policy_applies(proxy, proxy_stack, "/mcp")
