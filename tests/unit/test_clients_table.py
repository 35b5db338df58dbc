"""The client table, the entries built from it and the paths derived from it, checked against ToolHive's values.

The expectations here are written out independently of clients.toml (from toolhive-facts §2.1-2.4), so a wrong
row in the table fails a test instead of being copied into it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from tests.support.client_entries import entry_differences
from toolhive_apply.clients import (
    ClientTableError,
    FileFormat,
    Transport,
    UnknownClientError,
    UnsupportedPlatformError,
    build_entry,
    client_table,
    config_path,
    get_client,
    is_installed,
    same_entry,
)
from toolhive_apply.clients.table import parse_table

TOOLHIVE_ORDER = [
    "roo-code",
    "cline",
    "cursor",
    "vscode-insider",
    "vscode",
    "claude-code",
    "windsurf",
    "windsurf-jetbrains",
    "amp-cli",
    "lm-studio",
    "goose",
    "trae",
    "continue",
    "opencode",
    "kiro",
    "antigravity",
    "zed",
    "gemini-cli",
    "vscode-server",
    "mistral-vibe",
    "codex",
    "kimi-cli",
    "factory",
    "copilot-cli",
    "qoder",
]
ADDED = ["qoder-cli"]  # clients ToolHive does not know (yet), after its own

U = "http://127.0.0.1:8080/mcp"
# client -> (Linux path, entry for a streamable-http workload called "w")
EXPECTED = {
    "roo-code": (
        ".config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
        {"url": U, "type": "streamable-http"},
    ),
    "cline": (
        ".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
        {"url": U, "type": "streamableHttp"},
    ),
    "cursor": (".cursor/mcp.json", {"url": U, "type": "http"}),
    "vscode-insider": (".config/Code - Insiders/User/mcp.json", {"url": U, "type": "http"}),
    "vscode": (".config/Code/User/mcp.json", {"url": U, "type": "http"}),
    "claude-code": (".claude.json", {"url": U, "type": "http"}),
    "windsurf": (".codeium/windsurf/mcp_config.json", {"serverUrl": U, "type": "http"}),
    "windsurf-jetbrains": (".codeium/mcp_config.json", {"serverUrl": U, "type": "http"}),
    "amp-cli": (".config/amp/settings.json", {"url": U, "type": "http"}),
    "lm-studio": (".lmstudio/mcp.json", {"url": U, "type": "http"}),
    "goose": (
        ".config/goose/config.yaml",
        {"name": "w", "uri": U, "type": "streamable_http", "enabled": True, "timeout": 60, "description": ""},
    ),
    "trae": (".config/Trae/User/mcp.json", {"url": U}),
    "continue": (".continue/config.yaml", {"name": "w", "url": U, "type": "streamable-http"}),
    "opencode": (".config/opencode/opencode.json", {"url": U, "type": "remote"}),
    "kiro": (".kiro/settings/mcp.json", {"url": U}),
    "antigravity": (".gemini/antigravity/mcp_config.json", {"serverUrl": U}),
    "zed": (".config/zed/settings.json", {"url": U}),
    "gemini-cli": (".gemini/settings.json", {"url": U, "type": "http"}),
    "vscode-server": (".vscode-server/data/User/mcp.json", {"url": U}),
    "mistral-vibe": (".vibe/config.toml", {"name": "w", "url": U, "transport": "streamable-http"}),
    "codex": (".codex/config.toml", {"url": U}),
    "kimi-cli": (".kimi/mcp.json", {"url": U}),
    "factory": (".factory/mcp.json", {"url": U, "type": "http"}),
    "copilot-cli": (".copilot/mcp-config.json", {"url": U, "type": "http"}),
    "qoder": (".qoder/mcp.json", {"url": U, "type": "http"}),
    "qoder-cli": (".qoder/settings.json", {"url": U, "type": "http"}),
}
SERVERS_KEY = {"amp-cli": "amp.mcpServers", "goose": "extensions", "opencode": "mcp", "zed": "context_servers"}
SERVERS_KEY |= dict.fromkeys(("vscode", "vscode-insider", "vscode-server"), "servers")
SERVERS_KEY |= dict.fromkeys(("mistral-vibe", "codex"), "mcp_servers")


def test_the_table_lists_toolhives_25_clients_in_toolhives_order_then_ours() -> None:
    assert client_table().names() == (*TOOLHIVE_ORDER, *ADDED)


@pytest.mark.parametrize("name", [*TOOLHIVE_ORDER, *ADDED])
def test_each_client_has_toolhives_path_servers_key_and_entry(name: str) -> None:
    client = get_client(name)
    linux_path, entry = EXPECTED[name]
    assert client.linux_path == linux_path
    assert client.servers == (SERVERS_KEY.get(name, "mcpServers"),)
    built = build_entry(client, "w", "streamable-http", U)
    assert built == entry
    assert list(built) == list(entry), "key order follows ToolHive's output"


@pytest.mark.parametrize(
    ("name", "transport", "url", "entry"),
    [
        ("gemini-cli", "sse", "http://h:1/sse#w", {"url": "http://h:1/sse#w", "type": "sse"}),
        ("gemini-cli", "stdio", U, {"url": U, "type": "http"}),
        ("cursor", "sse", "http://h:1/sse#w", {"url": "http://h:1/sse#w", "type": "sse"}),
        ("cursor", Transport.STDIO, U, {"url": U, "type": "http"}),
        ("cline", "stdio", U, {"url": U, "type": "streamableHttp"}),
        ("mistral-vibe", "sse", "x", {"name": "w", "url": "x", "transport": "http"}),
        ("opencode", "sse", "x", {"url": "x", "type": "remote"}),
        ("codex", "sse", "x", {"url": "x"}),
    ],
)
def test_labels_and_url_keys_follow_the_workload_transport(
    name: str, transport: str, url: str, entry: dict[str, object]
) -> None:
    assert build_entry(get_client(name), "w", transport, url) == entry


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="inspector"):
        build_entry(get_client("cursor"), "w", "inspector", U)


def test_formats_treat_vscode_and_zed_as_jsonc_and_cursor_and_claude_as_plain_json() -> None:
    formats = {client.name: client.format for client in client_table()}
    assert {formats[n] for n in ("vscode", "vscode-insider", "vscode-server", "zed")} == {FileFormat.JSONC}
    assert {formats[n] for n in ("cursor", "claude-code")} == {FileFormat.JSON}
    assert (formats["goose"], formats["continue"]) == (FileFormat.YAML_MAP, FileFormat.YAML_LIST)
    assert (formats["codex"], formats["mistral-vibe"]) == (FileFormat.TOML_TABLES, FileFormat.TOML_ARRAY)


def test_same_entry_ignores_key_order_but_not_types() -> None:
    assert same_entry({"a": 1, "b": True}, {"b": True, "a": 1})
    assert not same_entry({"enabled": True}, {"enabled": 1})
    assert not same_entry({"timeout": 60}, {"timeout": 60.0})
    assert entry_differences({"url": "a", "type": "http"}, {"url": "b", "type": "http", "x": 1}) == ("url", "x")
    assert entry_differences({"url": "a"}, "a string") == ("url",)


# -- discovery ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*TOOLHIVE_ORDER, *ADDED])
def test_linux_paths_are_under_home(name: str, tmp_path: Path) -> None:
    assert config_path(get_client(name), tmp_path, "linux") == tmp_path / EXPECTED[name][0]


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("vscode", "Library/Application Support/Code/User/mcp.json"),
        ("vscode-insider", "Library/Application Support/Code - Insiders/User/mcp.json"),
        ("trae", "Library/Application Support/Trae/User/mcp.json"),
        ("goose", ".config/goose/config.yaml"),
        ("cursor", ".cursor/mcp.json"),
        ("claude-code", ".claude.json"),
        ("qoder", ".qoder/mcp.json"),
        ("qoder-cli", ".qoder/settings.json"),
    ],
)
def test_macos_paths(name: str, path: str) -> None:
    assert config_path(get_client(name), Path("/Users/u"), "darwin") == Path("/Users/u") / path


def test_an_override_replaces_the_table_path() -> None:
    cursor = get_client("cursor")
    assert config_path(cursor, Path("/h"), "linux", "~/work/mcp.json") == Path("/h/work/mcp.json")
    assert config_path(cursor, Path("/h"), "linux", "/etc/mcp.json") == Path("/etc/mcp.json")
    assert config_path(cursor, Path("/h"), "win32", "rel/mcp.json") == Path("/h/rel/mcp.json")


def test_a_platform_without_a_known_path_is_an_error_with_a_hint() -> None:
    with pytest.raises(UnsupportedPlatformError) as caught:
        config_path(get_client("cursor"), Path("/h"), "win32")
    assert "cursor" in str(caught.value) and caught.value.hint


def test_installed_means_the_config_directory_exists(tmp_path: Path) -> None:
    vscode = get_client("vscode")
    assert not is_installed(vscode, tmp_path, "linux")
    (tmp_path / ".config/Code/User").mkdir(parents=True)
    assert is_installed(vscode, tmp_path, "linux"), "the directory is enough; mcp.json need not exist"


def test_claude_code_is_installed_only_when_its_file_exists(tmp_path: Path) -> None:
    claude = get_client("claude-code")
    assert not is_installed(claude, tmp_path, "linux"), "$HOME always exists, so the file decides"
    (tmp_path / ".claude.json").write_text("{}")
    assert is_installed(claude, tmp_path, "linux")


# -- the table as data ----------------------------------------------------------------------------------


def test_an_unknown_client_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownClientError) as caught:
        get_client("vs-code")
    assert caught.value.hint == "did you mean 'vscode'?"


def test_table_problems_are_reported_all_at_once() -> None:
    broken = b"""
[[client]]
name = "a"
description = "A"
format = "xml"
path.linux = "/abs/path.json"
servers = ["mcpServers"]
url_key = "url"
installed = "dir"
typez = { stdio = "http" }

[[client]]
name = "a"
description = "A again"
format = "yaml-list"
path.linux = "a.yaml"
servers = []
url_key = { stdio = "u" }
installed = "somewhere"
"""
    with pytest.raises(ClientTableError) as caught:
        parse_table(broken)
    problems = "\n".join(caught.value.problems)
    for expected in (
        "format: must be one of",
        "path.linux: must be a path relative to $HOME",
        "typez: unknown key (did you mean 'types'?)",
        "servers: must be a non-empty list",
        "url_key: must be a string or a table with exactly stdio, sse and streamable-http",
        "installed: must be one of dir, file",
        "name_key: is required for format yaml-list",
        "client 'a' is listed twice",
    ):
        assert expected in problems
    assert len(caught.value.problems) == 8
    assert caught.value.lines()[0].startswith("clients.toml: ")


def test_the_table_ships_inside_the_package() -> None:
    """hatchling puts every file under the package directory into the wheel, so package data needs no config."""
    shipped = resources.files("toolhive_apply.clients").joinpath("clients.toml")
    assert shipped.is_file()
    assert parse_table(shipped.read_bytes()).names() == (*TOOLHIVE_ORDER, *ADDED)


# -- transports each client connects with (issue #14.9) ------------------------------------------------------


def test_every_client_connects_with_streamable_http_and_codex_and_vibe_with_nothing_else() -> None:
    """The proxy serves both HTTP transports for every workload, so the entry uses the client's best one; Codex
    (rmcp) and Mistral Vibe have no SSE client, so an SSE endpoint would never connect for them."""
    for client in client_table():
        assert client.best_transport is Transport.STREAMABLE_HTTP, client.name
        assert Transport.STDIO not in client.connects
    assert get_client("codex").connects == (Transport.STREAMABLE_HTTP,)
    assert get_client("mistral-vibe").connects == (Transport.STREAMABLE_HTTP,)
    assert Transport.SSE in get_client("gemini-cli").connects


def test_a_client_that_prefers_sse_gets_the_type_it_needs() -> None:
    """Gemini CLI takes a url without type as streamable HTTP: an SSE entry must say so."""
    table = (resources.files("toolhive_apply.clients").joinpath("clients.toml").read_text()).replace(
        'name = "gemini-cli"', 'name = "gemini-cli"\nconnects = ["sse", "streamable-http"]'
    )
    gemini = parse_table(table.encode()).get("gemini-cli")
    assert gemini.best_transport is Transport.SSE
    assert build_entry(gemini, "w", gemini.best_transport, "http://h:1/sse#w") == {
        "url": "http://h:1/sse#w",
        "type": "sse",
    }


def test_connects_must_name_http_transports() -> None:
    table = resources.files("toolhive_apply.clients").joinpath("clients.toml").read_text()
    broken = table.replace('connects = ["streamable-http"]  # Codex', 'connects = ["stdio"]  # Codex')
    with pytest.raises(ClientTableError, match="connects: must be a non-empty list of distinct transports"):
        parse_table(broken.encode())
