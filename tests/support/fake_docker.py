"""An in-process stand-in for the Docker engine's unix socket: the few calls the docker gate makes, and scripted
MCP server processes behind attach and exec.

It plays what the real time server never does on demand: progress notifications, server-to-client requests, log
messages, resource updates, replies split across frames, stderr output, a connection that drops mid-request, and
one process per exec with its own identity (``whoami``). Every request head it receives is recorded, so a test can
prove that a refused request never reached the engine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from toolhive_apply.proxy.framing import StreamType, encode_frame

CONTAINER_ID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
INIT_RESULT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"tools": {"listChanged": True}, "logging": {}, "resources": {"subscribe": True}},
    "serverInfo": {"name": "fake", "version": "9"},
}
SECRET_ENV = "API_TOKEN=s3cr3t-value"


class FakeEngine:
    """Answers version, inspect, attach and exec for the container CONTAINER_ID only."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.heads: list[bytes] = []
        self.received: list[dict[str, Any]] = []
        self.attaches = 0
        self.execs: dict[str, bool] = {}
        """exec id -> still running"""
        self.writers: list[asyncio.StreamWriter] = []
        self.running = True
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._connection, path=str(self.socket_path))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()

    def drop_attachments(self) -> None:
        """Like a container restart: every attach and exec stream ends."""
        for writer in self.writers:
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ")
        length = next(
            (int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0
        )
        body = json.loads(await reader.readexactly(length)) if length else None
        base = f"/v1.41/containers/{CONTAINER_ID}"
        if (method, target) == ("GET", "/version"):
            await _json(writer, {"ApiVersion": "1.41", "MinAPIVersion": "1.12"})
        elif (method, target) == ("GET", f"{base}/json"):
            state = {"Running": self.running, "Status": "running" if self.running else "exited"}
            info = {
                "Id": CONTAINER_ID,
                "Path": "fake-server",
                "Args": ["--stdio"],
                "State": state,
                "Config": {"OpenStdin": True, "Tty": False, "Env": [SECRET_ENV], "Labels": {"x": "y"}},
                "HostConfig": {"Binds": ["/etc:/host-etc"]},
            }
            await _json(writer, info, chunked=True)
        elif (method, target) == ("POST", f"{base}/attach?stream=1&stdin=1&stdout=1&stderr=1"):
            self.attaches += 1
            await self._process(reader, writer, "attach")
        elif (method, target) == ("POST", f"{base}/exec"):
            assert body is not None and body["Cmd"] == ["fake-server", "--stdio"] and body["AttachStdin"], body
            exec_id = f"exec{next(self._ids)}"
            self.execs[exec_id] = False
            await _json(writer, {"Id": exec_id}, status="201 Created")
        elif method == "POST" and target.startswith("/v1.41/exec/") and target.endswith("/start"):
            exec_id = target.split("/")[3]
            self.execs[exec_id] = True
            try:
                await self._process(reader, writer, exec_id)
            finally:
                self.execs[exec_id] = False
        elif method == "GET" and target.startswith("/v1.41/exec/") and target.endswith("/json"):
            await _json(writer, {"Running": self.execs.get(target.split("/")[3], False)})
        else:
            body_bytes = json.dumps({"message": f"fake engine: {method} {target} not scripted"}).encode()
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body_bytes), body_bytes))
            await writer.drain()
            writer.close()

    async def _process(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: str) -> None:
        """A scripted MCP server on a hijacked stream, until its stdin ends (EOF) or the engine drops it."""
        self.writers.append(writer)
        writer.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
        try:
            while line := await reader.readline():
                message = json.loads(line)
                self.received.append({**message, "_process": identity})
                for frame in _answer(message, identity):
                    writer.write(frame)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def _json(writer: asyncio.StreamWriter, value: object, *, chunked: bool = False, status: str = "200 OK") -> None:
    body = json.dumps(value).encode()
    if chunked:
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    else:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    writer.close()


def _answer(message: dict[str, Any], identity: str) -> list[bytes]:
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or method is None:
        return []
    if method == "initialize":
        return stdout({"jsonrpc": "2.0", "id": message["id"], "result": INIT_RESULT})
    if method == "tools/list":
        tools = [{"name": "slow", "inputSchema": {}}, {"name": "secret", "inputSchema": {}}]
        return stdout({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": tools}}, split=7)
    if method in ("resources/list", "resources/templates/list"):  # (the gateway lists every capability)
        key = "resources" if method == "resources/list" else "resourceTemplates"
        return stdout({"jsonrpc": "2.0", "id": message["id"], "result": {key: []}})
    if method in ("logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
        return stdout({"jsonrpc": "2.0", "id": message["id"], "result": {}})
    if method == "tools/call" and params.get("name") == "whoami":
        return stdout(
            {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [{"type": "text", "text": identity}]}}
        )
    if method == "tools/call" and params.get("name") == "shout":
        text = str(params.get("arguments", {}).get("text"))
        frames = stdout(
            {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text}}
        )
        frames += stdout({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": text}})
        return frames + stdout({"jsonrpc": "2.0", "id": message["id"], "result": {"content": []}})
    if method == "tools/call" and params.get("name") == "slow":
        token = params["_meta"]["progressToken"]
        frames = stdout(
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}}
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
