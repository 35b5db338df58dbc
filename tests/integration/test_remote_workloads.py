"""Remote workloads (`url:`): only a proxy runs, forwarding to the remote MCP server with the configured headers.

The "remote" server is a real MCP server over streamable HTTP in a container on the stack's network, reached by
its container name; the test itself talks only to the proxy's port on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool, list_tools

pytestmark = pytest.mark.docker


def test_a_remote_workload_is_served_through_its_proxy_with_the_tool_filter(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    network = f"toolhive-apply.{stack}"
    docker_api.create_network(network, driver="bridge", labels={"toolhive-apply.stack": stack})
    upstream = docker_api.create_container(
        HTTP_IMAGE,
        name=f"{stack}-upstream",
        environment={"MCP_TRANSPORT": "streamable-http", "MCP_PORT": "8080"},
        labels={"toolhive-apply.stack": stack},
        host_config=docker_api.create_host_config(network_mode=network),
    )
    docker_api.start(upstream["Id"])
    workload = {
        "name": f"{stack}-remote",
        "url": f"http://{stack}-upstream:8080/mcp",
        "headers": [{"name": "X-Team", "value": "research"}],
        "tools": ["add", "shout"],
        "tools_override": {"echo": {"name": "shout", "description": "Echo, louder"}},
    }
    path = write_manifest(tmp_path, stack, [workload])
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied
    listing = json.loads(run_cli("export", "workloads", "--stack", stack).stdout)["workloads"]
    (entry,) = listing
    assert entry["remote"] is True and entry["package"] == "remote"
    assert sorted(list_tools(entry["url"])) == ["add", "shout"]
    assert call_tool(entry["url"], "shout", {"text": "hello"}) == "hello"
    assert call_tool(entry["url"], "add", {"a": 1, "b": 2}) == "3"
    names = {
        c["Names"][0].lstrip("/")
        for c in docker_api.containers(filters={"label": [f"toolhive-apply.stack={stack}", "toolhive=true"]})
    }
    assert names == {f"{stack}-remote"}  # no MCP container for a remote server: the proxy is the workload
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0


def test_browser_oauth_is_refused_clearly(tmp_path: Path, stack: str) -> None:
    workload = {
        "name": "docs",
        "url": "https://mcp.example.com/mcp",
        "oauth_config": {"issuer": "https://id.example.com"},
    }
    result = run_cli("plan", str(write_manifest(tmp_path, stack, [workload])))
    assert result.code == 1
    assert "only oauth_config.bearer_token is supported" in result.stderr
