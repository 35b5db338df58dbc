"""export --as-manifest on data: what it writes loads, validates and resolves back to the very specs it came from.

The live side is built from a manifest the way providers build it (workload specs, registry specs, the stack record,
client records), so the round trip is checked field by field without Docker; the CLI end to end against the engine
is tests/integration/test_export_round_trip.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from toolhive_apply.manifest import load_manifest
from toolhive_apply.manifest.model import Manifest
from toolhive_apply.manifest.ports import assign_ports
from toolhive_apply.preflight import preflight
from toolhive_apply.providers.client.state import ClientRecord
from toolhive_apply.providers.fields import WORKLOAD_FIELDS
from toolhive_apply.providers.stack_record import stack_spec
from toolhive_apply.providers.workload.spec import workload_spec
from toolhive_apply.registry.resolve import source_of
from toolhive_apply.views.manifest import LiveStack, as_manifest

hard_spec = WORKLOAD_FIELDS.hard
STORE = {"provider": "vault", "vault": {"address": "https://vault.example.com:8200", "auth": {"method": "approle"}}}


def every_section(directory: Path) -> Path:
    """A manifest using every section and the workload fields export has to give back."""
    shutil.copy(ROOT / "examples" / "registry" / "registry.json", directory / "registry.json")
    (directory / "data").mkdir()
    data: dict[str, Any] = {
        "apiVersion": "toolhive-apply/v1",
        "settings": {"stack": "every", "secrets": STORE, "proxy": {"base_image": "python:3.12-slim"}},
        "groups": [{"name": "research", "description": "The research team"}, {"name": "ops"}],
        "registries": [{"name": "local", "local_path": "./registry.json"}],
        "secrets": [
            {"key": "token", "description": "API token", "from": {"env": "TOKEN_VALUE"}},
            {"key": "header", "present": True},
            {"key": "bearer", "description": "issued out of band", "present": True},
            {"key": "unused", "present": True},
        ],
        "clients": [{"name": "cursor", "groups": ["research", "ops"]}, {"name": "vscode", "create": True}],
        "workloads": [
            {
                "name": "echo",
                "registry": "local",
                "server": "echo",
                "group": "research",
                "env_vars": {"GREETING": "hi"},
                "tools": ["echo"],
            },
            {
                "name": "time",
                "image": "mcp/time:latest",
                "description": "Tells the time",
                "group": "ops",
                "cmd_arguments": ["--local-timezone", "UTC"],
                "volumes": ["./data:/data:ro"],
                "secrets": [{"name": "token", "target": "/tmp/token", "as": "file"}],
                "session_ttl": "1h30m",
                "labels": {"team": "ops"},
                "prune": False,
                "permission_profile": "none",
            },
            {
                "name": "docs",
                "url": "https://mcp.example.com/mcp",
                "headers": [{"name": "X-Api-Key", "secret": "header"}, {"name": "X-Team", "value": "research"}],
                "oauth_config": {"bearer_token": {"name": "bearer", "target": "THV_BEARER_TOKEN"}},
                "tools_override": {"search": {"name": "find"}},
            },
        ],
    }
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def specs_of(manifest: Manifest) -> dict[str, dict[str, Any]]:
    resolved = preflight(manifest, offline=True).manifest
    ports = assign_ports(resolved.settings.stack, ((w.name, w.proxy_port) for w in resolved.workloads))
    return {w.name: workload_spec(w, resolved, ports[w.name], None) for w in resolved.workloads}


def live_of(manifest: Manifest, home: Path) -> LiveStack:
    registries = []
    for registry in manifest.registries:
        kind, source = source_of(registry)
        registries.append({"name": registry.name, "type": kind, "source": source})
    cursor = home / ".cursor" / "mcp.json"
    cursor.parent.mkdir(parents=True)
    vscode = home / "elsewhere" / "mcp.json"  # vscode is not installed: its file was created at a path of its own
    clients = {
        "cursor": ClientRecord.of(cursor, ["research", "ops"], ["echo", "time"]),
        "vscode": ClientRecord.of(vscode, ["default"], ["docs"]),
    }
    return LiveStack(
        stack="every",
        workloads=list(specs_of(manifest).values()),
        registries=registries,
        record=stack_spec(manifest, "every", STORE),
        clients=clients,
        home=home,
    )


def test_the_exported_manifest_validates_and_resolves_to_the_same_specs(tmp_path: Path) -> None:
    original = load_manifest([every_section(tmp_path)])
    exported = as_manifest(live_of(original, tmp_path / "home"))
    copy = tmp_path / "exported" / "stack.yaml"
    copy.parent.mkdir()
    copy.write_text(json.dumps(exported), encoding="utf-8")  # JSON is YAML
    again = load_manifest([copy])
    before, after = specs_of(original), specs_of(again)
    assert set(before) == set(after)
    for name, spec in before.items():
        assert hard_spec(after[name]) == hard_spec(spec), name
        assert after[name]["description"] == spec["description"]
    assert again.settings.secret_provider == "vault" and dict(again.settings.vault) == STORE["vault"]
    assert [(g.name, g.description) for g in again.groups] == [("ops", ""), ("research", "The research team")]
    secrets = {s.key: (s.present, s.description) for s in again.secrets}
    assert secrets == {
        "bearer": (True, "issued out of band"),
        "header": (True, ""),
        "token": (True, "API token"),
        "unused": (True, ""),
    }
    assert stack_spec(again, "every", STORE) == stack_spec(original, "every", STORE)


def test_clients_keep_their_groups_their_own_file_and_create_when_not_installed(tmp_path: Path) -> None:
    original = load_manifest([every_section(tmp_path)])
    home = tmp_path / "home"
    exported = as_manifest(live_of(original, home))
    assert exported["clients"] == [  # in ToolHive's order of clients
        {"name": "cursor", "groups": ["research", "ops"]},  # the default file, installed: nothing more to say
        {"name": "vscode", "groups": ["default"], "config_path": str(home / "elsewhere" / "mcp.json"), "create": True},
    ]


def test_a_remote_workload_gets_its_headers_and_bearer_token_back_not_secret_targets(tmp_path: Path) -> None:
    exported = as_manifest(live_of(load_manifest([every_section(tmp_path)]), tmp_path / "home"))
    docs = next(w for w in exported["workloads"] if w["name"] == "docs")
    assert docs["url"] == "https://mcp.example.com/mcp" and "image" not in docs and "secrets" not in docs
    assert docs["headers"] == [{"name": "X-Api-Key", "secret": "header"}, {"name": "X-Team", "value": "research"}]
    assert docs["oauth_config"] == {"bearer_token": {"name": "bearer", "target": "THV_BEARER_TOKEN"}}
    time = next(w for w in exported["workloads"] if w["name"] == "time")
    assert time["session_ttl"] == "1h30m" and time["prune"] is False


def test_without_a_stack_record_the_groups_and_secrets_in_use_are_still_declared(tmp_path: Path) -> None:
    original = load_manifest([every_section(tmp_path)])
    live = live_of(original, tmp_path / "home")
    bare = LiveStack(live.stack, live.workloads, live.registries, None, live.clients, live.home)
    exported = as_manifest(bare)  # a stack applied before the record existed
    assert "secrets" not in exported["settings"]
    assert exported["groups"] == [{"name": "ops"}, {"name": "research"}]
    assert [s["key"] for s in exported["secrets"]] == ["bearer", "header", "token"]
