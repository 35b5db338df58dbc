"""Transactional rewrites of client config files, compatible with ToolHive's own writers.

Lock `<file>.lock` with flock as ToolHive does (5 s deadline), read, change, validate the candidate, keep the
previous version as `<file>.bak`, write a temp file in the same directory, fsync, `os.replace`, and put the
old bytes back if anything fails after that. This is Ansible `copy` and pipx's transaction in one place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from toolhive_apply.clients.errors import (
    ClientConfigError,
    ClientFileLockedError,
    ClientFileMissingError,
    ClientFileParseError,
    ClientFileWriteError,
)
from toolhive_apply.errors import Origin
from toolhive_apply.fileio import fsync_directory

LOCK_TIMEOUT: Final = 5.0  # pkg/fileutils/lock.go DefaultLockTimeout
LOCK_RETRY: Final = 0.1  # and its retry interval
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


@dataclass(frozen=True, slots=True)
class FileEdit:
    """What a rewrite does to one file: `change` maps old text to new (pure), `validate` raises on a bad candidate."""

    change: Callable[[str], str]
    validate: Callable[[str], object]
    initial: str  # the text a missing file starts from


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold ToolHive's advisory lock for `path`; ClientFileLockedError names the lock (and its holder) on timeout."""
    lock = lock_path(path)
    fd = _acquire(path, lock, timeout)
    try:
        yield
    finally:
        # ToolHive deletes its lock files after use. Do the same while still holding the lock: a waiter that then
        # gets the old inode sees it is no longer at the path and starts over (see _acquire).
        with contextlib.suppress(OSError):
            if _same_file(fd, lock):
                lock.unlink()
        os.close(fd)


def _acquire(path: Path, lock: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise ClientFileWriteError(path, f"cannot open the lock file {lock}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ClientFileLockedError(path, lock, timeout, lock_holder(lock)) from None
            time.sleep(LOCK_RETRY)
            continue
        if _same_file(fd, lock):
            return fd
        os.close(fd)  # locked a file its holder had just removed: lock the current one instead


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def lock_holder(lock: Path) -> str | None:
    """`pid N (command)` of the process holding a flock on `lock`, from /proc/locks (Linux); None if unknown."""
    try:
        info = lock.stat()
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            command = _command(fields[4])
            return f"pid {fields[4]}" + (f" ({command})" if command else "")
    return None


def _command(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def read_text(path: Path) -> str | None:
    """The file's text, None when it does not exist; bytes that are not UTF-8 are a positioned parse error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientConfigError(path, f"cannot read: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ClientFileParseError(Origin(path, line, column), "the file is not valid UTF-8") from None


def rewrite(path: Path, edit: FileEdit, *, create: bool, lock_timeout: float = LOCK_TIMEOUT) -> bool:
    """Apply `edit` to the file under its lock; True when the file changed. A missing file needs `create`."""
    if not path.parent.is_dir():
        if not create:
            raise ClientFileMissingError(path, "does not exist (nor does its directory)")
        try:
            _make_dirs(path.parent)
        except OSError as exc:
            raise ClientFileWriteError(path, f"cannot create {exc.filename}: {exc.strerror}") from exc
    with file_lock(path, lock_timeout):
        target = path.resolve() if path.is_symlink() else path  # replace the file a dotfile link points to
        old = read_text(target)
        if old is None and not create:
            raise ClientFileMissingError(path, "does not exist")
        new = edit.change(edit.initial if old is None else old)
        if new == (edit.initial if old is None else old):
            return False
        edit.validate(new)
        _replace(target, new.encode("utf-8"), None if old is None else old.encode("utf-8"))
        return True


def _make_dirs(directory: Path) -> None:
    """Create missing parents one by one: mkdir(parents=True) would give the intermediate ones the default mode."""
    missing = [parent for parent in (directory, *directory.parents) if not parent.exists()]
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=DIR_MODE)


def _replace(target: Path, data: bytes, old: bytes | None) -> None:
    """Back up, write atomically with the old mode and owner, verify; on failure put the old bytes back."""
    info = target.stat() if old is not None else None
    try:
        if old is not None:
            _atomic_write(backup_path(target), old, info)
        _atomic_write(target, data, info)
        _verify(target, data)
    except BaseException as exc:  # an interrupt must not leave a half-done transaction either
        problem = _restore(target, old, info)
        if isinstance(exc, OSError):
            raise ClientFileWriteError(target, f"write failed: {exc}{problem}") from exc
        raise


def _verify(target: Path, data: bytes) -> None:
    if target.read_bytes() != data:
        raise OSError(f"{target} does not read back as written")


def _restore(target: Path, old: bytes | None, info: os.stat_result | None) -> str:
    try:
        if old is None:
            target.unlink(missing_ok=True)
        elif not target.exists() or target.read_bytes() != old:
            _atomic_write(target, old, info)
    except OSError as exc:
        return f"; restoring the previous version failed too ({exc}); it is in {backup_path(target)}"
    return "; the previous version was kept"


def _atomic_write(target: Path, data: bytes, like: os.stat_result | None) -> None:
    """Temp file in the same directory, fsync, mode (and owner, when allowed) of `like`, os.replace, fsync dir."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), stat.S_IMODE(like.st_mode) if like else FILE_MODE)
            if like is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(stream.fileno(), like.st_uid, like.st_gid)
            os.fsync(stream.fileno())
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
