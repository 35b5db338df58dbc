"""``serve: vmcp-only`` on a group mixing an HTTP and a stdio server: both reached through the gateway alone.

The HTTP server has no proxy at all; the stdio server keeps its proxy and docker gate (only the gate holds the Docker
socket), but neither publishes a host port. The real MCP SDK client talks to the gateway's port only and calls a tool
of each backend (``get_env GREETING`` tells them apart), also after a ``docker restart`` of the stdio server and of
the gateway, with no apply in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.integration.test_vmcp_gateway import _eventually, _free_port, _names
from tests.support.mcp_client import call_tool

pytestmark = pytest.mark.docker


def _greeting(url: str, tool: str) -> str | None:
    try:
        return call_tool(url, tool, {"name": "GREETING"}, timeout=15)
    except Exception:  # noqa: BLE001 - not back yet: polled again
        return None


def test_a_vmcp_only_group_serves_an_http_and_a_stdio_server_through_the_gateway_alone(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    web, pipe, gateway = f"{stack}-web", f"{stack}-pipe", f"{stack}-gw"
    port = _free_port()
    workloads = [
        {"name": web, "image": HTTP_IMAGE, "transport": "streamable-http", "group": "lab",
         "env_vars": {"GREETING": "over http"}},
        {"name": pipe, "image": HTTP_IMAGE, "group": "lab", "env_vars": {"GREETING": "over stdio"}},
    ]  # fmt: skip
    path = write_manifest(
        tmp_path,
        stack,
        workloads,
        settings={"defaults": {"ready_timeout": 240}},
        groups=[{"name": "lab", "serve": "vmcp-only", "vmcp": {"port": port, "name": gateway}}],
    )
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied.output

    def logs() -> str:
        return str(docker_api.logs(gateway, tail=40).decode(errors="replace"))

    url = f"http://127.0.0.1:{port}/mcp"
    everything = sorted(f"{name}_{tool}" for name in (web, pipe) for tool in ("echo", "add", "get_env"))
    _eventually(lambda: _names(url) == everything, "both backends' tools at the gateway", logs)
    assert call_tool(url, f"{web}_get_env", {"name": "GREETING"}) == "over http"
    assert call_tool(url, f"{pipe}_get_env", {"name": "GREETING"}) == "over stdio"
    assert call_tool(url, f"{pipe}_add", {"a": 20, "b": 22}) == "42"

    # no host port for either backend; the HTTP one has no proxy, the stdio one an unpublished proxy and its gate
    assert not docker_api.containers(all=True, filters={"name": [f"^/{web}-proxy$"]})
    for container in (web, pipe, f"{pipe}-proxy"):
        assert not docker_api.inspect_container(container)["HostConfig"]["PortBindings"], container
    (gate,) = docker_api.containers(filters={"name": [f"^/{pipe}-gate$"]})
    assert docker_api.inspect_container(gate["Id"])["HostConfig"]["NetworkMode"] == "none"
    proxy_binds = docker_api.inspect_container(f"{pipe}-proxy")["HostConfig"]["Binds"] or []
    assert not any("docker.sock" in bind for bind in proxy_binds)  # the socket is the gate's alone
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0  # converged, hashed

    docker_api.restart(pipe, timeout=2)  # no apply in between: the proxy and gate re-attach
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the stdio server after a restart", logs)
    docker_api.restart(gateway, timeout=2)
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the stdio server after the gateway's", logs)
    assert _greeting(url, f"{web}_get_env") == "over http"
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
