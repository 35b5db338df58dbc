"""What one MCP operation was and how it ended: the record audit, metrics and traces are all made from.

A POST body holds one message or a batch; each request or notification in it is one operation. Its outcome uses
ToolHive's audit vocabulary (pkg/audit): success, application_error (a JSON-RPC error in a 2xx answer), denied
(401/403), failure (other 4xx), error (5xx, the backend unreachable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.jsonrpc import MessageKind, classify

EVENT_TYPES: Final = {
    "initialize": "mcp_initialize",
    "tools/call": "mcp_tool_call",
    "tools/list": "mcp_tools_list",
    "resources/read": "mcp_resource_read",
    "resources/list": "mcp_resources_list",
    "prompts/get": "mcp_prompt_get",
    "prompts/list": "mcp_prompts_list",
    "notifications/message": "mcp_notification",
    "ping": "mcp_ping",
    "logging/setLevel": "mcp_logging",
    "completion/complete": "mcp_completion",
    "notifications/roots/list_changed": "mcp_roots_list_changed",
}
"""ToolHive's mapping of MCP methods to audit event types (pkg/audit/auditor.go); other methods are mcp_request."""
KNOWN_METHODS: Final = frozenset(
    {
        *EVENT_TYPES,
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "server/discover",
    }
)
"""Methods that become a metric label as they are; any other is counted as "other" (labels stay bounded)."""
TARGET_TYPES: Final = {"tools/call": "tool", "resources/read": "resource", "prompts/get": "prompt"}
SSE_CONNECTION: Final = "sse_connection"
MAX_ERROR_MESSAGE: Final = 256  # ToolHive's maxAuditErrorMessageLength


class Outcome(StrEnum):
    SUCCESS = "success"
    APPLICATION_ERROR = "application_error"
    DENIED = "denied"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Operation:
    """One request or notification a client sent. ``name`` is the tool or prompt name, or the resource URI."""

    method: str
    request_id: object = None
    name: str | None = None
    message: object = None
    size: int = 0
    notification: bool = False
    event: str | None = None
    """An event type not named by a method (``sse_connection`` for a GET that opens an event stream)."""

    @property
    def event_type(self) -> str:
        return self.event or EVENT_TYPES.get(self.method, "mcp_request")


@dataclass(frozen=True, slots=True)
class Ending:
    """How an operation ended: the HTTP status, and the JSON-RPC answer when there was one."""

    status: int
    response: object = None
    size: int = 0
    error_code: int | None = None
    error_message: str = ""

    @property
    def outcome(self) -> Outcome:
        if self.status in (401, 403):
            return Outcome.DENIED
        if 400 <= self.status < 500:
            return Outcome.FAILURE
        if self.status >= 500:
            return Outcome.ERROR
        return Outcome.APPLICATION_ERROR if self.error_code is not None else Outcome.SUCCESS


@dataclass(frozen=True, slots=True)
class Exchange:
    """A finished operation, with who asked and how long it took (seconds)."""

    operation: Operation
    ending: Ending
    duration: float
    extra: dict[str, object] = field(default_factory=dict)


def operations(body: bytes) -> list[Operation]:
    """The operations of a POST body; an unreadable body is one nameless ``mcp_request``."""
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError:
        return [Operation("", size=len(body), message=body.decode("utf-8", "replace"))]
    messages = payload if isinstance(payload, list) else [payload]
    found = []
    for message in messages:
        kind = classify(message)
        if kind not in (MessageKind.REQUEST, MessageKind.NOTIFICATION) or not isinstance(message, dict):
            continue
        method = str(message["method"]) if isinstance(message.get("method"), str) else ""
        params: dict[str, object] = message["params"] if isinstance(message.get("params"), dict) else {}
        name = params.get("uri") if method.startswith("resources/") else params.get("name")
        size = len(body) if len(messages) == 1 else len(_encode(message))
        found.append(
            Operation(
                method=str(method),
                request_id=message.get("id"),
                name=name if isinstance(name, str) else None,
                message=message,
                size=size,
                notification=kind is MessageKind.NOTIFICATION,
            )
        )
    return found


def ending(status: int, response: object, size: int) -> Ending:
    """The ending for one JSON-RPC answer (or None) received with HTTP ``status``."""
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return Ending(
            status,
            response,
            size,
            code if isinstance(code, int) and not isinstance(code, bool) else 0,
            message[:MAX_ERROR_MESSAGE] if isinstance(message, str) else "",
        )
    return Ending(status, response, size)


def answers(body: bytes) -> dict[str, tuple[object, int]]:
    """JSON-RPC responses in a JSON body by request-id key, each with its size."""
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError:
        return {}
    items = payload if isinstance(payload, list) else [payload]
    single = len(items) == 1
    return {
        id_key(item.get("id")): (item, len(body) if single else len(_encode(item)))
        for item in items
        if isinstance(item, dict) and ("result" in item or "error" in item)
    }


def id_key(request_id: object) -> str:
    """A hashable key that keeps 1 and "1" apart, as JSON-RPC does."""
    return json.dumps(request_id)


def _encode(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()
