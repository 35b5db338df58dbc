"""What the docker gate accepts: one strictly parsed request per connection, matched exactly against a fixed table.

The gate never forwards what it reads: it recognises one of a handful of operations on its one container and then
builds its own request to the engine. So parsing only has to decide "which operation, if any", and it decides it the
strict way: CRLF line ends only, printable ASCII only (no control bytes, no obs-fold, no NUL), a method, target and
version from a table, no body (Content-Length absent or 0, never Transfer-Encoding or Expect), no header twice, and
the upgrade headers exactly when the operation hijacks the connection. A target is compared as bytes: no percent
decoding, no dot segments, no query other than the attach query the proxy sends. Pure, so it is tested on data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Final

from toolhive_apply.proxy.docker_attach import ATTACH_QUERY, SESSION_SUFFIX

MAX_HEAD_BYTES: Final = 8192
MAX_HEADER_LINES: Final = 32
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_PREFIX: Final = re.compile(r"/v[0-9]{1,3}\.[0-9]{1,3}(?=/)")
"""``/v1.41``: the API version in the path is accepted and ignored (the gate speaks its own to the engine)."""
_REFUSED_HEADERS: Final = frozenset({"transfer-encoding", "expect", "te", "trailer"})


class Operation(StrEnum):
    VERSION = "version"  # GET /version: the engine's API version, nothing else
    INSPECT = "inspect"  # GET /containers/{name}/json: running/paused/restarting, stdin open, tty; nothing else
    ATTACH = "attach"  # POST /containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1, hijacked (shared mode)
    SESSION = "session"  # POST /containers/{name}/session, hijacked: a fresh server process (per-client mode)


HIJACKING: Final = frozenset({Operation.ATTACH, Operation.SESSION})


class GateRefusedError(Exception):
    """The request is refused; ``status`` is the HTTP status the gate answers with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def routes(container_name: str, operations: Collection[Operation]) -> dict[tuple[str, str], Operation]:
    """(method, target) -> operation for the operations this gate offers, all about ``container_name``."""
    base = f"/containers/{container_name}"
    table = {
        ("GET", "/version"): Operation.VERSION,
        ("GET", f"{base}/json"): Operation.INSPECT,
        ("POST", f"{base}/attach?{ATTACH_QUERY}"): Operation.ATTACH,
        ("POST", f"{base}/{SESSION_SUFFIX}"): Operation.SESSION,
    }
    return {key: operation for key, operation in table.items() if operation in operations}


def parse_request(head: bytes, table: Mapping[tuple[str, str], Operation]) -> Operation:
    """The operation ``head`` (request line and headers, ending with the blank line) asks for, or GateRefusedError."""
    if len(head) > MAX_HEAD_BYTES:
        raise GateRefusedError(431, "request head too large")
    if not head.endswith(b"\r\n\r\n"):
        raise GateRefusedError(400, "the head must end with CRLF CRLF")
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        if any(byte < 0x20 or byte > 0x7E for byte in line):
            raise GateRefusedError(400, "control or non-ASCII byte in the head (bare CR/LF, NUL, tab or 8-bit)")
    request_line, header_lines = lines[0].decode("ascii"), lines[1:]
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1" or not parts[1].startswith("/"):
        raise GateRefusedError(400, "malformed request line")
    method, target = parts[0], parts[1]
    if len(header_lines) > MAX_HEADER_LINES:
        raise GateRefusedError(431, "too many header lines")
    headers = _headers(header_lines)
    operation = table.get((method, _VERSION_PREFIX.sub("", target, count=1) if target.startswith("/v") else target))
    if operation is None:
        raise GateRefusedError(403, f"{method} {target[:120]} is not an operation this gate allows")
    _check_framing(headers, operation)
    return operation


def _headers(lines: list[bytes]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in lines:
        line = raw.decode("ascii")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise GateRefusedError(400, "malformed header line (obs-fold, space before the colon or no colon)")
        key = name.lower()
        if key in headers:
            raise GateRefusedError(400, f"header {name} sent twice")
        headers[key] = value.strip(" ")
    return headers


def _check_framing(headers: Mapping[str, str], operation: Operation) -> None:
    refused = sorted(_REFUSED_HEADERS & set(headers))
    if refused:
        raise GateRefusedError(400, f"header {refused[0]} is not accepted: requests carry no body")
    if headers.get("content-length", "0") != "0":
        raise GateRefusedError(400, "requests carry no body: Content-Length must be 0 or absent")
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",") if token.strip()}
    if operation in HIJACKING:
        if headers.get("upgrade", "").lower() != "tcp" or "upgrade" not in connection:
            raise GateRefusedError(400, "this operation hijacks the connection: send Connection: Upgrade, Upgrade: tcp")
    elif "upgrade" in headers or "upgrade" in connection:
        raise GateRefusedError(400, "this operation does not upgrade the connection")
