"""Every client type, end to end through the public API: create, add beside foreign entries, detect and repair a
hand edit, remove, refuse broken files, honour the lock, keep mode and one backup.

The byte-level assertions compare whole files: outside the region our entry occupies, the old and new text
must be identical, and that region must hold only our entry (no foreign name, no comment).
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

import pytest

from tests.support.client_entries import entry_differences, read_entries
from toolhive_apply.clients import (
    ClientFileLockedError,
    ClientFileMissingError,
    ClientFileParseError,
    ClientSpec,
    FileFormat,
    backup_path,
    build_entry,
    client_table,
    config_path,
    lock_path,
    same_entry,
    write_entries,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
CLIENTS = list(client_table())
IDS = [client.name for client in CLIENTS]
NAME = "fetch-ours"
URL = "http://127.0.0.1:41234/mcp"
FOREIGN = ("github", "remote-docs")
FIXTURE_FOR = {
    FileFormat.JSON: "plain.json",
    FileFormat.JSONC: "commented.jsonc",
    FileFormat.YAML_MAP: "goose.yaml",
    FileFormat.YAML_LIST: "continue.yaml",
    FileFormat.TOML_TABLES: "codex.toml",
    FileFormat.TOML_ARRAY: "vibe.toml",
}
BROKEN = {  # text, line, column of the first error
    "json": ('{\n  "$servers": {\n    "a": {"url": "x"}\n    "b": {"url": "y"}\n  }\n}\n', 4, 5),
    "yaml": ("$servers:\n  a: 1\n b: 2\n", 3, 2),
    "toml": ('model = "x"\n[$servers.a]\nurl = \n', 3, 7),
}


def family(client: ClientSpec) -> str:
    return client.format.value[:4]  # json, yaml or toml


def fixture_text(client: ClientSpec) -> str:
    template = Template((FIXTURES / FIXTURE_FOR[client.format]).read_text(encoding="utf-8"))
    return template.substitute(servers=client.servers[0])


def ours(client: ClientSpec, url: str = URL) -> dict[str, object]:
    return build_entry(client, NAME, "streamable-http", url)


def seeded(client: ClientSpec, home: Path) -> Path:
    path = config_path(client, home, "linux")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fixture_text(client), encoding="utf-8")
    return path


def changed_region(old: str, new: str) -> tuple[str, str]:
    """The differing middle of two texts: (old part, new part) once the common prefix and suffix are cut."""
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]


def assert_only_inserted(old: str, new: str, *must_contain: str) -> None:
    """`new` is `old` with text inserted at no more than two nearby points (separator and entry) and nothing else.

    old's differing middle must reappear verbatim inside new's, so no byte of old was changed or dropped.
    """
    old_mid, new_mid = changed_region(old, new)
    assert old_mid in new_mid, f"old text was changed, not only added to: {old_mid!r} -> {new_mid!r}"
    inserted = new_mid.replace(old_mid, "", 1)
    assert_ours_only(inserted, must_contain)


def assert_ours_only(text: str, must_contain: tuple[str, ...]) -> None:
    for needle in must_contain:
        assert needle in text, f"{needle!r} missing from the changed region {text!r}"
    for foreign in FOREIGN:
        assert foreign not in text, f"foreign entry {foreign!r} inside the changed region {text!r}"
    assert "#" not in text, f"a comment moved into the changed region {text!r}"
    assert "//" not in text.replace("http://", ""), f"a comment moved into the changed region {text!r}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


# -- create ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_a_missing_file_is_created_private_with_only_our_entry(client: ClientSpec, home: Path) -> None:
    path = config_path(client, home, "linux")
    new_dirs = [d for d in (path.parent, *path.parent.parents) if d.is_relative_to(home) and d != home]
    assert write_entries(client, path, {NAME: ours(client)}, create=True)
    assert read_entries(client, path) == {NAME: ours(client)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in new_dirs)
    assert not backup_path(path).exists(), "there was no previous version to keep"
    assert not lock_path(path).exists(), "the lock file is removed after use, as ToolHive does"


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_a_missing_file_is_an_error_unless_creation_is_asked_for(client: ClientSpec, home: Path) -> None:
    path = config_path(client, home, "linux")
    with pytest.raises(ClientFileMissingError) as caught:
        write_entries(client, path, {NAME: ours(client)})
    assert caught.value.path == path
    assert not path.exists()
    assert not write_entries(client, path, {}, [NAME]), "removing from a missing file is a no-op"


# -- foreign entries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_our_entry_is_added_and_every_other_byte_stays(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    before_text = path.read_text(encoding="utf-8")
    before = read_entries(client, path)
    assert set(FOREIGN) <= set(before)

    assert write_entries(client, path, {NAME: ours(client)})

    after_text = path.read_text(encoding="utf-8")
    assert_only_inserted(before_text, after_text, NAME, URL)
    assert read_entries(client, path) == {**before, NAME: ours(client)}


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_writing_what_is_already_there_changes_nothing(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    write_entries(client, path, {NAME: ours(client)})
    text, mtime = path.read_bytes(), path.stat().st_mtime_ns
    backup = backup_path(path).read_bytes()

    assert not write_entries(client, path, {NAME: ours(client)}, ["not-there"])
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (text, mtime)
    assert backup_path(path).read_bytes() == backup


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_a_hand_edited_entry_is_seen_as_different_and_put_back(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    write_entries(client, path, {NAME: ours(client)})
    edited = path.read_text(encoding="utf-8").replace(URL, "http://127.0.0.1:9999/mcp")
    path.write_text(edited, encoding="utf-8")

    observed = read_entries(client, path)[NAME]
    assert not same_entry(ours(client), observed)
    assert entry_differences(ours(client), observed) == (client.url_keys.streamable_http,)

    assert write_entries(client, path, {NAME: ours(client)})
    repaired = path.read_text(encoding="utf-8")
    old_mid, new_mid = changed_region(edited, repaired)
    assert "9999" in old_mid and "41234" in new_mid
    assert_ours_only(old_mid, ())
    assert same_entry(read_entries(client, path)[NAME], ours(client))


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_removing_our_entry_gives_back_the_file_byte_for_byte(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    original = path.read_bytes()
    write_entries(client, path, {NAME: ours(client)})
    with_ours = path.read_bytes()

    assert write_entries(client, path, {}, [NAME])

    assert path.read_bytes() == original
    assert backup_path(path).read_bytes() == with_ours, "exactly one backup: the version just replaced"
    assert NAME not in read_entries(client, path)


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_other_servers_may_change_under_us_between_observe_and_write(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    observed = read_entries(client, path)
    write_entries(client, path, {"someone-else": build_entry(client, "someone-else", "sse", "http://h:1/sse#x")})
    write_entries(client, path, {NAME: ours(client)})
    assert read_entries(client, path).keys() == {*observed, "someone-else", NAME}


# -- refusing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_an_unparseable_file_is_left_untouched_and_the_error_says_where(client: ClientSpec, home: Path) -> None:
    text, line, column = BROKEN[family(client)]
    path = config_path(client, home, "linux")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Template(text).substitute(servers=client.servers[0]), encoding="utf-8")
    before = path.read_bytes()

    with pytest.raises(ClientFileParseError) as caught:
        write_entries(client, path, {NAME: ours(client)})

    assert (caught.value.origin.file, caught.value.origin.line, caught.value.origin.column) == (path, line, column)
    assert str(caught.value).startswith(f"{path}:{line}:{column}: ")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no backup, temp or lock file left"
    with pytest.raises(ClientFileParseError):
        read_entries(client, path)


@contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """Hold ToolHive's lock the way thv does: flock on `<file>.lock`, from another open file description."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_a_held_lock_blocks_the_write_until_the_deadline(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    before = path.read_bytes()
    with held_lock(path), pytest.raises(ClientFileLockedError) as caught:
        write_entries(client, path, {NAME: ours(client)}, lock_timeout=0.1)
    assert caught.value.lock_path == lock_path(path)
    assert str(lock_path(path)) in str(caught.value)
    assert caught.value.holder is not None and caught.value.holder.startswith(f"pid {os.getpid()}")
    assert path.read_bytes() == before


def test_a_writer_waits_for_the_lock_and_then_proceeds(home: Path) -> None:
    cursor = client_table().get("cursor")
    path = seeded(cursor, home)
    released = threading.Event()

    def hold() -> None:
        with held_lock(path):
            started.set()
            released.wait(5)

    started = threading.Event()
    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(5)
    timer = threading.Timer(0.3, released.set)
    timer.start()
    try:
        assert write_entries(cursor, path, {NAME: ours(cursor)}, lock_timeout=5)
        assert released.is_set(), "the write went ahead while the lock was held"
    finally:
        released.set()
        holder.join()
        timer.cancel()


# -- mode and backup ------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_the_file_mode_is_kept_and_the_backup_is_as_private(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    path.chmod(0o640)
    write_entries(client, path, {NAME: ours(client)})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(backup_path(path).stat().st_mode) == 0o640


@pytest.mark.parametrize("client", CLIENTS, ids=IDS)
def test_one_backup_holds_the_previous_version(client: ClientSpec, home: Path) -> None:
    path = seeded(client, home)
    original = path.read_bytes()
    write_entries(client, path, {NAME: ours(client)})
    assert backup_path(path).read_bytes() == original
    first = path.read_bytes()
    write_entries(client, path, {NAME: ours(client, "http://127.0.0.1:41235/mcp")})
    assert backup_path(path).read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name)) == [
        path.name,
        backup_path(path).name,
    ]


# -- as the client reads it -----------------------------------------------------------------------------


def test_cursor_reads_our_url_from_a_plain_json_file(home: Path) -> None:
    cursor = client_table().get("cursor")
    path = config_path(cursor, home, "linux")
    write_entries(cursor, path, {NAME: build_entry(cursor, NAME, "stdio", URL)}, create=True)
    document = json.loads(path.read_text(encoding="utf-8"))  # what Cursor does: no comment stripping
    assert document["mcpServers"][NAME] == {"url": URL, "type": "http"}
