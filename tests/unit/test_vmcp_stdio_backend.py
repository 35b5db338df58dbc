"""A stdio server served ``vmcp-only``: its container and its docker gate only, no proxy and no host port; the gate
listens in a named volume the gateway mounts read-only (the Docker socket stays in the gate alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_vmcp_export import HTTP, specs_of
from toolhive_apply.errors import ManifestError
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.docker.labels import gate_volume_name
from toolhive_apply.providers.gateway import gate_volumes, has_proxy, publishes_port
from toolhive_apply.providers.workload.create_args import (
    container_labels,
    gate_host_config_args,
    gate_volume_labels,
    gateway_mounts,
    proxy_config,
    proxy_host_config_args,
)
from toolhive_apply.providers.workload.spec import gate_in_named_volume
from toolhive_apply.proxy.vmcp_config import parse_vmcp
from toolhive_apply.verify import verify_specs
from toolhive_apply.views.vmcp import vmcp_config
from toolhive_apply.views.workloads import workload_entry


def _manifest(directory: Path) -> Path:
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "gw"},
        "groups": [{"name": "research", "vmcp": {"port": 4483, "name": "lab"}}],
        "workloads": [
            {"name": "web", "image": HTTP, "transport": "streamable-http", "group": "research", "serve": "vmcp-only"},
            {"name": "pipe", "image": HTTP, "group": "research", "serve": "vmcp-only"},
            {"name": "plain", "image": HTTP, "group": "research"},
        ],
    }
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_stdio_backend_served_vmcp_only_has_no_proxy_and_its_gate_listens_in_a_named_volume(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    pipe, web, plain = specs["pipe"], specs["web"], specs["plain"]
    assert pipe["serve"] == "vmcp-only" and pipe["transport"] == "stdio"
    assert not has_proxy(pipe) and not publishes_port(pipe)
    assert not has_proxy(web) and has_proxy(plain) and publishes_port(plain)
    assert pipe.get("gateway_hosts") is None  # no proxy to accept the gateway's Host header
    assert gate_in_named_volume(pipe) and not gate_in_named_volume(plain)
    assert not any("pipe-proxy" in part for part in pipe["parts"])
    assert any(
        "pipe-gate (docker gate, no network; listens in volume toolhive-apply.gw.pipe.gate)" in part
        for part in pipe["parts"]
    )
    assert "port_bindings" in proxy_host_config_args(plain, "net")
    backends = [dict(b) for b in specs["lab"]["vmcp"]["backends"]]
    assert backends == [
        {"name": "web", "url": "http://web:8080/mcp"},
        {"name": "pipe", "gate_volume": "toolhive-apply.gw.pipe.gate"},
        {"name": "plain", "url": "http://plain-proxy:8099/mcp"},
    ]


def test_the_gate_volume_is_named_once_for_the_stack_and_workload() -> None:
    assert gate_volume_name("gw", "pipe") == "toolhive-apply.gw.pipe.gate"
    assert gate_volume_name("other", "pipe") != gate_volume_name("gw", "pipe")
    labels = gate_volume_labels("gw", "pipe")
    assert labels["toolhive-apply.stack"] == "gw" and labels["toolhive-apply.name"] == "pipe"
    assert labels["toolhive-apply.managed-by"] and labels["toolhive-apply.role"] == "gate"


def test_the_gate_mounts_its_named_volume_and_the_gateway_mounts_it_read_only(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    gate = gate_host_config_args(("/var/run/docker.sock", 998), None, "toolhive-apply.gw.pipe.gate")
    assert "volumes_from" not in gate and gate["network_mode"] == "none"
    assert [(m["Source"], m["Target"], m.get("ReadOnly", False)) for m in gate["mounts"]] == [
        ("toolhive-apply.gw.pipe.gate", "/run/toolhive-gate", False)
    ]
    lab = specs["lab"]
    assert gate_volumes(lab) == {"pipe": "toolhive-apply.gw.pipe.gate"}
    mounts = gateway_mounts(gate_volumes(lab))
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in mounts] == [
        ("toolhive-apply.gw.pipe.gate", "/run/toolhive-gates/pipe", True)
    ]
    config = proxy_config(lab)["vmcp"]["backends"]
    assert {"name": "pipe", "docker_socket": "/run/toolhive-gates/pipe/docker.sock"} in config
    assert {"name": "web", "url": "http://web:8080/mcp"} in config
    problems: list[str] = []
    assert parse_vmcp(proxy_config(lab)["vmcp"], problems) is not None and not problems  # the proxy reads it
    host_config = proxy_host_config_args(lab, "net")
    assert not any("docker.sock" in str(b) for b in host_config.get("binds") or [])  # never the engine's socket


def test_proxy_settings_on_a_workload_served_vmcp_only_are_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(_manifest(tmp_path).read_text())
    data["workloads"][1].update({"tools": ["echo"], "session_mode": "per-client", "allowed_origins": ["http://x"]})
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest([path])
    found = "\n".join(caught.value.lines())
    assert "workloads[1].tools: served vmcp-only, the workload has no proxy to apply it" in found
    assert "workloads[1].allowed_origins: served vmcp-only, the workload has no proxy to apply it" in found
    assert "workloads[1].session_mode: served vmcp-only, the gateway is the server's one client" in found


def test_verify_skips_workloads_served_through_the_gateway_only(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    checks = verify_specs([specs["web"], specs["pipe"]])  # no published port to probe: nothing is contacted
    assert [(c.workload, c.status) for c in checks] == [("pipe", "skip"), ("web", "skip")]
    assert all("vMCP gateway" in c.detail for c in checks)


def test_export_lists_no_url_for_a_workload_served_through_the_gateway_only(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    entries = {}
    for name in ("pipe", "web", "plain"):
        summary = {"Labels": container_labels(specs[name], "gw"), "Names": [f"/{name}"], "State": "running"}
        entries[name] = workload_entry(summary, {"State": "running", "Status": "Up"})
    assert (entries["pipe"]["url"], entries["pipe"]["port"]) == ("", 0)
    assert (entries["web"]["url"], entries["web"]["port"]) == ("", 0)
    assert entries["plain"]["url"].startswith("http://127.0.0.1:") and entries["plain"]["port"]


def test_vmcp_config_names_a_gate_reached_backend_stdio_without_inventing_a_url(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    backends = {b["name"]: b for b in vmcp_config(specs["lab"])["backends"]}
    assert backends["pipe"] == {"name": "pipe", "transport": "stdio"}
    assert backends["web"] == {"name": "web", "url": "http://web:8080/mcp", "transport": "streamable-http"}
