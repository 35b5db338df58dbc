"""``strict_protocol_validation``: refuse what an MCP transport revision does not allow, before any front-end.

* ``MCP-Protocol-Version`` must name a revision this endpoint serves (MCP 2025-06-18 §Protocol Version Header:
  "the server MUST respond with 400 Bad Request" for an invalid or unsupported one). stdio endpoints serve the
  handshake revisions; http/remote endpoints relay the stateless 2026-07-28 revision too (as ToolHive).
* No JSON-RPC batches: 2025-06-18 removed them, and a batch is several decisions the server may split differently.

Without strict validation the front-ends keep their lenient behaviour (the stdio one still checks the version on
session requests). Session rules (400 without a required ``Mcp-Session-Id``, 404 for an unknown or expired one,
``DELETE`` ending it, 128-bit random ids) are the front-ends' own and hold in either case.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy.httpserver import Request, Response, rpc_error
from toolhive_apply.proxy.jsonrpc import HANDSHAKE_VERSIONS, INVALID_REQUEST

STATELESS_VERSIONS: Final = ("2026-07-28",)
VERSION_HEADER: Final = "mcp-protocol-version"


def served_versions(relayed: bool) -> tuple[str, ...]:
    return (*HANDSHAKE_VERSIONS, *STATELESS_VERSIONS) if relayed else HANDSHAKE_VERSIONS


def strict_refusal(request: Request, versions: tuple[str, ...]) -> Response | None:
    """The 400 for a request strict validation refuses, or None."""
    version = request.headers.get(VERSION_HEADER)
    if version is not None and version.strip() not in versions:
        message = f"Bad Request: unsupported MCP-Protocol-Version {version[:40]!r}; supported: {', '.join(versions)}"
        return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, message)
    if request.method == "POST" and request.body.lstrip(b" \t\r\n").startswith(b"["):
        return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "Bad Request: JSON-RPC batches are not supported")
    return None
