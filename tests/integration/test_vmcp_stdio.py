"""``serve: vmcp-only`` on a group mixing an HTTP and a stdio server: both reached through the gateway alone.

Neither has a proxy or publishes a host port: the HTTP server is reached on its own port, the stdio server through
its docker gate (the only holder of the Docker socket, with no network), whose named socket volume the gateway mounts
read-only. The real MCP SDK client talks to the gateway's port only and calls a tool of each backend (``get_env
GREETING`` tells them apart), also after a ``docker restart`` of the stdio server and of the gateway, with no apply in
between; destroy removes the gate's volume.
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

    # no proxy and no host port for either backend; the stdio one is its server and its gate
    for name in (web, pipe):
        assert not docker_api.containers(all=True, filters={"name": [f"^/{name}-proxy$"]}), name
        proxies = {"label": [f"toolhive-apply.name={name}", "toolhive-apply.role=proxy"]}
        assert not docker_api.containers(all=True, filters=proxies), name
        assert not docker_api.inspect_container(name)["HostConfig"]["PortBindings"], name
    (gate,) = docker_api.containers(filters={"name": [f"^/{pipe}-gate$"]})
    gate_info = docker_api.inspect_container(gate["Id"])
    assert gate_info["HostConfig"]["NetworkMode"] == "none"
    volume = f"toolhive-apply.{stack}.{pipe}.gate"
    assert [
        (m["Type"], m["Name"], m["RW"]) for m in gate_info["Mounts"] if m["Destination"] == "/run/toolhive-gate"
    ] == [("volume", volume, True)]
    labels = docker_api.inspect_volume(volume)["Labels"]
    assert labels["toolhive-apply.stack"] == stack and labels["toolhive-apply.name"] == pipe
    gateway_info = docker_api.inspect_container(gateway)
    mounts = [(m["Type"], m.get("Name"), m["Destination"], m["RW"]) for m in gateway_info["Mounts"]]
    assert mounts == [("volume", volume, f"/run/toolhive-gates/{pipe}", False)]  # read-only, and nothing else
    assert not any("docker.sock" in bind for bind in gateway_info["HostConfig"]["Binds"] or [])
    # read-only: the gateway connects to the gate's socket (the calls above) but cannot put one of its own there
    bind = f"import socket; socket.socket(socket.AF_UNIX).bind('/run/toolhive-gates/{pipe}/other.sock')"
    run = docker_api.exec_create(gateway, ["python3", "-c", bind])
    output = docker_api.exec_start(run["Id"]).decode(errors="replace")
    assert docker_api.exec_inspect(run["Id"])["ExitCode"] != 0 and "Read-only file system" in output, output
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0  # converged, hashed

    docker_api.restart(pipe, timeout=2)  # no apply in between: the gate and the gateway's backend re-attach
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the stdio server after a restart", logs)
    docker_api.restart(gateway, timeout=2)
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the stdio server after the gateway's", logs)
    assert _greeting(url, f"{web}_get_env") == "over http"
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0

    docker_api.remove_container(f"{pipe}-gate", force=True)  # drift: the gate is remade in the same volume
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 2
    repaired = run_cli("apply", str(path), "--yes")
    assert repaired.code == 0, repaired.output
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the stdio server after a new gate", logs)
    assert not docker_api.containers(all=True, filters={"name": [f"^/{pipe}-proxy$"]})
    assert run_cli("plan", str(path), "--detailed-exitcode").code == 0

    assert run_cli("destroy", str(path), "--yes").code == 0
    assert not docker_api.containers(all=True, filters={"label": [f"toolhive-apply.stack={stack}"]})
    assert not (docker_api.volumes(filters={"name": [volume]}) or {}).get("Volumes")


def test_a_stdio_backend_moving_in_and_out_of_vmcp_only_gets_and_loses_its_gate_volume(
    docker_api: Any, tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    pipe, gateway = f"{stack}-pipe", f"{stack}-gw"
    port, volume = _free_port(), f"toolhive-apply.{stack}.{pipe}.gate"
    groups = [{"name": "lab", "vmcp": {"port": port, "name": gateway}}]
    settings = {"defaults": {"ready_timeout": 240}}
    pipe_entry = {"name": pipe, "image": HTTP_IMAGE, "group": "lab", "env_vars": {"GREETING": "over stdio"}}
    url = f"http://127.0.0.1:{port}/mcp"

    def apply(workloads: list[dict[str, Any]]) -> Path:
        path = write_manifest(tmp_path, stack, workloads, settings=settings, groups=groups)
        applied = run_cli("apply", str(path), "--yes")
        assert applied.code == 0, applied.output
        assert run_cli("plan", str(path), "--detailed-exitcode").code == 0
        return path

    def volumes() -> list[str]:
        found = docker_api.volumes(filters={"label": [f"toolhive-apply.stack={stack}"]}) or {}
        return [v["Name"] for v in found.get("Volumes") or ()]

    def logs() -> str:
        return str(docker_api.logs(gateway, tail=40).decode(errors="replace"))

    apply([{**pipe_entry, "serve": "vmcp-only"}])
    assert volumes() == [volume]
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the vmcp-only stdio backend", logs)

    apply([pipe_entry])  # its own proxy again: the gateway reaches that, and the volume goes
    assert docker_api.containers(filters={"name": [f"^/{pipe}-proxy$"]})
    assert volumes() == []
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the proxied stdio backend", logs)

    apply([{**pipe_entry, "serve": "vmcp-only"}])  # and back
    assert volumes() == [volume]
    assert not docker_api.containers(all=True, filters={"name": [f"^/{pipe}-proxy$"]})
    _eventually(lambda: _greeting(url, f"{pipe}_get_env") == "over stdio", "the vmcp-only stdio backend again", logs)

    apply([])  # out of the group: the gateway is replaced first, then the workload and its volume go
    assert volumes() == []
