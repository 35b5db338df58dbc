"""Egress mode: the only way out of an isolated workload's internal network, allowing exactly its profile's hosts.

An isolated MCP container sits on an internal Docker network with no route out; its ``HTTP(S)_PROXY`` points here.
This forward proxy (plain-HTTP absolute-URI requests and ``CONNECT`` tunnels) allows a destination only when the
permission profile does, with ToolHive's Squid semantics: ``allow_host`` entries match exactly, a leading dot
matches the domain and its subdomains; ``allow_port`` (when given) restricts ports; ``insecure_allow_all`` allows
everything except this host's loopback, link-local (cloud metadata) and Docker-gateway addresses. A raw IP is
allowed only when that literal IP is listed. The decision is taken on the name the client asked for, and the
proxy itself resolves and connects, so a client cannot pick the address behind an allowed name.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from toolhive_apply.proxy.config import ConfigError

EGRESS_PORT: Final = 3128
MAX_HEAD_BYTES: Final = 64 * 1024
HEAD_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 10.0
_log = logging.getLogger("toolhive_apply.proxy.egress")
_HOP_BY_HOP: Final = ("proxy-connection", "proxy-authorization", "connection", "keep-alive")
_ALWAYS_DENIED_NETS: Final = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8")
)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What one workload may reach. Built from the profile's ``network.outbound`` by the engine."""

    allow_all: bool
    hosts: tuple[str, ...]
    ports: frozenset[int]

    def allows_name(self, host: str, port: int) -> bool:
        """The name-level decision, before any resolution."""
        if self.allow_all:
            return True
        if self.ports and port not in self.ports:
            return False
        name = normalise_host(host)
        for entry in self.hosts:
            if entry.startswith("."):
                if name == entry[1:] or name.endswith(entry):
                    return True
            elif name == entry:
                return True
        return False

    def allows_address(self, address: str, denied: tuple[Any, ...]) -> bool:
        """With ``insecure_allow_all``, the host's own loopback, metadata and gateway addresses stay closed."""
        if not self.allow_all:
            return True  # the name (or literal IP) was listed explicitly
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return not any(ip in net for net in (*_ALWAYS_DENIED_NETS, *denied))


def normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def load_policy(raw: Mapping[str, Any]) -> tuple[str, int, EgressPolicy]:
    """(name, listen port, policy) from THV_PROXY_CONFIG's egress document; every problem reported at once."""
    problems: list[str] = []
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append("name: required")
    port = raw.get("listen_port", EGRESS_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.append("listen_port: must be an integer from 1 to 65535")
    egress = raw.get("egress")
    if not isinstance(egress, dict):
        problems.append("egress: required object {allow_all, allow_host, allow_port}")
        egress = {}
    unknown = sorted(set(raw) - {"name", "mode", "listen_port", "egress", "log_level"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    hosts = egress.get("allow_host") or []
    ports = egress.get("allow_port") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h.strip(".") for h in hosts):
        problems.append("egress.allow_host: must be a list of host names")
        hosts = []
    if not isinstance(ports, list) or not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports):
        problems.append("egress.allow_port: must be a list of ports")
        ports = []
    if problems:
        raise ConfigError(problems)
    entries = tuple(("." if h.strip().startswith(".") else "") + normalise_host(h).lstrip(".") for h in hosts)
    policy = EgressPolicy(bool(egress.get("allow_all")), entries, frozenset(ports))
    return str(name), int(port), policy


def gateway_networks() -> tuple[Any, ...]:
    """This container's default gateways (from /proc/net/route): the Docker host, closed even to allow-all."""
    found = []
    with contextlib.suppress(OSError), Path("/proc/net/route").open(encoding="ascii") as routes:
        for line in routes.readlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[2] != "00000000":
                gateway = socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
                found.append(ipaddress.ip_network(f"{gateway}/32"))
    return tuple(found)


class _RefusedError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    host: str
    port: int
    head: bytes  # what to send upstream (empty for CONNECT)


def parse_head(head: bytes) -> _Request | None:
    """The destination of a proxy request; ``None`` for the proxy's own ``GET /health``."""
    try:
        text = head.decode("latin-1")
        request_line, _, rest = text.partition("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise _RefusedError(400, "malformed request line") from None
    if method == "CONNECT":
        host, port = _authority(target, None)
        return _Request(method, host, port, b"")
    if target.startswith("/"):
        if target.split("?", 1)[0] == "/health" and method in ("GET", "HEAD"):
            return None
        raise _RefusedError(400, "this is a forward proxy: send absolute http:// URLs or CONNECT")
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.netloc:
        raise _RefusedError(400, "only http:// URLs and CONNECT tunnels are proxied")
    host, port = _authority(parts.netloc.rpartition("@")[2], 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [
        line
        for line in rest.split("\r\n")
        if line
        and line.split(":", 1)[0].strip().lower() not in ("proxy-connection", "proxy-authorization", "connection")
    ]
    upstream = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""])
    return _Request(method, host, port, upstream.encode("latin-1"))


def _authority(authority: str, default_port: int | None) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not port_text:
        if default_port is None:
            raise _RefusedError(400, "CONNECT needs host:port")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _RefusedError(400, "bad port")
    return host, int(port_text)


class EgressProxy:
    def __init__(self, name: str, policy: EgressPolicy) -> None:
        self.name = name
        self.policy = policy
        self.denied_nets = gateway_networks()
        self.allowed = 0
        self.denied = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except _RefusedError as refusal:
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
        if not self.policy.allows_name(request.host, request.port):
            self._deny(request, "not allowed by the permission profile")
        upstream_reader, upstream_writer = await self._connect(request)
        self.allowed += 1
        _log.info("allowed %s %s:%d", request.method, request.host, request.port)
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            upstream_writer.write(request.head)
        await _pump_both(reader, writer, upstream_reader, upstream_writer)

    def _deny(self, request: _Request, why: str) -> None:
        self.denied += 1
        _log.warning("denied %s %s:%d (%s)", request.method, request.host, request.port, why)
        raise _RefusedError(403, f"toolhive-apply egress: {request.host}:{request.port} is {why}")

    async def _connect(self, request: _Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(normalise_host(request.host), request.port, type=socket.SOCK_STREAM), CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError):
            raise _RefusedError(502, f"cannot resolve {request.host}") from None
        addresses = [str(info[4][0]) for info in infos]
        usable = [a for a in addresses if self.policy.allows_address(a, self.denied_nets)]
        if not usable:
            self._deny(request, "a host-local, metadata or gateway address")
        last: Exception | None = None
        for address in usable:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, request.port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError) as error:
                last = error
        raise _RefusedError(502, f"cannot connect to {request.host}:{request.port}: {last}")


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
    proxy = EgressProxy(name, policy)
    server = await asyncio.start_server(proxy.handle, "0.0.0.0", port, limit=MAX_HEAD_BYTES)
    _log.info(
        "egress proxy %s listening on :%d (allow_all=%s, hosts=%s, ports=%s)",
        name,
        port,
        policy.allow_all,
        list(policy.hosts),
        sorted(policy.ports),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
