"""One endpoint per group: two workloads of the test HTTP image behind the group's vMCP gateway, one stack.

The real MCP SDK client talks to the gateway's published port only; ``get_env GREETING`` (a different value per
workload) proves each call reached the backend its prefixed name says. One backend is stopped and started again with
docker (no apply in between): the other's tools keep answering, and the stopped one's come back.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HTTP_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool, list_tools

pytestmark = pytest.mark.docker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _eventually(check: Callable[[], bool], what: str, logs: Callable[[], str], deadline: float = 150.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}; the gateway's log:\n{logs()}"
        time.sleep(0.5)


def _names(url: str) -> list[str]:
    try:
        return sorted(list_tools(url, timeout=15))
    except Exception:  # noqa: BLE001 - not up yet: polled again
        return []


def test_a_group_gateway_aggregates_routes_filters_and_outlives_a_backend(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    alpha, beta, gamma, gateway = f"{stack}-alpha", f"{stack}-beta", f"{stack}-gamma", f"{stack}-gw"
    port = _free_port()
    cursor_file = tmp_path / "cursor" / "mcp.json"
    workloads = [
        {"name": name, "image": HTTP_IMAGE, "transport": "streamable-http", "group": "research", "env_vars": env}
        for name, env in ((alpha, {"GREETING": "hello from alpha"}), (beta, {"GREETING": "hello from beta"}))
    ]
    workloads.append({**workloads[0], "name": gamma, "env_vars": {"GREETING": "direct"}, "serve": "vmcp-only"})
    vmcp = {
        "port": port,
        "name": gateway,
        "aggregation": {
            "tools": [
                {"workload": beta, "filter": ["echo", "get_env"]},
                {"workload": gamma, "filter": ["get_env"], "overrides": {"get_env": {"name": "env"}}},
            ]
        },
    }
    path = write_manifest(
        tmp_path,
        stack,
        workloads,
        settings={"defaults": {"ready_timeout": 240}},  # a loaded CI machine starts three proxies at once
        groups=[{"name": "research", "vmcp": vmcp}],
        clients=[{"name": "cursor", "groups": ["research"], "config_path": str(cursor_file), "create": True}],
    )
    applied = run_cli("apply", str(path), "--yes")
    assert applied.code == 0, applied.output

    def logs() -> str:
        return str(docker_api.logs(gateway, tail=40).decode(errors="replace"))

    servers = json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"]
    assert list(servers) == [gateway]  # one entry for the group, none per workload
    url = servers[gateway]["url"]
    assert url == f"http://127.0.0.1:{port}/mcp"
    everything = sorted(
        [f"{alpha}_echo", f"{alpha}_add", f"{alpha}_get_env", f"{beta}_echo", f"{beta}_get_env", f"{gamma}_env"]
    )
    _eventually(lambda: _names(url) == everything, "both backends' tools at the gateway", logs)
    assert call_tool(url, f"{alpha}_get_env", {"name": "GREETING"}) == "hello from alpha"
    assert call_tool(url, f"{beta}_get_env", {"name": "GREETING"}) == "hello from beta"
    assert call_tool(url, f"{alpha}_add", {"a": 2, "b": 3}) == "5"
    # served vmcp-only: no proxy container, no published port, reached over the stack network by the gateway
    assert call_tool(url, f"{gamma}_env", {"name": "GREETING"}) == "direct"
    assert not docker_api.containers(all=True, filters={"name": [f"^/{gamma}-proxy$"]})
    assert not docker_api.inspect_container(gamma)["HostConfig"]["PortBindings"]

    (container,) = docker_api.containers(filters={"name": [f"^/{gateway}$"]})
    inspected = docker_api.inspect_container(container["Id"])
    assert inspected["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    bindings = [b for bs in inspected["HostConfig"]["PortBindings"].values() for b in bs]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert container["Labels"]["toolhive-apply.stack"] == stack
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0  # hashed: converged

    docker_api.stop(beta, timeout=2)
    alpha_only = [n for n in everything if not n.startswith(beta)]
    _eventually(lambda: _names(url) == alpha_only, "beta's tools to be omitted while it is down", logs)
    assert call_tool(url, f"{alpha}_get_env", {"name": "GREETING"}) == "hello from alpha"
    docker_api.start(beta)
    _eventually(lambda: _names(url) == everything, "beta's tools to come back without a gateway restart", logs)
    assert call_tool(url, f"{beta}_echo", {"text": "back"}) == "back"
    assert docker_api.inspect_container(container["Id"])["RestartCount"] == 0

    docker_api.remove_container(container["Id"], force=True)  # drift: the next plan makes the gateway again
    drifted = run_cli("plan", str(path), "--detailed-exitcode")
    assert drifted.code == 2, drifted
    assert f"workload/{gateway} will be created" in drifted.stdout
