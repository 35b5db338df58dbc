"""A tiny scripted HTTP server that speaks just enough of the Vault API to produce faults on demand.

Why it exists: the real OpenBao dev server (tests/support/openbao.py) is used for everything it can do, but it
cannot be made to answer 500 or 429, or to drop a connection mid-request, when a test asks; and Kubernetes login
needs a kube-apiserver token reviewer that cannot run here. Only those cases use this fake.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "drop"
"""A responder value: close the connection without answering."""

Reply = tuple[int, dict[str, Any]] | str


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeVault:
    address: str = ""
    rules: list[tuple[str | None, str, Reply | Callable[[Seen], Reply]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str | None, path: str, reply: Reply | Callable[[Seen], Reply]) -> None:
        """Answer requests whose path starts with `path` (and method matches, if given); newest rule wins."""
        self.rules.insert(0, (method, path, reply))

    def reply_for(self, request: Seen) -> Reply:
        for method, prefix, reply in self.rules:
            if (method is None or method == request.method) and request.path.startswith(prefix):
                return reply(request) if callable(reply) else reply
        return 404, {"errors": []}


def _kv2_mount(_: Seen) -> Reply:
    return 200, {"data": {"type": "kv", "options": {"version": "2"}}}


def _root_lookup(_: Seen) -> Reply:
    return 200, {"data": {"ttl": 0, "renewable": False}}


def _handler(fake: FakeVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()), json.loads(raw) if raw else None)
            fake.seen.append(seen)
            reply = fake.reply_for(seen)
            if isinstance(reply, str):  # DROP
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, body = reply
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_PATCH = handle_any  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def fake_vault() -> Iterator[FakeVault]:
    """A FakeVault on a free loopback port that accepts any token and has KV v2 at `secret/`."""
    fake = FakeVault()
    fake.on("GET", "/v1/auth/token/lookup-self", _root_lookup)
    fake.on("GET", "/v1/sys/internal/ui/mounts/", _kv2_mount)
    # a new secret's metadata is written before its value (VaultStore._claim); Vault accepts that as it would
    fake.on("POST", "/v1/secret/metadata/", (200, {}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.address = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
