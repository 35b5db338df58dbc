"""HTTP/1.1 message framing on asyncio streams, shared by the proxy's server, its upstream client and the Docker API.

The standard library has no asyncio HTTP, and the image may hold nothing else, so this is the small, strict subset the
proxy needs: one head, then a body delimited by Content-Length, chunked encoding, or the end of the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Final

MAX_HEAD_BYTES: Final = 64 * 1024
CRLF: Final = b"\r\n"
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
"""Headers that describe one connection (plus the two the proxy always sets itself); never forwarded."""


class HttpWireError(ValueError):
    """The peer sent something that is not HTTP/1.1 as this module understands it."""


class BodyTooLargeError(HttpWireError):
    """The body exceeds the limit the reader was given."""


class Headers:
    """Case-insensitive, order-preserving, multi-valued header list."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated header (Connection, Accept, ...) lists ``token``, ignoring parameters."""
        wanted = token.lower()
        return any(
            part.split(";")[0].strip().lower() == wanted for value in self.get_all(name) for part in value.split(",")
        )


def parse_head(raw: bytes) -> tuple[str, Headers]:
    """Split a head (start line + header lines, without the blank line) into its start line and headers."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as error:  # pragma: no cover - latin-1 decodes every byte
        raise HttpWireError("undecodable head") from error
    lines = text.split("\r\n")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise HttpWireError("folded header lines are not supported")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpWireError(f"malformed header line {line[:80]!r}")
        items.append((name, value.strip()))
    return lines[0], Headers(items)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the blank line ending a head; IncompleteReadError on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(CRLF + CRLF)
    except asyncio.LimitOverrunError as error:
        raise HttpWireError(f"head larger than {MAX_HEAD_BYTES} bytes") from error
    return raw[:-4]


def content_length(headers: Headers) -> int | None:
    values = {v.strip() for v in headers.get_all("content-length")}
    if not values:
        return None
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise HttpWireError("invalid Content-Length")
    return int(next(iter(values)))


def is_chunked(headers: Headers) -> bool:
    codings = [c.strip().lower() for v in headers.get_all("transfer-encoding") for c in v.split(",") if c.strip()]
    if codings and codings[-1] != "chunked":
        raise HttpWireError(f"unsupported Transfer-Encoding {codings}")
    return bool(codings)


async def iter_body(
    reader: asyncio.StreamReader, headers: Headers, *, until_eof: bool, limit: int | None = None
) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive. ``until_eof`` says whether a body without framing runs to the end of the
    connection (responses) or is empty (requests). Raises BodyTooLargeError past ``limit`` bytes."""
    seen = 0
    if is_chunked(headers):
        chunks = _iter_chunked(reader, limit)
    elif (length := content_length(headers)) is not None:
        if limit is not None and length > limit:
            raise BodyTooLargeError(f"body of {length} bytes exceeds {limit}")
        chunks = _iter_fixed(reader, length)
    elif until_eof:
        chunks = _iter_until_eof(reader)
    else:
        return
    async for chunk in chunks:
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise BodyTooLargeError(f"body exceeds {limit} bytes")
        yield chunk


async def read_body(
    reader: asyncio.StreamReader, headers: Headers, *, until_eof: bool, limit: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in iter_body(reader, headers, until_eof=until_eof, limit=limit)])


async def _iter_fixed(reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining > 0:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise HttpWireError(f"connection closed {remaining} bytes before the end of the body")
        remaining -= len(chunk)
        yield chunk


async def _iter_until_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(65536):
        yield chunk


async def _iter_chunked(reader: asyncio.StreamReader, limit: int | None) -> AsyncIterator[bytes]:
    while True:
        try:
            size_line = await reader.readuntil(CRLF)
        except asyncio.IncompleteReadError as error:
            raise HttpWireError("connection closed inside a chunked body") from error
        size_text = size_line[:-2].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpWireError(f"bad chunk size {size_text[:20]!r}") from None
        if limit is not None and size > limit:
            raise BodyTooLargeError(f"chunk of {size} bytes exceeds {limit}")
        if size == 0:
            while await reader.readuntil(CRLF) != CRLF:  # skip trailers
                pass
            return
        data = await reader.readexactly(size + 2)
        if data[-2:] != CRLF:
            raise HttpWireError("chunk not followed by CRLF")
        yield data[:-2]


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK: Final = b"0\r\n\r\n"


def encode_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def forwardable(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones, those the Connection header names, and ``drop``."""
    items = list(headers)
    named = {t.strip().lower() for name, value in items if name.lower() == "connection" for t in value.split(",")}
    excluded = HOP_BY_HOP | named | {d.lower() for d in drop}
    return [(name, value) for name, value in items if name.lower() not in excluded]
