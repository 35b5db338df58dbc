"""The container layout of a stdio workload, on data: the docker gate holds the socket, the proxy never does, the
server lives where no proxy is, and observation wants all three (a unit made by an older version is replaced)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.workload.create_args import (
    GATE_SOCKET,
    gate_config,
    gate_host_config_args,
    proxy_config,
    proxy_host_config_args,
)
from toolhive_apply.providers.workload.observe import observe_units
from toolhive_apply.providers.workload.spec import stdio_server_network, unit_parts, workload_spec


def spec_of(tmp_path: Path, **workload: Any) -> dict[str, Any]:
    entry = {"name": "w", "image": "toolhive-apply-test/time:latest", **workload}
    path = tmp_path / "stack.yaml"
    path.write_text(json.dumps({"apiVersion": "toolhive-apply/v1", "settings": {"stack": "s"}, "workloads": [entry]}))
    manifest = load_manifest([path])
    return workload_spec(manifest.workloads[0], manifest, 20000, "sha256:1")


def test_a_stdio_proxy_gets_the_gate_volume_and_nothing_of_docker(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    assert spec["session_mode"] == "shared"
    args = proxy_host_config_args(spec, "toolhive-apply.s")
    assert "binds" not in args and "group_add" not in args and "volumes_from" not in args
    assert [m["Target"] for m in args["mounts"]] == ["/run/toolhive-gate"]
    assert args["mounts"][0]["Source"] is None  # anonymous: removed with the last of proxy and gate
    config = proxy_config(spec)
    assert (config["docker_socket"], config["session_mode"]) == (GATE_SOCKET, "shared")


def test_the_gate_has_no_network_the_socket_read_only_its_group_and_one_container(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, session_mode="per-client")
    args = gate_host_config_args(("/var/run/docker.sock", 998), "proxy-id")
    assert (args["network_mode"], args["read_only"], args["cap_drop"]) == ("none", True, ["ALL"])
    assert args["binds"] == {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"}}
    assert args["group_add"] == ["998"] and args["volumes_from"] == ["proxy-id:rw"]
    assert "port_bindings" not in args
    config = gate_config(spec, "c0ffee")
    assert (config["mode"], config["container"], config["container_name"]) == ("docker-gate", "c0ffee", "w")
    assert config["session_mode"] == "per-client"
    assert "container w-gate (docker gate, no network)" in unit_parts(spec, "s")


def test_a_stdio_server_lives_on_the_default_bridge_unless_isolated_or_given_a_network_mode(tmp_path: Path) -> None:
    assert stdio_server_network(spec_of(tmp_path)) == "bridge"
    assert stdio_server_network(spec_of(tmp_path, network_isolation=True)) is None  # its internal network
    assert stdio_server_network(spec_of(tmp_path, transport="streamable-http")) is None  # its proxy must reach it
    host = {"name": "h", "network": {"mode": "host", "outbound": {}}}
    assert stdio_server_network(spec_of(tmp_path, permission_profile=host)) is None


def test_session_mode_belongs_to_stdio_servers(tmp_path: Path) -> None:
    assert "session_mode" not in spec_of(tmp_path, transport="sse")
    with pytest.raises(ManifestError, match="session_mode applies to stdio servers only"):
        spec_of(tmp_path, transport="sse", session_mode="per-client")
    with pytest.raises(ManifestError, match="session_mode"):
        spec_of(tmp_path, session_mode="per-process")


def _container(name: str, role: str | None, spec: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    labels = {"toolhive": "true", "toolhive-apply.name": "w"}
    if role:
        labels["toolhive-apply.role"] = role
    if spec is not None:
        labels["toolhive-apply.spec"] = json.dumps(dict(spec))
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "State": "running", "Labels": labels, **extra}


def test_a_stdio_unit_runs_only_with_its_gate_and_its_server_on_the_bridge(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    server = _container("w", None, spec, NetworkSettings={"Networks": {"bridge": {}}})
    proxy, gate = _container("w-proxy", "proxy"), _container("w-gate", "gate")

    def status(*containers: dict[str, Any]) -> list[str]:
        return [r.status for r in observe_units("s", containers, [], ["w"]).values()]

    assert status(server, proxy, gate) == ["running"]
    assert status(server, proxy) == ["gate missing"]
    assert status(server, proxy, {**gate, "State": "exited"}) == ["gate exited"]
    on_stack = {**server, "NetworkSettings": {"Networks": {"toolhive-apply.s": {}}}}  # as an older version made it
    assert status(on_stack, proxy, gate) == ["drifted: attached to toolhive-apply.s"]
    alone = observe_units("s", [gate], [], [])
    assert [r.status for r in alone.values()] == ["orphaned"]  # a gate whose server is gone
