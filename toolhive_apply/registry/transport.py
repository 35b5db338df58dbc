"""HTTP GET for registry sources: an address policy, redirects checked hop by hop, and one deadline per fetch.

Why not urllib: it follows any redirect (https to http included), cannot say which address it connected to, and
its timeout is per socket read, so a server sending a byte every few seconds held `plan` forever. Here every
host name is resolved once, each address is checked against the registry's `allow_private_ip`, the connection
goes to exactly the address that was checked (no second lookup a rebinding DNS server could answer
differently), and a watchdog shuts the socket when the fetch's one deadline passes, whatever it was waiting for.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit

from toolhive_apply.registry.formats import RegistryError
from toolhive_apply.urls import mask_url

TIMEOUT_SECONDS: Final = 10.0
MAX_BYTES: Final = 16 * 1024 * 1024
MAX_REDIRECTS: Final = 5
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
CHUNK: Final = 64 * 1024
PRIVATE_HINT: Final = "set `allow_private_ip: true` on the registry if this address is meant"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What a registry allows its fetches: private addresses, and hosts a redirect may lead to."""

    allow_private_ip: bool = False
    redirect_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]
    private: bool
    """Whether any hop connected to a non-public address (the cache remembers it, see sources.py)."""


@dataclass(slots=True)
class Deadline:
    """One deadline for a whole fetch: every page, redirect, lookup, connect and read shares it."""

    seconds: float
    ends: float = field(init=False)
    expired: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.ends = time.monotonic() + self.seconds

    def remaining(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            self.expired = True
            return 0.0
        return left

    def message(self, what: str) -> str:
        return f"{what}: unreachable (timed out: no complete answer within {self.seconds:g} s)"


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    request_path: str
    authorization: str | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def address_refusal(address: str) -> str | None:
    """Why `address` is not a public unicast address (loopback, link-local, private...), or None when it is.

    IPv4 embedded in IPv6 (mapped, 6to4, the NAT64 well-known prefix) is judged by the IPv4 address it reaches.
    """
    ip = ipaddress.ip_address(address)
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for candidate in [*candidates, ip]:  # the IPv4 inside first: it names the kind that matters
        reason = _kind(candidate)
        if reason is not None:
            return reason
    return None


def _kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


@dataclass(frozen=True, slots=True)
class Request:
    """One GET as the caller means it: `what` names the source in errors (its URL already masked)."""

    what: str
    headers: Mapping[str, str]
    policy: FetchPolicy
    deadline: Deadline
    max_bytes: int = MAX_BYTES


def get(url: str, request: Request) -> Response:
    """GET `url`, following redirects that stay on https (when it started there) and on the same host.

    Credentials in the URL's userinfo are sent as HTTP Basic auth to the URL's own origin only, never after a
    redirect to another one.
    """
    what = request.what
    start = _target(url, what, None)
    current, target, private = url, start, False
    for _ in range(MAX_REDIRECTS + 1):
        status, response_headers, body, hop_private = _exchange(target, request)
        private = private or hop_private
        if status not in REDIRECTS:
            return Response(status, body, response_headers, private)
        location = response_headers.get("location")
        if not location:
            raise RegistryError(f"{what}: HTTP {status} redirect without a Location")
        current = urljoin(current, location.strip())
        target = _redirected(start, target, current, what, request.policy)
    raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")


def _target(url: str, what: str, authorization: str | None) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RegistryError(f"{what}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{what}: only http:// and https:// URLs with a host can be fetched")
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if parts.scheme == "https" else 80
    return _Target(parts.scheme, parts.hostname.lower(), port or default_port, path, authorization)


def _redirected(start: _Target, previous: _Target, location: str, what: str, policy: FetchPolicy) -> _Target:
    """The next hop, or a RegistryError when the redirect would leave https or the source's host."""
    shown = mask_url(location)
    if urlsplit(location).scheme not in ("http", "https"):
        raise RegistryError(f"{what}: refused a redirect to {shown}: only http(s) redirects are followed")
    nxt = _target(location, what, None)
    if previous.scheme == "https" and nxt.scheme != "https":
        raise RegistryError(f"{what}: refused a redirect from https to {shown}: it would leave TLS")
    same_origin = (nxt.host, nxt.port) == (start.host, start.port)
    if not same_origin and nxt.host not in policy.redirect_hosts:
        raise RegistryError(
            f"{what}: refused a redirect to another host ({shown})",
            hint=f"use that URL as the registry's source, or list {nxt.host!r} in the registry's redirect_hosts",
        )
    # Credentials from the source URL go to the source's own origin only; userinfo in a Location is ignored.
    keep = start.authorization if nxt.origin == start.origin else None
    return _Target(nxt.scheme, nxt.host, nxt.port, nxt.request_path, keep)


def _exchange(target: _Target, request: Request) -> tuple[int, dict[str, str], bytes, bool]:
    what, deadline = request.what, request.deadline
    address, private = _pick_address(target, what, request.policy, deadline)
    failure: str | None = None
    try:
        with _connection(target, address, deadline) as connection:
            request_headers = {"Accept": "application/json", "Accept-Encoding": "identity", **request.headers}
            if target.authorization:
                request_headers["Authorization"] = target.authorization
            connection.request("GET", target.request_path, headers=request_headers)
            with contextlib.closing(connection.getresponse()) as response:  # its file holds the socket open
                body = b"" if response.status in REDIRECTS else _read_body(response, request)
                response_headers = {k.lower(): v for k, v in response.getheaders()}
                return response.status, response_headers, body, private
    except RegistryError:
        raise
    except ssl.SSLCertVerificationError as exc:
        failure = f"TLS verification failed ({exc.verify_message})"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        failure = _describe(exc)
    if deadline.expired or deadline.remaining() == 0:
        raise RegistryError(deadline.message(what))
    raise RegistryError(f"{what}: unreachable ({failure})")


def _describe(exc: BaseException) -> str:
    """Our own words for a transport failure: exception text can carry addresses and request data."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _read_body(response: http.client.HTTPResponse, request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if request.deadline.remaining() == 0:
            raise RegistryError(request.deadline.message(request.what))
        chunk = response.read1(CHUNK)
        if not chunk:
            if request.deadline.expired:  # the watchdog shut the socket: this end of file is not the document's
                raise RegistryError(request.deadline.message(request.what))
            if response.length:  # read1 reports a short body as a plain end of file
                raise RegistryError(f"{request.what}: unreachable (the connection closed before the whole answer)")
            return b"".join(chunks)
        size += len(chunk)
        if size > request.max_bytes:
            raise RegistryError(f"{request.what}: the document is larger than {size_text(request.max_bytes)}")
        chunks.append(chunk)


def size_text(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def _pick_address(target: _Target, what: str, policy: FetchPolicy, deadline: Deadline) -> tuple[str, bool]:
    """The first resolved address the policy allows, and whether it is a non-public one."""
    addresses = _resolve(target.host, target.port, what, deadline)
    refused: list[str] = []
    for address in addresses:
        reason = address_refusal(address)
        if reason is None:
            return address, False
        if policy.allow_private_ip:
            return address, True
        refused.append(f"{address} is {reason}")
    named = "" if addresses == [target.host] else f" to {target.host}"
    raise RegistryError(f"{what}: refused to connect{named}: {'; '.join(refused)}", hint=PRIVATE_HINT)


def _resolve(host: str, port: int, what: str, deadline: Deadline) -> list[str]:
    """getaddrinfo in a helper thread, so a slow resolver is held to the deadline too."""
    result: list[str] = []
    error: list[OSError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            result.extend(dict.fromkeys(str(info[4][0]) for info in infos))
        except OSError as exc:
            error.append(exc)

    thread = threading.Thread(target=lookup, name="registry-dns", daemon=True)
    thread.start()
    thread.join(deadline.remaining())
    if thread.is_alive():
        raise RegistryError(deadline.message(what))
    if error or not result:
        raise RegistryError(f"{what}: unreachable (cannot resolve {host})")
    return result


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTPConnection whose socket is already connected (to the checked address); it never connects itself."""

    def connect(self) -> None:
        raise http.client.CannotSendRequest("the connection was closed")


@contextlib.contextmanager
def _connection(target: _Target, address: str, deadline: Deadline) -> Iterator[http.client.HTTPConnection]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_STREAM)
    # A second descriptor of the same socket: shutting it down at the deadline wakes any read on the first,
    # TLS or not, without touching the SSL object another thread is using.
    watch = socket.socket(fileno=os.dup(raw.fileno()))
    timer = threading.Timer(deadline.remaining(), _expire, (deadline, watch))
    timer.daemon = True
    timer.start()
    sock: socket.socket = raw
    connection: _PinnedConnection | None = None
    try:
        raw.settimeout(max(deadline.remaining(), 0.001))
        raw.connect((address, target.port))
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=target.host)
        connection = _PinnedConnection(target.host, target.port)
        connection.default_port = 443 if target.scheme == "https" else 80  # Host: carries a port only if needed
        connection.sock = sock
        yield connection
    finally:
        timer.cancel()
        if connection is not None:
            connection.close()
        sock.close()
        raw.close()
        watch.close()


def _expire(deadline: Deadline, watch: socket.socket) -> None:
    deadline.expired = True
    with contextlib.suppress(OSError):
        watch.shutdown(socket.SHUT_RDWR)
