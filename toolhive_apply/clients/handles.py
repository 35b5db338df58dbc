"""Directory handles: a directory reached without following any link, and file operations relative to it.

A path is judged once (confinement.py) and never looked up by name again: the directory is opened one component at a
time with O_NOFOLLOW, and every later open, rename and unlink is relative to its descriptor and refuses a link in the
final component. A link planted after the check, or at `<file>.lock`, `<file>.bak` or a temp name, is not followed.
Replacing is always rename-based, so a file with other hard links is replaced here and left alone there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType
from typing import Final, NoReturn

from toolhive_apply.clients.errors import ClientConfigError, ClientFileLinkError, ClientFileTooLargeError

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700
_PATH: Final = getattr(os, "O_PATH", os.O_RDONLY)  # Linux: walk directories we may search but not list
_WALK: Final = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 1 << 20


class Directory:
    """An open directory; `path` is where it was when opened (resolved, so it names no link)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool) -> Directory | None:
        """Open the resolved directory `path` from `/` down, creating missing levels (0700) when asked.

        None when a level is missing and `create` is false. A level that is a link (one swapped in since `path`
        was resolved) or not a directory is a ClientFileLinkError / ClientConfigError naming it.
        """
        names = path.parts[1:]
        fd = os.open("/", (os.O_RDONLY if not names else _PATH) | _WALK)
        try:
            for depth, name in enumerate(names, start=1):
                flags = (os.O_RDONLY if depth == len(names) else _PATH) | _WALK
                step = _step(fd, name, flags, Path(*path.parts[: depth + 1]), create=create)
                os.close(fd)
                fd = -1
                if step is None:
                    return None
                fd = step
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return cls(fd, path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- single files -----------------------------------------------------------------------------------

    def open_file(self, name: str, flags: int, mode: int = FILE_MODE) -> int:
        """os.open relative to this directory; a link at `name` is refused, never followed."""
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ClientFileLinkError(
                    self.path / name,
                    "is a symbolic link; toolhive-apply does not follow it here",
                    hint="remove the link (a real file in its place is fine)",
                ) from None
            raise

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def fsync(self) -> None:
        """Make a rename in this directory durable, not only the renamed file's content."""
        os.fsync(self.fd)

    def read(self, name: str, limit: int, kind: str) -> tuple[bytearray, os.stat_result] | None:
        """The bytes of regular file `name` and its status, None when it is missing; never more than `limit` bytes.

        The size is checked (fstat) before reading, and the read stops one byte past the limit (a growing file).
        """
        try:
            fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted here must not block us
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ClientConfigError(self.path / name, "is not a regular file; toolhive-apply does not read it")
            if info.st_size > limit:
                raise ClientFileTooLargeError(self.path / name, info.st_size, limit, kind)
            data = bytearray()
            while len(data) <= limit:
                chunk = os.read(fd, min(_CHUNK, limit + 1 - len(data)))
                if not chunk:
                    return data, info
                data += chunk
        finally:
            os.close(fd)
        raise ClientFileTooLargeError(self.path / name, limit + 1, limit, kind)

    def write_atomically(self, name: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
        """Temp file (O_EXCL) beside `name`, fsync, mode and owner, rename over `name`, fsync the directory.

        A reader sees the old content or the new one. A link at `name` is replaced, not written through.
        """
        temp, fd = self._temp(name)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fchmod(stream.fileno(), mode)
                if owner is not None:
                    with contextlib.suppress(PermissionError):
                        os.fchown(stream.fileno(), *owner)
                os.fsync(stream.fileno())
            os.replace(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.unlink(temp)
            raise
        self.fsync()

    def _temp(self, name: str) -> tuple[str, int]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for _ in range(100):
            temp = f".{name}.{secrets.token_hex(4)}.tmp"
            try:
                return temp, self.open_file(temp, flags, FILE_MODE)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temporary file name", str(self.path / f".{name}.*.tmp"))


def _step(parent: int, name: str, flags: int, here: Path, *, create: bool) -> int | None:
    """Open one level below `parent`, creating it when missing and asked to; OSErrors name the whole path."""
    try:
        try:
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, DIR_MODE, dir_fd=parent)
        return os.open(name, flags, dir_fd=parent)
    except NotADirectoryError:
        _refuse(parent, name, here)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(here)) from None


def _refuse(parent: int, name: str, here: Path) -> NoReturn:
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        is_link = False
    if is_link:
        raise ClientFileLinkError(
            here,
            "is a symbolic link, which toolhive-apply does not follow here",
            hint="replace the link by a directory (or, if it just changed, retry)",
        )
    raise ClientConfigError(here, "is not a directory")
