"""Attacks on the proxy container through its published port, against real upstreams on the test's own network.

Two upstreams: the real MCP Python SDK server (uvicorn/h11), and a Go-like recording server (``tests/support/go_like``)
whose decoder reads keys case-insensitively, keeps the last duplicate and forgives nearly everything, and which logs
every request line and every tool call it decodes. "The hidden tool was never reached" is read from that log.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import pytest

from tests.integration import test_proxy_harness as harness
from tests.integration.test_proxy_harness import Proxy, ProxyStack
from tests.support.go_like import UPSTREAM
from tests.support.policy_attacks import ALLOWED, ATTACKS, HIDDEN
from toolhive_apply.providers.workload.readiness import http_answers

proxy_image = harness.proxy_image
proxy_stack = harness.proxy_stack
pytestmark = [pytest.mark.docker, pytest.mark.slow]

POLICY: dict[str, Any] = {"tools": [ALLOWED]}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def raw_exchange(proxy: Proxy, data: bytes) -> bytes:
    """Write ``data`` as is to the proxy's port and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as connection:
        connection.sendall(data)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def go_like(stack: ProxyStack, mode: str = "http") -> tuple[str, Proxy]:
    upstream = stack.start_python(UPSTREAM, "golike")
    config = {"name": "golike", "mode": mode, "upstream_url": f"http://{upstream}:8080/mcp", **POLICY}
    proxy = stack.start_proxy(config, socket_access=False, env={} if mode == "remote" else None)
    proxy.wait_health("running", timeout=30)
    return upstream, proxy


def upstream_log(stack: ProxyStack, name: str) -> str:
    return str(stack.api.logs(name).decode(errors="replace"))


@pytest.mark.parametrize("mode", ["http", "remote"])
def test_no_attack_reaches_the_hidden_tool_of_a_go_like_server(proxy_stack: ProxyStack, mode: str) -> None:
    upstream, proxy = go_like(proxy_stack, mode)
    for attack, body in ATTACKS.items():
        status, _, answer = proxy.request("POST", "/mcp", body, {"Content-Type": "application/json"})
        assert f"called {HIDDEN}".encode() not in answer, attack
        assert status in (200, 400), (attack, status, answer[:200])
        assert b'"error"' in answer, (attack, answer[:200])
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": ALLOWED, "arguments": {}}}
    status, _, answer = proxy.request("POST", "/mcp", json.dumps(call).encode(), {"Content-Type": "application/json"})
    assert status == 200 and b"called echo" in answer  # the control: the recorder does record what reaches it
    log = upstream_log(proxy_stack, upstream)
    assert f"CALLED {ALLOWED}" in log and f"CALLED {HIDDEN}" not in log, log[-2000:]
    listing = json.dumps({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}).encode()
    _, _, answer = proxy.request("POST", "/mcp", listing, {"Content-Type": "application/json"})
    assert [t["name"] for t in json.loads(answer)["result"]["tools"]] == [ALLOWED]


def _sdk_session(proxy: Proxy) -> str:
    status, headers, answer = proxy.request("POST", "/mcp", json.dumps(INITIALIZE).encode(), MCP_HEADERS)
    assert status == 200, answer
    session = headers["mcp-session-id"]
    note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    proxy.request("POST", "/mcp", note, {**MCP_HEADERS, "Mcp-Session-Id": session})
    return session


def test_no_attack_runs_the_hidden_tool_of_the_python_sdk_server(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("streamable-http")
    proxy = proxy_stack.start_proxy(
        {"name": web, "mode": "http", "upstream_url": f"http://{web}:8080/mcp", **POLICY}, socket_access=False
    )
    harness.ready(proxy, proxy_stack)
    session = _sdk_session(proxy)
    headers = {**MCP_HEADERS, "Mcp-Session-Id": session}
    for attack, body in ATTACKS.items():
        _, _, answer = proxy.request("POST", "/mcp", body, headers)
        assert b"streamable-http" not in answer, (attack, answer[:300])  # get_env(MCP_TRANSPORT) never answered
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": ALLOWED, "arguments": {"text": "hi"}}}
    status, _, answer = proxy.request("POST", "/mcp", json.dumps(call).encode(), headers)
    assert status == 200 and b'"hi"' in answer  # the session is intact and the allowed tool works


def test_a_smuggled_delete_never_reaches_the_python_sdk_server(proxy_stack: ProxyStack) -> None:
    web = proxy_stack.start_http_server("streamable-http")
    proxy = proxy_stack.start_proxy(
        {"name": web, "mode": "http", "upstream_url": f"http://{web}:8080/mcp"}, socket_access=False
    )
    harness.ready(proxy, proxy_stack)
    session = _sdk_session(proxy).encode()
    ping = b'{"jsonrpc":"2.0","id":9,"method":"ping"}'
    delete = b"DELETE /mcp HTTP/1.1\r\nHost: web\r\nMcp-Session-Id: " + session + b"\r\n\r\n"
    head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nMcp-Session-Id: " + session
    head += b"\r\nAccept: application/json, text/event-stream\r\n"
    attacks = [
        head + b"X-A: a\n" + delete[:-2] + b"Content-Length: %d\r\n\r\n%s" % (len(ping), ping),
        head + b"X-A: a\x00\r\nContent-Length: %d\r\n\r\n%s" % (len(ping), ping),
        head + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + delete,
        head + b"Content-Length: %d\r\nContent-Length: 0\r\n\r\n%s" % (len(ping), ping) + delete,
        head + b"Transfer-Encoding: chunked\r\n\r\n0x29\r\n" + ping + b"\r\n0\r\n\r\n" + delete,
    ]
    for attack in attacks:
        answer = raw_exchange(proxy, attack)
        assert answer.startswith(b"HTTP/1.1 400 ") and len(re.findall(rb"HTTP/1\.1 \d{3} ", answer)) == 1, answer
    status, _, answer = proxy.request("POST", "/mcp", ping, {**MCP_HEADERS, "Mcp-Session-Id": session.decode()})
    assert status == 200 and b'"result"' in answer  # the session was not terminated


def test_the_go_like_upstream_sees_one_request_per_accepted_request_and_the_probe_ends_its_session(
    proxy_stack: ProxyStack,
) -> None:
    upstream, proxy = go_like(proxy_stack)
    head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    smuggled = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    for attack in (
        head + b"X-A: a\n" + smuggled[:-2] + b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % len(smuggled) + smuggled,
        head + b"Transfer-Encoding: chunked\r\n\r\n" + b"29 ;x\r\n" + body + b"\r\n0\r\n\r\n" + smuggled,
        head + b"Host: evil.example\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    ):
        assert raw_exchange(proxy, attack).startswith(b"HTTP/1.1 400 ")
    rebinding = head.replace(b"127.0.0.1", b"attacker.example:8080") + b"Content-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    assert raw_exchange(proxy, rebinding).startswith(b"HTTP/1.1 403 ")
    assert http_answers("127.0.0.1", proxy.port, "streamable-http")
    expected = ["REQUEST POST /mcp", "REQUEST DELETE /mcp go-session"]
    deadline = time.monotonic() + 20  # the upstream's log reaches `docker logs` a moment after the answer
    while True:
        log = upstream_log(proxy_stack, upstream)
        requests = [line for line in log.splitlines() if line.startswith("REQUEST")]
        if requests == expected or len(requests) > len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert requests == expected, log[-2000:]


def test_stdio_sessions_stay_bounded_and_deep_nesting_is_a_clean_400(proxy_stack: ProxyStack) -> None:
    server = proxy_stack.start_stdio_server()
    proxy = proxy_stack.start_proxy(
        {"name": "time", "mode": "stdio", "container": server, "max_sessions": 20}, socket_access=True
    )
    proxy.wait_health("running", timeout=60)
    for _ in range(5):
        assert http_answers("127.0.0.1", proxy.port, "streamable-http")
    assert proxy.health()[1]["sessions"] == 0  # every probe ended the session it opened
    for _ in range(300):
        status, _, _ = proxy.request("POST", "/mcp", json.dumps(INITIALIZE).encode(), MCP_HEADERS)
        assert status == 200
    assert proxy.health()[1]["sessions"] == 20
    deep = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":'
    deep += b"[" * 1000 + b"]" * 1000 + b"}}}"
    for _ in range(3):
        status, _, answer = proxy.request("POST", "/mcp", deep, MCP_HEADERS)
        assert status == 400 and b"nested deeper" in answer
    log = str(proxy_stack.api.logs(proxy.name).decode(errors="replace"))
    assert "Traceback" not in log and "internal error" not in log
