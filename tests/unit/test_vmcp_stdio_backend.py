"""A stdio server served ``vmcp-only``: it keeps its proxy and docker gate, but the proxy publishes no host port and
is the gateway's backend on the stack network (the Docker socket stays in the gate alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_vmcp_export import HTTP, specs_of
from toolhive_apply.manifest import load_manifest
from toolhive_apply.providers.gateway import has_proxy, publishes_port
from toolhive_apply.providers.workload.create_args import container_labels, proxy_config, proxy_host_config_args
from toolhive_apply.verify import verify_specs
from toolhive_apply.views.workloads import workload_entry


def _manifest(directory: Path) -> Path:
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "gw"},
        "groups": [{"name": "research", "vmcp": {"port": 4483, "name": "lab"}}],
        "workloads": [
            {"name": "web", "image": HTTP, "transport": "streamable-http", "group": "research", "serve": "vmcp-only"},
            {"name": "pipe", "image": HTTP, "group": "research", "serve": "vmcp-only", "tools": ["echo"]},
            {"name": "plain", "image": HTTP, "group": "research"},
        ],
    }
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_stdio_backend_served_vmcp_only_keeps_an_unpublished_proxy_the_gateway_reaches(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([_manifest(tmp_path)]))
    pipe, web, plain = specs["pipe"], specs["web"], specs["plain"]
    assert pipe["serve"] == "vmcp-only" and pipe["transport"] == "stdio"
    assert has_proxy(pipe) and not publishes_port(pipe)
    assert not has_proxy(web) and has_proxy(plain) and publishes_port(plain)
    assert pipe["gateway_hosts"] == ["pipe-proxy"]  # the proxy accepts the gateway's Host header
    assert "allowed_hosts" in proxy_config(pipe) and "pipe-proxy" in proxy_config(pipe)["allowed_hosts"]
    assert "port_bindings" not in proxy_host_config_args(pipe, "net")
    assert "port_bindings" in proxy_host_config_args(plain, "net")
    assert any("docker gate" in part for part in pipe["parts"])
    assert any("pipe-proxy (no port" in part for part in pipe["parts"])
    backends = {b["name"]: b["url"] for b in specs["lab"]["vmcp"]["backends"]}
    assert backends == {
        "web": "http://web:8080/mcp",
        "pipe": "http://pipe-proxy:8099/mcp",
        "plain": "http://plain-proxy:8099/mcp",
    }


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
