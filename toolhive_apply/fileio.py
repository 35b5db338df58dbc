"""Every file toolhive-apply writes goes through here: private, never through a planted link, never torn.

Temp files get fresh unpredictable names created exclusively (O_EXCL) and already 0600, so no name can be planted
and no content is readable during the write; renames replace a link at the target instead of following it; logs
and keys are opened with O_NOFOLLOW; our own directories are 0700. A reader sees the old content or the new one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

PRIVATE_FILE_MODE: Final = 0o600
PRIVATE_DIR_MODE: Final = 0o700
_LOOSE_BITS: Final = 0o077
_WRITE_BITS: Final = 0o022


class UnsafePathError(OSError):
    """A path we would write or read a secret through is not what it must be (a link, someone else's, shared)."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/toolhive-apply` (default `~/.local/state/toolhive-apply`): debug log, client records, keys.

    The one derivation of it: a relative XDG_STATE_HOME is ignored (the XDG base directory spec), and the home is
    `environ`'s HOME, so a caller's own environment decides everything."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or ""
    if not Path(base).is_absolute():
        base = str(Path(env.get("HOME") or str(Path.home())) / ".local" / "state")
    return Path(base) / "toolhive-apply"


def replace_atomically(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it over `path`, fsync the directory.

    mkstemp creates the temp file with O_EXCL and mode 0600 under a random name: a link planted at any name we might
    use is never followed, and nothing is readable before `mode` is set. The rename replaces a link at `path` itself
    rather than writing where it points.
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def create_exclusively(path: Path, data: bytes) -> bool:
    """Create `path` (0600) holding `data` unless it exists; False when it already did. Never torn, never a link.

    The content is written to a private temp file first and hard-linked into place: link(2) fails on any existing
    name (a planted symlink included), so two racing writers cannot both win and a crash leaves no empty key file.
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
    finally:
        temp.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return True


class InputFileError(OSError):
    """A file a manifest names cannot be read as one: missing, not a regular file, or larger than allowed."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.reason = reason


def read_input(path: Path, limit: int) -> bytes:
    """A file a manifest names (manifests, JWKS, policies, CA bundles, secret files, registries), read as its
    consumer would: a regular file (links followed, as every reader of it follows them), at most `limit` bytes.

    Opened without blocking, so a FIFO or a device named by a manifest is refused instead of hanging or streaming
    forever; the size is judged on what was read, not on a stat that could change in between.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputFileError(path, "not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(path, f"larger than {_size_text(limit)}")
    return data


def _size_text(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def read_private(path: Path) -> bytes | None:
    """The content of a file only we may read (a key), or None when it does not exist.

    Refused (UnsafePathError) when it is a link, not a regular file, someone else's, or open to others: a key that
    others could read or replace is not a key.
    """
    return _read_checked(path, _LOOSE_BITS)


def read_owned(path: Path) -> bytes | None:
    """The content of a file only we can have written (a cache entry), or None when it does not exist."""
    return _read_checked(path, _WRITE_BITS)


def _read_checked(path: Path, forbidden_bits: int) -> bytes | None:
    try:  # O_NONBLOCK: a FIFO planted at the name is refused below instead of hanging the run in open(2)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise UnsafePathError(f"{path} is a symbolic link; refusing to read it") from None
        raise UnsafePathError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path} is not a regular file")
        if info.st_uid != os.getuid():
            raise UnsafePathError(f"{path} belongs to uid {info.st_uid}, not to the user running toolhive-apply")
        if info.st_mode & forbidden_bits:
            mode = stat.S_IMODE(info.st_mode)
            raise UnsafePathError(f"{path} is open to other users (mode {mode:04o}); chmod 600 it")
        return handle.read()


def append_private(path: Path, data: bytes) -> None:
    """Append to a log file of ours: created 0600, never through a link, a looser existing one is tightened."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "ab") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise UnsafePathError(f"{path} is not a regular file of the user running toolhive-apply")
        if info.st_mode & _LOOSE_BITS:
            os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
        handle.write(data)


def private_dir(directory: Path, *, levels: int = 1) -> Path:
    """Make `directory` and its `levels - 1` nearest parents 0700 (created so, or tightened); returns `directory`.

    Higher parents (such as XDG_STATE_HOME itself) are created with the default mode and left as they are. A level
    that is a link or a directory of another user is refused: our state must not land where someone else chose.
    """
    chain = [directory, *directory.parents][:levels]
    top = chain[-1].parent
    top.mkdir(parents=True, exist_ok=True)
    for level in reversed(chain):
        with contextlib.suppress(FileExistsError):
            level.mkdir(mode=PRIVATE_DIR_MODE)
        _tighten_dir(level)
    return directory


def _tighten_dir(level: Path) -> None:
    link = os.lstat(level)
    if stat.S_ISLNK(link.st_mode) and link.st_uid != os.getuid():
        raise UnsafePathError(f"{level} is a symbolic link of uid {link.st_uid}; refusing to keep state there")
    info = level.stat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafePathError(f"{level} is not a directory of the user running toolhive-apply")
    if info.st_mode & _LOOSE_BITS:
        level.chmod(PRIVATE_DIR_MODE)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable, not only the renamed file's content."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
