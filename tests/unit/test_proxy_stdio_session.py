"""The whole stdio path in process: a fake Docker engine on a unix socket, the real attach code, backend and hub.

The fake engine plays a scripted MCP server behind Docker's attach protocol (101 upgrade, 8-byte frame headers,
replies split across frames, stderr output). It produces what the real time server never does on demand: progress
notifications, server-to-client requests, broadcast notifications, and a connection that drops mid-request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from toolhive_apply.proxy.config import Mode, ProxyConfig, ToolOverride, Transport
from toolhive_apply.proxy.framing import StreamType, encode_frame
from toolhive_apply.proxy.health import Health, Status
from toolhive_apply.proxy.jsonrpc import METHOD_NOT_FOUND, SERVER_UNAVAILABLE
from toolhive_apply.proxy.sessions import SessionHub
from toolhive_apply.proxy.stdio_backend import StdioBackend
from toolhive_apply.proxy.tools import ToolPolicy

INIT_RESULT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"tools": {"listChanged": True}},
    "serverInfo": {"name": "fake", "version": "9"},
}


class FakeEngine:
    """Answers inspect and attach for one container and runs a scripted MCP server on the attach stream."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.received: list[dict[str, Any]] = []
        self.attaches = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._connection, path=str(self.socket_path))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()

    def drop_attachments(self) -> None:
        """Like a container restart: every attach stream ends."""
        for writer in self.writers:
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /version "):
            body = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.12"}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        if head.startswith(b"GET /v1.41/containers/fake/json"):
            body = json.dumps({"State": {"Running": True}, "Config": {"OpenStdin": True, "Tty": False}}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        assert head.startswith(b"POST /v1.41/containers/fake/attach?stream=1&stdin=1&stdout=1&stderr=1"), head
        self.attaches += 1
        self.writers.append(writer)
        writer.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
        while line := await reader.readline():
            message = json.loads(line)
            self.received.append(message)
            for frame in self._answer(message):
                writer.write(frame)
            await writer.drain()

    def _answer(self, message: dict[str, Any]) -> list[bytes]:
        method = message.get("method")
        if method == "initialize":
            return stdout({"jsonrpc": "2.0", "id": message["id"], "result": INIT_RESULT})
        if method == "tools/list":
            tools = [{"name": "slow", "inputSchema": {}}, {"name": "secret", "inputSchema": {}}]
            return stdout({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": tools}}, split=7)
        if method == "tools/call" and message["params"]["name"] == "slow":
            token = message["params"]["_meta"]["progressToken"]
            frames = stdout(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1},
                }
            )
            frames += stdout({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
            frames += stdout({"jsonrpc": "2.0", "id": "srv-2", "method": "roots/list"})
            frames += stdout(
                {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}}
            )
            frames.append(encode_frame(StreamType.STDERR, b"working on it\n"))
            result = {"content": [{"type": "text", "text": f"done for {message['id']}"}]}
            return frames + stdout({"jsonrpc": "2.0", "id": message["id"], "result": result}, split=5)
        return []  # everything else (hang) is left unanswered on purpose


def stdout(message: dict[str, Any], split: int = 0) -> list[bytes]:
    """``message`` as Docker would frame a server's stdout line, optionally cut into ``split``-byte frames."""
    line = json.dumps(message).encode() + b"\n"
    size = split or len(line)
    return [encode_frame(StreamType.STDOUT, line[i : i + size]) for i in range(0, len(line), size)]


def run(tmp_path: Path, scenario: Callable[[FakeEngine, StdioBackend, SessionHub], Awaitable[None]]) -> None:
    async def main() -> None:
        engine = FakeEngine(tmp_path / "docker.sock")
        await engine.start()
        config = ProxyConfig(
            name="fake",
            mode=Mode.STDIO,
            proxy_mode=Transport.STREAMABLE_HTTP,
            listen_port=1,
            container="fake",
            docker_socket=str(engine.socket_path),
            tools=frozenset({"slow", "visible"}),
            tools_override={"secret": ToolOverride(name="visible")},
        )
        health = Health("fake", "stdio")
        backend = StdioBackend(config, health)
        hub = SessionHub(backend, ToolPolicy.from_config(config), health)
        loop_task = asyncio.create_task(backend.run())
        try:
            assert await health.wait_running(5), health.detail
            await asyncio.wait_for(scenario(engine, backend, hub), 10)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            await engine.stop()

    asyncio.run(main())


def request(request_id: object, method: str, **params: object) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_the_server_is_initialized_once_and_each_client_is_answered_from_that(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        for _ in range(3):
            session = hub.create()
            reply = await hub.handle(session.id, session, request(1, "initialize", protocolVersion="2025-11-25"))
            assert reply is not None
            assert reply.message["result"]["serverInfo"] == INIT_RESULT["serverInfo"]
            assert reply.message["result"]["protocolVersion"] == "2025-06-18"  # not newer than the server
            await hub.handle(session.id, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        methods = [m.get("method") for m in engine.received]
        assert methods.count("initialize") == 1 and methods.count("notifications/initialized") == 1
        assert engine.received[0]["params"]["capabilities"] == {}

    run(tmp_path, scenario)


def test_progress_server_requests_and_broadcasts_are_routed_sensibly(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        first, second = hub.create(), hub.create()
        first.listeners = second.listeners = 1  # both have an event stream open
        call = request(1, "tools/call", name="slow", _meta={"progressToken": 1})
        replies = await asyncio.gather(hub.handle(first.id, first, call), hub.handle(second.id, second, call))
        assert all(r is not None and r.message["id"] == 1 for r in replies)
        texts = {r.message["result"]["content"][0]["text"] for r in replies if r is not None}
        forwarded = {f"done for {m['id']}" for m in engine.received if m.get("method") == "tools/call"}
        assert texts == forwarded and len(texts) == 2  # each client got one of the two distinct answers
        first_events = [first.outbox.get_nowait() for _ in range(first.outbox.qsize())]
        second_events = [second.outbox.get_nowait() for _ in range(second.outbox.qsize())]
        for events in (first_events, second_events):
            progress = [e for e in events if isinstance(e, dict) and e.get("method") == "notifications/progress"]
            assert [p["params"]["progressToken"] for p in progress] == [1]  # its own progress, original token
            logs = [e for e in events if isinstance(e, dict) and e.get("method") == "notifications/message"]
            assert len(logs) == 2  # broadcasts of both calls reach every open stream
        answers = {m["id"]: m for m in engine.received if "id" in m and "method" not in m}
        assert answers["srv-1"]["result"] == {}
        assert answers["srv-2"]["error"]["code"] == METHOD_NOT_FOUND

    run(tmp_path, scenario)


def test_the_tool_policy_applies_on_the_shared_session(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        listed = await hub.handle(session.id, session, request(5, "tools/list"))
        assert listed is not None
        assert [t["name"] for t in listed.message["result"]["tools"]] == ["slow", "visible"]
        refused = await hub.handle(session.id, session, request(6, "tools/call", name="secret"))
        assert refused is not None and refused.message["error"]["message"] == "tool not found: secret"
        assert not any(m.get("params", {}).get("name") == "secret" for m in engine.received)

    run(tmp_path, scenario)


def test_cancellation_reaches_the_server_with_the_proxy_id(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        pending = asyncio.create_task(hub.handle(session.id, session, request("q", "hang")))
        await asyncio.sleep(0.1)
        forwarded = next(m for m in engine.received if m.get("method") == "hang")
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "q", "reason": "x"}}
        await hub.handle(session.id, session, cancel)
        reply = await pending
        assert reply is not None and reply.message["id"] == "q" and "cancelled" in reply.message["error"]["message"]
        await asyncio.sleep(0.1)
        notice = [m for m in engine.received if m.get("method") == "notifications/cancelled"]
        assert notice == [
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": forwarded["id"], "reason": "x"},
            }
        ]

    run(tmp_path, scenario)


def test_a_dropped_attachment_fails_pending_requests_at_once_and_is_re_attached(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, backend: StdioBackend, hub: SessionHub) -> None:
        session = hub.create()
        pending = asyncio.create_task(hub.handle(session.id, session, request(1, "hang")))
        await asyncio.sleep(0.1)
        engine.drop_attachments()
        reply = await asyncio.wait_for(pending, 2)
        assert reply is not None and reply.unavailable and reply.message["error"]["code"] == SERVER_UNAVAILABLE
        deadline = asyncio.get_running_loop().time() + 5
        while (backend.attach_count < 2 or backend._health.status is not Status.RUNNING) and (
            asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
        assert backend.attach_count == 2 and engine.attaches == 2
        listed = await hub.handle(session.id, session, request(2, "tools/list"))
        assert listed is not None and "result" in listed.message
        assert [m.get("method") for m in engine.received].count("initialize") == 2

    run(tmp_path, scenario)
