"""Client config files: keep each MCP client's file in step with the workloads, touching only our entries.

The engine observes with `observe` (one read and parse per file), compares with `build_entry`, and
applies each file's upserts and removals in one locked transaction with `write_entries`. Which entries are
ours is the engine's knowledge (its state file): this layer edits exactly the names it is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from toolhive_apply.clients.confinement import Confinement
from toolhive_apply.clients.discovery import config_path, is_installed
from toolhive_apply.clients.entries import Entry, build_entry, entry_digest, same_entry
from toolhive_apply.clients.errors import (
    ClientConfigError,
    ClientFileLinkError,
    ClientFileLockedError,
    ClientFileMissingError,
    ClientFileParseError,
    ClientFileTooLargeError,
    ClientFileWriteError,
    ClientTableError,
    UnknownClientError,
    UnsupportedPlatformError,
)
from toolhive_apply.clients.files import LOCK_TIMEOUT, FileEdit, backup_path, lock_path, read_text, rewrite
from toolhive_apply.clients.formats import empty_text, format_name, parse_document, size_limit
from toolhive_apply.clients.table import ClientSpec, ClientTable, FileFormat, Transport, client_table, get_client

__all__ = [
    "LOCK_TIMEOUT",
    "ClientConfigError",
    "ClientFile",
    "ClientFileLinkError",
    "ClientFileLockedError",
    "ClientFileMissingError",
    "ClientFileParseError",
    "ClientFileTooLargeError",
    "ClientFileWriteError",
    "ClientSpec",
    "ClientTable",
    "ClientTableError",
    "Confinement",
    "Entry",
    "FileFormat",
    "Transport",
    "UnknownClientError",
    "UnsupportedPlatformError",
    "backup_path",
    "build_entry",
    "client_table",
    "config_path",
    "get_client",
    "is_installed",
    "lock_path",
    "observe",
    "same_entry",
    "size_limit",
    "write_entries",
]


@dataclass(frozen=True, slots=True)
class ClientFile:
    """What one observation of a client file found: entries are plain data keyed by server name."""

    path: Path
    exists: bool
    entries: Mapping[str, object]


def observe(client: ClientSpec, path: Path, confinement: Confinement | None = None) -> ClientFile:
    """Read and parse the file once, without locking (writers replace it atomically, so reads are consistent).

    The file must be where `confinement` allows (default: `path` itself, through no symbolic link) and within the
    format's size limit; a ClientConfigError naming the file says otherwise.
    """
    text = read_text(path, confinement, limit=size_limit(client), kind=format_name(client))
    if text is None:
        return ClientFile(path, exists=False, entries={})
    return ClientFile(path, exists=True, entries=parse_document(client, text, path).entries())


def write_entries(
    client: ClientSpec,
    path: Path,
    upserts: Mapping[str, Mapping[str, object]],
    removals: Iterable[str] = (),
    *,
    create: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    confinement: Confinement | None = None,
    private: bool = False,
) -> bool:
    """Make the file hold `upserts` and not hold `removals`, in one transaction; True when the file changed.

    Entries already equal are left byte for byte; removing an absent name is a no-op. A missing file is an
    error unless `create` (then it starts as ToolHive creates it); with nothing to add it is left missing.
    ToolHive creates files only for installed clients, so callers normally pass `create=is_installed(...)`.
    The file is re-read under the lock, so changes made since `observe` are kept, not overwritten. Where the
    file may be is `confinement` (default: `path` itself, through no symbolic link). `private`: an upsert holds a
    credential, so the file (and its backup) is written 0600 at most.
    """
    gone = tuple(dict.fromkeys(removals))
    if overlap := set(upserts) & set(gone):
        raise ValueError(f"names both upserted and removed: {sorted(overlap)}")
    if not upserts and (not gone or not os.path.lexists(path)):
        return False
    edit = _EntriesEdit(client, path, upserts, gone)
    limit, kind = size_limit(client), format_name(client)
    return rewrite(
        path,
        FileEdit(edit.change, edit.validate, empty_text(client), limit, kind, private),
        create=create,
        lock_timeout=lock_timeout,
        confinement=confinement,
    )


class _EntriesEdit:
    """The edit one write_entries call makes; it remembers what the candidate must hold so validate can check it.

    It keeps a digest of those entries, not the entries: they can be most of a large file, and holding them while
    the candidate is parsed would double the memory the write needs.
    """

    def __init__(
        self, client: ClientSpec, path: Path, upserts: Mapping[str, Mapping[str, object]], gone: tuple[str, ...]
    ) -> None:
        self.client, self.path, self.upserts, self.gone = client, path, upserts, gone
        self.expected = ""

    def change(self, text: str) -> str:
        document = parse_document(self.client, text, self.path)
        current = document.entries()
        for name, entry in self.upserts.items():
            if name not in current or not same_entry(entry, current[name]):
                document.upsert(name, entry)
        for name in self.gone:
            if name in current:
                document.remove(name)
        for name in self.gone:
            current.pop(name, None)
        current.update({name: dict(entry) for name, entry in self.upserts.items()})
        self.expected = entry_digest(current)
        return document.dump()

    def validate(self, text: str) -> None:
        """Parse the candidate as the client would and check that every entry, ours and foreign, is as intended."""
        found = parse_document(self.client, text, self.path).entries()
        if entry_digest(found) != self.expected:
            raise ClientConfigError(self.path, "internal error: the edited file does not hold the intended entries")
