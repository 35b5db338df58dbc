"""The egress proxy's reading of a request head: strict, so that what it judged is what the origin receives.

A forward-proxy request names its destination twice for plain HTTP (the absolute URI and ``Host``), and a lenient
parser lets the two disagree: the proxy allows one authority while a virtual-hosting origin serves another. So a
``Host`` that does not name the allowed authority is refused, as are duplicate ``Host`` headers, userinfo in the
URI, obsolete line folding, bare CR/LF, a request with both ``Content-Length`` and ``Transfer-Encoding``, and any
framing but a plain length or ``chunked``. The origin receives the request in origin form with one canonical
``Host`` and ``Connection: close``, and exactly the declared body: a second request smuggled behind it never leaves.

Stdlib only: this runs inside the proxy image.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Final

from toolhive_apply.proxy.egress_addresses import Host, HostError, parse_host

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_LENGTH: Final = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE: Final = re.compile(rb"[0-9a-fA-F]{1,15}")
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade", "host"}
)
MAX_TRAILERS: Final = 64


class RefusedError(Exception):
    """A request the proxy answers itself (400, 403, 502) without forwarding anything."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bad(reason: str) -> RefusedError:
    return RefusedError(400, reason)


@dataclass(frozen=True, slots=True)
class Request:
    """A judged destination. `head` is what goes upstream (empty for CONNECT); `length` is the body's size, or
    None for a chunked body."""

    method: str
    host: Host
    port: int
    head: bytes = b""
    length: int | None = 0

    @property
    def authority(self) -> str:
        return str(self.host) if self.port == 80 else f"{self.host}:{self.port}"


def authority(text: str, default_port: int | None) -> tuple[Host, int]:
    """``host[:port]`` (IPv6 in brackets) in normal form."""
    if text.startswith("["):
        inside, bracket, tail = text.partition("]")
        host_text, port_text = inside + bracket, tail.removeprefix(":")
        if not bracket or (tail and not tail.startswith(":")):
            raise _bad("malformed authority")
    else:
        host_text, _, port_text = text.partition(":")
    if text.endswith(":"):
        raise _bad("bad port")
    if not port_text:
        if default_port is None:
            raise _bad("CONNECT needs host:port")
        port = default_port
    elif not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise _bad("bad port")
    else:
        port = int(port_text)
    try:
        return parse_host(host_text), port
    except HostError as error:
        raise _bad(f"bad host: {error}") from None


def _lines(head: bytes) -> list[str]:
    text = head.decode("latin-1")
    if not text.endswith("\r\n\r\n"):
        raise _bad("malformed request head")
    lines = text[:-4].split("\r\n")
    if any("\r" in line or "\n" in line or "\0" in line for line in lines):
        raise _bad("bare CR or LF in the request head")
    return lines


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise _bad("obsolete line folding")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise _bad("malformed header line")
        headers.append((name, value.strip(" \t")))
    return headers


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _body_length(headers: list[tuple[str, str]], version: str) -> int | None:
    """The declared body: a length, or None for chunked; anything ambiguous is refused."""
    encodings = _values(headers, "transfer-encoding")
    lengths = _values(headers, "content-length")
    if encodings and lengths:
        raise _bad("both Content-Length and Transfer-Encoding")
    if encodings:
        if version != "HTTP/1.1" or [e.lower() for e in encodings] != ["chunked"]:
            raise _bad("only Transfer-Encoding: chunked is forwarded")
        return None
    if not lengths:
        return 0
    if not all(_LENGTH.fullmatch(v) for v in lengths) or len(set(lengths)) != 1:
        raise _bad("bad Content-Length")
    return int(lengths[0])


def _absolute_target(target: str) -> tuple[str, str]:
    """(authority, origin-form path) of ``http://authority/path?query``."""
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in target) or "#" in target:
        raise _bad("malformed request target")
    if target[:7].lower() != "http://":
        raise _bad("only http:// URLs and CONNECT tunnels are proxied")
    rest = target[7:]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, path = rest[:cut], rest[cut:]
    if "@" in netloc:
        raise _bad("userinfo in the URL is not forwarded")
    if not netloc:
        raise _bad("no host in the URL")
    return netloc, path if path.startswith("/") else "/" + path


def parse_head(head: bytes) -> Request | None:
    """The destination of a proxy request; ``None`` for the proxy's own ``GET /health``."""
    lines = _lines(head)
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _bad("malformed request line")
    method, target, version = parts
    headers = _headers(lines[1:])
    if method == "CONNECT":
        host, port = authority(target, None)
        return Request(method, host, port)
    if target.startswith("/"):
        if target.split("?", 1)[0] == "/health" and method in ("GET", "HEAD"):
            return None
        raise _bad("this is a forward proxy: send absolute http:// URLs or CONNECT")
    netloc, path = _absolute_target(target)
    host, port = authority(netloc, 80)
    declared = _values(headers, "host")
    if len(declared) > 1:
        raise _bad("more than one Host header")
    if declared and authority(declared[0], 80) != (host, port):
        raise RefusedError(400, "the Host header does not name the URL's host")
    request = Request(method, host, port, length=_body_length(headers, version))
    nominated = {t.strip().lower() for v in _values(headers, "connection") for t in v.split(",")}
    kept = [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP | nominated]
    upstream = [f"{method} {path} {version}", f"Host: {request.authority}", *kept, "Connection: close", "", ""]
    return Request(method, host, port, "\r\n".join(upstream).encode("latin-1"), request.length)


async def copy_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int | None) -> None:
    """Exactly the declared body: `length` bytes, or chunks up to the last one and its trailers (re-framed, so
    chunk extensions never reach the origin). Raises `RefusedError` on a malformed chunked body."""
    if length is not None:
        while length > 0:
            chunk = await reader.read(min(length, 65536))
            if not chunk:
                return
            writer.write(chunk)
            length -= len(chunk)
            await writer.drain()
        return
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_line):
            raise _bad("malformed chunk")
        size = int(size_line, 16)
        writer.write(b"%x\r\n" % size)
        if size == 0:
            break
        data = await reader.readexactly(size + 2)
        if not data.endswith(b"\r\n"):
            raise _bad("malformed chunk")
        writer.write(data)
        await writer.drain()
    for _ in range(MAX_TRAILERS):
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            writer.write(line)
            await writer.drain()
            return
        text = line[:-2].decode("latin-1")
        if "\r" in text or "\n" in text or "\0" in text:
            raise _bad("bare CR or LF in a trailer")
        _headers([text])  # the same rules as header lines
        writer.write(line)
    raise _bad("too many trailers")
