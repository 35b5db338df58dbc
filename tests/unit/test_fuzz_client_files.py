"""Property: whatever a client config file holds, toolhive-apply edits it correctly or refuses, never corrupts it.

Client files are the user's and other tools' (JSON, JSONC, YAML and TOML). Mutated copies of real-world fixtures
(byte flips, truncations, random values where the servers live) go through the real read and the real transactional
write. Either the write is refused with the project's own error and the file is byte for byte what it was, with no
temp or lock file left; or the result parses as the client would parse it, holds our entry, and every entry that was
there before is unchanged. Template-looking text in a client file is data, never rendered. The ownership state file
gets the same treatment: anything but a valid record is a ClientStateError.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_clients_files import NAME, fixture_text, ours
from tests.unit.test_fuzz_manifests import ESCAPES
from toolhive_apply.clients import ClientSpec, FileFormat, client_table, observe, same_entry, write_entries
from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.providers.client.state import ClientStateError, parse_state

SCRATCH = Path(tempfile.mkdtemp(prefix="thv-fuzz-clients-"))
atexit.register(shutil.rmtree, SCRATCH, True)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_per_format() -> list[ClientSpec]:
    chosen: dict[FileFormat, ClientSpec] = {}
    for client in client_table():
        chosen.setdefault(client.format, client)
    return list(chosen.values())


CLIENTS = _one_per_format()
SEEDS = {client.name: fixture_text(client).encode() for client in CLIENTS}


def _fresh_file(client: ClientSpec, data: bytes) -> Path:
    directory = SCRATCH / client.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    path = directory / "config"
    path.write_bytes(data)
    return path


def _entries(client: ClientSpec, path: Path) -> dict[str, object] | None:
    """What the client would read, or None when the file is refused as unreadable (with our own error)."""
    try:
        return dict(observe(client, path).entries)
    except ToolhiveApplyError:
        return None


def _check_upsert_and_removal(client: ClientSpec, path: Path) -> None:
    """Add our entry and take it out again; both steps either refuse cleanly or keep every other entry as it was."""
    before_bytes = path.read_bytes()
    before = _entries(client, path)
    try:
        write_entries(client, path, {NAME: ours(client)}, create=True)
    except ToolhiveApplyError:
        assert path.read_bytes() == before_bytes, "a refused write changed the file"
        assert sorted(p.name for p in path.parent.iterdir()) == ["config"], "a refused write left files behind"
        return
    assert before is not None, "a file that cannot be read was written over"
    after = _entries(client, path)
    assert after is not None, "the written file does not parse as the client parses it"
    assert same_entry(after[NAME], ours(client))
    for name, entry in before.items():
        if name != NAME:
            assert name in after and same_entry(after[name], entry), f"entry {name!r} was changed or lost"
    assert set(after) == set(before) | {NAME}
    write_entries(client, path, {}, [NAME])
    removed = _entries(client, path)
    assert removed is not None
    assert set(removed) == set(before) - {NAME}
    for name in removed:
        assert same_entry(removed[name], before[name]), f"entry {name!r} changed when ours was removed"


@FUZZ
@given(
    client=st.sampled_from(CLIENTS),
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.binary(min_size=0, max_size=6),
    cut=st.booleans(),
)
def test_byte_mutations_of_a_client_file_are_edited_correctly_or_refused_untouched(
    client: ClientSpec, position: int, replacement: bytes, cut: bool
) -> None:
    seed = SEEDS[client.name]
    position %= len(seed)
    data = seed[:position] if cut else seed[:position] + replacement + seed[position + 1 :]
    _check_upsert_and_removal(client, _fresh_file(client, data))


texts = st.one_of(st.text(max_size=20), st.sampled_from([*ESCAPES, "{{ 7 * 7 }}", "${HOME}", "# not a comment"]))
leaves = st.one_of(st.booleans(), st.integers(min_value=-(2**31), max_value=2**31), st.floats(allow_nan=False), texts)
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


def _render(client: ClientSpec, servers: Any, extra: dict[str, Any]) -> bytes | None:
    """A whole file in the client's format with `servers` where its servers live; None if the format cannot say it."""
    levels = list(client.servers)
    document: dict[str, Any] = {k: v for k, v in extra.items() if k != levels[0]}
    node = document
    for key in levels[:-1]:
        node = node.setdefault(key, {})
    node[levels[-1]] = servers
    try:
        if client.format in (FileFormat.JSON, FileFormat.JSONC):
            return json.dumps(document, indent=2).encode()
        if client.format in (FileFormat.YAML_MAP, FileFormat.YAML_LIST):
            return yaml.safe_dump(document, allow_unicode=True).encode()
        return tomlkit.dumps(document).encode()
    except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError):
        return None


@FUZZ
@given(client=st.sampled_from(CLIENTS), servers=documents, extra=st.dictionaries(texts, documents, max_size=3))
def test_random_values_where_the_servers_live_are_edited_correctly_or_refused_untouched(
    client: ClientSpec, servers: Any, extra: dict[str, Any]
) -> None:
    data = _render(client, servers, extra)
    if data is None:
        return
    _check_upsert_and_removal(client, _fresh_file(client, data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(client=st.sampled_from(CLIENTS), template=st.sampled_from(ESCAPES))
def test_templates_in_a_client_file_are_kept_as_written_and_never_rendered(client: ClientSpec, template: str) -> None:
    foreign = {"url": f"http://127.0.0.1:1/{template}", "note": template}
    if client.format.is_list and client.name_key is not None:
        servers: Any = [{client.name_key: "foreign", **foreign}]
    else:
        servers = {"foreign": foreign}
    data = _render(client, servers, {})
    assert data is not None
    path = _fresh_file(client, data)
    before = _entries(client, path)
    assert before is not None
    write_entries(client, path, {NAME: ours(client)}, create=True)
    after = _entries(client, path)
    assert after is not None and same_entry(after["foreign"], before["foreign"])
    foreign_after = after["foreign"]
    assert isinstance(foreign_after, dict) and foreign_after["note"] == template  # read back as written: not rendered


@settings(max_examples=300, deadline=None)
@given(document=documents, text=st.none() | st.text(max_size=60))
def test_a_mangled_client_state_file_is_only_ever_a_client_state_error(document: Any, text: str | None) -> None:
    raw = text if text is not None else json.dumps({"version": 1, "stack": "s", "clients": document})
    try:
        records = parse_state(raw, SCRATCH / "state.json")
    except ClientStateError as error:
        assert str(SCRATCH / "state.json") in error.message
        return
    for record in records.values():
        assert record.path.is_absolute()
