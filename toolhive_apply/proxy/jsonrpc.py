"""JSON-RPC 2.0 message shapes and MCP protocol-version facts shared by every proxy module.

Kept apart from the transports so the multiplexer and the tool filter can be tested on plain data.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Any, Final, TypeGuard

from toolhive_apply.proxy.strictjson import go_fold

JsonObject = dict[str, Any]
RequestId = int | str

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_UNAVAILABLE: Final = -32000
UNAUTHORIZED: Final = -32001
"""No valid bearer token (sent with HTTP 401)."""
FORBIDDEN: Final = -32003
"""Refused by policy or for want of a scope (sent with HTTP 403), as ToolHive answers."""
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


MAX_SAFE_ID: Final = 2**53 - 1
"""Integer ids beyond this cannot round-trip through JavaScript's numbers: a TypeScript server would answer another
id than the one the proxy sent."""


def is_request_id(value: object) -> TypeGuard[RequestId]:
    """JSON-RPC ids are strings or integers (``bool`` is an ``int`` in Python but not in JSON)."""
    if isinstance(value, str):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_SAFE_ID <= value <= MAX_SAFE_ID


ENVELOPE_KEYS: Final = ("jsonrpc", "id", "method", "params", "result", "error")
PARAMS_KEYS: Final = ("name", "arguments", "_meta", "uri", "cursor", "requestId")
META_KEYS: Final = ("progressToken",)
"""Fields the proxy reads or rewrites, per level. A server's decoder may match keys case-insensitively (Go's
``encoding/json``), so at these levels a key that folds onto one of them must be spelled exactly, and no two keys may
fold alike: otherwise the proxy decides on one value and the server acts on another."""


def key_problem(obj: dict[str, Any], known: Collection[str], where: str) -> str | None:
    """Why ``obj`` would be read differently by a case-insensitive decoder, or None."""
    wanted = {go_fold(k): k for k in known}
    seen: dict[str, str] = {}
    for key in obj:
        folded = go_fold(key)
        if folded in seen:
            return f"{where}keys {seen[folded][:40]!r} and {key[:40]!r} differ only in case"
        seen[folded] = key
        exact = wanted.get(folded)
        if exact is not None and key != exact:
            return f"{where}key {key[:40]!r} must be spelled {exact!r}"
    return None


def envelope_problem(message: object) -> str | None:
    """Why a message cannot be classified beyond doubt, or None: it must be a valid JSON-RPC request, notification
    or response whose envelope, params and params._meta every decoder reads alike, and a ``tools/call`` must be a
    request naming its tool with a string ``params.name``."""
    if not isinstance(message, dict):
        return "a JSON-RPC message must be an object"
    problem = key_problem(message, ENVELOPE_KEYS, "")
    params = message.get("params")
    if problem is None and isinstance(params, dict):
        problem = key_problem(params, PARAMS_KEYS, "params: ")
        meta = params.get("_meta")
        if problem is None and isinstance(meta, dict):
            problem = key_problem(meta, META_KEYS, "params._meta: ")
    if problem is not None:
        return problem
    kind = classify(message)
    if kind is MessageKind.INVALID:
        return "not a JSON-RPC 2.0 request, notification or response"
    if "params" in message and not isinstance(params, dict | list):
        return "params must be an object or an array"
    if method_of(message) == "tools/call":
        if kind is not MessageKind.REQUEST:
            return "tools/call must be a request with an id"
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            return "tools/call needs a string params.name"
    return None


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
