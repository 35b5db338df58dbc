"""Apply the tool policy to traffic the proxy relays to an HTTP upstream (http and remote modes).

On the way in, bodies are read strictly, ``tools/call`` names translated or refused; on the way out, every response
carrying a tools list is filtered, whether it comes as a JSON body or as SSE events. Pure, tested on data.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    JsonObject,
    MessageKind,
    classify,
    envelope_problem,
    error_response,
    is_request_id,
    method_of,
)
from toolhive_apply.proxy.sse_codec import ServerSentEvent
from toolhive_apply.proxy.strictjson import go_fold
from toolhive_apply.proxy.tools import ToolPolicy

NAME_HEADER: Final = "Mcp-Name"
"""Newer MCP clients mirror a tools/call's tool name in this header; servers reject a mismatch with the body."""
METHOD_HEADER: Final = "Mcp-Method"
"""Likewise for the method. A server (or a gateway in front of it) may route on these headers rather than the body,
so under a policy the client's values never pass: the proxy sets them from the body it decided on."""
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")
_B64_SENTINEL = re.compile(r"^=\?base64\?.*\?=$")


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What to do with one POST body. Invariants: ``rejection`` set means nothing is forwarded and the whole body is
    answered with it (HTTP 400); otherwise ``forward`` is False only when every message was refused."""

    body: bytes
    forward: bool = True
    batch: bool = False
    refusals: list[JsonObject] = field(default_factory=list)
    call_name: str | None = None
    """The server's name of the tool a single ``tools/call`` calls (for ``Mcp-Name``)."""
    method: str | None = None
    """The method of a single request or notification (for ``Mcp-Method``)."""
    rejection: JsonObject | None = None


def _rejected(code: int, message: str, request_id: object = None) -> RequestPlan:
    return RequestPlan(b"", forward=False, rejection=error_response(request_id, code, message))


def plan_request(policy: ToolPolicy, body: bytes) -> RequestPlan:
    """Without a policy, the body as it came. With one, fail closed: a body that is not strict JSON, or holds a
    message the proxy cannot classify beyond doubt, is refused whole; what is forwarded is the proxy's own encoding
    of what it decided on, so the server cannot read anything the proxy did not."""
    if not policy.active:
        return RequestPlan(body)
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError as error:
        return _rejected(PARSE_ERROR, f"Parse error: {error}")
    batch = isinstance(payload, list)
    messages: list[object] = payload if batch else [payload]
    if not messages:
        return _rejected(INVALID_REQUEST, "empty batch")
    for message in messages:
        problem = envelope_problem(message)
        if problem is not None:
            request_id = message.get("id") if isinstance(message, dict) else None
            safe_id = request_id if is_request_id(request_id) else None
            return _rejected(INVALID_REQUEST, f"Invalid Request: {problem}", safe_id)
    kept: list[object] = []
    refusals: list[JsonObject] = []
    call_name = None
    for message in messages:
        assert isinstance(message, dict)
        if classify(message) is MessageKind.REQUEST and method_of(message) == "tools/call":
            forwarded, refusal = policy.rewrite_call(message)
            if refusal is not None or forwarded is None:
                refusals.append(refusal or error_response(message["id"], INVALID_REQUEST, "refused"))
                continue
            call_name = forwarded["params"]["name"]
            message = forwarded
        kept.append(message)
    new_body = strictjson.dumps(kept if batch else kept[0]) if kept else b""
    single = None if batch or not kept else kept[0]
    method = method_of(single) if isinstance(single, dict) and "method" in single else None
    return RequestPlan(new_body, bool(kept), batch, refusals, None if batch else call_name, method)


def rewrite_message(policy: ToolPolicy, message: object) -> object:
    """A response carrying a tools list (whatever request it answers) with the policy applied; other valid messages
    untouched. A message a client could read differently from the proxy (an invalid envelope, a ``Result`` beside
    ``result``) is replaced by an error: it might carry a tools list the proxy did not filter."""
    if envelope_problem(message) is not None:
        return error_response(None, INTERNAL_ERROR, "the server sent a malformed message; not relayed")
    if not isinstance(message, dict) or classify(message) is not MessageKind.RESPONSE:
        return message
    result = message.get("result")
    if isinstance(result, dict) and any(go_fold(key) == "TOOLS" for key in result):
        return policy.rewrite_list_result(message)
    return message


def rewrite_json_body(policy: ToolPolicy, plan: RequestPlan, body: bytes) -> bytes | None:
    """A JSON response body with tools lists filtered and local refusals merged in; None when it cannot be read
    strictly (it is then not relayed: a lenient client could find hidden tools in it)."""
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError:
        return None
    if isinstance(payload, list):
        rewritten: object = [rewrite_message(policy, m) for m in payload] + plan.refusals
    elif plan.refusals:
        rewritten = [rewrite_message(policy, payload), *plan.refusals]
    else:
        rewritten = rewrite_message(policy, payload)
    return strictjson.dumps(rewritten)


def rewrite_event(policy: ToolPolicy, event: ServerSentEvent) -> ServerSentEvent | None:
    """A ``message`` event with its tools list filtered; None (drop it) when its data is not strict JSON."""
    if event.event != "message":
        return event
    try:
        message = strictjson.loads(event.data)
    except strictjson.StrictJsonError:
        return None
    rewritten = rewrite_message(policy, message)
    if rewritten is message:
        return event
    return ServerSentEvent(strictjson.dumps(rewritten).decode("ascii"), event.event, event.id, event.retry)


def encode_header_value(value: str) -> str:
    """As the MCP SDKs encode ``Mcp-Name``: verbatim when printable ASCII, else in a ``=?base64?...?=`` sentinel."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="
