"""The egress proxy's server on loopback sockets: what it forwards, what it refuses, and that a tunnel is a tunnel.

The policy's matching is pinned in test_isolation_rules.py, address spellings in test_egress_addresses.py, and
enforcement from inside real containers in tests/integration/test_network_isolation.py; this runs the asyncio
server itself against a local upstream. The upstream is on 127.0.0.1, which the proxy reaches only because the
policy lists that literal: by a name, even a listed one, loopback is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from toolhive_apply.proxy.egress import EgressPolicy, EgressProxy, load_policy

Scenario = Callable[[int, int, "Origin", EgressProxy], Awaitable[None]]


def _policy(hosts: list[str], ports: list[int] | None = None, allow_all: bool = False) -> EgressPolicy:
    egress = {"allow_all": allow_all, "allow_host": hosts, "allow_port": ports or []}
    return load_policy({"name": "t-egress", "egress": egress})[2]


class Origin:
    """An HTTP/1.1 origin that answers once with its own name and records every byte the proxy sent it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.active = 0
        self.done = asyncio.Condition()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin")
            writer.write_eof()  # the answer is complete: the proxy then closes, so all it sent is read below
            await writer.drain()
            rest = b""
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                rest += chunk
            self.seen.append(head + rest)
            writer.close()
        finally:
            async with self.done:
                self.active -= 1
                self.done.notify_all()

    async def settled(self) -> list[bytes]:
        """What was received, once every connection the proxy opened is finished."""
        async with self.done:
            await asyncio.wait_for(self.done.wait_for(lambda: self.active == 0), 10)
        return self.seen


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def _run(policy: EgressPolicy, scenario: Scenario, **proxy: Any) -> None:
    async def main() -> None:
        origin = Origin()
        upstream = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
        egress = EgressProxy("t-egress", policy, **proxy)
        server = await asyncio.start_server(egress.handle, "127.0.0.1", 0)
        try:
            await scenario(server.sockets[0].getsockname()[1], upstream.sockets[0].getsockname()[1], origin, egress)
        finally:
            server.close()
            upstream.close()

    asyncio.run(main())


def test_an_allowed_request_is_forwarded_in_origin_form_and_a_denied_one_never_leaves() -> None:
    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        url = f"http://127.0.0.1:{upstream_port}"
        allowed = await _ask(port, f"GET {url}/x?k=1 HTTP/1.1\r\nHost: 127.0.0.1:{upstream_port}\r\n\r\n".encode())
        assert allowed.startswith(b"HTTP/1.1 200") and allowed.endswith(b"origin")
        seen = await origin.settled()
        assert seen[0].startswith(f"GET /x?k=1 HTTP/1.1\r\nHost: 127.0.0.1:{upstream_port}\r\n".encode())
        assert b"Connection: close" in seen[0]
        denied = await _ask(port, f"GET http://127.0.0.2:{upstream_port}/ HTTP/1.1\r\n\r\n".encode())
        assert denied.startswith(b"HTTP/1.1 403") and b"not allowed by the permission profile" in denied
        assert len(await origin.settled()) == 1  # the unlisted address never reached the origin
        health = await _ask(port, b"GET /health HTTP/1.1\r\n\r\n")
        assert json.loads(health.split(b"\r\n\r\n", 1)[1]) == {
            "status": "ok",
            "name": "t-egress",
            "allowed": 1,
            "denied": 1,
        }

    _run(_policy(["127.0.0.1"]), scenario)


def test_a_connect_tunnel_carries_bytes_both_ways_only_to_an_allowed_port() -> None:
    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        proxy.policy = _policy(["127.0.0.1"], [upstream_port])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT 127.0.0.1:{upstream_port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n")  # what TLS would carry: opaque to the proxy
        assert (await asyncio.wait_for(reader.readuntil(b"origin"), 10)).endswith(b"origin")
        writer.close()
        wrong_port = await _ask(port, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
        assert wrong_port.startswith(b"HTTP/1.1 403")
        assert await origin.settled() == [b"GET /inside HTTP/1.1\r\nHost: x\r\n\r\n"]

    _run(_policy([]), scenario)


def test_allow_all_refuses_the_proxy_host_s_own_loopback_in_every_spelling() -> None:
    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        spellings = ["127.0.0.1", "2130706433", "0x7f.1", "017700000001", "127.1", "[::ffff:127.0.0.1]"]
        spellings += ["[::127.0.0.1]", "[64:ff9b::7f00:1]", "localhost", "LOCALHOST.", "0.0.0.0", "[::1]"]
        for host in spellings:
            answer = await _ask(port, f"GET http://{host}:{upstream_port}/ HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403") and b"address of the Docker host" in answer, (host, answer)
            tunnel = await _ask(port, f"CONNECT {host}:{upstream_port} HTTP/1.1\r\n\r\n".encode())
            assert tunnel.startswith(b"HTTP/1.1 403"), (host, tunnel)
        assert await origin.settled() == []

    _run(_policy([], allow_all=True), scenario)


def test_a_listed_name_resolved_to_loopback_is_refused_after_one_lookup() -> None:
    """DNS rebinding: the name passed the profile; the address it resolves to is checked, not trusted."""
    lookups: list[str] = []

    async def rebinding(name: str, port: int) -> list[str]:
        lookups.append(name)
        return ["127.0.0.1", "::ffff:127.0.0.1"]

    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        answer = await _ask(port, f"GET http://api.example:{upstream_port}/ HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403"), answer
        assert lookups == ["api.example"] and await origin.settled() == []

    _run(_policy(["api.example"]), scenario, resolver=rebinding)


def test_a_host_header_naming_another_authority_is_refused_before_anything_is_sent() -> None:
    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        target = f"http://127.0.0.1:{upstream_port}/"
        for headers in ("Host: internal.example\r\n", f"Host: 127.0.0.1:{upstream_port}\r\nHost: internal.example\r\n"):
            answer = await _ask(port, f"GET {target} HTTP/1.1\r\n{headers}\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 400"), answer
        assert await origin.settled() == []

    _run(_policy(["127.0.0.1"]), scenario)


def test_exactly_the_declared_body_goes_up_and_a_request_smuggled_behind_it_does_not() -> None:
    async def scenario(port: int, upstream_port: int, origin: Origin, proxy: EgressProxy) -> None:
        target = f"http://127.0.0.1:{upstream_port}/"
        smuggled = b"GET /admin HTTP/1.1\r\nHost: internal.example\r\n\r\n"
        sized = f"POST {target} HTTP/1.1\r\nContent-Length: 5\r\n\r\n".encode() + b"hello" + smuggled
        assert (await _ask(port, sized)).endswith(b"origin")
        chunked = f"POST {target} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        chunked += b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n" + smuggled
        assert (await _ask(port, chunked)).endswith(b"origin")
        seen = await origin.settled()
        assert seen[0].endswith(b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
        assert seen[1].endswith(b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")  # re-framed
        assert not any(b"/admin" in request for request in seen)

    _run(_policy(["127.0.0.1"]), scenario)
