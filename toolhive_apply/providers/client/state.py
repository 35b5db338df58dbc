"""The ownership record of client config entries: per stack, which entries of which client file it wrote.

Why a local file: client configs are JSON, JSONC, YAML or TOML files that the user edits too, and JSON cannot carry
a marker (a marker key would be visible noise in the client), so ownership cannot live in the file itself
(ARCHITECTURE 9.5). Docker-side resources keep their state in labels on the engine; client files are local, so their
record is local as well ("local state files only for local things"). It is the only local state toolhive-apply keeps:
losing it makes toolhive-apply treat its own entries as hand-written ones (left alone, never deleted).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from toolhive_apply.clients import ClientConfigError, Confinement
from toolhive_apply.clients.files import decode, file_lock
from toolhive_apply.clients.handles import Directory
from toolhive_apply.errors import ToolhiveApplyError
from toolhive_apply.fileio import UnsafePathError, private_dir, state_dir

STATE_VERSION: Final = 1
STATE_FILE_MODE: Final = 0o600
STATE_DIR_MODE: Final = 0o700  # handles.DIR_MODE: the two levels toolhive-apply creates
STATE_LOCK_TIMEOUT: Final = 10.0
STATE_SIZE_LIMIT: Final = 4 << 20  # a record per client: a few KiB in practice
_FORGET_HINT: Final = "fix or delete the file; deleting it makes toolhive-apply forget which entries it wrote"
_STACK: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class ClientStateError(ToolhiveApplyError):
    """The state file cannot be read or written; we stop rather than guess which entries are ours."""

    code = "client_state_invalid"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What one stack wrote into one client's file, and where that file was allowed to be.

    Invariants: `path` is absolute; `entries` sorted and unique; `home` (the home directory the path was judged
    against) is absolute or None for records written before it was kept; `named` says the user's config_path named
    `path`, so it may be outside home.
    """

    path: Path
    groups: tuple[str, ...]
    entries: tuple[str, ...]
    home: Path | None = None
    named: bool = False
    bearer: tuple[tuple[str, str], ...] = ()
    """(entry, secret name) for each of our entries that carries a bearer token: names only, never a value or a
    digest, so observing the file can redact the token and say which secret it should be (client_auth.py)."""

    @classmethod
    def of(
        cls,
        path: Path,
        groups: tuple[str, ...] | list[str],
        entries: set[str] | list[str],
        confinement: Confinement | None = None,
        bearer: Mapping[str, str] | None = None,
    ) -> ClientRecord:
        home = confinement.home if confinement is not None else None
        named = confinement is not None and confinement.named is not None
        kept = set(entries)
        tokens = tuple(sorted((entry, secret) for entry, secret in (bearer or {}).items() if entry in kept))
        return cls(path, tuple(groups), tuple(sorted(kept)), home, named, tokens)

    @property
    def bearer_secrets(self) -> dict[str, str]:
        return dict(self.bearer)

    def confinement(self, home: Path) -> Confinement:
        """Where the recorded file may be. A record without a home (older ones) allows its own path, as recorded,
        and links landing under `home` (the provider's): the path was derived from the manifest when written.
        """
        if self.home is None:
            return Confinement.of(home, self.path)
        return Confinement.of(self.home, self.path if self.named else None)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": str(self.path), "groups": list(self.groups), "entries": list(self.entries)}
        if self.home is not None:
            data.update(home=str(self.home), named=self.named)
        if self.bearer:
            data["bearer"] = dict(self.bearer)
        return data


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/toolhive-apply/clients`, by default under `~/.local/state` (the XDG base directory spec)."""
    return state_dir(environ) / "clients"


def _record(client: str, raw: object, where: Path) -> ClientRecord:
    if not isinstance(raw, dict):
        raise ClientStateError(f"{where}: clients.{client} must be an object")
    path, groups, entries = raw.get("path"), raw.get("groups", []), raw.get("entries", [])
    home, named, bearer = raw.get("home"), raw.get("named", False), raw.get("bearer", {})
    valid = isinstance(path, str) and Path(path).is_absolute() and isinstance(named, bool)
    valid = valid and isinstance(bearer, dict) and all(isinstance(v, str) for v in bearer.values())
    valid = valid and (home is None or (isinstance(home, str) and Path(home).is_absolute()))
    if not valid or not _strings(groups) or not _strings(entries):
        raise ClientStateError(
            f"{where}: clients.{client} needs an absolute path and lists of names for groups and entries",
            hint=_FORGET_HINT,
        )
    record = ClientRecord.of(Path(str(path)), list(groups), list(entries), bearer=bearer)
    where_home = None if home is None else Path(home)
    return ClientRecord(record.path, record.groups, record.entries, where_home, named, record.bearer)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def parse_state(text: str, where: Path) -> dict[str, ClientRecord]:
    """The records of one state file; anything unexpected is a ClientStateError naming the file."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ClientStateError(f"{where}: not valid JSON ({exc})", hint=_FORGET_HINT) from None
    if not isinstance(data, dict) or not isinstance(data.get("clients", {}), dict):
        raise ClientStateError(f"{where}: expected an object with a `clients` object")
    version = data.get("version")
    if not isinstance(version, int) or version > STATE_VERSION:
        raise ClientStateError(f"{where}: state version {version!r} is not one this toolhive-apply understands")
    return {name: _record(name, raw, where) for name, raw in data.get("clients", {}).items()}


def _open(directory: Path, *, create: bool) -> Directory | None:
    """The state directory, None when it does not exist (and `create` is false).

    The base (XDG_STATE_HOME or ~/.local/state) is the user's and may be a link; the `toolhive-apply/clients` levels
    are toolhive-apply's own, created private and never followed when they are links, like the state file itself.
    """
    base = directory.parent.parent
    try:
        if create:
            base.mkdir(parents=True, exist_ok=True)
            if not directory.parent.is_symlink() and not directory.is_symlink():
                private_dir(directory, levels=2)  # made 0700, or tightened when an older run left them looser
        return Directory.open(Path(os.path.realpath(base)) / directory.parent.name / directory.name, create=create)
    except OSError as exc:
        raise ClientStateError(f"{directory}: cannot open the client state directory: {exc.strerror}") from None
    except ClientConfigError as exc:
        raise ClientStateError(f"client state: {exc.message}", hint=exc.hint) from None
    except UnsafePathError as exc:
        raise ClientStateError(f"client state: {exc}") from None


def _read(directory: Directory, name: str) -> dict[str, ClientRecord]:
    path = directory.path / name
    try:
        found = directory.read(name, STATE_SIZE_LIMIT, "state")
        text = None if found is None else decode(found[0], path)
    except OSError as exc:
        raise ClientStateError(f"{path}: cannot read the client state: {exc.strerror}") from None
    except ClientConfigError as exc:
        raise ClientStateError(f"client state: {exc.message}", hint=exc.hint or _FORGET_HINT) from None
    return {} if text is None else parse_state(text, path)


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
        directory = _open(self.directory, create=False)
        if directory is None:
            return {}
        with directory:
            return _read(directory, self.path.name)

    def set(self, client: str, record: ClientRecord | None) -> None:
        """Record (or, with None, forget) what this stack wrote for `client`; a file with no client is removed."""
        with self._lock:
            directory = _open(self.directory, create=True)
            assert directory is not None  # created when missing
            try:
                with directory, file_lock(directory, self.path.name, STATE_LOCK_TIMEOUT):
                    self._update(directory, client, record)
            except OSError as exc:
                raise ClientStateError(f"{self.path}: cannot write the client state: {exc}") from exc
            except ClientConfigError as exc:
                raise ClientStateError(f"client state: {exc.message}", hint=exc.hint) from None

    def _update(self, directory: Directory, client: str, record: ClientRecord | None) -> None:
        name = self.path.name
        records = _read(directory, name)
        if records.get(client) == record:
            return
        if record is None:
            records.pop(client, None)
        else:
            records[client] = record
        if not records:
            directory.unlink(name)
            directory.fsync()
            return
        document = {
            "version": STATE_VERSION,
            "stack": self.stack,
            "clients": {key: records[key].as_json() for key in sorted(records)},
        }
        data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        directory.write_atomically(name, data, STATE_FILE_MODE)


def load_all(state_dir: Path | None = None) -> dict[str, dict[str, ClientRecord]]:
    """Every stack's records, by stack name: for views and for naming which stack owns an entry."""
    directory = _open(default_state_dir() if state_dir is None else state_dir, create=False)
    if directory is None:
        return {}
    with directory:
        listed = os.listdir(directory.fd)  # noqa: PTH208 - a descriptor: what was opened, not a path looked up again
        names = sorted(name for name in listed if name.endswith(".json"))
        return {name[:-5]: _read(directory, name) for name in names if _STACK.fullmatch(name[:-5])}
