"""Client files as today's clients read them (issue #14 items 10, 11, 13), each checked the way the client checks it.

* Continue (`cn` and the IDE plugins) validates config.yaml with config-yaml's zod schema: `name` and `version` are
  required strings, `schema` an optional string, each MCP server a `name` with a `url` and an optional `type` of
  `sse` or `streamable-http`. A file toolhive-apply creates must pass it.
* Qoder's CLI reads ~/.qoder/settings.json and its IDE ~/.qoder/mcp.json: `qoder-cli` and `qoder` write each.
* Gemini CLI reads `url` + `type` (`httpUrl` is deprecated and warned about); versions before `type` read `url` as
  SSE, which the proxy serves on the same /mcp URL (tests/integration/test_proxy_bridges.py), and entries an older
  toolhive-apply wrote with `httpUrl` are rewritten by the next apply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support.client_entries import read_entries
from tests.unit.test_client_provider import Stage, change_for, stage
from toolhive_apply.clients import client_table, get_client
from toolhive_apply.engine.plan import Action
from toolhive_apply.manifest.schema import load_schema

__all__ = ["stage"]
WEB = [{"name": "web", "image": "example/web:1", "transport": "streamable-http"}]
CLOCK = [{"name": "clock", "image": "example/clock:1", "proxy_mode": "sse"}]


def continue_problems(text: str) -> list[str]:
    """config-yaml's configYamlSchema, as far as a file with MCP servers uses it (YAML 1.2, like the `yaml` package)."""
    data: Any = YAML(typ="safe").load(text)
    if not isinstance(data, dict):
        return ["Expected object"]
    problems = [f"{key}: Required" for key in ("name", "version") if not isinstance(data.get(key), str)]
    if "schema" in data and not isinstance(data["schema"], str):
        problems.append("schema: Expected string")
    for index, server in enumerate(data.get("mcpServers") or []):
        if not isinstance(server, dict) or not isinstance(server.get("name"), str):
            problems.append(f"mcpServers.{index}.name: Required")
        elif not isinstance(server.get("url"), str) and not isinstance(server.get("command"), str):
            problems.append(f"mcpServers.{index}: url or command Required")
        elif server.get("type") not in (None, "sse", "streamable-http", "stdio"):
            problems.append(f"mcpServers.{index}.type: Invalid enum value")
    return problems


def test_a_continue_config_yaml_we_create_is_one_cn_accepts(stage: Stage) -> None:
    manifest = stage.manifest(stage.declared("continue"), WEB + CLOCK)
    stage.converge(manifest)
    text = stage.file("continue").read_text(encoding="utf-8")
    assert continue_problems(text) == [], text
    assert continue_problems("mcpServers: []\n") == ["name: Required", "version: Required"], "the check can fail"
    servers = YAML(typ="safe").load(text)["mcpServers"]
    assert [s["type"] for s in servers] == ["streamable-http", "streamable-http"]  # the SSE workload too: /mcp


def test_qoder_cli_and_the_qoder_ide_each_get_the_file_they_read(stage: Stage) -> None:
    (stage.home / ".qoder").mkdir()
    manifest = stage.manifest([{"name": "qoder"}, {"name": "qoder-cli"}], WEB)
    stage.converge(manifest)
    for name in ("settings.json", "mcp.json"):  # the CLI's, the IDE's
        document = json.loads((stage.home / ".qoder" / name).read_text(encoding="utf-8"))
        assert list(document["mcpServers"]) == ["web"], name
        assert document["mcpServers"]["web"]["type"] == "http"


def gemini_transport(entry: dict[str, Any], *, before_type: bool = False) -> tuple[str, str]:
    """How Gemini CLI connects to an entry (packages/core/src/tools/mcp-client.ts): (transport, url)."""
    if "httpUrl" in entry:
        return "streamable-http (deprecated httpUrl)", entry["httpUrl"]
    if before_type or entry.get("type") == "sse":
        return "sse", entry["url"]
    assert entry.get("type") in (None, "http"), entry
    return "streamable-http", entry["url"]


def test_gemini_entries_use_url_and_type_and_old_httpurl_entries_are_rewritten(stage: Stage) -> None:
    manifest = stage.manifest(stage.declared("gemini-cli"), WEB + CLOCK)
    stage.converge(manifest)
    path = stage.file("gemini-cli")
    entries = read_entries(get_client("gemini-cli"), path)
    for name in ("web", "clock"):
        assert gemini_transport(entries[name]) == ("streamable-http", entries[name]["url"])
        assert entries[name]["url"].endswith("/mcp")
        # A version before `type` reads the same url as SSE: the proxy answers a legacy SSE GET on /mcp.
        assert gemini_transport(entries[name], before_type=True) == ("sse", entries[name]["url"])

    old = path.read_text(encoding="utf-8")  # what an older toolhive-apply (and ToolHive) wrote
    url = entries["web"]["url"]
    path.write_text(old.replace(f'"url": "{url}",\n      "type": "http"', f'"httpUrl": "{url}"'), encoding="utf-8")
    assert read_entries(get_client("gemini-cli"), path)["web"] == {"httpUrl": url}, "the fixture is the old format"
    plan = stage.plan(manifest)
    assert change_for(plan, "gemini-cli").action is Action.UPDATE
    stage.converge(manifest)
    assert read_entries(get_client("gemini-cli"), path)["web"] == {"url": url, "type": "http"}


def test_codex_and_vibe_entries_never_point_at_sse(stage: Stage) -> None:
    """Neither has an SSE client: an SSE workload is reached over the proxy's streamable endpoint."""
    manifest = stage.manifest(stage.declared("codex", "mistral-vibe"), CLOCK)
    stage.converge(manifest)
    for client in ("codex", "mistral-vibe"):
        entry = read_entries(get_client(client), stage.file(client))["clock"]
        assert isinstance(entry, dict) and str(entry["url"]).endswith("/mcp"), entry
        assert entry.get("transport") in (None, "streamable-http")


def test_paths_are_the_ones_each_client_reads() -> None:
    assert get_client("qoder-cli").linux_path == ".qoder/settings.json"
    assert get_client("qoder").linux_path == ".qoder/mcp.json"
    assert Path(get_client("continue").linux_path) == Path(".continue/config.yaml")


def test_the_manifest_schema_accepts_exactly_the_clients_of_the_table() -> None:
    found: list[list[str]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("description") == "Client type, as ToolHive names it.":
                found.append(list(node["enum"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_schema())
    assert found == [list(client_table().names())]
