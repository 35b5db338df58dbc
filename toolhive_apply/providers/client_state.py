"""The ownership record of client config entries: per stack, which entries of which client file it wrote.

Why a local file: client configs are JSON, JSONC, YAML or TOML files that the user edits too, and JSON cannot carry
a marker (a marker key would be visible noise in the client), so ownership cannot live in the file itself
(ARCHITECTURE 9.5). Docker-side resources keep their state in labels on the engine; client files are local, so their
record is local as well ("local state files only for local things"). It is the only local state toolhive-apply keeps:
losing it makes toolhive-apply treat its own entries as hand-written ones (left alone, never deleted).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from toolhive_apply.clients.files import file_lock
from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.fileio import private_dir, replace_atomically, state_dir

STATE_VERSION: Final = 1
STATE_FILE_MODE: Final = 0o600
STATE_DIR_MODE: Final = 0o700
STATE_LOCK_TIMEOUT: Final = 10.0
_STACK: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ClientStateError(ToolhiveApplyError):
    """The state file cannot be read or written; we stop rather than guess which entries are ours."""

    code = "client_state_invalid"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What one stack wrote into one client's file. Invariants: `path` is absolute; `entries` sorted and unique."""

    path: Path
    groups: tuple[str, ...]
    entries: tuple[str, ...]

    @classmethod
    def of(cls, path: Path, groups: tuple[str, ...] | list[str], entries: set[str] | list[str]) -> ClientRecord:
        return cls(path, tuple(groups), tuple(sorted(set(entries))))

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "groups": list(self.groups), "entries": list(self.entries)}


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/toolhive-apply/clients`, by default under `~/.local/state` (the XDG base directory spec)."""
    return state_dir(environ) / "clients"


def _record(client: str, raw: object, where: Path) -> ClientRecord:
    if not isinstance(raw, dict):
        raise ClientStateError(f"{where}: clients.{client} must be an object")
    path, groups, entries = raw.get("path"), raw.get("groups", []), raw.get("entries", [])
    valid = isinstance(path, str) and Path(path).is_absolute()
    if not valid or not _strings(groups) or not _strings(entries):
        raise ClientStateError(
            f"{where}: clients.{client} needs an absolute path and lists of names for groups and entries",
            hint="fix or delete the file; deleting it makes toolhive-apply forget which entries it wrote",
        )
    return ClientRecord.of(Path(str(path)), list(groups), list(entries))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_state(text: str, where: Path) -> dict[str, ClientRecord]:
    """The records of one state file; anything unexpected is a ClientStateError naming the file."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ClientStateError(
            f"{where}: not valid JSON ({exc})",
            hint="fix or delete the file; deleting it makes toolhive-apply forget which entries it wrote",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("clients", {}), dict):
        raise ClientStateError(f"{where}: expected an object with a `clients` object")
    version = data.get("version")
    if not isinstance(version, int) or version > STATE_VERSION:
        raise ClientStateError(f"{where}: state version {version!r} is not one this toolhive-apply understands")
    return {name: _record(name, raw, where) for name, raw in data.get("clients", {}).items()}


def _read(path: Path) -> dict[str, ClientRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientStateError(f"{path}: cannot read the client state: {exc}") from None
    return parse_state(text, path)


def _make_dir(directory: Path) -> None:
    """The state directory and its `toolhive-apply` parent are private; XDG_STATE_HOME itself is left as it is."""
    private_dir(directory, levels=2)


class ClientState:
    """One stack's state file. Updates are read-modify-write under a thread lock and the file's flock.

    The executor applies client changes in parallel threads, and every change rewrites this one file.
    """

    def __init__(self, stack: str, state_dir: Path | None = None) -> None:
        if not _STACK.fullmatch(stack):
            raise ClientStateError(f"stack name {stack!r} cannot name a state file")
        self.stack = stack
        self.directory = default_state_dir() if state_dir is None else state_dir
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.directory / f"{self.stack}.json"

    def load(self) -> dict[str, ClientRecord]:
        return _read(self.path)

    def set(self, client: str, record: ClientRecord | None) -> None:
        """Record (or, with None, forget) what this stack wrote for `client`; a file with no client is removed."""
        with self._lock:
            try:
                _make_dir(self.directory)
                with file_lock(self.path, STATE_LOCK_TIMEOUT):
                    self._update(client, record)
            except OSError as exc:
                raise ClientStateError(f"{self.path}: cannot write the client state: {exc}") from exc

    def _update(self, client: str, record: ClientRecord | None) -> None:
        records = _read(self.path)
        if records.get(client) == record:
            return
        if record is None:
            records.pop(client, None)
        else:
            records[client] = record
        if not records:
            self.path.unlink(missing_ok=True)
            return
        document = {
            "version": STATE_VERSION,
            "stack": self.stack,
            "clients": {name: records[name].as_json() for name in sorted(records)},
        }
        replace_atomically(self.path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), mode=STATE_FILE_MODE)


def load_all(state_dir: Path | None = None) -> dict[str, dict[str, ClientRecord]]:
    """Every stack's records, by stack name: for views and for naming which stack owns an entry."""
    directory = default_state_dir() if state_dir is None else state_dir
    if not directory.is_dir():
        return {}
    return {path.stem: _read(path) for path in sorted(directory.glob("*.json")) if _STACK.fullmatch(path.stem)}
