"""The real proxy (server, router, relay) in process, between raw sockets and a recording upstream on loopback.

Requests are written byte by byte as an attacker would; the upstream records every request line and every byte it
receives, so "nothing was smuggled" is checked where it matters: on the server's side of the proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from toolhive_apply.proxy.app import build_server
from toolhive_apply.proxy.config import load_config
from toolhive_apply.proxy.httpserver import Request, Response
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.origin import HostPolicy
from toolhive_apply.proxy.session_table import SessionTable
from toolhive_apply.proxy.sessions import SessionHub
from toolhive_apply.proxy.streamable import StreamableFrontend
from toolhive_apply.proxy.tools import ToolPolicy

BODY = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n"
    b'{"jsonrpc":"2.0","id":1,"result":{}}'
)


@dataclass
class RecordingUpstream:
    """Answers each connection's first request with the next scripted response (``OK`` when the script is empty)
    and records what it received: request lines, and any byte after the first request (a smuggled one)."""

    script: list[bytes] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    leftovers: list[bytes] = field(default_factory=list)
    issue_sessions: bool = False
    issued: int = 0
    port: int = 0

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *header_lines = head[:-4].split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((line, headers, body))
            if self.script:
                writer.write(self.script.pop(0))
            elif self.issue_sessions and b'"initialize"' in body:
                answer = b'{"jsonrpc":"2.0","id":1,"result":{}}'
                self.issued += 1
                session = f"s{self.issued}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: " + session)
                writer.write(b"\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            else:
                writer.write(OK)
            await writer.drain()
            writer.write_eof()
            self.leftovers.append(await asyncio.wait_for(reader.read(), 5))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # the proxy went away, or the test ended
        finally:
            writer.close()

    @property
    def smuggled(self) -> list[bytes]:
        return [extra for extra in self.leftovers if extra]


@asynccontextmanager
async def relay(upstream: RecordingUpstream, **config: Any) -> AsyncIterator[int]:
    """The proxy in http mode in front of ``upstream``; yields the proxy's port."""
    upstream_server = await asyncio.start_server(upstream._connection, "127.0.0.1", 0)
    upstream.port = upstream_server.sockets[0].getsockname()[1]
    raw = {"name": "t", "mode": "http", "listen_port": 1024, "upstream_url": f"http://127.0.0.1:{upstream.port}/mcp"}
    server, _ = build_server(load_config(json.dumps({**raw, **config}), {}))
    await server.start("127.0.0.1", 0)
    try:
        yield server.port
    finally:
        await server.close()
        upstream_server.close()


async def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on one connection and read until the proxy closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def post(
    headers: bytes = b"", body: bytes = BODY, *, length: bool = True, line: bytes = b"POST /mcp HTTP/1.1"
) -> bytes:
    framing = b"Content-Length: %d\r\n" % len(body) if length else b""
    return line + b"\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + framing + headers + b"\r\n" + body


SMUGGLED = b"DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Session-Id: victim\r\n\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"

REQUEST_ATTACKS: dict[str, bytes] = {
    "bare LF in a value": post(b"X-A: a\n" + SMUGGLED[:-2]),
    "bare CR in a value": post(b"X-A: a\rX-B: b\r\n"),
    "NUL in a value": post(b"X-A: a\x00b\r\n"),
    "DEL in a value": post(b"X-A: a\x7fb\r\n"),
    "control byte in a value": post(b"X-A: a\x0bb\r\n"),
    "bare LF in the request line": b"POST /mcp\nDELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "NUL in the target": post(line=b"POST /mcp\x00 HTTP/1.1"),
    "absolute-form target": post(line=b"POST http://evil.example/mcp HTTP/1.1"),
    "authority-looking target": post(line=b"POST //evil.example/mcp HTTP/1.1"),
    "fragment in the target": post(line=b"POST /mcp#x HTTP/1.1"),
    "bad escape in the target": post(line=b"POST /mcp%zz HTTP/1.1"),
    "space in the target": post(line=b"POST /m cp HTTP/1.1"),
    "HTTP/2.0": post(line=b"POST /mcp HTTP/2.0"),
    "obs-fold": post(b"X-A: a\r\n b\r\n"),
    "space before the colon": post(b"Content-Length : 5\r\n"),
    "tab in a name": post(b"X\tA: a\r\n"),
    "CL and TE": post(CHUNKED, b"0\r\n\r\n" + SMUGGLED),
    "TE and CL": post(CHUNKED + b"Content-Length: 5\r\n", b"0\r\n\r\n" + SMUGGLED, length=False),
    "two equal CL": post(b"Content-Length: %d\r\n" % len(BODY)),
    "two different CL": post(b"Content-Length: 0\r\n", BODY + SMUGGLED),
    "CL with a sign": post(b"Content-Length: +4\r\n", length=False),
    "CL as a list": post(b"Content-Length: 4, 4\r\n", length=False),
    "CL in superscript": post(b"Content-Length: \xb2\r\n", length=False),
    "CL too long": post(b"Content-Length: 0000000000000000000040\r\n", length=False),
    "TE identity": post(b"Transfer-Encoding: identity\r\n", length=False),
    "TE gzip, chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n", length=False),
    "TE chunked twice": post(CHUNKED + CHUNKED, b"0\r\n\r\n", length=False),
    "TE chunked, chunked": post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n", length=False),
    "TE with a trailing comma": post(b"Transfer-Encoding: chunked,\r\n", b"0\r\n\r\n", length=False),
    "TE on HTTP/1.0": post(CHUNKED, b"0\r\n\r\n", length=False, line=b"POST /mcp HTTP/1.0"),
    "chunk size 0x": post(CHUNKED, b"0x28\r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "chunk size with a sign": post(CHUNKED, b"+28\r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "chunk size with an underscore": post(CHUNKED, b"2_8\r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "chunk size with a space": post(CHUNKED, b"28 \r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "negative chunk size": post(CHUNKED, b"-1\r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "huge chunk size": post(CHUNKED, b"ffffffffffffffffffff\r\n" + BODY, length=False),
    "chunk extension": post(CHUNKED, b"28;x=" + b"a" * 100 + b"\r\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "chunk without CRLF": post(CHUNKED, b"28\r\n" + BODY + b"XX0\r\n\r\n", length=False),
    "bare LF after a chunk size": post(CHUNKED, b"28\n" + BODY + b"\r\n0\r\n\r\n", length=False),
    "trailer": post(CHUNKED, b"28\r\n" + BODY + b"\r\n0\r\nX-Smuggled: yes\r\n\r\n", length=False),
    "no Host on HTTP/1.1": b"POST /mcp HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "two Hosts": post(b"Host: evil.example\r\n"),
    "two session ids": post(b"Mcp-Session-Id: a\r\nmcp-session-id: b\r\n"),
    "two Origins": post(b"Origin: http://localhost\r\nOrigin: http://evil.example\r\n"),
}


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.mark.parametrize("attack", sorted(REQUEST_ATTACKS))
def test_a_malformed_request_gets_400_and_nothing_reaches_the_upstream(attack: str) -> None:
    upstream = RecordingUpstream()

    async def scenario() -> None:
        async with relay(upstream) as port:
            answer = await exchange(port, REQUEST_ATTACKS[attack])
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
            assert len(re.findall(rb"HTTP/1\.1 \d{3} ", answer)) == 1  # one answer, then the connection closed

    run(scenario)
    assert upstream.requests == [] and upstream.smuggled == []


def test_well_formed_requests_are_relayed_one_for_one() -> None:
    upstream = RecordingUpstream()
    chunked = post(CHUNKED, b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), length=False)
    pipelined = post() + post(b"Connection: close\r\n")

    async def scenario() -> None:
        async with relay(upstream) as port:
            assert (await exchange(port, post(b"Connection: close\r\n"))).startswith(b"HTTP/1.1 200 ")
            assert (await exchange(port, chunked.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))).startswith(
                b"HTTP/1.1 200 "
            )
            assert (await exchange(port, pipelined)).count(b"HTTP/1.1 200 ") == 2
            # HTTP/1.0 keep-alive is not honoured: the request after it is never read.
            keep = post(b"Connection: keep-alive\r\n", line=b"POST /mcp HTTP/1.0")
            assert (await exchange(port, keep + post())).count(b"HTTP/1.1 200 ") == 1

    run(scenario)
    assert [line for line, _, _ in upstream.requests] == ["POST /mcp HTTP/1.1"] * 5
    assert all(body == BODY for _, _, body in upstream.requests)
    assert upstream.smuggled == []


def test_a_valid_request_after_a_malformed_one_on_the_same_connection_is_never_read() -> None:
    upstream = RecordingUpstream()

    async def scenario() -> None:
        async with relay(upstream) as port:
            answer = await exchange(port, post() + post(b"X-A: a\nX-B: b\r\n") + post())
            assert answer.count(b"HTTP/1.1 200 ") == 1 and answer.count(b"HTTP/1.1 400 ") == 1

    run(scenario)
    assert len(upstream.requests) == 1


RESPONSE_ATTACKS: dict[str, bytes] = {
    "bare LF in a header": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: a\nSet-Cookie: evil=1\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "NUL in a header": b"HTTP/1.1 200 OK\r\nX-A: a\x00\r\nContent-Length: 2\r\n\r\n{}",
    "CL and TE": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two CL": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
    "TE identity": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n{}",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0x2\r\n{}\r\n0\r\n\r\n",
    "bad status line": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    "endless 100 Continue": b"HTTP/1.1 100 Continue\r\n\r\n" * 20,
    "101 Switching Protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: evil=1\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("policy", [{}, {"tools": ["echo"]}], ids=["relay", "policy"])
@pytest.mark.parametrize("attack", sorted(RESPONSE_ATTACKS))
def test_a_malformed_upstream_answer_is_a_502_and_the_client_connection_stays_in_step(
    attack: str, policy: dict[str, Any]
) -> None:
    upstream = RecordingUpstream(script=[RESPONSE_ATTACKS[attack]])

    async def scenario() -> None:
        async with relay(upstream, **policy) as port:
            answer = await exchange(port, post() + post(b"Connection: close\r\n"))
            first, _, second = answer.partition(b"HTTP/1.1 200 ")
            assert first.startswith(b"HTTP/1.1 502 ") and b"evil" not in first, answer[:300]
            assert b'"result":{}' in second and second.count(b"HTTP/1.1 ") == 0

    run(scenario)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("LocalHost:8080", True),
        ("localhost.:9", True),
        ("127.0.0.1:1234", True),
        ("127.8.9.10", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("[0:0:0:0:0:0:0:1]", True),
        ("[::ffff:127.0.0.1]:1", True),
        ("mcp.internal:8080", True),
        ("10.1.2.3:80", True),
        ("evil.example", False),
        ("evil.example:8080", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("0x7f.0.0.1", False),
        ("2130706433", False),
        ("127.1", False),
        ("0.0.0.0", False),
        ("[::]", False),
        ("10.1.2.4", False),
        ("localhost:", False),
        ("localhost:99999", False),
        ("localhost:80:80", False),
        ("::1", False),
        ("[::1", False),
        ("[::1]x", False),
        ("", False),
        ("local host", False),
        ("user@localhost", False),
    ],
)
def test_host_policy(host: str, allowed: bool) -> None:
    assert HostPolicy(["mcp.internal", "10.1.2.3"]).allows(host) is allowed


def test_a_wildcard_bind_accepts_any_address_but_no_other_name() -> None:
    policy = HostPolicy(["0.0.0.0"])
    assert policy.allows("192.168.1.20:8080") and policy.allows("[2001:db8::1]:1") and policy.allows("localhost")
    assert not policy.allows("evil.example") and not policy.allows("attacker.nip.io:8080")


def test_the_proxy_refuses_foreign_hosts_with_403_before_reading_the_body() -> None:
    upstream = RecordingUpstream()

    async def scenario() -> None:
        async with relay(upstream, allowed_hosts=["mcp.example"]) as port:
            rebinding = post().replace(b"Host: 127.0.0.1", b"Host: attacker.example:8080")
            assert (await exchange(port, rebinding)).startswith(b"HTTP/1.1 403 ")
            configured = post(b"Connection: close\r\n").replace(b"Host: 127.0.0.1", b"Host: MCP.example.")
            assert (await exchange(port, configured)).startswith(b"HTTP/1.1 200 ")
            http10 = b"POST /mcp HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
            assert (await exchange(port, http10)).startswith(b"HTTP/1.1 200 ")  # HTTP/1.0 may omit Host

    run(scenario)
    assert len(upstream.requests) == 2


def test_deep_nesting_under_a_policy_is_a_clean_400_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    upstream = RecordingUpstream()
    deep = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":'
    deep += b"[" * 1000 + b"]" * 1000 + b"}}}"

    async def scenario() -> None:
        async with relay(upstream, tools=["echo"]) as port:
            answer = await exchange(port, post(b"Connection: close\r\n", deep))
            assert answer.startswith(b"HTTP/1.1 400 ") and b"nested deeper" in answer

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert upstream.requests == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def deletes_seen(upstream: RecordingUpstream, count: int) -> None:
    """The DELETEs go out in the background: wait for ``count`` of them (bounded by polls, not by a clock)."""
    for _ in range(200):
        if sum(line.startswith("DELETE") for line, _, _ in upstream.requests) >= count:
            return
        await asyncio.sleep(0.05)


def test_upstream_sessions_are_bounded_and_evicted_ones_are_ended_upstream() -> None:
    upstream = RecordingUpstream(issue_sessions=True)
    initialize = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'

    async def scenario() -> None:
        async with relay(upstream, max_sessions=3) as port:
            for _ in range(10):
                answer = await exchange(port, post(b"Connection: close\r\n", initialize))
                assert answer.startswith(b"HTTP/1.1 200 ") and b"Mcp-Session-Id: s" in answer
            await deletes_seen(upstream, 7)
            # A session the proxy does not know (one from before a proxy restart) is relayed, and adopted when the
            # upstream accepts it: the table is full, so the least recently used (s8) is ended in turn.
            unknown = post(b"Mcp-Session-Id: s1\r\nConnection: close\r\n")
            assert (await exchange(port, unknown)).startswith(b"HTTP/1.1 200 ")
            await deletes_seen(upstream, 8)

    run(scenario)
    deletes = [headers["mcp-session-id"] for line, headers, _ in upstream.requests if line.startswith("DELETE")]
    assert sorted(deletes) == [f"s{i}" for i in range(1, 9)]  # the oldest, each once


def test_a_session_table_is_bounded_expires_idle_entries_and_keeps_busy_ones() -> None:
    now = [0.0]
    evicted: list[str] = []
    busy: set[str] = set()
    table: SessionTable[str] = SessionTable(
        ttl=10, limit=3, on_evict=lambda key, _: evicted.append(key), busy=lambda v: v in busy, clock=lambda: now[0]
    )
    for index in range(5000):
        table.add(f"k{index}", f"k{index}")
    assert len(table) == 3 and len(evicted) == 4997 and evicted[:2] == ["k0", "k1"]
    busy.add("k4997")
    now[0] = 11
    assert table.get("k4998") is None and "k4998" in evicted
    assert table.sweep() == 1 and list(table) == ["k4997"]  # busy: kept past its TTL
    table.add("a", "a")
    table.add("b", "b")
    table.add("c", "c")  # full: the least recently used that is not busy goes
    assert list(table) == ["k4997", "b", "c"] and evicted[-1] == "a"
    table.touch("k4997")
    busy.clear()
    now[0] = 15
    assert table.get("k4997") == "k4997"  # touched at 11: not yet expired
    assert table.pop("b") == "b" and "b" not in evicted  # a session ended by its client is not "evicted"


class _InitializedBackend:
    """Just enough of the stdio backend for the hub to answer initialize (the server is never asked)."""

    listener: object = None
    init_result = {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "fake", "version": "1"}}

    def __init__(self) -> None:
        self.forgotten = 0

    async def ready(self) -> bool:
        return True

    def forget_client(self, _: str) -> None:
        self.forgotten += 1


def test_stdio_client_sessions_stay_bounded_under_a_loop_of_initialize() -> None:
    backend = _InitializedBackend()
    hub = SessionHub(backend, ToolPolicy(), health=None, max_sessions=50)  # type: ignore[arg-type]
    frontend = StreamableFrontend(hub)
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}'
    headers = Headers([("Host", "127.0.0.1"), ("Content-Type", "application/json")])

    async def scenario() -> list[str]:
        ids = []
        for _ in range(5000):
            response = await frontend.handle(Request("POST", "/mcp", headers, body))
            assert isinstance(response, Response) and response.status == 200
            ids.append(dict(response.headers)["Mcp-Session-Id"])
        return ids

    ids = asyncio.run(scenario())
    assert len(set(ids)) == 5000 and len(hub.sessions) == 50 and backend.forgotten == 4950
    assert hub.get(ids[0]) is None and hub.get(ids[-1]) is not None
