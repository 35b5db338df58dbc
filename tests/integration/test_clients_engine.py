"""A client config file through the whole CLI and a real engine: written so the real MCP client reaches the server,
then repaired after a hand edit.

The stack has a stdio server and an HTTP server, so both reach the client through their proxies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import HTTP_IMAGE, TIME_IMAGE, run_cli, write_manifest
from tests.support.mcp_client import call_tool, wait_until_ready

pytestmark = pytest.mark.docker


def test_cursor_reaches_the_server_through_the_written_entry_and_a_hand_edit_is_repaired(
    tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    name = f"{stack}-web"
    cursor_file = tmp_path / "cursor" / "mcp.json"
    manifest = write_manifest(
        tmp_path / "manifest",
        stack,
        [
            {"name": name, "image": HTTP_IMAGE, "transport": "streamable-http"},
            {"name": f"{stack}-time", "image": TIME_IMAGE},
        ],
        clients=[{"name": "cursor", "config_path": str(cursor_file), "create": True}],
    )
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()

    applied = run_cli("apply", str(manifest), "--yes", env=env)
    assert applied.code == 0, applied
    assert "client/cursor" in applied.stdout
    url = json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"][name]["url"]  # as Cursor reads it
    wait_until_ready(url)
    assert call_tool(url, "add", {"a": 2, "b": 3}) == "5"
    stdio_url = json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"][f"{stack}-time"]["url"]
    assert '"timezone": "UTC"' in call_tool(stdio_url, "get_current_time", {"timezone": "UTC"})
    clients = json.loads(run_cli("export", "clients", "--stack", stack, env=env).stdout)
    assert clients == [{"name": "cursor", "groups": ["default"]}]
    state = json.loads((tmp_path / "state" / "toolhive-apply" / "clients" / f"{stack}.json").read_text("utf-8"))
    assert state["clients"]["cursor"]["entries"] == sorted([name, f"{stack}-time"])  # ownership, under XDG_STATE_HOME

    cursor_file.write_text(
        cursor_file.read_text(encoding="utf-8").replace(url, "http://127.0.0.1:1/mcp"), encoding="utf-8"
    )
    drift = run_cli("plan", str(manifest), "--detailed-exitcode", env=env)
    assert drift.code == 2, drift
    assert "client/cursor will be updated in place (config changed: entries." in drift.stdout
    assert f'~ entries.{name}.url: "http://127.0.0.1:1/mcp" -> "{url}"' in drift.stdout

    repaired = run_cli("apply", str(manifest), "--yes", env=env)
    assert repaired.code == 0, repaired
    assert json.loads(cursor_file.read_text(encoding="utf-8"))["mcpServers"][name]["url"] == url
    assert call_tool(url, "add", {"a": 2, "b": 3}) == "5"
    assert run_cli("plan", str(manifest), "--detailed-exitcode", env=env).code == 0
