"""An MCP proxy that runs as a container next to an MCP server, so the bridge survives reboots.

ToolHive bridges stdio servers to HTTP clients with a proxy *process*, which Docker cannot restart. This package is
that bridge as a container (``restart: unless-stopped``); in docker-gate mode, the same image is the one container of
a stdio workload that holds the Docker socket, with no network (``docker_gate.py``). It uses only the standard
library, so the image needs nothing but a CPython base, and it imports nothing from the rest of ``toolhive_apply``, so
the package can be copied alone.
"""

from __future__ import annotations

PROXY_NAME = "toolhive-apply-proxy"
PROXY_VERSION = "0.1.0"
