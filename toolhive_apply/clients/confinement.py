"""Where a client file may be read or written, judged on the path the kernel will really use.

Any component of a path can be a symbolic link (`~/.cursor -> /etc`), so the decision is made on the fully resolved
path: a file may be used when it lands inside the home directory, or exactly where the user's `config_path` says (the
user, not a link, chose that file). Nothing is created through a link that leads nowhere. handles.py then opens what
was judged without following any link, so a link swapped in after the check is refused rather than followed.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from toolhive_apply.clients.errors import ClientFileLinkError


def normal(path: Path) -> Path:
    """Absolute, with `.` and `..` folded as written (never by resolving links): one spelling per path."""
    return Path(os.path.normpath(Path(path).absolute()))


@dataclass(frozen=True, slots=True)
class Confinement:
    """The places a client file may land once every link is followed.

    Invariant: `home` and `named` are `normal()` paths. A file may land under the resolved `home`, or exactly at
    `named`, the path the user gave (a file reached through a link must be named by its real path to be allowed).
    """

    home: Path | None = None
    named: Path | None = None

    @classmethod
    def exact(cls, path: Path) -> Confinement:
        """Only `path` itself, through no link at all: what a caller that knows of no home directory gets."""
        return cls(None, normal(path))

    @classmethod
    def of(cls, home: Path | None, named: Path | None = None) -> Confinement:
        return cls(None if home is None else normal(home), None if named is None else normal(named))

    def admits(self, real: Path, *, directory: bool = False) -> bool:
        """Whether a resolved file (or, with `directory`, the directory holding a lock) is an allowed place."""
        if self.named is not None and real == (self.named.parent if directory else self.named):
            return True
        return self.home is not None and real.is_relative_to(os.path.realpath(self.home))

    def outside(self) -> str:
        """How a refusal says where the file was not: the words after "leads to X, ..."."""
        if self.home is None:
            return "and no home directory was given to allow that (only the path itself, through no link)"
        return f"outside the home directory {self.home}; toolhive-apply does not follow it"


@dataclass(frozen=True, slots=True)
class Place:
    """A checked client file. `path` as given (normalised), `real` where its bytes are, `lock_dir` the resolved
    directory of `path`, where ToolHive puts `<file>.lock` (beside the name it was given, even when that is a link).
    """

    path: Path
    real: Path
    lock_dir: Path


def locate(path: Path, confinement: Confinement) -> Place:
    """Resolve `path` fully and refuse it when it leads out of `confinement` or through a dangling link."""
    path = normal(path)
    real = Path(os.path.realpath(path))
    _refuse_dangling(path)
    if not confinement.admits(real):
        via = "is a symbolic link to" if path.is_symlink() else "leads through a symbolic link to"
        raise ClientFileLinkError(
            path,
            f"{via} {real}, {confinement.outside()}",
            hint=f"to use {real} on purpose, set this client's config_path to {real} (the file itself, not a link)",
        )
    lock_dir = Path(os.path.realpath(path.parent))
    if not confinement.admits(lock_dir, directory=True):
        raise ClientFileLinkError(
            path,
            f"its directory leads through a symbolic link to {lock_dir}, {confinement.outside()}",
            hint=f"set this client's config_path to {real}, the file itself",
        )
    return Place(path, real, lock_dir)


def _refuse_dangling(path: Path) -> None:
    """A link on the way whose target does not exist would make us create its target: refuse, naming the link.

    Prefixes are looked at from the root down; nothing can exist beyond a missing one (or a dangling link).
    """
    for prefix in (*reversed(path.parents), path):
        try:
            info = os.lstat(prefix)
        except OSError:
            return  # missing (or unreadable: opening it later reports that)
        if not stat.S_ISLNK(info.st_mode):
            continue
        try:
            prefix.stat()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return
            if exc.errno == errno.ELOOP:
                problem = f"{prefix} is a symbolic link that loops back on itself; toolhive-apply does not follow it"
            else:
                problem = (
                    f"{prefix} is a symbolic link to {prefix.readlink()}, which does not exist; "
                    "toolhive-apply does not create files through a dangling link"
                )
            raise ClientFileLinkError(
                path,
                problem,
                hint="create what the link points to, or remove the link",
            ) from None
