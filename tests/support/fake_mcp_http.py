"""A minimal streamable-HTTP MCP server on loopback (one request per connection), recording what reaches it: the
headers and messages behind the proxy are what the authorization and no-passthrough tests assert on."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

TOOLS = [
    {"name": name, "description": f"the {name} tool", "inputSchema": {"type": "object"}}
    for name in ("weather", "calc", "secret_env")
]


@dataclass
class FakeMcpServer:
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    port: int = 0
    sessions: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def calls(self) -> list[str]:
        return [
            m["params"]["name"] for _, m in self.received if isinstance(m, dict) and m.get("method") == "tools/call"
        ]

    def _answer(self, message: dict[str, Any]) -> dict[str, Any] | None:
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            return None
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            params = message["params"]
            text = f"{params['name']} {json.dumps(params.get('arguments') or {}, sort_keys=True)}"
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        elif method == "ping":
            result = {}
        else:
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}}
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *lines = head[:-4].split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            method = line.split(" ")[0]
            message = json.loads(body) if body else None
            self.received.append((headers, message))
            extra = ""
            if method != "POST":
                status, payload = ("200 OK", b"") if method == "DELETE" else ("405 Method Not Allowed", b"")
            else:
                answer = self._answer(message)
                if answer is None:
                    status, payload = "202 Accepted", b""
                else:
                    status, payload = "200 OK", json.dumps(answer).encode()
                    if message.get("method") == "initialize":
                        self.sessions += 1
                        extra = f"Mcp-Session-Id: fake-session-{secrets.token_hex(8)}-{self.sessions}\r\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
