"""A JSON-RPC decoder as permissive as the most lenient real MCP server, and an upstream built on it.

``DECODER`` reads a body the way Go's ``encoding/json`` fills the MCP SDK's structs: object keys matched
case-insensitively with Go's folding (ASCII case, U+212A KELVIN SIGN as k, U+017F LONG S as s), the last of two
matching keys winning, invalid UTF-8 replaced by U+FFFD; and, more lenient still, a byte-order mark skipped,
UTF-16 accepted, anything after the first value ignored (a stream decoder), ``NaN`` and any number accepted, ids of
any type, no ``jsonrpc`` needed, deep nesting followed. If a body the proxy forwards makes this decoder call a hidden
tool, some real server would run it.

``UPSTREAM`` is a stdlib HTTP server (for ``python -c`` in the python test image) answering ``POST /mcp`` with that
decoder; it prints ``CALLED <name>`` for every tool call it decodes and ``REQUEST <method> <target>`` for every
request line it receives, so the test reads from the container log what reached it.
"""

from __future__ import annotations

from typing import Any, Final

DECODER: Final = r'''
import json

def go_fold(key):
    return "".join({"\u212a": "k", "\u017f": "s"}.get(c, c.lower() if c.isascii() else c) for c in key)

def _pairs(pairs):
    folded = {}
    for key, value in pairs:
        folded[go_fold(key)] = value  # the last key matching a field wins, as in encoding/json
    return folded

def go_decode(body):
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = body.decode("utf-16")
    else:
        text = body.decode("utf-8", "replace")
    text = text.lstrip("\ufeff \t\r\n")
    decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=float, parse_int=float)
    value, _ = decoder.raw_decode(text)
    return value

def tool_calls(value):
    """(id, tool name) of every tools/call the decoded value asks for."""
    calls = []
    for message in value if isinstance(value, list) else [value]:
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            continue
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else (params[0] if params else None)
        calls.append((message.get("id"), name))
    return calls
'''

_SERVER: Final = r"""
import http.server, json, sys, threading
sys.setrecursionlimit(50000)  # Go follows nesting 10,000 deep
threading.stack_size(256 * 1024 * 1024)

TOOLS = [{"name": n, "description": n, "inputSchema": {"type": "object"}} for n in ("echo", "add", "get_env")]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, payload, session=None):
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        if session:
            self.send_header("Mcp-Session-Id", session)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        print("REQUEST", "GET", self.path, flush=True)
        self._answer(405, None)

    def do_DELETE(self):
        print("REQUEST", "DELETE", self.path, self.headers.get("Mcp-Session-Id"), flush=True)
        self._answer(200, None)

    def do_POST(self):
        print("REQUEST", "POST", self.path, flush=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            value = go_decode(body)
        except Exception as error:
            self._answer(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": str(error)[:80]}})
            return
        answers = []
        for message in value if isinstance(value, list) else [value]:
            if not isinstance(message, dict):
                continue
            method, request_id = message.get("method"), message.get("id")
            if method == "initialize":
                result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                          "serverInfo": {"name": "go-like", "version": "1"}}
                self._answer(200, {"jsonrpc": "2.0", "id": request_id, "result": result}, session="go-session")
                return
            if method == "tools/list":
                result = {"tools": TOOLS}
            elif method == "tools/call":
                _, name = tool_calls(message)[0]
                print("CALLED", name, flush=True)
                result = {"content": [{"type": "text", "text": f"called {name}"}]}
            else:
                result = {}
            if "id" in message:
                answers.append({"jsonrpc": "2.0", "id": request_id, "result": result})
        if not answers:
            self._answer(202, None)
        else:
            self._answer(200, answers if isinstance(value, list) else answers[0])

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

UPSTREAM: Final = DECODER + _SERVER


def _namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(DECODER, namespace)
    return namespace


_NS: Final = _namespace()


def go_decode(body: bytes) -> Any:
    return _NS["go_decode"](body)


def tool_calls(value: Any) -> list[tuple[Any, Any]]:
    return list(_NS["tool_calls"](value))
