"""The transport bridges in process, against handlers that behave like the relays they sit on (bridge.py).

The integration test (tests/integration/test_proxy_bridges.py) runs the real SDK client through the proxy container;
these pin the edges it cannot reach cheaply: a refused POST still answers an SSE client, a session the handler did not
issue is not adopted, routing keeps ToolHive's paths, a stream that ends fails the requests waiting on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from http import HTTPStatus

from toolhive_apply.proxy.bridge import DualFrontend, SseOverStreamable
from toolhive_apply.proxy.bridge_streamable import StreamableOverSse
from toolhive_apply.proxy.httpserver import Request, Response, StreamResponse, json_response
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.sse_codec import ServerSentEvent, SseDecoder, encode_event

JSON = ("Content-Type", "application/json")


def request(method: str, target: str, body: object = None, *headers: tuple[str, str]) -> Request:
    data = b"" if body is None else json.dumps(body).encode()
    return Request(method, target, Headers([JSON, *headers]), data)


class Streamable:
    """A streamable handler that refuses sessionless requests as FastMCP does (400, and a session id it made up)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, req: Request) -> Response | StreamResponse:
        message = json.loads(req.body) if req.body else {}
        self.seen.append((req.method, req.headers.get("Mcp-Session-Id")))
        if req.method != "POST":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED)
        if message.get("method") == "initialize":
            answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"protocolVersion": "2025-06-18"}}
            return json_response(HTTPStatus.OK, answer, [("Mcp-Session-Id", "s-1")])
        if req.headers.get("Mcp-Session-Id") != "s-1":
            error = {"jsonrpc": "2.0", "id": "server-error", "error": {"code": -32600, "message": "No session"}}
            return json_response(HTTPStatus.BAD_REQUEST, error, [("Mcp-Session-Id", "made-up")])
        return json_response(HTTPStatus.OK, {"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}})


def test_an_sse_client_gets_an_answer_for_a_refused_post_and_the_issued_session_afterwards() -> None:
    async def run() -> None:
        inner = Streamable()
        bridge = SseOverStreamable(inner.handle)
        stream = await bridge.handle(request("GET", "/sse"))
        assert isinstance(stream, StreamResponse)
        first = await stream.chunks.__anext__()
        endpoint = SseDecoder().feed(first)[0]
        assert endpoint.event == "endpoint" and endpoint.data.startswith("/messages?session_id=")
        discover = {"jsonrpc": "2.0", "id": 7, "method": "server/discover"}
        assert (await bridge.handle(request("POST", endpoint.data, discover))).status == HTTPStatus.ACCEPTED
        init = {"jsonrpc": "2.0", "id": 8, "method": "initialize", "params": {}}
        await bridge.handle(request("POST", endpoint.data, init))
        listed = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
        decoder, events = SseDecoder(), []
        async for chunk in stream.chunks:
            events += decoder.feed(chunk)
            if len(events) == 2:
                await bridge.handle(request("POST", endpoint.data, listed))
            if len(events) == 3:
                break
        await stream.chunks.aclose()
        answers = [json.loads(e.data) for e in events]
        assert answers[0] == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32600, "message": "No session"}}
        assert answers[1]["id"] == 8 and answers[2] == {"jsonrpc": "2.0", "id": 9, "result": {"ok": True}}
        posts = [sent for method, sent in inner.seen if method == "POST"]
        assert posts == [None, None, "s-1"], "the made-up session of a refusal is not adopted"

    asyncio.run(asyncio.wait_for(run(), 10))


class Legacy:
    """An SSE handler: GET /sse announces an endpoint; answers to POSTs arrive on the stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def handle(self, req: Request) -> Response | StreamResponse:
        if req.method == "GET":
            return StreamResponse(HTTPStatus.OK, [], self.events())
        sent = json.loads(req.body)
        for message in sent if isinstance(sent, list) else [sent]:
            if message.get("method") == "hang up":
                self.queue.put_nowait(None)
            elif "id" in message:
                note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}
                self.queue.put_nowait(encode_event(ServerSentEvent(json.dumps(note))))
                answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message["method"]}}
                self.queue.put_nowait(encode_event(ServerSentEvent(json.dumps(answer))))
        return Response(HTTPStatus.ACCEPTED)

    async def events(self) -> AsyncGenerator[bytes, None]:
        yield encode_event(ServerSentEvent("/messages/?session_id=up", event="endpoint"))
        while (item := await self.queue.get()) is not None:
            yield item


def test_a_streamable_client_is_answered_from_the_sse_stream_and_a_hang_up_fails_what_waits() -> None:
    async def run() -> None:
        bridge = StreamableOverSse(Legacy().handle)
        init = await bridge.handle(request("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize"}))
        assert isinstance(init, Response) and init.status == HTTPStatus.OK
        assert json.loads(init.body) == {"jsonrpc": "2.0", "id": 1, "result": {"echo": "initialize"}}
        session = ("Mcp-Session-Id", Headers(init.headers).get("Mcp-Session-Id") or "")
        batch = [{"jsonrpc": "2.0", "id": "a", "method": "x"}, {"jsonrpc": "2.0", "id": 2, "method": "y"}]
        answer = await bridge.handle(request("POST", "/mcp", batch, session))
        assert isinstance(answer, Response) and [m["id"] for m in json.loads(answer.body)] == ["a", 2]
        assert (await bridge.handle(request("POST", "/mcp", batch, ("Mcp-Session-Id", "x")))).status == 404
        waiting = asyncio.ensure_future(
            bridge.handle(request("POST", "/mcp", {"jsonrpc": "2.0", "id": 3, "method": "hang up"}, session))
        )
        failed = await waiting
        assert isinstance(failed, Response) and failed.status == HTTPStatus.BAD_GATEWAY
        assert (await bridge.handle(request("POST", "/mcp", batch, session))).status == 404

    asyncio.run(asyncio.wait_for(run(), 10))


def test_routing_keeps_toolhives_paths_and_takes_a_legacy_open_on_mcp() -> None:
    async def run() -> None:
        seen: list[str] = []

        def tag(name: str) -> Callable[[Request], Awaitable[Response]]:
            async def handle(req: Request) -> Response:
                seen.append(f"{name} {req.method} {req.path}")
                return Response(HTTPStatus.OK)

            return handle

        both = DualFrontend(tag("streamable"), tag("sse"))
        upstream_sse = DualFrontend(tag("streamable"), tag("sse"), sse_first=True)
        accept = ("Accept", "text/event-stream")
        for frontend in (both, upstream_sse):
            await frontend.handle(request("GET", "/sse"))
            await frontend.handle(request("POST", "/mcp", {}))
            await frontend.handle(request("GET", "/mcp", None, accept))  # no session: a legacy SSE client
            await frontend.handle(request("GET", "/mcp", None, accept, ("Mcp-Session-Id", "s")))
        await both.handle(request("POST", "/messages?session_id=1", {}))
        await upstream_sse.handle(request("POST", "/messages/?session_id=1", {}))
        assert seen == [
            "sse GET /sse", "streamable POST /mcp", "sse GET /sse", "streamable GET /mcp",
            "sse GET /sse", "streamable POST /mcp", "sse GET /sse", "streamable GET /mcp",
            "sse POST /messages", "sse POST /messages/",
        ]  # fmt: skip

    asyncio.run(run())
