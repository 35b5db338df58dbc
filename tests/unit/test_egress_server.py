"""The egress proxy's server on loopback sockets: what it forwards, what it refuses, and that a tunnel is a tunnel.

The policy's matching is pinned in test_isolation_rules.py and enforcement from inside real containers in
tests/integration/test_network_isolation.py; this runs the asyncio server itself against a local upstream.
"""

from __future__ import annotations

import asyncio
import json

from toolhive_apply.proxy.egress import EgressPolicy, EgressProxy


async def _upstream() -> tuple[asyncio.Server, int, list[bytes]]:
    """An HTTP/1.1 origin that records what it was sent and answers with its own name."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def _run(policy: EgressPolicy, scenario: object) -> object:
    async def main() -> object:
        upstream, upstream_port, seen = await _upstream()
        proxy = EgressProxy("t-egress", policy)
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await scenario(port, upstream_port, seen, proxy)  # type: ignore[operator]
        finally:
            server.close()
            upstream.close()

    return asyncio.run(main())


def test_an_allowed_request_is_forwarded_in_origin_form_and_a_denied_one_never_leaves() -> None:
    async def scenario(port: int, upstream_port: int, seen: list[bytes], proxy: EgressProxy) -> None:
        allowed = await _ask(port, f"GET http://localhost:{upstream_port}/x?k=1 HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert allowed.startswith(b"HTTP/1.1 200") and allowed.endswith(b"origin")
        assert seen[0].startswith(b"GET /x?k=1 HTTP/1.1\r\n") and b"Connection: close" in seen[0]
        denied = await _ask(port, f"GET http://127.0.0.1:{upstream_port}/ HTTP/1.1\r\n\r\n".encode())
        assert denied.startswith(b"HTTP/1.1 403") and b"not allowed by the permission profile" in denied
        assert len(seen) == 1  # the raw IP never reached the origin
        health = await _ask(port, b"GET /health HTTP/1.1\r\n\r\n")
        assert json.loads(health.split(b"\r\n\r\n", 1)[1]) == {
            "status": "ok",
            "name": "t-egress",
            "allowed": 1,
            "denied": 1,
        }

    _run(EgressPolicy(False, ("localhost",), frozenset()), scenario)


def test_a_connect_tunnel_carries_bytes_both_ways_only_to_an_allowed_port() -> None:
    async def scenario(port: int, upstream_port: int, seen: list[bytes], proxy: EgressProxy) -> None:
        proxy.policy = EgressPolicy(False, ("localhost",), frozenset({upstream_port}))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT localhost:{upstream_port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n")  # what TLS would carry: opaque to the proxy
        assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"origin")
        writer.close()
        assert seen == [b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n"]
        wrong_port = await _ask(port, b"CONNECT localhost:1 HTTP/1.1\r\n\r\n")
        assert wrong_port.startswith(b"HTTP/1.1 403") and len(seen) == 1

    _run(EgressPolicy(False, ("localhost",), frozenset()), scenario)


def test_allow_all_still_refuses_the_proxy_host_s_own_loopback() -> None:
    async def scenario(port: int, upstream_port: int, seen: list[bytes], proxy: EgressProxy) -> None:
        answer = await _ask(port, f"GET http://localhost:{upstream_port}/ HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403") and b"host-local" in answer
        assert seen == []

    _run(EgressPolicy(True, (), frozenset()), scenario)
