"""Origin checks against DNS rebinding, and the CORS headers that go with them.

A web page can make a browser send requests to a port on 127.0.0.1; the Origin header is how the proxy tells such a
page from a local tool. Requests without Origin (non-browser clients) pass; requests from origins not allowed get 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

from toolhive_apply.proxy.httpserver import Response, rpc_error
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.jsonrpc import INVALID_REQUEST

_ALLOWED_HEADERS: Final = "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"


class OriginPolicy:
    """Allowed origins: exact (``http://localhost:6274``), any port (``http://localhost:*``) or all (``*``)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._any_port: set[str] = set()
        self._everything = False
        for entry in (e.strip().rstrip("/").lower() for e in allowed):
            if entry == "*":
                self._everything = True
            elif entry.endswith(":*"):
                self._any_port.add(entry[:-2])
            else:
                self._exact.add(entry)

    def allows(self, origin: str) -> bool:
        value = origin.strip().rstrip("/").lower()
        if self._everything or value in self._exact or value in self._any_port:
            return True
        base, colon, port = value.rpartition(":")
        return bool(colon) and port.isdigit() and base in self._any_port

    def guard(self, method: str, path: str, headers: Headers) -> Response | None:
        """The 403 answer for a request from a disallowed origin (checked before its body is read)."""
        origin = headers.get("origin")
        if origin is None or self.allows(origin):
            return None
        return rpc_error(HTTPStatus.FORBIDDEN, INVALID_REQUEST, f"Forbidden: origin {origin[:100]!r} is not allowed")

    @staticmethod
    def cors_headers(headers: Headers, *, preflight: bool) -> list[tuple[str, str]]:
        """CORS response headers for an allowed origin (the guard already refused the others)."""
        origin = headers.get("origin")
        if origin is None:
            return []
        cors = [
            ("Access-Control-Allow-Origin", origin),
            ("Vary", "Origin"),
            ("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version"),
        ]
        if preflight:
            requested = headers.get("access-control-request-headers")
            cors += [
                ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", requested or _ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ]
        return cors
