"""Authorization at the endpoint, in ToolHive's Cedar model (docs/authz.md, pkg/authz).

Each MCP request becomes a Cedar request: principal ``Client::"<sub>"`` (``Client::"anonymous"`` without
authentication) whose attributes are the verified claims as ``claim_<name>``; action ``Action::"call_tool"``,
``get_prompt`` or ``read_resource``; resource ``Tool::"<name>"``, ``Prompt::"<name>"`` or ``Resource::"<uri>"``
whose attributes are the call's arguments as ``arg_<name>``; the context holds both the claims and the arguments.
``entities_json`` adds entities (parents for ``in``, attributes). Forbid wins, default deny.

A denied request gets HTTP 403 with a JSON-RPC error for its id (as ToolHive); nothing is forwarded. List requests
(``tools/list``, ``prompts/list``, ``resources/list``) are checked against ``list_tools``/... on
``FeatureType::"tool"``/... only when some policy names that action, else allowed (ToolHive lets lists through);
their answers are filtered either way: an item stays only if the caller may call, get or read it, evaluated
without arguments (a list has none), so a tool permitted only under ``arg_*`` conditions is hidden from lists:
write argument limits as ``forbid ... when { resource has arg_x && ... }``. Filtering is by the
answer's shape (a result with ``tools``, ``prompts`` or ``resources``), in JSON bodies and in SSE streams alike, so
it holds whichever request id the answer carries and whichever stream (POST answer, GET stream, legacy SSE) it uses.

Under authorization a POST body must be strict JSON and a single message (no batches: a batch is one decision per
message the server might read differently) whose envelope every decoder reads alike; the body forwarded is the
proxy's own encoding of what it decided on. Methods the proxy cannot map to a decision are denied.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.auth_config import CedarConfig
from toolhive_apply.proxy.cedar import Entity, EntityStore, PolicySet, Uid, parse_entities, prefixed
from toolhive_apply.proxy.cedar import Request as CedarRequest
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.jsonrpc import (
    FORBIDDEN,
    INVALID_REQUEST,
    PARSE_ERROR,
    JsonObject,
    MessageKind,
    classify,
    envelope_problem,
    error_response,
    method_of,
    params_of,
)
from toolhive_apply.proxy.principal import Principal
from toolhive_apply.proxy.sse_codec import KEEPALIVE, ServerSentEvent, SseDecoder, encode_event
from toolhive_apply.proxy.strictjson import go_fold

ANONYMOUS: Final = "anonymous"
ALWAYS_ALLOWED: Final = frozenset({"initialize", "ping", "logging/setLevel", "server/discover"})
"""Methods that touch no tool, prompt or resource (ToolHive lets them through too)."""
LISTS: Final = {
    "tools/list": ("list_tools", "tool"),
    "prompts/list": ("list_prompts", "prompt"),
    "resources/list": ("list_resources", "resource"),
    "resources/templates/list": ("list_resources", "resource"),
}
_LIST_KEYS: Final = {"TOOLS": "tools", "PROMPTS": "prompts", "RESOURCES": "resources"}
_ITEM_RULES: Final = {
    "tools": ("call_tool", "Tool", "name"),
    "prompts": ("get_prompt", "Prompt", "name"),
    "resources": ("read_resource", "Resource", "uri"),
}
Next = Callable[[Request], Awaitable[Response | StreamResponse]]


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One Cedar question: may the caller do ``action`` on ``resource`` with these arguments."""

    action: str
    resource: Uid
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def operation_of(message: JsonObject) -> Operation | str | None:
    """The operation a request asks for; None when it needs no decision; a string when it cannot be mapped."""
    method = method_of(message)
    params = params_of(message)
    raw_arguments = params.get("arguments")
    arguments: dict[str, Any] = raw_arguments if isinstance(raw_arguments, dict) else {}
    if method in ALWAYS_ALLOWED:
        return None
    if method == "tools/call":
        return Operation("call_tool", Uid("Tool", str(params.get("name"))), arguments)
    if method == "prompts/get":
        name = params.get("name")
        return Operation("get_prompt", Uid("Prompt", name), arguments) if isinstance(name, str) else method
    if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        uri = params.get("uri")
        return Operation("read_resource", Uid("Resource", uri)) if isinstance(uri, str) else method
    if method in LISTS:
        action, feature = LISTS[method]
        return Operation(action, Uid("FeatureType", feature))
    if method == "completion/complete":
        ref = params.get("ref")
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            return Operation("get_prompt", Uid("Prompt", ref["name"]))
        if isinstance(ref, dict) and ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            return Operation("read_resource", Uid("Resource", ref["uri"]))
    return method


class Authorizer:
    def __init__(self, policies: PolicySet, entities: list[Entity]) -> None:
        self.policies = policies
        self.entities = {entity.uid: entity for entity in entities}
        self._checked_lists = {
            uid.id for p in policies.policies for uid in p.action.entities if uid.type == "Action"
        } & {action for action, _ in LISTS.values()}

    @classmethod
    def from_config(cls, config: CedarConfig) -> Authorizer:
        return cls(PolicySet.parse(*config.policies), parse_entities(json.loads(config.entities_json or "[]")))

    def request_entities(self, principal: Principal | None, operation: Operation) -> tuple[CedarRequest, EntityStore]:
        """The Cedar request and the entities it is evaluated with (the configured ones, plus the principal's claims
        and the resource's arguments merged into theirs)."""
        claims = prefixed("claim_", principal.claims if principal else {})
        args = prefixed("arg_", operation.arguments)
        who = Uid("Client", principal.subject if principal else ANONYMOUS)
        store = dict(self.entities)
        for uid, attrs in ((who, claims), (operation.resource, args)):
            known = store.get(uid)
            store[uid] = Entity(uid, {**(known.attrs if known else {}), **attrs}, known.parents if known else ())
        request = CedarRequest(who, Uid("Action", operation.action), operation.resource, {**claims, **args})
        return request, EntityStore(store.values())

    def allows(self, principal: Principal | None, operation: Operation) -> bool:
        if operation.resource.type == "FeatureType" and operation.action not in self._checked_lists:
            return True
        request, store = self.request_entities(principal, operation)
        return self.policies.is_authorized(request, store)

    async def handle(self, request: Request, forward: Next) -> Response | StreamResponse:
        if request.method == "POST":
            decided = self._decide_post(request)
            if isinstance(decided, Response):
                return decided
            request = decided
        return self.filter_response(request.principal, await forward(request))

    def _decide_post(self, request: Request) -> Request | Response:
        try:
            message = strictjson.loads(request.body)
        except strictjson.StrictJsonError as error:
            return rpc_error(HTTPStatus.BAD_REQUEST, PARSE_ERROR, f"Parse error: {error}")
        if isinstance(message, list):
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, "JSON-RPC batches are not supported")
        problem = envelope_problem(message)
        if problem is not None:
            return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, f"Invalid Request: {problem}")
        if classify(message) is MessageKind.REQUEST:
            arguments = params_of(message).get("arguments")
            if isinstance(arguments, dict) and len({go_fold(key) for key in arguments}) != len(arguments):
                # {"city": "Oslo", "City": "Paris"}: the policy would read one, a Go server's struct the other
                message_text = "Invalid Request: argument names that differ only in case"
                return rpc_error(HTTPStatus.BAD_REQUEST, INVALID_REQUEST, message_text)
            operation = operation_of(message)
            if isinstance(operation, str):
                text = f"Forbidden: {operation[:100]!r} is not allowed under the authorization policy"
                return _forbidden(message, text)
            if operation is not None and not self.allows(request.principal, operation):
                return _forbidden(message, "Forbidden: not authorized by the authorization policy")
        return dataclasses.replace(request, body=strictjson.dumps(message))

    # answers -----------------------------------------------------------

    def filter_message(self, principal: Principal | None, message: object) -> object:
        """A response whose result lists tools/prompts/resources, with only the items the caller may use."""
        if not isinstance(message, dict) or not isinstance(message.get("result"), dict):
            return message
        result: dict[str, Any] = message["result"]
        lists = [key for key in result if go_fold(key) in _LIST_KEYS]
        if not lists:
            return message
        if any(key != _LIST_KEYS[go_fold(key)] or not isinstance(result[key], list) for key in lists):
            return error_response(message.get("id"), INVALID_REQUEST, "the server's list answer is malformed")
        filtered = dict(result)
        for key in lists:
            action, type_name, id_key = _ITEM_RULES[key]
            filtered[key] = [
                item
                for item in result[key]
                if isinstance(item, dict)
                and isinstance(item.get(id_key), str)
                and self.allows(principal, Operation(action, Uid(type_name, item[id_key])))
            ]
        return {**message, "result": filtered}

    def filter_body(self, principal: Principal | None, body: bytes) -> bytes | None:
        try:
            payload = strictjson.loads(body)
        except strictjson.StrictJsonError:
            return None
        if isinstance(payload, list):
            return strictjson.dumps([self.filter_message(principal, m) for m in payload])
        return strictjson.dumps(self.filter_message(principal, payload))

    def filter_response(
        self, principal: Principal | None, response: Response | StreamResponse
    ) -> Response | StreamResponse:
        if isinstance(response, StreamResponse):
            content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
            if content_type.split(";")[0].strip().lower() == "text/event-stream":
                response.chunks = self._filter_events(principal, response.chunks)
            return response
        if response.body.strip():
            filtered = self.filter_body(principal, response.body)
            if filtered is None:
                if b'"result"' not in response.body:
                    return response  # not JSON and no result: an HTTP error text, nothing to hide
                message = "the server's answer is not strict JSON; not relayed under an authorization policy"
                return json_response(HTTPStatus.BAD_GATEWAY, error_response(None, INVALID_REQUEST, message))
            response.body = filtered
        return response

    async def _filter_events(
        self, principal: Principal | None, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        decoder = SseDecoder()
        try:
            async for chunk in chunks:
                events = decoder.feed(chunk)
                if decoder.take_comments():
                    yield KEEPALIVE
                for event in events:
                    if event.event != "message":
                        yield encode_event(event)
                        continue
                    filtered = self.filter_body(principal, event.data.encode())
                    if filtered is not None:
                        data = filtered.decode("ascii")
                        yield encode_event(ServerSentEvent(data, event.event, event.id, event.retry))
        finally:
            await chunks.aclose()


def _forbidden(message: JsonObject, text: str) -> Response:
    return json_response(HTTPStatus.FORBIDDEN, error_response(message.get("id"), FORBIDDEN, text))
