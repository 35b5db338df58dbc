"""The vMCP gateway against in-process fake MCP backends: routing, a backend down or slow, and its return.

The fakes are the proxy's own HTTP server answering JSON-RPC (JSON or SSE answers, paginated lists), so no Docker is
needed; the integration test runs the real SDK against real containers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from toolhive_apply.proxy.app import build_server
from toolhive_apply.proxy.config import load_config
from toolhive_apply.proxy.health import Health
from toolhive_apply.proxy.httpclient import UpstreamUrl, send_request
from toolhive_apply.proxy.httpserver import HttpServer, Request, Response, StreamResponse, json_response
from toolhive_apply.proxy.jsonrpc import INVALID_PARAMS, SERVER_UNAVAILABLE
from toolhive_apply.proxy.vmcp_app import Gateway
from toolhive_apply.proxy.vmcp_config import BackendSpec, VmcpConfig


class FakeBackend:
    """An MCP server with tools echo and add, answering ``tools/list`` two tools per page; ``slow`` delays calls."""

    def __init__(self, name: str, tools: tuple[str, ...] = ("echo", "add", "whoami"), sse: bool = False) -> None:
        self.name = name
        self.tools = tools
        self.sse = sse
        self.slow = 0.0
        self.sessions = 0
        self.server = HttpServer(self.handle, guard=lambda *_: None, max_body_bytes=1 << 20)

    async def start(self, port: int = 0) -> None:
        await self.server.start("127.0.0.1", port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/mcp"

    async def handle(self, request: Request) -> Response | StreamResponse:
        message = json.loads(request.body)
        if "id" not in message:
            return Response(HTTPStatus.ACCEPTED)
        result = await self.answer(message["method"], message.get("params") or {})
        reply = {"jsonrpc": "2.0", "id": message["id"], **result}
        headers = [("Mcp-Session-Id", f"{self.name}-s")] if message["method"] == "initialize" else []
        if not self.sse:
            return json_response(HTTPStatus.OK, reply, headers)
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}

        async def events() -> Any:
            for item in (progress, reply):
                yield f"event: message\ndata: {json.dumps(item)}\n\n".encode()

        return StreamResponse(HTTPStatus.OK, [("Content-Type", "text/event-stream"), *headers], events())

    async def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "initialize":
            self.sessions += 1
            caps = {"tools": {}, "prompts": {}}
            return {"result": {"protocolVersion": "2025-06-18", "capabilities": caps, "serverInfo": {"name": "f"}}}
        if method == "tools/list":
            start = int(params.get("cursor") or 0)
            tools = [{"name": n, "inputSchema": {"type": "object"}} for n in self.tools[start : start + 2]]
            more = {"nextCursor": str(start + 2)} if start + 2 < len(self.tools) else {}
            return {"result": {"tools": tools, **more}}
        if method == "prompts/list":
            return {"result": {"prompts": [{"name": "greet"}]}}
        if method == "tools/call":
            await asyncio.sleep(self.slow)
            text = f"{self.name}:{params['name']}:{json.dumps(params.get('arguments'))}"
            return {"result": {"content": [{"type": "text", "text": text}]}}
        if method == "prompts/get":
            return {"result": {"messages": [{"role": "user", "content": {"type": "text", "text": self.name}}]}}
        return {"error": {"code": -32601, "message": "no such method"}}


Scenario = Callable[[Gateway, list[FakeBackend]], Awaitable[None]]


def run(scenario: Scenario, *, sse: bool = False, **timeouts: float) -> None:
    async def main() -> None:
        fakes = [FakeBackend("alpha", sse=sse), FakeBackend("beta")]
        for fake in fakes:
            await fake.start()
        specs = tuple(BackendSpec(f.name, f.url) for f in fakes)
        settings = {"list_timeout": 2.0, "call_timeout": 2.0, "refresh_interval": 60.0, **timeouts}
        gateway = Gateway("research", VmcpConfig(specs, **settings), Health("research", "vmcp"))
        runner = asyncio.create_task(gateway.run())
        try:
            await scenario(gateway, fakes)
        finally:
            runner.cancel()
            for fake in fakes:
                await fake.server.close()

    asyncio.run(main())


async def call(gateway: Gateway, method: str, params: dict[str, Any] | None = None, rid: int = 7) -> dict[str, Any]:
    return await gateway.request("client", {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})


async def tool_names(gateway: Gateway) -> list[str]:
    return [t["name"] for t in (await call(gateway, "tools/list"))["result"]["tools"]]


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await condition():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_tools_of_every_backend_are_listed_prefixed_and_each_call_reaches_its_own_backend() -> None:
    async def scenario(gateway: Gateway, _: list[FakeBackend]) -> None:
        names = await tool_names(gateway)
        assert sorted(names) == sorted(f"{b}_{t}" for b in ("alpha", "beta") for t in ("echo", "add", "whoami"))
        answer = await call(gateway, "tools/call", {"name": "beta_echo", "arguments": {"text": "hi"}}, rid=42)
        assert answer["id"] == 42
        assert answer["result"]["content"][0]["text"] == 'beta:echo:{"text": "hi"}'
        prompt = await call(gateway, "prompts/get", {"name": "alpha_greet"})
        assert prompt["result"]["messages"][0]["content"]["text"] == "alpha"

    run(scenario)


def test_answers_on_an_event_stream_are_read_and_progress_reaches_the_calling_client() -> None:
    async def scenario(gateway: Gateway, _: list[FakeBackend]) -> None:
        seen: list[tuple[str | None, dict[str, Any]]] = []
        gateway.listener = lambda client, message: seen.append((client, message))
        answer = await call(gateway, "tools/call", {"name": "alpha_add", "arguments": {"a": 1}})
        assert answer["result"]["content"][0]["text"].startswith("alpha:add")
        assert ("client", "notifications/progress") in [(c, m["method"]) for c, m in seen]

    run(scenario, sse=True)


def test_unknown_tools_and_foreign_cursors_get_invalid_params() -> None:
    async def scenario(gateway: Gateway, _: list[FakeBackend]) -> None:
        assert (await call(gateway, "tools/call", {"name": "echo"}))["error"]["code"] == INVALID_PARAMS
        assert (await call(gateway, "tools/list", {"cursor": "abc"}))["error"]["code"] == INVALID_PARAMS

    run(scenario)


def test_a_slow_backend_fails_its_call_within_the_timeout_while_the_other_answers() -> None:
    async def scenario(gateway: Gateway, fakes: list[FakeBackend]) -> None:
        await tool_names(gateway)
        fakes[0].slow = 30.0
        slow = asyncio.create_task(call(gateway, "tools/call", {"name": "alpha_echo", "arguments": {}}))
        fast = await call(gateway, "tools/call", {"name": "beta_echo", "arguments": {}}, rid=8)
        assert fast["result"]["content"][0]["text"].startswith("beta:")
        error = (await slow)["error"]
        assert error["code"] == SERVER_UNAVAILABLE
        assert "did not answer tools/call within" in error["message"]

    run(scenario, call_timeout=0.5)


def test_a_backend_that_goes_down_loses_its_tools_and_gets_them_back_when_it_returns() -> None:
    async def scenario(gateway: Gateway, fakes: list[FakeBackend]) -> None:
        assert len(await tool_names(gateway)) == 6
        changes: list[str] = []
        gateway.listener = lambda _client, message: changes.append(message["method"])
        port = fakes[0].server.port
        await fakes[0].server.close()
        failed = await call(gateway, "tools/call", {"name": "alpha_echo", "arguments": {}})
        assert failed["error"]["code"] == SERVER_UNAVAILABLE
        assert "backend alpha is unavailable" in failed["error"]["message"]
        assert sorted(await tool_names(gateway)) == ["beta_add", "beta_echo", "beta_whoami"]
        again = await call(gateway, "tools/call", {"name": "alpha_echo", "arguments": {}})
        assert "unknown tool" in again["error"]["message"]
        fakes[0].server = HttpServer(fakes[0].handle, guard=lambda *_: None, max_body_bytes=1 << 20)
        await fakes[0].start(port)

        async def back() -> bool:
            return len(await tool_names(gateway)) == 6

        sessions = fakes[1].sessions
        await wait_for(back, "alpha's tools to come back")
        assert fakes[1].sessions == sessions  # beta's re-lists reuse its one session
        answer = await call(gateway, "tools/call", {"name": "alpha_echo", "arguments": {}})
        assert answer["result"]["content"][0]["text"].startswith("alpha:")
        assert "notifications/tools/list_changed" in changes

    run(scenario, refresh_interval=0.2)


def test_the_gateway_serves_mcp_over_http_with_the_proxy_guards() -> None:
    async def main() -> None:
        fake = FakeBackend("alpha")
        await fake.start()
        document = {
            "name": "research",
            "mode": "vmcp",
            "listen_port": 1,
            "listen_host": "127.0.0.1",
            "vmcp": {"backends": [{"name": "alpha", "url": fake.url}], "aggregation": {}},
        }
        server, assembly = build_server(load_config(json.dumps(document), {}))
        await server.start("127.0.0.1", 0)
        background = asyncio.create_task(assembly.background())
        url = UpstreamUrl.parse(f"http://127.0.0.1:{server.port}/mcp")
        try:
            body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
            headers = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
            response = await send_request(url, "POST", "/mcp", headers, json.dumps(body).encode())
            init = json.loads(await response.read(1 << 20))
            await response.close()
            session = response.headers.get("mcp-session-id")
            assert init["result"]["serverInfo"]["name"] == "research"
            assert session
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            response = await send_request(
                url, "POST", "/mcp", [*headers, ("Mcp-Session-Id", session)], json.dumps(listing).encode()
            )
            tools = json.loads(await response.read(1 << 20))["result"]["tools"]
            await response.close()
            assert [t["name"] for t in tools] == ["alpha_echo", "alpha_add", "alpha_whoami"]
            evil = [*headers, ("Origin", "https://evil.example")]
            response = await send_request(url, "POST", "/mcp", evil, json.dumps(body).encode())
            await response.close()
            assert response.status == HTTPStatus.FORBIDDEN
        finally:
            background.cancel()
            await server.close()
            await fake.server.close()

    asyncio.run(main())


def test_a_vmcp_document_with_bad_backends_lists_every_problem() -> None:
    document = {
        "name": "g",
        "mode": "vmcp",
        "listen_port": 8080,
        "vmcp": {"backends": [{"name": "a", "url": "file:///x"}, {"name": "-b", "url": "http://b"}], "aggregation": 3},
    }
    try:
        load_config(json.dumps(document), {})
    except ValueError as error:
        text = str(error)
    assert "vmcp.backends[0].url" in text
    assert "vmcp.backends[1].name" in text
    assert "vmcp.aggregation" in text
