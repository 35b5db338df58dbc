"""A tiny MCP server used as a fixture image by the toolhive-apply tests.

It is baked into ``toolhive-apply-test/http:latest`` (at ``/app/http_server.py``)
because no registry is reachable from the test machine, so the tests cannot pull
a ready-made MCP server that speaks HTTP.  One script covers all three MCP
transports so the reconciler's transport handling can be exercised against a
single image; the transport is picked by the same environment variables that
ToolHive injects into the containers it runs:

* ``MCP_TRANSPORT``: ``streamable-http`` (default, endpoint ``/mcp``), ``sse``
  (endpoints ``/sse`` and ``/messages/``) or ``stdio``.
* ``MCP_PORT``: the container port to listen on (default 8080).

The HTTP transports always bind 0.0.0.0: the tests reach the container only
through a port published on 127.0.0.1, which requires listening on the
container's external interface rather than its loopback.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

DEFAULT_PORT = 8080
BIND_HOST = "0.0.0.0"  # all interfaces: the container must be reachable through a published port

server = MCPServer("toolhive-apply-test-http", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged, so a test can prove a round trip reached this server."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Return ``a + b``; a tool with typed arguments checks argument passing end to end."""
    return a + b


@server.tool()
def get_env(name: str) -> str:
    """Return the container's environment variable ``name``, or "" when unset.

    Tests use it to check that the reconciler injected the declared environment.
    """
    return os.environ.get(name, "")


def _no_host_checks() -> TransportSecuritySettings:
    """Transport security with DNS-rebinding protection switched off.

    mcp 2.x validates the Host/Origin headers when it thinks it serves
    localhost.  Clients reach this server through a port published on
    127.0.0.1 whose number differs from the container port (and, later,
    through a proxy), so any Host check would reject legitimate test traffic.
    """
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def main() -> None:
    """Serve on the transport chosen by ``MCP_TRANSPORT`` (see the module docstring)."""
    transport = os.environ.get("MCP_TRANSPORT", "streamable-http").strip().lower() or "streamable-http"
    port_text = os.environ.get("MCP_PORT", "").strip()
    port = int(port_text) if port_text else DEFAULT_PORT
    if transport == "stdio":
        server.run("stdio")
    elif transport == "sse":
        server.run(
            "sse",
            host=BIND_HOST,
            port=port,
            sse_path="/sse",
            message_path="/messages/",
            transport_security=_no_host_checks(),
        )
    elif transport in ("streamable-http", "streamable_http", "http"):
        server.run(
            "streamable-http",
            host=BIND_HOST,
            port=port,
            streamable_http_path="/mcp",
            transport_security=_no_host_checks(),
        )
    else:
        sys.exit(f"http_server: unsupported MCP_TRANSPORT {transport!r} (use streamable-http, sse or stdio)")


if __name__ == "__main__":
    main()
