"""HTTP/1.1 message framing on asyncio streams, shared by the proxy's server, its upstream client and the Docker API.

The standard library has no asyncio HTTP, and the image may hold nothing else, so this is the small, strict subset the
proxy needs: one head, then a body delimited by Content-Length, chunked encoding, or the end of the connection.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Final

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_HEADERS: Final = 100
MAX_LENGTH_DIGITS: Final = 15
"""A Content-Length up to ~1 PB: every real one fits; a longer digit string is an attack on the integer parser."""
CRLF: Final = b"\r\n"
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE: Final = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
"""RFC 9110 field-value characters: visible ASCII, SP, HTAB and obs-text; no CR, LF, NUL, other controls or DEL."""
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")
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
    """Split a head (start line + header lines, without the blank line) into its start line and headers.

    Strict, because whatever the proxy accepts it re-encodes for a server that parses differently: lines end in CRLF
    only (a bare CR or LF is an error, not a line break), no control byte but HTAB in a value, no NUL anywhere,
    header names are RFC 9110 tokens with the colon right after them, and folded (obs-fold) lines are refused.
    """
    text = raw.decode("latin-1")  # every byte decodes; the checks below decide which are allowed
    lines = text.split("\r\n")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpWireError(f"more than {MAX_HEADERS} header lines")
    start_line = lines[0]
    if _CONTROL.search(start_line):
        raise HttpWireError("a control character in the start line")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            raise HttpWireError("an empty line inside the head")
        if line[0] in " \t":
            raise HttpWireError("folded header lines are not supported")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpWireError(f"malformed header line {_shown(line)}")
        value = value.strip(" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HttpWireError(f"a control character in the value of header {name[:40]!r}")
        items.append((name, value))
    return start_line, Headers(items)


def _shown(line: str) -> str:
    """A header line for an error message: its name only, the value may be a secret."""
    return repr(line.partition(":")[0][:40])


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the blank line ending a head; IncompleteReadError on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(CRLF + CRLF)
    except asyncio.LimitOverrunError as error:
        raise HttpWireError(f"head larger than {MAX_HEAD_BYTES} bytes") from error
    return raw[:-4]


def content_length(headers: Headers) -> int | None:
    """The one Content-Length, ASCII digits only; two of them (even equal) or anything else is an error."""
    values = headers.get_all("content-length")
    if not values:
        return None
    if len(values) > 1:
        raise HttpWireError("more than one Content-Length")
    value = values[0]
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_LENGTH_DIGITS:
        raise HttpWireError("invalid Content-Length")
    return int(value)


def is_chunked(headers: Headers) -> bool:
    """Whether the body is chunked. Only the one coding ``chunked`` is understood, and never together with a
    Content-Length: a message that two parsers could frame differently is refused (RFC 9112 §6.1)."""
    values = headers.get_all("transfer-encoding")
    if not values:
        return False
    if len(values) > 1 or values[0].lower() != "chunked":
        raise HttpWireError("unsupported Transfer-Encoding (only a single 'chunked' is accepted)")
    if "content-length" in headers:
        raise HttpWireError("both Content-Length and Transfer-Encoding")
    return True


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


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """One CRLF-terminated line of a chunked body, without the CRLF."""
    try:
        line = await reader.readuntil(CRLF)
    except asyncio.IncompleteReadError as error:
        raise HttpWireError("connection closed inside a chunked body") from error
    except asyncio.LimitOverrunError as error:
        raise HttpWireError("chunk size line too long") from error
    return line[:-2]


async def _iter_chunked(reader: asyncio.StreamReader, limit: int | None) -> AsyncIterator[bytes]:
    """Chunks as RFC 9112 §7.1 frames them, strictly: hex digits only (no sign, prefix, space or underscore that
    ``int(x, 16)`` would take), no chunk extensions, no trailer fields."""
    while True:
        size_text = await _read_line(reader)
        if b";" in size_text:
            raise HttpWireError("chunk extensions are not supported")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise HttpWireError(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if limit is not None and size > limit:
            raise BodyTooLargeError(f"chunk of {size} bytes exceeds {limit}")
        if size == 0:
            if await _read_line(reader) != b"":
                raise HttpWireError("trailer fields are not supported")
            return
        try:
            data = await reader.readexactly(size + 2)
        except asyncio.IncompleteReadError as error:
            raise HttpWireError("connection closed inside a chunk") from error
        if data[-2:] != CRLF:
            raise HttpWireError("chunk not followed by CRLF")
        yield data[:-2]


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK: Final = b"0\r\n\r\n"


def encode_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The head on the wire. Every header is checked again here, whatever its source: nothing the proxy writes can
    hold a line break that would start another header or another message."""
    pairs = list(headers)
    if _CONTROL.search(start_line):
        raise HttpWireError("a control character in the start line")
    for name, value in pairs:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise HttpWireError(f"refusing to send header {name[:40]!r}: not a valid header line")
    lines = [start_line, *(f"{name}: {value}" for name, value in pairs), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def forwardable(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones, those the Connection header names, and ``drop``."""
    items = list(headers)
    named = {t.strip().lower() for name, value in items if name.lower() == "connection" for t in value.split(",")}
    excluded = HOP_BY_HOP | named | {d.lower() for d in drop}
    return [(name, value) for name, value in items if name.lower() not in excluded]
