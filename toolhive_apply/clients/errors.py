"""Errors of the client-config layer, each naming the file (and position) the user has to look at.

They subclass the project's ToolhiveApplyError so cli.py renders them like every other user error.
"""

from __future__ import annotations

from pathlib import Path

from toolhive_apply.errors import Origin, ToolhiveApplyError


class ClientConfigError(ToolhiveApplyError):
    """A client config file cannot be read, parsed, locked or written; `path` names it."""

    code = "client_config"

    def __init__(self, path: Path, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}", hint=hint)
        self.path = path

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "path": str(self.path)}


class ClientFileParseError(ClientConfigError):
    """The file is not valid in its format, or its servers key holds the wrong kind of value.

    We never write over such a file: the client itself would not read it either, and a rewrite would destroy
    whatever the user was in the middle of typing.
    """

    code = "client_file_invalid"

    def __init__(self, origin: Origin, reason: str) -> None:
        ToolhiveApplyError.__init__(
            self, f"{origin}: {reason}", hint="fix the file by hand; toolhive-apply leaves it untouched until then"
        )
        self.path = origin.file
        self.origin = origin
        self.reason = reason

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "line": self.origin.line, "column": self.origin.column}


class ClientFileLockedError(ClientConfigError):
    """Another writer (ToolHive, another apply) held `<file>.lock` for longer than the deadline."""

    code = "client_file_locked"

    def __init__(self, path: Path, lock_path: Path, timeout: float, holder: str | None) -> None:
        who = f" by {holder}" if holder else ""
        super().__init__(
            path,
            f"lock {lock_path} is held{who}; gave up after {timeout:g}s",
            hint="wait for the other writer (thv, another toolhive-apply) to finish and retry",
        )
        self.lock_path = lock_path
        self.holder = holder


class ClientFileMissingError(ClientConfigError):
    """The file does not exist and the caller did not ask for it to be created."""

    code = "client_file_missing"


class ClientFileWriteError(ClientConfigError):
    """Writing failed; the previous content was restored (the message says if that failed too)."""

    code = "client_file_write_failed"


class ClientFileTooLargeError(ClientConfigError):
    """The file is larger than toolhive-apply reads for its format; only this client fails, the others go on.

    `size` is what the file held when it was opened, `limit + 1` when it grew while being read, or (`edited`) what
    the edited text would take: a file written over the limit could not be read back on the next run.
    """

    code = "client_file_too_large"

    def __init__(self, path: Path, size: int, limit: int, kind: str, *, edited: bool = False) -> None:
        what = "would grow to" if edited else "is"
        done = "not written" if edited else "not read"
        super().__init__(
            path,
            f"{what} {size:,} bytes, over the {_size(limit)} limit for {kind} client files; {done}",
            hint="shrink the file (client files hold settings, not data) or manage this client's entries by hand",
        )
        self.size = size
        self.limit = limit


class ClientFileLinkError(ClientConfigError):
    """A symbolic link that toolhive-apply will not follow: out of the home directory, dangling, or planted."""

    code = "client_file_link_refused"


def _size(count: int) -> str:
    """A limit as people say it: limits are whole MiB or KiB."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


class ClientTableError(ToolhiveApplyError):
    """clients.toml (shipped with the package) is inconsistent: a bug in toolhive-apply, reported in full."""

    code = "client_table_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(self.problems[0] if count == 1 else f"{count} problems in clients.toml")

    def lines(self) -> list[str]:
        return [f"clients.toml: {problem}" for problem in self.problems]


class UnknownClientError(ToolhiveApplyError):
    """A client name that ToolHive does not know; the hint suggests the closest known one."""

    code = "client_unknown"


class UnsupportedPlatformError(ToolhiveApplyError):
    """The client has no known config location on this platform."""

    code = "client_platform_unsupported"
