"""import toolhive without Docker: state files read as ToolHive writes them, one clear error for a broken one,
and a note for everything the manifest cannot carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from toolhive_apply.interop.toolhive_import import ToolhiveStateError, import_state, manifest_text


def _home(tmp_path: Path, runconfig: dict[str, object], config: dict[str, object] | None = None) -> Path:
    home = tmp_path / "home"
    (home / ".local/state/toolhive/runconfigs").mkdir(parents=True)
    (home / ".local/state/toolhive/runconfigs/a.json").write_text(json.dumps(runconfig), encoding="utf-8")
    if config is not None:
        (home / ".config/toolhive").mkdir(parents=True)
        (home / ".config/toolhive/config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


def test_what_cannot_be_carried_is_a_note_and_a_comment(tmp_path: Path) -> None:
    runconfig = {"name": "a", "image": "x:1", "transport": "stdio", "port": 1234,
                 "authz_config": {"version": "1.0"}, "telemetry_config": {"endpoint": "x"},
                 "secrets": ["bad-reference"]}  # fmt: skip
    config = {"secrets": {"provider_type": "1password"}, "clients": {"registered_clients": ["not-a-client"]}}
    imported = import_state(_home(tmp_path, runconfig, config), None, "s", containers=[])
    text = manifest_text(imported)
    for words in ("authz_config", "telemetry_config", "bad-reference", "1password", "client/not-a-client"):
        assert any(words in n for n in imported.notes), words
        assert words in text
    assert yaml.safe_load(text)["workloads"] == [
        {"name": "a", "image": "x:1", "transport": "stdio", "proxy_port": 1234, "network_isolation": False}
    ]


def test_a_container_without_a_runconfig_is_named(tmp_path: Path) -> None:
    labels = {"toolhive": "true", "toolhive-basename": "ghost"}
    imported = import_state(_home(tmp_path, {"name": "a", "image": "x"}), None, "s", containers=[{"Labels": labels}])
    assert imported.containers == ["ghost"]
    assert any("container ghost" in n and "no RunConfig" in n for n in imported.notes)


def test_a_broken_state_file_is_one_clear_error(tmp_path: Path) -> None:
    home = _home(tmp_path, {})
    (home / ".local/state/toolhive/runconfigs/a.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ToolhiveStateError, match=r"a\.json: cannot be read as JSON"):
        import_state(home, None, "s", containers=[])
    result = run_cli("import", "toolhive", "--home", str(home), "--out", str(tmp_path / "o"), "--docker-host",
                     "unix:///nonexistent.sock")  # fmt: skip
    assert result.code == 1 and "cannot be read as JSON" in result.stderr


def test_thv_xdg_directories_are_honoured_without_home(tmp_path: Path) -> None:
    from toolhive_apply.interop.toolhive_import import ToolhiveDirs

    home = tmp_path / "home"
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": "relative/ignored"}
    assert ToolhiveDirs.of(home, env) == ToolhiveDirs(tmp_path / "state", home / ".config")
    assert ToolhiveDirs.of(home) == ToolhiveDirs(home / ".local/state", home / ".config")
    (tmp_path / "state/toolhive/runconfigs").mkdir(parents=True)
    (tmp_path / "state/toolhive/runconfigs/b.json").write_text(json.dumps({"name": "b", "image": "y:2"}))
    imported = import_state(ToolhiveDirs.of(home, env), None, "s", containers=[])
    assert [w["name"] for w in imported.workloads] == ["b"]
