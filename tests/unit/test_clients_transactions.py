"""The write transaction: failures restore the previous bytes, links survive, concurrent writers serialise."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.client_entries import read_entries
from toolhive_apply.clients import (
    ClientConfigError,
    ClientFileLockedError,
    ClientFileWriteError,
    Confinement,
    backup_path,
    build_entry,
    get_client,
    lock_path,
    observe,
    write_entries,
)
from toolhive_apply.clients import files as files_module
from toolhive_apply.clients.files import FileEdit, rewrite

CURSOR = get_client("cursor")
ORIGINAL = '{\n  "mcpServers": {\n    "theirs": {"url": "http://h:1/mcp"}\n  }\n}\n'


def entry(port: int = 1) -> dict[str, object]:
    return build_entry(CURSOR, "ours", "streamable-http", f"http://127.0.0.1:{port}/mcp")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / ".cursor" / "mcp.json"
    target.parent.mkdir()
    target.write_text(ORIGINAL, encoding="utf-8")
    return target


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".tmp", ".lock")))


def fail_verify(target: Path, data: bytes) -> None:
    raise OSError("disk on fire")


def test_a_failure_after_the_replace_puts_the_previous_bytes_back(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "_verify", fail_verify)
    with pytest.raises(ClientFileWriteError, match="disk on fire; the previous version was kept"):
        write_entries(CURSOR, path, {"ours": entry()})
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert leftovers(path.parent) == []


def test_a_failed_creation_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "_verify", fail_verify)
    target = tmp_path / "new" / "mcp.json"
    with pytest.raises(ClientFileWriteError):
        write_entries(CURSOR, target, {"ours": entry()}, create=True)
    assert not target.exists()
    assert leftovers(target.parent) == []


def test_a_failure_before_the_replace_leaves_the_file_and_no_temp(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync
    calls: list[int] = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:  # backup file, backup directory, then the new file's data
            raise OSError("I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ClientFileWriteError, match="I/O error"):
        write_entries(CURSOR, path, {"ours": entry()})
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert leftovers(path.parent) == []


def test_an_interrupt_after_the_replace_restores_and_propagates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(target: Path, data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files_module, "_verify", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_entries(CURSOR, path, {"ours": entry()})
    assert path.read_text(encoding="utf-8") == ORIGINAL


def test_a_candidate_that_fails_validation_is_never_written(path: Path) -> None:
    def refuse(text: str) -> None:
        raise ClientConfigError(path, "no")

    edit = FileEdit(change=lambda text: text + "\n", validate=refuse, initial="{}\n")
    with pytest.raises(ClientConfigError, match="no"):
        rewrite(path, edit, create=False)
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert not backup_path(path).exists()


def test_a_symlinked_config_stays_a_link_and_its_target_is_updated(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "cursor-mcp.json"
    real.write_text(ORIGINAL, encoding="utf-8")
    link = tmp_path / ".cursor" / "mcp.json"
    link.parent.mkdir()
    link.symlink_to(real)

    assert write_entries(CURSOR, link, {"ours": entry()}, confinement=Confinement.of(tmp_path))

    assert link.is_symlink() and link.resolve() == real
    assert read_entries(CURSOR, real)["ours"] == entry()
    assert backup_path(real).read_text(encoding="utf-8") == ORIGINAL


def test_concurrent_writers_each_keep_their_entry(path: Path) -> None:
    names = [f"w{i}" for i in range(8)]
    errors: list[Exception] = []

    def write(name: str) -> None:
        try:
            write_entries(CURSOR, path, {name: build_entry(CURSOR, name, "sse", f"http://h:1/sse#{name}")})
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(read_entries(CURSOR, path)) == {"theirs", *names}
    assert leftovers(path.parent) == []


def test_the_lock_error_names_the_process_holding_it(path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(lock_path(path)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(ClientFileLockedError) as caught:
            write_entries(CURSOR, path, {"ours": entry()}, lock_timeout=0.2)
        assert caught.value.holder is not None and caught.value.holder.startswith(f"pid {holder.pid} (python")
        assert f"lock {lock_path(path)} is held by pid {holder.pid}" in str(caught.value)
    finally:
        holder.communicate(timeout=5)  # closes its stdin (so it exits) and both pipes
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert write_entries(CURSOR, path, {"ours": entry()}, lock_timeout=0.2), "free again once the holder exits"


def test_a_name_cannot_be_both_upserted_and_removed(path: Path) -> None:
    with pytest.raises(ValueError, match="ours"):
        write_entries(CURSOR, path, {"ours": entry()}, ["ours"])


def test_nothing_to_add_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "none" / "mcp.json"
    assert not write_entries(CURSOR, target, {}, ["ours"], create=True)
    assert not target.parent.exists()


def test_observe_tells_a_missing_file_from_an_empty_one(tmp_path: Path) -> None:
    target = tmp_path / "mcp.json"
    assert observe(CURSOR, target).exists is False
    target.write_text("", encoding="utf-8")
    found = observe(CURSOR, target)
    assert (found.exists, dict(found.entries)) == (True, {})


def test_bytes_that_are_not_utf8_are_a_positioned_error(path: Path) -> None:
    path.write_bytes(b'{\n  "a": "caf\xe9"\n}\n')
    with pytest.raises(ClientConfigError) as caught:
        read_entries(CURSOR, path)
    assert str(caught.value).startswith(f"{path}:2:12: ")


def test_a_directory_where_the_file_should_be_is_a_typed_error(tmp_path: Path) -> None:
    target = tmp_path / "mcp.json"
    target.mkdir()
    with pytest.raises(ClientConfigError, match="is not a regular file"):
        read_entries(CURSOR, target)
