"""The proxy container in front of a real stdio MCP server (mcp-server-time), driven by the real MCP SDK client.

Each test runs the time server and the proxy on a private bridge network, the proxy attached through the mounted
Docker socket, read-only, without capabilities, non-root, published on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import Proxy, ProxyStack, ready
from tests.support.mcp_client import call_tool, list_tools
from toolhive_apply.proxy.jsonrpc import SERVER_UNAVAILABLE

# The shared fixtures, bound here so pytest finds them for this module.
proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

TIME_TOOLS = {"get_current_time", "convert_time"}
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
).encode()
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def stdio_proxy(stack: ProxyStack, **config: Any) -> Proxy:
    server = stack.start_stdio_server()
    return stack.start_proxy({"name": server, "mode": "stdio", "container": server, **config}, socket_access=True)


def utc_now(url: str, tool: str = "get_current_time", timezone: str = "UTC") -> dict[str, Any]:
    return dict(json.loads(call_tool(url, tool, {"timezone": timezone})))


def test_the_sdk_client_lists_and_calls_tools_over_streamable_http(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    assert set(ready(proxy, proxy_stack)) == TIME_TOOLS
    assert utc_now(proxy.url())["timezone"] == "UTC"
    status, health = proxy.health()
    assert (status, health["status"], health["server"]["name"]) == (200, "running", "mcp-time")
    assert health["sessions"] == 0  # the SDK client ends its session with DELETE
    settings = proxy_stack.api.inspect_container(proxy.name)
    assert settings["Config"]["User"] == "65532:65532"
    assert settings["HostConfig"]["ReadonlyRootfs"] is True
    assert settings["HostConfig"]["CapDrop"] == ["ALL"]
    assert settings["NetworkSettings"]["Ports"]["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(proxy.port)}]


def test_the_sdk_client_lists_and_calls_tools_over_legacy_sse(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack, proxy_mode="sse")
    url = proxy.url("/sse") + f"#{proxy.name}"  # the URL shape ToolHive gives clients
    assert set(ready(proxy, proxy_stack, path="/sse")) == TIME_TOOLS
    assert json.loads(call_tool(url, "get_current_time", {"timezone": "Asia/Tokyo"}))["timezone"] == "Asia/Tokyo"
    assert proxy.health()[0] == 200


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_concurrent_clients_never_get_each_others_answers(proxy_stack: ProxyStack, path: str) -> None:
    proxy = stdio_proxy(proxy_stack, proxy_mode="sse" if path == "/sse" else "streamable-http")
    ready(proxy, proxy_stack, path=path)
    zones = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "UTC"]
    results: dict[str, list[str]] = {zone: [] for zone in zones}
    errors: list[BaseException] = []

    def client(zone: str) -> None:
        try:
            for _ in range(5):
                results[zone].append(utc_now(proxy.url(path), timezone=zone)["timezone"])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(zone,)) for zone in zones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert results == {zone: [zone] * 5 for zone in zones}


def test_renamed_and_filtered_tools_are_what_the_sdk_client_sees(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(
        proxy_stack,
        tools=["now"],
        tools_override={"get_current_time": {"name": "now", "description": "The time, now."}},
    )
    assert ready(proxy, proxy_stack) == ["now"]
    assert utc_now(proxy.url(), tool="now")["timezone"] == "UTC"
    for hidden in ("convert_time", "get_current_time"):
        with pytest.raises(Exception, match=f"tool not found: {hidden}"):
            call_tool(proxy.url(), hidden, {"timezone": "UTC"})
    listed = json.loads(_raw_tools_list(proxy))
    assert [(t["name"], t["description"]) for t in listed["result"]["tools"]] == [("now", "The time, now.")]


def _raw_tools_list(proxy: Proxy) -> bytes:
    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    assert status == 200
    session = {**JSON_HEADERS, "Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18"}
    body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()
    status, _, answer = proxy.request("POST", "/mcp", body, session)
    assert status == 200
    return answer


def test_restarting_the_server_and_then_the_proxy_heals_without_any_manual_step(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    server = proxy_stack.containers[0]
    ready(proxy, proxy_stack)
    assert proxy.health()[1]["attachments"] == 1

    proxy_stack.api.restart(server, timeout=5)
    assert set(ready(proxy, proxy_stack, timeout=30)) == TIME_TOOLS
    assert utc_now(proxy.url())["timezone"] == "UTC"
    assert proxy.wait_health("running")["attachments"] == 2  # re-attached and re-initialized the new process

    proxy_stack.api.restart(proxy.name, timeout=5)
    assert set(ready(proxy, proxy_stack, timeout=30)) == TIME_TOOLS  # same published port, same server process
    assert utc_now(proxy.url())["timezone"] == "UTC"


def test_health_follows_the_server_and_requests_fail_fast_while_it_is_down(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack)
    server = proxy_stack.containers[0]
    ready(proxy, proxy_stack)
    assert proxy.health()[0] == 200

    proxy_stack.api.stop(server, timeout=5)
    down = proxy.wait_health("unhealthy", timeout=15)
    assert "not running" in down["detail"] or "detached" in down["detail"]
    assert proxy.health()[0] == 503
    started = time.monotonic()
    status, headers, body = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    assert time.monotonic() - started < 7
    assert status == 503 and "mcp-session-id" not in headers
    assert json.loads(body)["error"]["code"] == SERVER_UNAVAILABLE

    proxy_stack.api.start(server)
    proxy.wait_health("running", timeout=30)
    assert set(list_tools(proxy.url())) == TIME_TOOLS


def test_origins_body_size_and_sessions_are_enforced_on_the_wire(proxy_stack: ProxyStack) -> None:
    proxy = stdio_proxy(proxy_stack, max_body_bytes=4096)
    ready(proxy, proxy_stack)

    status, _, body = proxy.request("POST", "/mcp", INITIALIZE, {**JSON_HEADERS, "Origin": "http://evil.example"})
    assert status == 403 and b"origin" in body
    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, {**JSON_HEADERS, "Origin": "http://localhost:6274"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:6274"

    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 5000}}).encode()
    status, _, body = proxy.request("POST", "/mcp", big, JSON_HEADERS)
    assert status == 413 and json.loads(body)["error"]["code"] == -32600

    tools_list = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode()
    assert proxy.request("POST", "/mcp", tools_list, JSON_HEADERS)[0] == 400  # no session
    assert proxy.request("POST", "/mcp", tools_list, {**JSON_HEADERS, "Mcp-Session-Id": "nope"})[0] == 404

    # a method this protocol era does not know, sent without a session, gets the server's own JSON-RPC error
    discover = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}}).encode()
    status, _, body = proxy.request("POST", "/mcp", discover, {**JSON_HEADERS, "MCP-Protocol-Version": "2026-07-28"})
    assert status == 200 and json.loads(body)["id"] == 0 and "error" in json.loads(body)

    status, headers, _ = proxy.request("POST", "/mcp", INITIALIZE, JSON_HEADERS)
    session = {**JSON_HEADERS, "Mcp-Session-Id": headers["mcp-session-id"]}
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    assert proxy.request("POST", "/mcp", initialized, session)[0] == 202
    assert proxy.request("DELETE", "/mcp", None, session)[0] == 200
    assert proxy.request("POST", "/mcp", tools_list, session)[0] == 404
