"""JSON-RPC 2.0 message shapes and MCP protocol-version facts shared by every proxy module.

Kept apart from the transports so the multiplexer and the tool filter can be tested on plain data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, TypeGuard

JsonObject = dict[str, Any]
RequestId = int | str

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_UNAVAILABLE: Final = -32000
"""Implementation-defined code: the MCP server behind the proxy cannot be reached right now."""

HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""Protocol versions negotiated by ``initialize``; ISO dates, so string order is release order."""

LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_VERSIONS[-1]
DEFAULT_HTTP_VERSION: Final = "2025-03-26"
"""What a streamable-HTTP server must assume when a client sends no MCP-Protocol-Version header."""


class MessageKind(StrEnum):
    """The four shapes a JSON-RPC 2.0 message can take (batches are split before classifying)."""

    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"
    INVALID = "invalid"


def classify(message: object) -> MessageKind:
    """Which kind of JSON-RPC message ``message`` is; INVALID for anything malformed."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return MessageKind.INVALID
    has_id = "id" in message and is_request_id(message["id"])
    if isinstance(message.get("method"), str):
        if "id" not in message:
            return MessageKind.NOTIFICATION
        return MessageKind.REQUEST if has_id else MessageKind.INVALID
    if ("result" in message or "error" in message) and "id" in message:
        return MessageKind.RESPONSE
    return MessageKind.INVALID


def is_request_id(value: object) -> TypeGuard[RequestId]:
    """JSON-RPC ids are strings or integers (``bool`` is an ``int`` in Python but not in JSON)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def error_response(request_id: object, code: int, message: str, data: object = None) -> JsonObject:
    """A JSON-RPC error response; ``request_id`` is None when the request could not be read."""
    error: JsonObject = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_response(request_id: object, result: JsonObject) -> JsonObject:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def negotiate_version(requested: object, server_version: str) -> str:
    """The version to answer a client's ``initialize`` with, given what the server agreed with the proxy.

    A known version is honoured unless the server only speaks an older one: answering newer than the server would
    invite the client to use features the server lacks. Unknown (future) versions get the server's version, and the
    client decides whether it can live with it, as the spec prescribes.
    """
    known_server = server_version in HANDSHAKE_VERSIONS
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return min(requested, server_version) if known_server else requested
    return server_version if known_server else LATEST_HANDSHAKE_VERSION


def method_of(message: JsonObject) -> str:
    method = message.get("method")
    return method if isinstance(method, str) else ""


def params_of(message: JsonObject) -> JsonObject:
    params = message.get("params")
    return params if isinstance(params, dict) else {}
