"""The CLI with a client whose config file is a symbolic link out of the home directory, against a real engine: plan
says so, apply refuses that client with a clear message (and its hint) while the workload and the other client are
applied, and the file outside home is never touched. Naming the real file as config_path then makes it allowed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TIME_IMAGE, run_cli, write_manifest

pytestmark = pytest.mark.docker


def test_a_client_file_linked_out_of_home_is_refused_and_the_rest_is_applied(
    tmp_path: Path, stack: str, test_images: dict[str, str]
) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / ".cursor").mkdir(parents=True)
    outside.mkdir()
    victim = outside / "mcp.json"
    victim.write_text('{\n  "mcpServers": {}\n}\n', encoding="utf-8")
    link = home / ".cursor" / "mcp.json"
    link.symlink_to(victim)
    name = f"{stack}-time"
    clients = [{"name": "cursor", "create": True}, {"name": "vscode", "create": True}]
    manifest = write_manifest(tmp_path / "manifest", stack, [{"name": name, "image": TIME_IMAGE}], clients=clients)
    env = {"HOME": str(home), "XDG_STATE_HOME": str(tmp_path / "state")}
    before = victim.read_bytes()
    refusal = f"{link}: is a symbolic link to {victim}, outside the home directory {home}"

    planned = run_cli("plan", str(manifest), env=env)
    assert planned.code == 0, planned
    assert f"client/cursor: {refusal}" in planned.output

    applied = run_cli("apply", str(manifest), "--yes", env=env)
    assert applied.code == 1, applied
    assert refusal in applied.stderr
    assert f"set this client's config_path to {victim}" in applied.stderr  # the hint: how to allow it on purpose
    assert victim.read_bytes() == before
    assert sorted(p.name for p in outside.iterdir()) == ["mcp.json"]
    vscode = home / ".config" / "Code" / "User" / "mcp.json"
    assert name in json.loads(vscode.read_text(encoding="utf-8"))["servers"]

    clients[0]["config_path"] = str(victim)  # the user names the real file: allowed, though outside home
    manifest = write_manifest(tmp_path / "manifest", stack, [{"name": name, "image": TIME_IMAGE}], clients=clients)
    named = run_cli("apply", str(manifest), "--yes", env=env)
    assert named.code == 0, named
    assert name in json.loads(victim.read_text(encoding="utf-8"))["mcpServers"]
    assert link.is_symlink()
