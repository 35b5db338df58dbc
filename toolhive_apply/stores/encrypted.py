"""ToolHive's encrypted file store, shared with `thv`, plus a sidecar file for toolhive-apply's own records.

ToolHive's file holds only name->value, so owner stack, keyed digest, version counter and description live in
`<file>.toolhive-apply.json` (mode 0600, no values), written in the same locked transaction. Each sidecar record
keeps a fingerprint keyed by the password, so a value changed by `thv` is noticed (new version, unknown digest)
without the sidecar holding anything an attacker without the password could test guesses against. A store this
tool creates gets a random password, kept in the OS keyring or a key file (passwords.py), never a typed one.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from cryptography.exceptions import InvalidTag

from toolhive_apply.errors import ConflictError
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores import files, passwords, toolhive_format
from toolhive_apply.stores.base import (
    MANAGED_BY,
    RESERVED_PREFIX,
    ProviderDescription,
    StoredSecret,
    StoreError,
    StoreFailure,
    StoreKind,
    check_name,
    conflict_message,
    provider_description,
)

TARGET: Final = "encrypted secret store"
SIDECAR_SUFFIX: Final = ".toolhive-apply.json"
SIDECAR_FORMAT: Final = 1
LOCK_TIMEOUT: Final = 5.0
FINGERPRINT_CONTEXT: Final = b"toolhive-apply/encrypted-store/fingerprint/v1"


@dataclass(frozen=True, slots=True)
class SidecarRecord:
    """toolhive-apply's record of one secret. `fingerprint` is HMAC(key derived from the password, value)."""

    version: int
    fingerprint: str
    managed_by: str | None = None
    stack: str | None = None
    digest: str | None = None
    description: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SidecarRecord:
        return cls(
            version=int(data["version"]),
            fingerprint=str(data["fingerprint"]),
            managed_by=data.get("managed_by"),
            stack=data.get("stack"),
            digest=data.get("digest"),
            description=str(data.get("description", "")),
        )


@dataclass(slots=True)
class Snapshot:
    """The store as read in one go: ToolHive's map, toolhive-apply's records, and the raw bytes for rollback."""

    secrets: dict[str, str] = field(default_factory=dict)
    records: dict[str, SidecarRecord] = field(default_factory=dict)
    raw: bytes | None = None


class EncryptedStore:
    """The store behind ToolHive's `encrypted` provider. Reads need no lock (writes are atomic renames)."""

    kind: ClassVar[StoreKind] = StoreKind.ENCRYPTED

    def __init__(
        self,
        path: Path,
        environ: Mapping[str, str],
        *,
        lock_timeout: float = LOCK_TIMEOUT,
        keyring: passwords.Keyring | None = None,
    ) -> None:
        self.path = path
        self.environ = environ
        self.lock_timeout = lock_timeout
        self.keyring = keyring or passwords.PythonKeyring()
        self._key: bytes | None = None
        self._key_lock = threading.Lock()
        self._password_source = ""
        self._warnings: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> EncryptedStore:
        configured = str(settings.get("path") or "")
        if not configured:
            return cls(toolhive_format.default_path(environ), environ)
        if configured == "~" or configured.startswith("~/"):  # the caller's HOME, not necessarily os.environ's
            configured = (environ.get("HOME") or str(Path.home())) + configured[1:]
        return cls(Path(configured), environ)

    @property
    def endpoint(self) -> str:
        return str(self.path)

    @property
    def sidecar_path(self) -> Path:
        return self.path.with_name(self.path.name + SIDECAR_SUFFIX)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def describe(self) -> ProviderDescription:
        return provider_description(self.kind, writable=True, listable=True)

    @property
    def warnings(self) -> tuple[str, ...]:
        """A short typed password, found without deriving a key or creating anything (plan may ask)."""
        if self._warnings is None:
            try:
                found = self._find_password()
            except StoreError:
                found = None
            warning = passwords.short_password_warning(found, self.path) if found else None
            self._warnings = (warning,) if warning else ()
        return self._warnings

    def list(self) -> builtins.list[StoredSecret]:
        """One read of each file under a shared lock, so the two are consistent; ToolHive's `__thv_*` are hidden.

        A store that does not exist yet lists nothing and is not created (no directory, no lock file): plan
        must not change the machine.
        """
        if not self.path.exists():
            return []
        with self._locked(exclusive=False):
            snapshot = self._load()
        return [
            self._stored(key, value, snapshot.records.get(key))
            for key, value in sorted(snapshot.secrets.items())
            if not key.startswith(RESERVED_PREFIX)
        ]

    def read(self, key: str) -> SecretValue | None:
        check_name(key)
        value = self._load_secrets().get(key)
        return None if value is None else SecretValue(value)

    def write(
        self,
        key: str,
        value: SecretValue,
        *,
        expected_version: int | None,
        stack: str,
        digest: str,
        description: str = "",
    ) -> None:
        check_name(key)
        self._cipher_key(create=True)  # no password for an existing store: fail before creating lock files
        with self._locked(exclusive=True):
            snapshot = self._load()
            current = self._current(snapshot, key)
            if current is None and expected_version is not None:
                raise self._conflict(key, expected_version, "it does not exist")
            if current is not None and current.version != expected_version:
                raise self._conflict(key, expected_version, f"it is at version {current.version}")
            record = SidecarRecord(
                version=self._next_version(snapshot, current, key),
                fingerprint=self._fingerprint(value.reveal()),
                managed_by=MANAGED_BY,
                stack=stack,
                digest=digest,
                description=description,
            )
            self._save(snapshot, {**snapshot.secrets, key: value.reveal()}, {**snapshot.records, key: record})

    def delete(self, key: str, *, stack: str) -> None:
        """Deleting a secret that is already gone succeeds: the wanted end state holds."""
        check_name(key)
        with self._locked(exclusive=True):
            snapshot = self._load()
            if key not in snapshot.secrets:
                return
            record = self._current(snapshot, key)
            owner = record.stack if record is not None and record.managed_by == MANAGED_BY else None
            if owner != stack:
                whose = f"stack {owner!r}" if owner else "no toolhive-apply stack"
                raise ConflictError(
                    f"secret {key!r} in {self.endpoint} belongs to {whose}, not {stack!r}; refusing to delete it",
                    hint="delete it with the stack that owns it, or with `thv secret delete`",
                )
            secrets = {k: v for k, v in snapshot.secrets.items() if k != key}
            records = {k: r for k, r in snapshot.records.items() if k != key}
            self._save(snapshot, secrets, records)

    def _next_version(self, snapshot: Snapshot, current: StoredSecret | None, key: str) -> int:
        # A record can outlive its secret (`thv secret delete`); counting on from it keeps versions monotonic,
        # so a stale expected_version can never match a re-created secret.
        leftover = snapshot.records.get(key)
        base = current.version if current is not None else (leftover.version if leftover else 0)
        return (base or 0) + 1

    # -- reading ------------------------------------------------------------------------------------------------

    def _current(self, snapshot: Snapshot, key: str) -> StoredSecret | None:
        if key not in snapshot.secrets:
            return None
        return self._stored(key, snapshot.secrets[key], snapshot.records.get(key))

    def _stored(self, key: str, value: str, record: SidecarRecord | None) -> StoredSecret:
        """The record as callers see it; a value changed behind our back gets a new version and no digest."""
        if record is None:
            return StoredSecret(key=key, version=0)
        fresh = hmac.compare_digest(record.fingerprint, self._fingerprint(value))
        return StoredSecret(
            key=key,
            description=record.description,
            managed_by=record.managed_by,
            stack=record.stack,
            digest=record.digest if fresh else None,
            version=record.version if fresh else record.version + 1,
        )

    def _load(self) -> Snapshot:
        raw = self._read_bytes(self.path)
        secrets = self._decrypt(raw) if raw else {}
        return Snapshot(secrets=secrets, records=self._load_records(), raw=raw)

    def _load_secrets(self) -> dict[str, str]:
        raw = self._read_bytes(self.path)
        return self._decrypt(raw) if raw else {}

    def _read_bytes(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(f"cannot read {path}: {exc.strerror}", StoreFailure.IO) from None

    def _decrypt(self, raw: bytes) -> dict[str, str]:
        key = self._cipher_key()
        try:
            return toolhive_format.decode_secrets(toolhive_format.unseal(raw, key))
        except InvalidTag:
            raise self._error(
                f"cannot decrypt {self.path}: wrong password from {self._password_source}? (or the file is damaged)",
                StoreFailure.BAD_PASSWORD,
                hint=f"set {passwords.PASSWORD_ENV} to the password `thv secret setup` was given",
            ) from None
        except toolhive_format.FormatError as exc:
            raise self._error(
                f"{self.path} is not a ToolHive encrypted secrets file: {exc}", StoreFailure.BAD_DATA
            ) from None

    def _load_records(self) -> dict[str, SidecarRecord]:
        raw = self._read_bytes(self.sidecar_path)
        if not raw:
            return {}
        try:
            document = json.loads(raw)
            return {str(k): SidecarRecord.from_json(v) for k, v in document["secrets"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._error(
                f"{self.sidecar_path} is not a toolhive-apply sidecar file",
                StoreFailure.BAD_DATA,
                hint="delete it: toolhive-apply then treats every secret in the store as unmanaged",
            ) from None

    def _cipher_key(self, *, create: bool = False) -> bytes:
        """The AES key; with `create`, a store that does not exist yet gets a new random password if none is found."""
        with self._key_lock:  # one password for the store, however many threads write it at once
            return self._derive_key(create=create)

    def _derive_key(self, *, create: bool) -> bytes:
        if self._key is None:
            password = self._find_password()
            if password is None and create and self._is_new():
                password = self._new_password()
            if password is None:
                key_file = passwords.key_file_path(self.path, self.environ)
                raise self._error(
                    f"no password for {self.path}: {passwords.PASSWORD_ENV} is not set, no OS keyring entry was"
                    f" found, and there is no key file {key_file}",
                    StoreFailure.NO_PASSWORD,
                    hint=f"export {passwords.PASSWORD_ENV} with the password of ToolHive's secrets store",
                )
            self._key = toolhive_format.derive_key(password.value)
            self._password_source = password.source
        return self._key

    def _find_password(self) -> passwords.Password | None:
        try:
            return passwords.find_password(self.path, self.environ, self.keyring)
        except passwords.PasswordFileError as exc:
            raise self._error(str(exc), StoreFailure.NO_PASSWORD) from None

    def _new_password(self) -> passwords.Password:
        """ToolHive's default store keeps its password in ToolHive's keyring entry, so `thv` opens it too; any
        other store path (or no working keyring) gets a key file of its own."""
        default = self.path.absolute() == toolhive_format.default_path(self.environ).absolute()
        try:
            return passwords.create_password(self.path, self.environ, self.keyring, in_keyring=default)
        except passwords.PasswordFileError as exc:
            raise self._error(str(exc), StoreFailure.IO) from None

    def _is_new(self) -> bool:
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise self._error(f"cannot read {self.path}: {exc.strerror}", StoreFailure.IO) from None

    def _fingerprint(self, value: str) -> str:
        fingerprint_key = hmac.new(self._cipher_key(), FINGERPRINT_CONTEXT, hashlib.sha256).digest()
        return "hmac-sha256:" + hmac.new(fingerprint_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- writing ------------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with files.locked(self.lock_path, exclusive=exclusive, timeout=self.lock_timeout):
                yield
        except files.LockTimeoutError:
            raise self._error(
                f"{self.lock_path} stayed locked for {self.lock_timeout:g} s",
                StoreFailure.LOCKED,
                hint="another thv or toolhive-apply is writing secrets; retry when it is done",
            ) from None
        except OSError as exc:
            raise self._error(f"cannot lock {self.lock_path}: {exc.strerror}", StoreFailure.IO) from None

    def _save(self, before: Snapshot, secrets: dict[str, str], records: dict[str, SidecarRecord]) -> None:
        """Replace the store file, then the sidecar; if the sidecar fails, put the old store file back."""
        try:
            blob = toolhive_format.seal(toolhive_format.encode_secrets(secrets), self._cipher_key())
        except toolhive_format.FormatError as exc:
            raise self._error(f"cannot write {self.path}: {exc}", StoreFailure.BAD_DATA) from None
        live = {k: r for k, r in records.items() if k in secrets}
        try:
            files.replace_atomically(self.path, blob)
        except OSError as exc:
            raise self._error(f"cannot write {self.path}: {exc.strerror}", StoreFailure.IO) from None
        try:
            files.replace_atomically(self.sidecar_path, _sidecar_json(live))
        except OSError as exc:
            self._restore(before)
            raise self._error(f"cannot write {self.sidecar_path}: {exc.strerror}", StoreFailure.IO) from None

    def _restore(self, before: Snapshot) -> None:
        # Best effort: the fingerprints would flag the mismatch anyway, but the user's file should not move
        # forward when the transaction as a whole failed.
        try:
            if before.raw is None:
                self.path.unlink(missing_ok=True)
            else:
                files.replace_atomically(self.path, before.raw)
        except OSError:
            pass

    def _conflict(self, key: str, expected: int | None, observed: str) -> ConflictError:
        return ConflictError(
            conflict_message(key, self.endpoint, expected, observed),
            hint="someone else changed it; run `toolhive-apply plan` again",
        )

    def _error(self, reason: str, failure: StoreFailure, *, hint: str | None = None) -> StoreError:
        return StoreError(TARGET, self.endpoint, reason, failure=failure, path=str(self.path), hint=hint)


def _sidecar_json(records: Mapping[str, SidecarRecord]) -> bytes:
    document = {
        "format": SIDECAR_FORMAT,
        "about": "toolhive-apply's records for the ToolHive secrets file beside it; holds no secret values",
        "secrets": {key: asdict(record) for key, record in sorted(records.items())},
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
