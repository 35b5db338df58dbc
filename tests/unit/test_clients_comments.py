"""The README's promise that a user's comments survive byte for byte, on every format (issue #14.12).

The case that lost them: our entry sits before the user's own, the user's comment is directly above their entry,
and destroy removes ours. Each fixture is the file with our entry; removing it must give exactly the file without
our entry's own lines, and putting it back and removing it again must change nothing more.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from toolhive_apply.clients import build_entry, get_client, parse_document

P = Path("/h/config")
URL = "http://127.0.0.1:1/mcp"

# client -> (the file with our entry "ours" first, the same file without it)
CASES: dict[str, tuple[str, str]] = {
    "codex": (
        '# my codex settings\nmodel = "x"\n\n[mcp_servers.ours]\nurl = "http://127.0.0.1:1/mcp"\n\n'
        "# my own server, keep this note\n# (two lines)\n[mcp_servers.mine]  # header comment\n"
        'command = "mine"  # inline\n\n# about profiles\n[profiles.p]\na = 1\n# the very end\n',
        '# my codex settings\nmodel = "x"\n\n'
        "# my own server, keep this note\n# (two lines)\n[mcp_servers.mine]  # header comment\n"
        'command = "mine"  # inline\n\n# about profiles\n[profiles.p]\na = 1\n# the very end\n',
    ),
    "mistral-vibe": (
        'active_model = "x"\n\n[[mcp_servers]]\nname = "ours"\nurl = "http://127.0.0.1:1/mcp"\n'
        'transport = "streamable-http"\n\n# mine, keep this\n[[mcp_servers]]\nname = "mine"\nurl = "u"\n',
        'active_model = "x"\n\n# mine, keep this\n[[mcp_servers]]\nname = "mine"\nurl = "u"\n',
    ),
    "vscode": (
        '// my settings\n{\n  "servers": {\n    "ours": {\n      "url": "http://127.0.0.1:1/mcp",\n'
        '      "type": "http"\n    },\n    // my own server, keep this note\n'
        '    "mine": { "command": "m" }, /* trailing */\n'
        "  },\n}\n",
        '// my settings\n{\n  "servers": {\n    // my own server, keep this note\n'
        '    "mine": { "command": "m" }, /* trailing */\n'
        "  },\n}\n",
    ),
    "continue": (
        'name: Local Config\nversion: "1.0.0"\nschema: v1\nmcpServers:\n  - name: ours\n'
        "    url: http://127.0.0.1:1/mcp\n    type: streamable-http\n  # my own server, keep this note\n"
        "  - name: mine  # inline\n    command: m\n# the end\n",
        'name: Local Config\nversion: "1.0.0"\nschema: v1\nmcpServers:\n  # my own server, keep this note\n'
        "  - name: mine  # inline\n    command: m\n# the end\n",
    ),
    "goose": (
        "extensions:\n  ours:\n    name: ours\n    uri: http://127.0.0.1:1/mcp\n    type: streamable_http\n"
        '    enabled: true\n    timeout: 60\n    description: ""\n  # my own extension, keep this note\n'
        "  mine:\n    cmd: m  # inline\n",
        "extensions:\n  # my own extension, keep this note\n  mine:\n    cmd: m  # inline\n",
    ),
}


def parsed(client_name: str, text: str) -> object:
    """The file as the client's own parser reads it."""
    client = get_client(client_name)
    if client.format.value.startswith("toml"):
        return tomllib.loads(text)
    if client.format.value.startswith("yaml"):
        return YAML(typ="safe").load(text)
    stripped = parse_document(client, text, P)  # JSONC: our editor's reading, checked against strict JSON below
    return stripped.entries()


@pytest.mark.parametrize("client_name", sorted(CASES))
def test_removing_our_entry_keeps_every_other_byte(client_name: str) -> None:
    with_ours, without = CASES[client_name]
    client = get_client(client_name)
    document = parse_document(client, with_ours, P)
    assert build_entry(client, "ours", "streamable-http", URL) == document.entries()["ours"], "fixture is ours"
    assert document.remove("ours")
    assert document.dump() == without
    again = parse_document(client, without, P)
    again.upsert("ours", build_entry(client, "ours", "streamable-http", URL))
    lines = without.splitlines()
    for comment, below in itertools.pairwise(lines):  # a comment stays directly above what it is about
        if comment.lstrip().startswith(("#", "//")) and below.strip():
            assert f"{comment}\n{below}\n" in again.dump(), (comment, again.dump())
    assert again.remove("ours")
    assert again.dump() == without, "a round trip changes nothing"


def test_the_fixtures_are_what_the_clients_read() -> None:
    """Each file is valid for the client's parser, before and after (JSONC without comments is strict JSON)."""
    for client_name, (with_ours, without) in CASES.items():
        for text in (with_ours, without):
            assert parsed(client_name, text)
    stripped = [line for line in CASES["vscode"][1].splitlines() if not line.lstrip().startswith("//")]
    assert json.loads("\n".join(stripped).replace(", /* trailing */", "").replace("},\n}", "}\n}")) == {
        "servers": {"mine": {"command": "m"}}
    }
