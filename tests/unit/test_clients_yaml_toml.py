"""YAML and TOML layouts beyond the shared fixtures: what is spliced, what falls back, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolhive_apply.clients import ClientFileParseError, ClientSpec, build_entry, get_client
from toolhive_apply.clients.formats import parse_document

GOOSE = get_client("goose")
CONTINUE = get_client("continue")
CODEX = get_client("codex")
VIBE = get_client("mistral-vibe")
P = Path("/h/config")


def edit(client_name: str, text: str, name: str = "ours", *, remove: bool = False) -> str:
    client = get_client(client_name)
    document = parse_document(client, text, P)
    if remove:
        assert document.remove(name)
    else:
        document.upsert(name, build_entry(client, name, "streamable-http", "http://127.0.0.1:1/mcp"))
    return document.dump()


# -- YAML -----------------------------------------------------------------------------------------------


def test_goose_entry_goes_after_the_last_extension_and_before_comments_about_what_follows() -> None:
    text = "extensions:\n  a:\n    enabled: true\n# about the model\nGOOSE_MODEL: x\n"
    assert edit("goose", text) == (
        "extensions:\n  a:\n    enabled: true\n  ours:\n    name: ours\n    uri: http://127.0.0.1:1/mcp\n"
        "    type: streamable_http\n    enabled: true\n    timeout: 60\n    description: ''\n"
        "# about the model\nGOOSE_MODEL: x\n"
    )


def test_a_four_space_file_gets_a_four_space_entry() -> None:
    text = "mcpServers:\n    -   name: a\n        url: u\n"
    assert edit("continue", text) == (
        "mcpServers:\n    -   name: a\n        url: u\n"
        "    -   name: ours\n        url: http://127.0.0.1:1/mcp\n        type: streamable-http\n"
    )


def test_a_missing_servers_key_is_added_at_the_end() -> None:
    assert edit("continue", "name: x  # mine\n") == (
        "name: x  # mine\nmcpServers:\n  - name: ours\n    url: http://127.0.0.1:1/mcp\n    type: streamable-http\n"
    )


def test_a_file_of_only_comments_keeps_them() -> None:
    assert edit("goose", "# nothing yet\n").startswith("# nothing yet\nextensions:\n  ours:\n")


def test_an_empty_flow_container_becomes_a_block_and_comments_stay_put() -> None:
    assert edit("goose", "# top\nextensions: {}  # none\n# tail\nother: 1\n") == (
        "# top\nextensions:  # none\n  ours:\n    name: ours\n    uri: http://127.0.0.1:1/mcp\n"
        "    type: streamable_http\n    enabled: true\n    timeout: 60\n    description: ''\n# tail\nother: 1\n"
    )
    assert edit("continue", "mcpServers: [ ]\nother: 1\n") == (
        "mcpServers:\n  - name: ours\n    url: http://127.0.0.1:1/mcp\n    type: streamable-http\nother: 1\n"
    )


def test_a_non_empty_flow_container_falls_back_to_the_round_trip() -> None:
    text = "# top\nextensions: {a: {uri: x}}\nother: 1  # keep\n"
    result = edit("goose", text)
    assert set(parse_document(GOOSE, result, P).entries()) == {"a", "ours"}
    assert result.startswith("# top\n") and result.endswith("other: 1  # keep\n")


def test_a_block_scalar_at_the_end_of_a_foreign_entry_is_not_split() -> None:
    text = "mcpServers:\n  - name: a\n    script: |\n      run\n      # not a comment\n"
    result = edit("continue", text)
    entries = parse_document(CONTINUE, result, P).entries()
    assert entries["a"] == {"name": "a", "script": "run\n# not a comment\n"}
    assert entries["ours"]["url"] == "http://127.0.0.1:1/mcp"  # type: ignore[index]


def test_removing_the_last_entry_leaves_an_empty_container_not_null() -> None:
    text = "extensions:\n  ours:\n    uri: x\n# tail\nother: 1\n"
    assert edit("goose", text, remove=True) == "extensions: {}\n# tail\nother: 1\n"
    text = "mcpServers:  # ours only\n  - name: ours\n    url: x\nother: 1\n"
    assert edit("continue", text, remove=True) == "mcpServers: []  # ours only\nother: 1\n"


def test_removing_from_a_list_takes_every_item_with_the_name() -> None:
    text = "mcpServers:\n  - name: ours\n  - name: a\n  - name: ours\n    url: x\n"
    assert edit("continue", text, remove=True) == "mcpServers:\n  - name: a\n"


def test_list_items_without_a_name_are_foreign_and_kept() -> None:
    text = "mcpServers:\n  - just a string\n  - url: x\n"
    document = parse_document(CONTINUE, text, P)
    assert document.entries() == {}
    assert not document.remove("ours")


@pytest.mark.parametrize(
    ("client", "text", "line", "column", "message"),
    [
        (GOOSE, "extensions: [1]\n", 1, 1, "extensions must be a mapping"),
        (CONTINUE, "a: 1\nmcpServers: {a: 1}\n", 2, 1, "mcpServers must be a list"),
        (GOOSE, "- a\n- b\n", 1, 1, "the top-level value must be a mapping"),
        (GOOSE, "a: 1\na: 2\n", 2, 1, 'found duplicate key "a"'),
        (GOOSE, "a: 1\n---\nb: 2\n", 2, 1, "but found another document"),
    ],
)
def test_yaml_problems_are_positioned(client: ClientSpec, text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ClientFileParseError) as caught:
        parse_document(client, text, P).upsert("ours", {"name": "ours"})
    assert (caught.value.origin.line, caught.value.origin.column) == (line, column)
    assert message in caught.value.reason


# -- TOML -----------------------------------------------------------------------------------------------


def test_codex_tables_split_by_another_table_get_ours_with_the_first_part() -> None:
    text = '[mcp_servers.a]\nurl = "1"\n\n[other]\nb = 2\n\n[mcp_servers.b]\nurl = "2"\n'
    result = edit("codex", text)
    assert result == (
        '[mcp_servers.a]\nurl = "1"\n\n[mcp_servers.ours]\nurl = "http://127.0.0.1:1/mcp"\n\n'
        '[other]\nb = 2\n\n[mcp_servers.b]\nurl = "2"\n'
    )
    assert edit("codex", result, remove=True) == text


def test_codex_inline_tables_are_updated_in_place() -> None:
    text = '[mcp_servers]\nours = { url = "old" }  # mine\nother = { command = "x" }\n'
    assert edit("codex", text) == (
        '[mcp_servers]\nours = { url = "http://127.0.0.1:1/mcp" }  # mine\nother = { command = "x" }\n'
    )


def test_a_new_codex_file_holds_only_our_table() -> None:
    assert edit("codex", "") == '[mcp_servers.ours]\nurl = "http://127.0.0.1:1/mcp"\n'
    assert edit("codex", '[mcp_servers.ours]\nurl = "x"\n', remove=True) == ""


def test_vibe_replaces_an_item_in_place_keeping_its_comments() -> None:
    text = '[[mcp_servers]]\nname = "ours"  # ours\nurl = "old"\nextra = 1\n\n[[mcp_servers]]\nname = "b"\n'
    assert edit("mistral-vibe", text) == (
        '[[mcp_servers]]\nname = "ours"  # ours\nurl = "http://127.0.0.1:1/mcp"\n'
        'transport = "streamable-http"\n\n[[mcp_servers]]\nname = "b"\n'
    )


def test_vibe_inline_arrays_stay_inline() -> None:
    text = 'mcp_servers = [{ name = "a", url = "u" }]\n'
    assert edit("mistral-vibe", text) == (
        'mcp_servers = [{ name = "a", url = "u" }, {name = "ours", url = "http://127.0.0.1:1/mcp", '
        'transport = "streamable-http"}]\n'
    )


def test_removing_the_last_vibe_item_removes_the_key_rather_than_hoisting_an_empty_array() -> None:
    text = 'active_model = "x"\n'
    with_ours = edit("mistral-vibe", text)
    assert with_ours == (
        'active_model = "x"\n\n[[mcp_servers]]\nname = "ours"\nurl = "http://127.0.0.1:1/mcp"\n'
        'transport = "streamable-http"\n'
    )
    assert edit("mistral-vibe", with_ours, remove=True) == text


@pytest.mark.parametrize(
    ("client", "text", "line", "column", "message"),
    [
        (CODEX, 'model = "x"\nmodel = "y"\n', 2, 12, "Cannot overwrite a value"),
        (CODEX, "mcp_servers = 3\n", 1, 1, "mcp_servers must be a table"),
        (VIBE, "x = 1\n[mcp_servers]\na = 1\n", 2, 1, "mcp_servers must be an array of tables"),
    ],
)
def test_toml_problems_are_positioned(client: ClientSpec, text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ClientFileParseError) as caught:
        parse_document(client, text, P).upsert("ours", {"name": "ours", "url": "u"})
    assert (caught.value.origin.line, caught.value.origin.column) == (line, column)
    assert message in caught.value.reason


@pytest.mark.parametrize(
    ("client", "text"),
    [
        (GOOSE, "extensions: {}\nother: " + "9" * 5000 + "\n"),
        (CODEX, "other = " + "9" * 5000 + "\n"),
    ],
    ids=["yaml", "toml"],
)
def test_a_number_too_long_to_read_is_a_parse_error(client: ClientSpec, text: str) -> None:
    """Python refuses int() of more than 4300 digits with a ValueError; it must read as the file's fault, which
    leaves the file untouched, and not as an internal error."""
    with pytest.raises(ClientFileParseError) as caught:
        parse_document(client, text, P).upsert("ours", {"name": "ours"})
    assert caught.value.reason == "a number too long to read (at most 4300 digits)"
