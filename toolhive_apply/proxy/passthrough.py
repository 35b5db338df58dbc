"""Reverse proxy to an upstream that already speaks streamable HTTP (http and remote modes).

Requests and responses are relayed as they are (sessions, protocol-version and routing headers included), except that
the tool policy is applied: refused calls are answered here, renamed calls are translated, and answers to
``tools/list`` are filtered whether the upstream replies with JSON or with an SSE stream. The configured headers
(credentials for remote servers) are added on the way out; the client's Origin is not forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy import strictjson
from toolhive_apply.proxy.config import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL
from toolhive_apply.proxy.health import Health, mark_upstream
from toolhive_apply.proxy.httpclient import UpstreamError, UpstreamResponse, UpstreamUrl, send_request
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, json_response, rpc_error
from toolhive_apply.proxy.httpwire import Headers, forwardable
from toolhive_apply.proxy.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    SERVER_UNAVAILABLE,
    error_response,
    is_request_id,
)
from toolhive_apply.proxy.rewrite import (
    METHOD_HEADER,
    NAME_HEADER,
    RequestPlan,
    encode_header_value,
    plan_request,
    rewrite_event,
    rewrite_json_body,
)
from toolhive_apply.proxy.session_table import SessionTable
from toolhive_apply.proxy.sse_codec import KEEPALIVE, ServerSentEvent, SseDecoder, encode_event
from toolhive_apply.proxy.tools import ToolPolicy

MAX_JSON_RESPONSE: Final = 64 * 1024 * 1024
SESSION_HEADER: Final = "Mcp-Session-Id"
_NOT_FORWARDED: Final = ("origin", "accept-encoding", "referer", "cookie")
"""Request headers kept from the upstream: the browser-origin ones (already checked here), and Accept-Encoding, so
the upstream answers uncompressed and tools/list answers can be read."""


def upstream_headers(
    client: Headers, configured: Mapping[str, str], replace: Mapping[str, str | None] | None = None
) -> list[tuple[str, str]]:
    """The client's end-to-end headers, with configured headers (credentials) winning over the client's; a
    ``replace`` value of None drops the client's header without setting one."""
    overrides = {**configured, **(replace or {})}
    drop = {*_NOT_FORWARDED, *(name.lower() for name in overrides)}
    return [*forwardable(client, drop=drop), *((k, v) for k, v in overrides.items() if v is not None)]


def routing_headers(policy: ToolPolicy, plan: RequestPlan, client: Headers) -> dict[str, str | None]:
    """Under a policy, ``Mcp-Name``/``Mcp-Method`` say what the forwarded body says, or are dropped: a header the
    client sent is replaced by the body's value (batches have none), and none is added where the client sent none."""
    if not policy.active:
        return {}
    values = {NAME_HEADER: plan.call_name, METHOD_HEADER: plan.method}
    return {
        header: encode_header_value(value) if value is not None and header in client else None
        for header, value in values.items()
    }


def response_headers(upstream: UpstreamResponse) -> list[tuple[str, str]]:
    return forwardable(upstream.headers)


def unreachable(error: UpstreamError, request_id: object = None) -> Response:
    message = f"upstream MCP server unreachable: {error}"
    return rpc_error(HTTPStatus.BAD_GATEWAY, SERVER_UNAVAILABLE, message, request_id)


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the relayed server is, the headers added for it, and the health its answers keep current."""

    url: UpstreamUrl
    headers: Mapping[str, str]
    health: Health

    async def send(
        self,
        method: str,
        target: str,
        client: Headers,
        body: bytes = b"",
        replace: Mapping[str, str | None] | None = None,
    ) -> UpstreamResponse:
        try:
            response = await send_request(
                self.url, method, target, upstream_headers(client, self.headers, replace), body
            )
        except UpstreamError as error:
            mark_upstream(self.health, self.url.origin, error)
            raise
        mark_upstream(self.health, self.url.origin, None)
        return response


class StreamablePassthrough:
    """Relays one streamable-HTTP endpoint. The upstream's sessions (``Mcp-Session-Id`` it issues) are tracked in a
    bounded table with the session TTL: an evicted or expired session is ended upstream with DELETE, as a client
    would, so a server that never expires sessions itself does not accumulate them."""

    def __init__(
        self,
        upstream: Upstream,
        policy: ToolPolicy,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self._upstream = upstream
        self._policy = policy
        self.paths = frozenset({(upstream.url.path or "/mcp").rstrip("/") or "/", "/mcp"})
        self.sessions: SessionTable[bool] = SessionTable(session_ttl, max_sessions, on_evict=self._end_upstream)
        self._tasks: set[asyncio.Task[None]] = set()

    def _end_upstream(self, session_id: str, _: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._delete(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete(self, session_id: str) -> None:
        headers = Headers([(SESSION_HEADER, session_id)])
        with contextlib.suppress(UpstreamError):
            response = await self._upstream.send("DELETE", self._upstream.url.target(), headers)
            await response.close()

    def _track(self, request: Request, upstream: UpstreamResponse) -> None:
        """Remember sessions the upstream issued or accepted; forget the ones a client ended."""
        sent = request.headers.get(SESSION_HEADER)
        if sent is not None and (request.method == "DELETE" or upstream.status == HTTPStatus.NOT_FOUND):
            self.sessions.pop(sent)  # ended by the client, or unknown to the upstream (it restarted)
            return
        if not 200 <= upstream.status < 300:
            return
        issued = upstream.headers.get(SESSION_HEADER) or sent
        if issued is not None and issued not in self.sessions:
            self.sessions.add(issued, True)

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.path.rstrip("/") not in self.paths:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, f"not found; MCP endpoints: {sorted(self.paths)}")
        if request.method not in ("GET", "POST", "DELETE"):
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "GET, POST, DELETE")])
        # GET and DELETE carry no message: a body on them is never forwarded, so no server can read one unchecked.
        plan = plan_request(self._policy, request.body) if request.method == "POST" else RequestPlan(b"")
        if plan.rejection is not None:
            return json_response(HTTPStatus.BAD_REQUEST, plan.rejection)
        if not plan.forward:
            return json_response(HTTPStatus.OK, plan.refusals if plan.batch else plan.refusals[0])
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is not None and session_id in self.sessions and self.sessions.get(session_id) is None:
            return rpc_error(HTTPStatus.NOT_FOUND, INVALID_REQUEST, "Session not found (expired)")
        replace = routing_headers(self._policy, plan, request.headers)
        target = self._upstream.url.target(request.query_string)
        try:
            upstream = await self._upstream.send(request.method, target, request.headers, plan.body, replace)
        except UpstreamError as error:
            return unreachable(error, _single_id(request.body))
        self._track(request, upstream)
        return await self._relay(upstream, plan)

    async def _relay(self, upstream: UpstreamResponse, plan: RequestPlan) -> Response | StreamResponse:
        headers = response_headers(upstream)
        if upstream.content_type == "text/event-stream":
            return StreamResponse(upstream.status, headers, relay_events(upstream, self._policy, plan))
        try:
            body = await upstream.read(MAX_JSON_RESPONSE)
        except UpstreamError as error:
            return unreachable(error)
        finally:
            await upstream.close()
        if plan.refusals and upstream.status == HTTPStatus.ACCEPTED:
            # Only notifications went upstream; the refused requests still need their answers.
            return json_response(HTTPStatus.OK, plan.refusals if plan.batch else plan.refusals[0])
        if self._policy.active and body.strip():
            rewritten = rewrite_json_body(self._policy, plan, body)
            if rewritten is None and (upstream.content_type == "application/json" or plan.refusals):
                message = "the upstream's answer is not strict JSON; not relayed while a tool policy applies"
                return json_response(HTTPStatus.BAD_GATEWAY, error_response(None, INTERNAL_ERROR, message))
            body = rewritten if rewritten is not None else body
        return Response(upstream.status, headers, body)


async def relay_events(
    upstream: UpstreamResponse, policy: ToolPolicy, plan: RequestPlan
) -> AsyncGenerator[bytes, None]:
    """An upstream SSE body, re-encoded event by event under a policy (tools lists filtered), else byte for byte."""
    try:
        for refusal in plan.refusals:
            yield encode_event_json(refusal)
        if not policy.active:
            async for chunk in upstream.chunks():
                yield chunk
            return
        decoder = SseDecoder()
        async for chunk in upstream.chunks():
            events = decoder.feed(chunk)
            if decoder.take_comments():
                yield KEEPALIVE
            for event in events:
                if (rewritten := rewrite_event(policy, event)) is not None:
                    yield encode_event(rewritten)
    except UpstreamError:
        return  # the client sees the stream end, as it would have without the proxy
    finally:
        await upstream.close()


def encode_event_json(message: object) -> bytes:
    return encode_event(ServerSentEvent(json.dumps(message, separators=(",", ":"))))


def _single_id(body: bytes) -> object:
    try:
        payload = strictjson.loads(body)
    except strictjson.StrictJsonError:
        return None
    request_id = payload.get("id") if isinstance(payload, dict) else None
    return request_id if is_request_id(request_id) else None
