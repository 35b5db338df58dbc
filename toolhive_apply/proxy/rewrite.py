"""Apply the tool policy to traffic the proxy relays to an HTTP upstream (http and remote modes).

On the way in, ``tools/call`` names are translated or refused and ``tools/list`` request ids remembered; on the way
out, answers to those ids are filtered, whether they come as a JSON body or as SSE events. Pure, tested on data.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from toolhive_apply.proxy.jsonrpc import JsonObject, MessageKind, RequestId, classify, method_of
from toolhive_apply.proxy.sse_codec import ServerSentEvent
from toolhive_apply.proxy.tools import ToolPolicy

NAME_HEADER: Final = "Mcp-Name"
"""Newer MCP clients mirror a tools/call's tool name in this header; servers reject a mismatch with the body."""
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")
_B64_SENTINEL = re.compile(r"^=\?base64\?.*\?=$")


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What to do with one POST body. Invariant: ``forward`` is False only when every message was refused."""

    body: bytes
    forward: bool = True
    batch: bool = False
    list_ids: frozenset[RequestId] = frozenset()
    refusals: list[JsonObject] = field(default_factory=list)
    call_name: str | None = None
    """The server's name of the one tool called, when the client used an overridden name (for ``Mcp-Name``)."""


def plan_request(policy: ToolPolicy, body: bytes) -> RequestPlan:
    if not policy.active:
        return RequestPlan(body)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return RequestPlan(body)  # not JSON: the upstream will say so
    batch = isinstance(payload, list)
    kept: list[object] = []
    refusals: list[JsonObject] = []
    list_ids: set[RequestId] = set()
    call_name = None
    for message in payload if batch else [payload]:
        if not isinstance(message, dict) or classify(message) is not MessageKind.REQUEST:
            kept.append(message)
            continue
        if method_of(message) == "tools/list":
            list_ids.add(message["id"])
        elif method_of(message) == "tools/call":
            forwarded, refusal = policy.rewrite_call(message)
            if refusal is not None or forwarded is None:
                refusals.append(refusal or {})
                continue
            if forwarded is not message:
                call_name = forwarded["params"]["name"]
            message = forwarded
        kept.append(message)
    changed = bool(refusals) or call_name is not None
    new_body = json.dumps(kept if batch else kept[0]).encode() if changed and kept else body
    return RequestPlan(new_body, bool(kept), batch, frozenset(list_ids), refusals, None if batch else call_name)


def rewrite_message(policy: ToolPolicy, list_ids: Collection[RequestId], message: object) -> object:
    if isinstance(message, dict) and classify(message) is MessageKind.RESPONSE and message.get("id") in list_ids:
        return policy.rewrite_list_result(message)
    return message


def rewrite_json_body(policy: ToolPolicy, plan: RequestPlan, body: bytes) -> bytes:
    """A JSON response body with tools/list answers filtered and local refusals merged in."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if isinstance(payload, list):
        rewritten: object = [rewrite_message(policy, plan.list_ids, m) for m in payload] + plan.refusals
    elif plan.refusals:
        rewritten = [rewrite_message(policy, plan.list_ids, payload), *plan.refusals]
    else:
        rewritten = rewrite_message(policy, plan.list_ids, payload)
    return json.dumps(rewritten, separators=(",", ":")).encode()


def rewrite_event(policy: ToolPolicy, list_ids: Collection[RequestId], event: ServerSentEvent) -> ServerSentEvent:
    if event.event != "message" or not list_ids:
        return event
    try:
        message = json.loads(event.data)
    except ValueError:
        return event
    rewritten = rewrite_message(policy, list_ids, message)
    if rewritten is message:
        return event
    return ServerSentEvent(json.dumps(rewritten, separators=(",", ":")), event.event, event.id, event.retry)


def answered_id(event: ServerSentEvent) -> RequestId | None:
    """The id a ``message`` event answers, if it is a response (used to forget remembered tools/list ids)."""
    try:
        message = json.loads(event.data)
    except ValueError:
        return None
    if isinstance(message, dict) and classify(message) is MessageKind.RESPONSE:
        request_id = message.get("id")
        return request_id if isinstance(request_id, int | str) else None
    return None


def encode_header_value(value: str) -> str:
    """As the MCP SDKs encode ``Mcp-Name``: verbatim when printable ASCII, else in a ``=?base64?...?=`` sentinel."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="
