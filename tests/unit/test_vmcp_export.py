"""A group gateway read back: as ToolHive's vMCP configuration, and as groups[].vmcp in export --as-manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from toolhive_apply.clients import client_table
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.providers.client.provider import workload_entries
from toolhive_apply.providers.gateway import gateway_specs
from toolhive_apply.providers.workload.create_args import proxy_config
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.views.manifest import LiveStack, as_manifest
from toolhive_apply.views.vmcp import vmcp_config

HTTP = "toolhive-apply-test/http:latest"


def manifest_in(directory: Path) -> Path:
    aggregation = {
        "conflict_resolution": "priority",
        "conflict_resolution_config": {"priority_order": ["beta"]},
        "tools": [{"workload": "alpha", "filter": ["echo"], "overrides": {"echo": {"name": "say"}}}],
    }
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "gw"},
        "groups": [{"name": "research", "vmcp": {"port": 4483, "name": "lab", "aggregation": aggregation}}],
        "workloads": [
            {"name": "alpha", "image": HTTP, "transport": "streamable-http", "group": "research"},
            {"name": "beta", "image": HTTP, "transport": "streamable-http", "group": "research", "serve": "vmcp-only"},
        ],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def specs_of(manifest: Manifest) -> dict[str, dict[str, Any]]:
    ports = assign_ports(manifest.settings.stack, ((w.name, w.proxy_port) for w in manifest.workloads))
    specs = {w.name: workload_spec(w, manifest, ports[w.name], None) for w in manifest.workloads}
    specs.update({spec["name"]: spec for _, spec in gateway_specs(manifest, specs)})
    return specs


def test_the_gateway_reaches_a_proxied_workload_at_its_proxy_and_a_vmcp_only_one_directly(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([manifest_in(tmp_path)]))
    config = proxy_config(specs["lab"])
    assert config["mode"] == "vmcp"
    assert config["vmcp"]["backends"] == [
        {"name": "alpha", "url": "http://alpha-proxy:8099/mcp"},
        {"name": "beta", "url": "http://beta:8080/mcp"},
    ]
    assert "alpha-proxy" in proxy_config(specs["alpha"])["allowed_hosts"]  # the gateway's Host is accepted
    assert specs["beta"]["serve"] == "vmcp-only"


def test_a_client_of_the_group_gets_one_entry_unless_it_asks_for_every_workload(tmp_path: Path) -> None:
    manifest = load_manifest([manifest_in(tmp_path)])
    cursor = client_table().get("cursor")
    assert list(workload_entries(cursor, ["research"], manifest)) == ["lab"]
    assert workload_entries(cursor, ["research"], manifest)["lab"]["url"] == "http://127.0.0.1:4483/mcp"
    assert sorted(workload_entries(cursor, ["research"], manifest, per_workload=True)) == ["alpha", "lab"]


def test_vmcp_config_is_in_toolhives_shape(tmp_path: Path) -> None:
    specs = specs_of(load_manifest([manifest_in(tmp_path)]))
    assert vmcp_config(specs["lab"]) == {
        "name": "lab",
        "groupRef": "research",
        "backends": [
            {"name": "alpha", "url": "http://alpha-proxy:8099/mcp", "transport": "streamable-http"},
            {"name": "beta", "url": "http://beta:8080/mcp", "transport": "streamable-http"},
        ],
        "incomingAuth": {"type": "anonymous"},
        "outgoingAuth": {"source": "inline", "default": {"type": "unauthenticated"}},
        "aggregation": {
            "conflictResolution": "priority",
            "conflictResolutionConfig": {"priorityOrder": ["beta"]},
            "tools": [{"workload": "alpha", "filter": ["echo"], "overrides": {"echo": {"name": "say"}}}],
        },
    }


def test_export_as_manifest_round_trips_the_group_gateway(tmp_path: Path) -> None:
    original = load_manifest([manifest_in(tmp_path / "a")])
    before = specs_of(original)
    exported = as_manifest(LiveStack(stack="gw", workloads=list(before.values()), home=tmp_path / "home"))
    assert [w["name"] for w in exported["workloads"]] == ["alpha", "beta"]
    copy = tmp_path / "b" / "stack.yaml"
    copy.parent.mkdir()
    copy.write_text(json.dumps(exported), encoding="utf-8")
    after = specs_of(load_manifest([copy]))
    assert after == before
