"""Transactional rewrites of client config files, compatible with ToolHive's own writers.

Check where the file really is (confinement.py), lock `<file>.lock` with flock as ToolHive does (5 s deadline), read
at most the format's size limit, change, validate the candidate, keep the previous version as `<file>.bak`, write a
temp file in the same directory, fsync, rename, and put the old bytes back if anything fails after that. Every step
after the check goes through directory handles (handles.py), so no link is followed that was not judged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from toolhive_apply.clients.confinement import Confinement, Place, locate
from toolhive_apply.clients.errors import (
    ClientConfigError,
    ClientFileLockedError,
    ClientFileMissingError,
    ClientFileParseError,
    ClientFileTooLargeError,
    ClientFileWriteError,
)
from toolhive_apply.clients.handles import FILE_MODE, Directory
from toolhive_apply.errors import Origin

LOCK_TIMEOUT: Final = 5.0  # pkg/fileutils/lock.go DefaultLockTimeout
LOCK_RETRY: Final = 0.1  # and its retry interval
DEFAULT_LIMIT: Final = 10 << 20  # bytes read at most from one file when the caller names no limit


@dataclass(frozen=True, slots=True)
class FileEdit:
    """What a rewrite does to one file: `change` maps old text to new (pure), `validate` raises on a bad candidate.

    `limit` is the largest file (in bytes) the edit reads; `kind` names the format in the error about it.
    """

    change: Callable[[str], str]
    validate: Callable[[str], object]
    initial: str  # the text a missing file starts from
    limit: int = DEFAULT_LIMIT
    kind: str = "client"
    private: bool = False
    """The new text holds a credential (a bearer token): the file and its backup are written 0600 at most."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


@contextlib.contextmanager
def file_lock(directory: Directory, name: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold ToolHive's advisory lock `<name>.lock` in `directory`; ClientFileLockedError names it (and its holder)."""
    lock = name + ".lock"
    fd = _acquire(directory, lock, timeout)
    try:
        yield
    finally:
        # ToolHive deletes its lock files after use. Do the same while still holding the lock: a waiter that then
        # gets the old inode sees it is no longer at the path and starts over (see _acquire).
        with contextlib.suppress(OSError):
            if _same_file(fd, directory, lock):
                directory.unlink(lock)
        os.close(fd)


def _acquire(directory: Directory, lock: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    where, lock_file = directory.path / lock.removesuffix(".lock"), directory.path / lock
    while True:
        try:
            fd = directory.open_file(lock, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, FILE_MODE)
        except OSError as exc:
            raise ClientFileWriteError(where, f"cannot open the lock file {lock_file}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ClientConfigError(where, f"the lock file {lock_file} is not a regular file", hint="remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(os.fstat(fd))
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ClientFileLockedError(where, lock_file, timeout, holder) from None
            time.sleep(LOCK_RETRY)
            continue
        if _same_file(fd, directory, lock):
            return fd
        os.close(fd)  # locked a file its holder had just removed: lock the current one instead
        if time.monotonic() >= deadline:  # it keeps being replaced: give up as if it were held
            raise ClientFileLockedError(where, lock_file, timeout, None)


def _same_file(fd: int, directory: Directory, name: str) -> bool:
    there = directory.lstat(name)
    here = os.fstat(fd)
    return there is not None and (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def lock_holder(info: os.stat_result) -> str | None:
    """`pid N (command)` of the process holding a flock on the file `info` describes, from /proc/locks (Linux)."""
    try:
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


def decode(data: bytes | bytearray, path: Path) -> str:
    """UTF-8 text; bytes that are not UTF-8 are a positioned parse error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ClientFileParseError(Origin(path, line, column), "the file is not valid UTF-8") from None


def _read(directory: Directory, name: str, limit: int, kind: str) -> tuple[str, os.stat_result] | None:
    try:
        found = directory.read(name, limit, kind)
    except OSError as exc:
        raise ClientConfigError(directory.path / name, f"cannot read: {exc.strerror}") from exc
    if found is None:
        return None
    data, info = found
    return decode(data, directory.path / name), info


def read_text(
    path: Path, confinement: Confinement | None = None, *, limit: int = DEFAULT_LIMIT, kind: str = "client"
) -> str | None:
    """The file's text, None when it does not exist. It must be where `confinement` allows (default: `path` itself,
    through no link) and at most `limit` bytes; otherwise a ClientConfigError naming the file says why not.
    """
    place = locate(path, confinement or Confinement.exact(path))
    directory = _open_directory(place.real.parent, create=False)
    if directory is None:
        return None
    with directory:
        found = _read(directory, place.real.name, limit, kind)
    return None if found is None else found[0]


def _open_directory(path: Path, *, create: bool) -> Directory | None:
    try:
        return Directory.open(path, create=create)
    except OSError as exc:
        where = Path(exc.filename) if isinstance(exc.filename, str) else path
        raise ClientConfigError(where, f"cannot open the directory: {exc.strerror}") from exc


def rewrite(
    path: Path,
    edit: FileEdit,
    *,
    create: bool,
    lock_timeout: float = LOCK_TIMEOUT,
    confinement: Confinement | None = None,
) -> bool:
    """Apply `edit` to the file under its lock; True when the file changed. A missing file needs `create`.

    The file must be where `confinement` allows (default: `path` itself, through no link); a link to a file
    inside it (a dotfile link) stays a link and the file it points to is replaced.
    """
    place = locate(path, confinement or Confinement.exact(path))
    lock_dir = _open_directory(place.lock_dir, create=create)
    if lock_dir is None:
        raise ClientFileMissingError(place.path, "does not exist (nor does its directory)")
    with lock_dir, file_lock(lock_dir, place.path.name, lock_timeout):
        if place.real.parent == place.lock_dir:
            return _rewrite_locked(place, lock_dir, edit, create=create)
        directory = _open_directory(place.real.parent, create=False)  # a dotfile link: the file is elsewhere
        if directory is None:
            raise ClientFileMissingError(place.path, f"leads to {place.real}, which no longer exists")
        with directory:
            return _rewrite_locked(place, directory, edit, create=create)


@dataclass(frozen=True, slots=True)
class _Target:
    """The file being replaced: its name in its (already opened) directory."""

    directory: Directory
    name: str

    @property
    def path(self) -> Path:
        return self.directory.path / self.name


def _rewrite_locked(place: Place, directory: Directory, edit: FileEdit, *, create: bool) -> bool:
    target = _Target(directory, place.real.name)
    found = _read(directory, target.name, edit.limit, edit.kind)
    if found is None and not create:
        raise ClientFileMissingError(place.path, "does not exist")
    old, info = found if found is not None else (None, None)
    new = edit.change(edit.initial if old is None else old)
    if new == (edit.initial if old is None else old):
        return False
    data = new.encode("utf-8")
    if len(data) > edit.limit:  # it could not be read back next time
        raise ClientFileTooLargeError(place.path, len(data), edit.limit, edit.kind, edited=True)
    edit.validate(new)
    _replace(target, data, None if old is None else old.encode("utf-8"), info, private=edit.private)
    return True


def _replace(
    target: _Target, data: bytes, old: bytes | None, info: os.stat_result | None, *, private: bool = False
) -> None:
    """Back up, write atomically with the old mode and owner, verify; on failure put the old bytes back.

    `private`: the new text holds a credential, so neither it nor the backup (which may hold the one it replaces)
    is readable by anyone but the owner, whatever the old mode was."""
    try:
        if old is not None:
            _atomic_write(target, target.name + ".bak", old, info, private=private)
        _atomic_write(target, target.name, data, info, private=private)
        _verify(target, data)
    except BaseException as exc:  # an interrupt must not leave a half-done transaction either
        problem = _restore(target, old, info)
        if isinstance(exc, OSError):
            raise ClientFileWriteError(target.path, f"write failed: {exc}{problem}") from exc
        raise


def _verify(target: _Target, data: bytes) -> None:
    try:
        found = target.directory.read(target.name, len(data), "client")
    except ClientConfigError:
        found = None
    if found is None or found[0] != data:
        raise OSError(f"{target.path} does not read back as written")


def _restore(target: _Target, old: bytes | None, info: os.stat_result | None) -> str:
    try:
        if old is None:
            target.directory.unlink(target.name)
        else:
            try:
                found = target.directory.read(target.name, len(old), "client")
            except ClientConfigError:
                found = None
            if found is None or found[0] != old:
                _atomic_write(target, target.name, old, info)
    except (OSError, ClientConfigError) as exc:
        return f"; restoring the previous version failed too ({exc}); it is in {target.path}.bak"
    return "; the previous version was kept"


def _atomic_write(
    target: _Target, name: str, data: bytes, like: os.stat_result | None, *, private: bool = False
) -> None:
    """`data` as `name` beside the target, with the permissions (and owner, when allowed) of `like`.

    Only the permission bits: a settings file never needs setuid, setgid or sticky, and copying them onto new
    content (a file hard-linked to a setuid program, replaced by root) would hand them to that content.
    """
    mode = stat.S_IMODE(like.st_mode) & 0o777 if like is not None else FILE_MODE
    if private:
        mode &= FILE_MODE
    owner = (like.st_uid, like.st_gid) if like is not None else None
    target.directory.write_atomically(name, data, mode, owner)
