"""Egress mode: the only way out of an isolated workload's internal network, allowing exactly its profile's hosts.

An isolated MCP container sits on an internal Docker network with no route out; its ``HTTP(S)_PROXY`` points here.
This forward proxy (plain-HTTP absolute-URI requests and ``CONNECT`` tunnels) decides in three steps, each on a
normal form (egress_addresses.py): the request's host and port against the profile (egress_policy.py), then every
address the proxy resolves for it, then it connects to exactly one address that passed. The client never picks the
address behind an allowed name, and no spelling of an address means one thing to the policy and another to the
socket. The request head is read strictly (egress_http.py), so the origin is sent the authority that was judged.

Stdlib only, like the rest of the proxy image. Log lines name host and port, never paths or queries (tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from toolhive_apply.proxy.egress_addresses import IPAddress, canonical
from toolhive_apply.proxy.egress_http import RefusedError, Request, copy_body, parse_head
from toolhive_apply.proxy.egress_policy import EGRESS_PORT, EgressPolicy, load_policy

__all__ = ["EGRESS_PORT", "EgressPolicy", "EgressProxy", "RefusedError", "load_policy", "parse_head", "serve_egress"]

MAX_HEAD_BYTES: Final = 64 * 1024
HEAD_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 10.0
_log = logging.getLogger("toolhive_apply.proxy.egress")


def default_gateways(root: Path = Path("/proc/net")) -> tuple[IPAddress, ...]:
    """This container's gateways (IPv4 and IPv6, from the kernel's routes): addresses of the Docker host, whatever
    the engine listed when the proxy was configured."""
    found: list[IPAddress] = []
    with contextlib.suppress(OSError), (root / "route").open(encoding="ascii") as routes:
        for line in routes.readlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[2] != "00000000":
                found.append(ipaddress.IPv4Address(bytes.fromhex(fields[2])[::-1]))
    with contextlib.suppress(OSError), (root / "ipv6_route").open(encoding="ascii") as routes:
        for line in routes:
            fields = line.split()
            if len(fields) > 4 and int(fields[4], 16):
                found.append(ipaddress.IPv6Address(bytes.fromhex(fields[4])))
    return tuple(found)


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(name: str, port: int) -> list[str]:
    """The system resolver (Docker's embedded DNS, then the host's), for TCP."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class EgressProxy:
    def __init__(self, name: str, policy: EgressPolicy, resolver: Resolver = resolve) -> None:
        self.name = name
        self.policy = policy
        self.resolver = resolver
        self.allowed = 0
        self.denied = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except RefusedError as refusal:
            await _answer(writer, refusal.status, refusal.reason)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        request = parse_head(head)
        if request is None:
            body = json.dumps({"status": "ok", "name": self.name, "allowed": self.allowed, "denied": self.denied})
            await _answer(writer, 200, body, "application/json")
            return
        if not self.policy.permits(request.host, request.port):
            self._deny(request, "not allowed by the permission profile")
        upstream_reader, upstream_writer = await self._connect(request)
        self.allowed += 1
        _log.info("allowed %s %s:%d", request.method, request.host, request.port)
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pump_both(reader, writer, upstream_reader, upstream_writer)
            return
        upstream_writer.write(request.head)
        await _exchange(reader, writer, upstream_reader, upstream_writer, request.length)

    def _deny(self, request: Request, why: str) -> None:
        self.denied += 1
        _log.warning("denied %s %s:%d (%s)", request.method, request.host, request.port, why)
        raise RefusedError(403, f"toolhive-apply egress: {request.host}:{request.port} is {why}")

    async def _addresses(self, request: Request) -> list[IPAddress]:
        """Every address the host stands for, resolved once by the proxy itself."""
        if request.host.address is not None:
            return [request.host.address]
        try:
            texts = await asyncio.wait_for(self.resolver(str(request.host.name), request.port), CONNECT_TIMEOUT)
            addresses = [canonical(ipaddress.ip_address(text.split("%", 1)[0])) for text in texts]
        except (TimeoutError, OSError, UnicodeError, ValueError):
            raise RefusedError(502, f"cannot resolve {request.host}") from None
        return list(dict.fromkeys(addresses))

    async def _connect(self, request: Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self._addresses(request)
        checked = [a for a in addresses if self.policy.admits(request.host, request.port, a)]
        if not checked:
            self._deny(request, "an address of the Docker host, or local, private or metadata")
        last: Exception | None = None
        for address in checked:  # exactly the addresses that passed, never a fresh lookup
            try:
                return await asyncio.wait_for(asyncio.open_connection(str(address), request.port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError) as error:
                last = error
        raise RefusedError(502, f"cannot connect to {request.host}:{request.port}: {last}")


async def _answer(writer: asyncio.StreamWriter, status: int, text: str, content_type: str = "text/plain") -> None:
    reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if sink.can_write_eof():
            sink.write_eof()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
    length: int | None,
) -> None:
    """Plain HTTP: the declared body goes up (beside the answer, for ``Expect: 100-continue``), nothing after it."""

    async def body() -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, RefusedError):
            await copy_body(reader, upstream_writer, length)

    sending = asyncio.ensure_future(body())
    try:
        await _pump(upstream_reader, writer)
    finally:
        sending.cancel()
        upstream_writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await sending
        with contextlib.suppress(OSError):
            await upstream_writer.wait_closed()


async def _pump_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
    finally:
        upstream_writer.close()
        with contextlib.suppress(OSError):
            await upstream_writer.wait_closed()


async def serve_egress(raw: Mapping[str, Any]) -> None:
    """Run the egress proxy until SIGTERM/SIGINT."""
    name, port, policy = load_policy(raw)
    proxy = EgressProxy(name, policy.with_gateways(default_gateways()))
    server = await asyncio.start_server(proxy.handle, "0.0.0.0", port, limit=MAX_HEAD_BYTES)
    _log.info(
        "egress proxy %s listening on :%d (allow_all=%s, hosts=%s, ports=%s, allow_docker_gateway=%s)",
        name,
        port,
        policy.allow_all,
        [*policy.names, *sorted(map(str, policy.addresses))],
        sorted(policy.ports),
        policy.allow_docker_gateway,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
