"""What a new user meets first, end to end without Docker: validate finds what plan would, at the field it is
about; --help names values as a user types them; counts read as English."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_cli

REGISTRY = json.loads((ROOT / "examples" / "registry" / "registry.json").read_text())
ECHO = "io.github.toolhive-apply/echo"


def write(directory: Path, text: str, name: str = "stack.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def with_registry(directory: Path, document: Any = None) -> None:
    write(directory, json.dumps(REGISTRY if document is None else document), "registry.json")


HEAD = "apiVersion: toolhive-apply/v1\nregistries:\n  - name: local\n    local_path: ./registry.json\nworkloads:\n"


def validate(path: Path, **env: str) -> Any:
    return run_cli("validate", str(path), env={"XDG_CACHE_HOME": str(path.parent / "cache"), **env})


def test_validate_finds_a_missing_local_registry_file_at_its_local_path(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "  - {name: e, image: x}\n")
    result = validate(path)
    assert result.code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}:4:5: registries[0].local_path: registry 'local' (")
    assert "cannot read (No such file or directory)" in result.stderr


def test_validate_finds_an_invalid_registry_document(tmp_path: Path) -> None:
    with_registry(tmp_path, {"servers": 5})
    result = validate(write(tmp_path, HEAD + "  - {name: e, image: x}\n"))
    assert result.code == 1
    assert ":4:5: registries[0].local_path: registry 'local' is not a valid legacy registry" in result.stderr


def test_validate_finds_an_unknown_server_and_a_required_variable_the_workload_does_not_give(tmp_path: Path) -> None:
    with_registry(tmp_path)
    text = HEAD + "  - name: a\n    registry: local\n    server: nothing\n"
    text += "  - name: b\n    registry: local\n    server: echo\n"
    result = validate(write(tmp_path, text))
    assert result.code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: 2 problems in the manifest:"
    assert lines[1].endswith(":8:5: workloads[0].server: 'nothing' in registry 'local': not found")
    assert lines[2].endswith(
        f":11:5: workloads[1].server: server '{ECHO}' of registry 'local' requires environment variable GREETING; "
        "add env_vars: {GREETING: ...}"
    )


def test_a_host_port_a_registry_entry_supplies_is_checked_against_explicit_ones(tmp_path: Path) -> None:
    document = json.loads(json.dumps(REGISTRY))
    extensions = document["data"]["servers"][0]["_meta"]["io.modelcontextprotocol.registry/publisher-provided"]
    extensions["io.github.stacklok"]["toolhive-apply-test/http:latest"]["proxy_port"] = 18555
    with_registry(tmp_path, document)
    text = HEAD + "  - name: e\n    registry: local\n    server: echo\n    env_vars: {GREETING: hi}\n"
    text += "  - name: t\n    image: x\n    proxy_port: 18555\n"
    result = validate(write(tmp_path, text))
    assert result.code == 1
    assert ":12:5: workloads[1].proxy_port: port 18555 on 127.0.0.1 is already used by workload 'e'" in result.stderr
    assert f"e's port is from registry local/{ECHO}" in result.stderr


def test_a_url_registry_is_checked_from_the_cache_and_a_note_says_when_there_is_none(tmp_path: Path) -> None:
    from toolhive_apply.registry import sources

    url = "https://registry.example.com/registry.json"  # never fetched: validate does not use the network
    text = f"apiVersion: toolhive-apply/v1\nregistries:\n  - name: company\n    url: {url}\n"
    text += "workloads:\n  - {name: e, registry: company, server: nothing}\n"
    path = write(tmp_path, text)
    uncached = validate(path)
    assert uncached.code == 0, uncached
    assert f"{path}:3:5: registries[0].url: warning: no cached copy here" in uncached.stderr
    cache = tmp_path / "cache" / "toolhive-apply" / "registries"
    cache.mkdir(parents=True)
    data_path, meta_path = (cache / p.name for p in sources._cache_paths(f"url:{url}"))
    data_path.write_text(json.dumps(REGISTRY))
    meta_path.write_text(json.dumps({"fetched_at": 0, "private": False}))  # however old: validate uses it
    cached = validate(path)
    assert cached.code == 1
    assert f"{path}:6:34: workloads[0].server: 'nothing' in registry 'company': not found" in cached.stderr


def test_an_undefined_secret_is_reported_at_the_reference(tmp_path: Path) -> None:
    text = "apiVersion: toolhive-apply/v1\nworkloads:\n  - name: a\n    image: x\n    secrets:\n"
    text += "      - {name: ghost, target: TOKEN}\n"
    result = validate(write(tmp_path, text))
    assert result.code == 1
    assert result.stderr.startswith(
        f"Error: {tmp_path / 'stack.yaml'}:6:10: workloads[0].secrets[0].name: unknown secret"
    )


def test_browser_oauth_is_refused_by_validate_at_oauth_config(tmp_path: Path) -> None:
    text = "apiVersion: toolhive-apply/v1\nworkloads:\n  - name: docs\n    url: https://mcp.example.com/mcp\n"
    text += "    oauth_config: {issuer: https://id.example.com}\n"
    result = validate(write(tmp_path, text))
    assert result.code == 1
    assert ":5:5: workloads[0].oauth_config: only oauth_config.bearer_token is supported" in result.stderr


def test_examples_full_validates_and_its_registry_resolves(tmp_path: Path) -> None:
    result = validate(ROOT / "examples" / "full" / "stack.yaml")
    assert result.code == 0, result
    assert result.stdout == (
        f"Valid: {ROOT / 'examples' / 'full' / 'stack.yaml'}: stack 'team-tools': "
        "4 workloads, 3 clients, 2 registries, 4 secrets.\n"
    )
    text = (ROOT / "examples" / "full" / "stack.yaml").read_text()
    assert "later releases" not in text and "future" not in text


def test_validate_counts_read_as_english(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "registry" / "registry.json", tmp_path / "registry.json")
    text = HEAD + "  - {name: e, registry: local, server: echo, env_vars: {GREETING: hi}}\n"
    text += "clients:\n  - name: cursor\nsecrets:\n  - {key: k, present: true}\n"
    result = validate(write(tmp_path, text))
    assert result.code == 0, result
    assert result.stdout.endswith(": 1 workload, 1 client, 1 registry, 1 secret.\n")


@pytest.mark.parametrize(
    "command",
    [
        ["validate"],
        ["plan"],
        ["apply"],
        ["destroy"],
        ["restart"],
        ["unlock"],
        ["export"],
        ["export", "workloads"],
        ["export", "workload"],
        ["export", "registry"],
        ["export", "secrets"],
        ["export", "clients"],
    ],
)
def test_help_names_values_as_a_user_types_them(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.code == 0, result
    assert not re.search(r"<[A-Za-z][^<>\s]*>", result.stdout), result.stdout  # no `<str>`, `<list[Path]>`
    assert "list[" not in result.stdout


def test_plan_help_shows_the_metavars_users_type() -> None:
    text = run_cli("plan", "--help").stdout
    for shown in (
        "[PATH]...",
        "--var KEY=VALUE",
        "--var-file FILE",
        "--output text|json",
        "--stack NAME",
        "--out FILE",
    ):
        assert shown in text, text
    assert "--target NAME" in text and "--replace NAME" in text


def test_an_empty_value_from_a_secrets_source_is_refused_unless_allowed(tmp_path: Path) -> None:
    """Read at plan time, before Docker is asked anything else; the error names the secret and its source."""
    from toolhive_apply.errors import ManifestError
    from toolhive_apply.manifest import load_manifest
    from toolhive_apply.providers.secret import read_source

    data = {
        "apiVersion": "toolhive-apply/v1",
        "secrets": [
            {"key": "token", "from": {"env": "EMPTY_TOKEN"}},
            {"key": "file", "from": {"file": "./empty.txt"}},
            {"key": "meant", "from": {"env": "EMPTY_TOKEN"}, "allow_empty": True},
        ],
    }
    write(tmp_path, "\n", "empty.txt")  # one newline: stripped, as an editor adds it
    manifest = load_manifest([write(tmp_path, yaml.safe_dump(data))])
    token, file, meant = manifest.secrets
    environ = {"EMPTY_TOKEN": ""}
    with pytest.raises(ManifestError, match=r"secrets\[token\]\.from\.env: environment variable EMPTY_TOKEN is set"):
        read_source(token, environ, None)
    with pytest.raises(ManifestError, match=r"secrets\[file\]\.from\.file: \./empty\.txt is empty; set allow_empty"):
        read_source(file, environ, None)
    assert read_source(meant, environ, None).reveal() == ""
