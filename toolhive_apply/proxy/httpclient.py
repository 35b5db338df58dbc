"""A one-request-per-connection HTTP/1.1 client for reaching upstream MCP servers (http and remote modes).

Standard library only (asyncio + ssl). No connection pooling: upstreams are a Docker network hop away or a remote
server where TLS set-up is dwarfed by tool latency, and a fresh connection per request keeps failure handling simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from toolhive_apply.proxy import PROXY_NAME
from toolhive_apply.proxy.httpwire import (
    MAX_HEAD_BYTES,
    Headers,
    HttpWireError,
    content_length,
    encode_head,
    is_chunked,
    iter_body,
    parse_head,
    read_body,
    read_head,
)

CONNECT_TIMEOUT: Final = 10.0
MAX_INTERIM_RESPONSES: Final = 8
_STATUS_LINE: Final = re.compile(r"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")


async def _final_head(reader: asyncio.StreamReader) -> tuple[int, Headers]:
    """The final response's status and headers, after at most a few 1xx; framing two parsers could read
    differently is refused here, before anything is relayed."""
    for _ in range(MAX_INTERIM_RESPONSES):
        start_line, headers = parse_head(await read_head(reader))
        status = _status(start_line)
        if status == 101:
            raise HttpWireError("the upstream switched protocols")
        if status >= 200:
            is_chunked(headers)
            content_length(headers)
            return status, headers
    raise HttpWireError(f"more than {MAX_INTERIM_RESPONSES} interim responses")


def _status(start_line: str) -> int:
    """The status code of a response line; anything but ``HTTP/1.x NNN reason`` is not an answer."""
    match = _STATUS_LINE.fullmatch(start_line)
    if match is None:
        raise HttpWireError(f"malformed status line {start_line[:40]!r}")
    return int(match.group(1))


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer with HTTP."""


@dataclass(frozen=True, slots=True)
class UpstreamUrl:
    scheme: str
    host: str
    port: int
    path: str
    query: str

    @classmethod
    def parse(cls, url: str) -> UpstreamUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path, parts.query)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    def target(self, query: str = "") -> str:
        """The upstream path with its own query string (kept, as ToolHive does) plus the client's."""
        joined = "&".join(q for q in (self.query, query) if q)
        return (self.path or "/") + (f"?{joined}" if joined else "")


class UpstreamResponse:
    def __init__(
        self, status: int, headers: Headers, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str
    ) -> None:
        self.status = status
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self._bodyless = method == "HEAD" or status in (204, 304)

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        if self._bodyless:
            return
        try:
            async for chunk in iter_body(self._reader, self.headers, until_eof=True):
                yield chunk
        except (HttpWireError, OSError, asyncio.IncompleteReadError) as error:
            raise UpstreamError(f"upstream response broken off: {error!r}") from None

    async def read(self, limit: int) -> bytes:
        if self._bodyless:
            return b""
        try:
            return await read_body(self._reader, self.headers, until_eof=True, limit=limit)
        except (HttpWireError, OSError, asyncio.IncompleteReadError) as error:
            raise UpstreamError(f"upstream response unreadable: {error!r}") from None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def send_request(
    url: UpstreamUrl, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> UpstreamResponse:
    """Send one request; the response head has arrived when this returns (its body has not been read)."""
    context = ssl.create_default_context() if url.scheme == "https" else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                url.host, url.port, ssl=context, server_hostname=url.host if context else None, limit=MAX_HEAD_BYTES
            ),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError, ssl.SSLError) as error:
        raise UpstreamError(f"cannot connect to {url.origin}: {error!r}") from None
    framing = [("Content-Length", str(len(body)))] if body or method in ("POST", "PUT", "PATCH") else []
    head = [("Host", url.host_header), *headers, *framing, ("Connection", "close")]
    if not any(name.lower() == "user-agent" for name, _ in headers):
        head.append(("User-Agent", PROXY_NAME))
    try:
        writer.write(encode_head(f"{method} {target} HTTP/1.1", head) + body)
        await writer.drain()
        status, response_headers = await _final_head(reader)
        return UpstreamResponse(status, response_headers, reader, writer, method)
    except (OSError, HttpWireError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
        writer.close()
        raise UpstreamError(f"no valid HTTP answer from {url.origin}: {error!r}") from None
    except asyncio.CancelledError:
        writer.close()  # the caller gave up waiting (a gateway's timeout): the connection must not leak
        raise
