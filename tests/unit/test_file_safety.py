"""Every file toolhive-apply writes: 0600 in 0700 directories, fresh temp names, never through a planted link.

Covers the writer itself (toolhive_apply/fileio.py) and each file that goes through it: a saved plan, the debug
log, the client state, the registry cache, the stack key file of the environment store, the encrypted store's lock.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from toolhive_apply.fileio import (
    UnsafePathError,
    append_private,
    create_exclusively,
    private_dir,
    read_owned,
    read_private,
    replace_atomically,
)
from toolhive_apply.providers.stack_key import (
    KEY_ENV,
    StackKeyError,
    environment_key,
    local_key_path,
    read_environment_key,
    stack_key,
)
from toolhive_apply.stores.environment import EnvironmentStore

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def victim(tmp_path: Path) -> Path:
    """A file a planted link points at: it must never change."""
    target = tmp_path / "victim"
    target.write_text("untouched\n", encoding="utf-8")
    return target


def test_the_atomic_writer_replaces_a_link_at_the_target_instead_of_writing_through_it(tmp_path: Path) -> None:
    target = victim(tmp_path)
    path = tmp_path / "out" / "plan.json"
    path.parent.mkdir()
    path.symlink_to(target)
    for name in (".plan.json.tmp", "plan.json.tmp", ".plan.json.tmp-x"):  # the old predictable names and look-alikes
        (path.parent / name).symlink_to(target)
    replace_atomically(path, b"new")
    assert not path.is_symlink() and path.read_bytes() == b"new" and mode(path) == 0o600
    assert target.read_text(encoding="utf-8") == "untouched\n"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".plan.json.tmp",
        ".plan.json.tmp-x",
        "plan.json",
        "plan.json.tmp",
    ]


def test_the_atomic_writer_never_leaves_a_temp_file_and_sets_the_mode_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "f"
    replace_atomically(path, b"a", mode=0o640)
    assert mode(path) == 0o640
    with pytest.raises(IsADirectoryError):
        replace_atomically(tmp_path, b"a")  # a directory is not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_create_exclusively_never_overwrites_and_never_follows_a_link(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert create_exclusively(path, b"first")
    assert not create_exclusively(path, b"second")
    assert path.read_bytes() == b"first" and mode(path) == 0o600
    target = victim(tmp_path)
    link = tmp_path / "linked"
    link.symlink_to(target)
    assert not create_exclusively(link, b"x")
    assert target.read_text(encoding="utf-8") == "untouched\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "linked", "victim"]


def test_a_private_file_is_read_only_when_it_is_ours_alone(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert read_private(path) is None
    path.write_bytes(b"k")
    path.chmod(0o600)
    assert read_private(path) == b"k"
    path.chmod(0o644)
    with pytest.raises(UnsafePathError, match="open to other users"):
        read_private(path)
    assert read_owned(path) == b"k"  # a cache entry may be readable, not writable by others
    path.chmod(0o666)
    with pytest.raises(UnsafePathError, match="open to other users"):
        read_owned(path)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_private(link)


@as_root
def test_a_file_or_directory_of_another_user_is_never_ours(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"k")
    path.chmod(0o600)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(UnsafePathError, match="belongs to uid"):
        read_private(path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, NOBODY, NOBODY)
    planted = tmp_path / "planted"
    planted.symlink_to(foreign)
    os.lchown(planted, NOBODY, NOBODY)
    with pytest.raises(UnsafePathError, match="symbolic link of uid"):
        private_dir(planted)
    with pytest.raises(UnsafePathError, match="not a directory of the user"):
        private_dir(foreign)


def test_a_log_is_appended_0600_and_never_through_a_link(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    append_private(log, b"one\n")
    append_private(log, b"two\n")
    assert log.read_bytes() == b"one\ntwo\n" and mode(log) == 0o600
    log.chmod(0o644)
    append_private(log, b"three\n")
    assert mode(log) == 0o600  # an older, looser log is tightened
    target = victim(tmp_path)
    planted = tmp_path / "planted.log"
    planted.symlink_to(target)
    with pytest.raises(OSError):
        append_private(planted, b"x")
    assert target.read_text(encoding="utf-8") == "untouched\n"


def test_private_dirs_are_made_0700_and_looser_ones_of_ours_are_tightened(tmp_path: Path) -> None:
    base = tmp_path / "state"
    base.mkdir()
    base.chmod(0o755)  # XDG_STATE_HOME itself: the user's
    directory = private_dir(base / "toolhive-apply" / "clients", levels=2)
    assert mode(base / "toolhive-apply") == 0o700 and mode(directory) == 0o700
    (base / "toolhive-apply").chmod(0o755)
    private_dir(directory, levels=2)
    assert mode(base / "toolhive-apply") == 0o700
    assert mode(base) == 0o755  # above the levels asked for, nothing is changed


def test_the_debug_log_is_0600_in_a_0700_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolhive_apply.cli import app as cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "toolhive-apply").mkdir(mode=0o755)  # made by an older version
    assert cli.internal_error(RuntimeError("boom")) == 1
    log = tmp_path / "toolhive-apply" / "debug.log"
    assert mode(log) == 0o600 and mode(log.parent) == 0o700
    assert "RuntimeError: boom" in log.read_text(encoding="utf-8")
    log.unlink()
    target = victim(tmp_path)
    log.symlink_to(target)
    assert cli.internal_error(RuntimeError("again")) == 1  # reported, but not written through the link
    assert target.read_text(encoding="utf-8") == "untouched\n"


def test_the_client_state_lives_0600_in_0700_directories(tmp_path: Path) -> None:
    from toolhive_apply.providers.client.state import ClientRecord, ClientState

    (tmp_path / "toolhive-apply").mkdir(mode=0o755)
    state = ClientState("s", tmp_path / "toolhive-apply" / "clients")
    state.set("cursor", ClientRecord.of(tmp_path / "cursor.json", ["default"], ["a"]))
    assert mode(tmp_path / "toolhive-apply") == 0o700 and mode(tmp_path / "toolhive-apply" / "clients") == 0o700
    assert mode(state.path) == 0o600


def test_the_registry_cache_is_private_and_a_planted_entry_is_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolhive_apply.registry import sources

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data_path, meta_path = sources._cache_paths("url:https://registry.example/r.json")
    sources._write_cache(data_path, meta_path, {"servers": {}}, {"fetched_at": 1.0})
    assert mode(data_path) == 0o600 and mode(meta_path) == 0o600
    assert mode(data_path.parent) == 0o700 and mode(data_path.parent.parent) == 0o700
    assert sources._read_owned(data_path) == b'{"servers": {}}'
    planted = tmp_path / "planted.json"
    planted.write_text('{"servers": {"evil": {}}}', encoding="utf-8")
    data_path.unlink()
    data_path.symlink_to(planted)
    assert sources._read_owned(data_path) is None
    sources._write_cache(data_path, meta_path, {"servers": {}}, {"fetched_at": 2.0})
    assert not data_path.is_symlink() and planted.read_text(encoding="utf-8") == '{"servers": {"evil": {}}}'


def test_the_environment_stores_key_is_random_private_and_never_guessed_from_the_stack_name(tmp_path: Path) -> None:
    environ = {"XDG_STATE_HOME": str(tmp_path)}
    assert read_environment_key("a", environ) is None  # verifying never makes a key
    assert not (tmp_path / "toolhive-apply").exists()
    first = environment_key("a", environ)
    assert environment_key("a", environ) == first
    assert environment_key("b", environ) != first
    assert environment_key("a", {"XDG_STATE_HOME": str(tmp_path / "elsewhere")}) != first  # random, not derived
    path = local_key_path("a", environ)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    path.chmod(0o644)
    with pytest.raises(StackKeyError, match="unsafe"):
        read_environment_key("a", environ)
    assert environment_key("a", {**environ, KEY_ENV: "shared" * 6}) == environment_key("z", {KEY_ENV: "shared" * 6})
    with pytest.raises(StackKeyError, match="cannot name a key file"):
        environment_key("../a", environ)
    store = EnvironmentStore({})
    assert stack_key(store, "c", create=False, environ=environ) is None
    made = stack_key(store, "c", create=True, environ=environ)
    assert made is not None and stack_key(store, "c", create=False, environ=environ) == made


def test_a_writable_stores_key_is_made_once_and_read_back(tmp_path: Path) -> None:
    from toolhive_apply.stores.encrypted import EncryptedStore

    store = EncryptedStore(tmp_path / "secrets_encrypted", {"TOOLHIVE_SECRETS_PASSWORD": "pw"})
    assert stack_key(store, "s", create=False) is None
    made = stack_key(store, "s", create=True)
    assert made is not None and len(made) == 32
    assert stack_key(store, "s", create=True) == made
    assert stack_key(store, "t", create=False) is None
    record = next(item for item in store.list() if item.key == "toolhive-apply.hmac.s")
    assert (record.managed_by, record.stack) == ("toolhive-apply", "s")


def test_the_encrypted_stores_lock_is_never_taken_through_a_link(tmp_path: Path) -> None:
    from toolhive_apply.stores.files import locked

    target = victim(tmp_path)
    lock = tmp_path / "secrets_encrypted.lock"
    lock.symlink_to(target)
    with pytest.raises(OSError), locked(lock, exclusive=True, timeout=1):
        pass
    assert target.read_text(encoding="utf-8") == "untouched\n"
