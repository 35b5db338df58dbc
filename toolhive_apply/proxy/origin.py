"""Host and Origin checks against DNS rebinding, and the CORS headers that go with them.

A web page can make a browser send requests to a port on 127.0.0.1; the Origin header is how the proxy tells such a
page from a local tool. Requests without Origin (non-browser clients) pass; requests from origins not allowed get 403.
DNS rebinding goes further: the attacker's own name is made to resolve to 127.0.0.1, so the page is same-origin with
the proxy and may send no Origin at all; but the browser still names the attacker's host in ``Host``. So ``Host`` must
be a loopback name or address, or one the workload was configured with; anything else gets 403.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy.httpserver import Guard, Response, rpc_error
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST

_ALLOWED_HEADERS: Final = "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"


_HOSTNAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_PORT: Final = re.compile(r"[0-9]{1,5}")
WILDCARD_ADDRESSES: Final = frozenset({"0.0.0.0", "::"})
"""A workload published on every address may be reached by any of the machine's IP addresses: an IP literal in Host
cannot be rebound (rebinding needs a name the attacker's DNS answers for), so any is accepted, names still are not."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_host(value: str) -> tuple[str, IpAddress | None] | None:
    """``Host`` as ``(normalised name or address, address or None)``, or None when it is not a valid host[:port].
    Names are lower-cased without their trailing dot; ``[v6]`` brackets are removed."""
    host, port = value, ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else ""
        if rest and not port:
            return None
        try:
            address: IpAddress = ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        if ":" in value:
            host, _, port = value.rpartition(":")
            if not port:
                return None
        host = host.lower()
        host = host[:-1] if host.endswith(".") else host
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
                return None
            if port and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
                return None
            return host, None
    if port and not (_PORT.fullmatch(port) and 0 < int(port) < 65536):
        return None
    return str(address), address


def _loopback(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class HostPolicy:
    """Accepted ``Host`` values: ``localhost``, loopback addresses (127.0.0.0/8, ::1) and the configured hosts, on
    any port. A configured wildcard address (``0.0.0.0``, ``::``) accepts every IP literal, never another name."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._names: set[str] = {"localhost"}
        self._addresses: set[str] = set()
        self._any_address = False
        for entry in allowed:
            if entry.strip() in WILDCARD_ADDRESSES:
                self._any_address = True
                continue
            wrapped = f"[{entry}]" if ":" in entry and not entry.startswith("[") else entry
            parsed = split_host(wrapped.strip())
            if parsed is not None:
                (self._addresses if parsed[1] is not None else self._names).add(parsed[0])

    def allows(self, value: str) -> bool:
        parsed = split_host(value)
        if parsed is None:
            return False
        host, address = parsed
        if address is None:
            return host in self._names
        return self._any_address or _loopback(address) or host in self._addresses

    def guard(self, method: str, path: str, headers: Headers) -> Response | None:
        """The 403 answer for a Host the proxy does not serve (HTTP/1.1 without Host is already a 400)."""
        host = headers.get("host")
        if host is None or self.allows(host):
            return None
        return rpc_error(HTTPStatus.FORBIDDEN, INVALID_REQUEST, f"Forbidden: host {host[:100]!r} is not allowed")


def combined_guard(*guards: Callable[[str, str, Headers], Response | None]) -> Guard:
    """The first refusal of several guards, in order."""

    def guard(method: str, path: str, headers: Headers) -> Response | None:
        for check in guards:
            if (refusal := check(method, path, headers)) is not None:
                return refusal
        return None

    return guard


class OriginPolicy:
    """Allowed origins: exact (``http://localhost:6274``), any port (``http://localhost:*``) or all (``*``)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._any_port: set[str] = set()
        self._everything = False
        for entry in (e.strip().rstrip("/").lower() for e in allowed):
            if entry == "*":
                self._everything = True
            elif entry.endswith(":*"):
                self._any_port.add(entry[:-2])
            else:
                self._exact.add(entry)

    def allows(self, origin: str) -> bool:
        value = origin.strip().rstrip("/").lower()
        if self._everything or value in self._exact or value in self._any_port:
            return True
        base, colon, port = value.rpartition(":")
        return bool(colon) and port.isdigit() and base in self._any_port

    def guard(self, method: str, path: str, headers: Headers) -> Response | None:
        """The 403 answer for a request from a disallowed origin (checked before its body is read)."""
        origin = headers.get("origin")
        if origin is None or self.allows(origin):
            return None
        return rpc_error(HTTPStatus.FORBIDDEN, INVALID_REQUEST, f"Forbidden: origin {origin[:100]!r} is not allowed")

    @staticmethod
    def cors_headers(headers: Headers, *, preflight: bool) -> list[tuple[str, str]]:
        """CORS response headers for an allowed origin (the guard already refused the others)."""
        origin = headers.get("origin")
        if origin is None:
            return []
        cors = [
            ("Access-Control-Allow-Origin", origin),
            ("Vary", "Origin"),
            ("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate"),
        ]
        if preflight:
            requested = headers.get("access-control-request-headers")
            cors += [
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", requested or _ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ]
        return cors
