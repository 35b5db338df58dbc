"""Secrets in a Vault or OpenBao KV version 2 engine, at `<mount>/data/<path_prefix>/<key>`, field `value`.

Ownership lives in each secret's custom_metadata (managed-by, stack, digest, digest-version, description), so it
survives any other tool. Because Vault has no bulk metadata read, an index entry `<path_prefix>/.toolhive-apply-index`
mirrors those records: list() is then one LIST plus one read, and reads metadata only for keys the index lacks.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

import hvac
import hvac.exceptions
import requests

from toolhive_apply.errors import ConflictError
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import (
    MANAGED_BY,
    ProviderDescription,
    SecretNameError,
    StoredSecret,
    StoreError,
    StoreFailure,
    StoreKind,
    check_name,
    conflict_message,
    provider_description,
)
from toolhive_apply.stores.vault_auth import RENEW_BELOW, Authenticator, Clock
from toolhive_apply.stores.vault_errors import (
    TARGET,
    TRANSPORT_ERRORS,
    Operation,
    has_phrase,
    refuse_redirects,
    translate,
)
from toolhive_apply.stores.vault_index import INDEX_KEY, CasMismatchError, Index
from toolhive_apply.stores.vault_settings import VaultSettings, parse_vault_settings

T = TypeVar("T")

VALUE_FIELD: Final = "value"
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_@+=:-][A-Za-z0-9._@+=:-]*")
MAX_METADATA_VALUE: Final = 512  # Vault's limit for one custom_metadata value


class _NotFoundError(Exception):
    """The path holds nothing (a plain 404): an answer, not a failure."""


@dataclass(frozen=True, slots=True)
class VaultOptions:
    """Knobs tests and long runs need; the defaults suit the CLI."""

    session: requests.Session | None = None
    clock: Clock = time.monotonic
    timeout: float = 15.0
    use_index: bool = True
    renew_below: float = RENEW_BELOW


class VaultStore:
    kind: ClassVar[StoreKind] = StoreKind.VAULT

    def __init__(
        self, settings: VaultSettings, environ: Mapping[str, str], options: VaultOptions | None = None
    ) -> None:
        options = options or VaultOptions()
        self.settings = settings
        self.options = options
        # token="" (not None) keeps hvac from reading VAULT_TOKEN or ~/.vault-token on its own.
        self.client = hvac.Client(
            url=settings.address,
            token="",
            verify=settings.verify,
            cert=settings.client_cert,
            timeout=options.timeout,
            namespace=settings.namespace,
            session=options.session,
            allow_redirects=False,
        )
        # Also on a session the caller passed in: no request of this store may follow a redirect (vault_errors).
        refuse_redirects(self.client.adapter.session)
        self.auth = Authenticator(settings, environ, options.clock, options.renew_below)
        self.index = Index(
            self._read_index, self._write_index, enabled=options.use_index, path=self._data_path(INDEX_KEY)
        )
        self._mount_checked = False
        self._session_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> VaultStore:
        return cls(parse_vault_settings(settings, environ), environ)

    @property
    def endpoint(self) -> str:
        return self.settings.location

    def describe(self) -> ProviderDescription:
        return provider_description(self.kind, writable=True, listable=True)

    # -- the SecretStore protocol -----------------------------------------------------------------------------

    def list(self) -> builtins.list[StoredSecret]:
        """LIST + the index (two calls); one metadata read per key the index does not know."""
        listed = self._call_optional(Operation("list", self._metadata_path("")), self._list_keys) or []
        keys = sorted(k for k in listed if not k.endswith("/") and k != INDEX_KEY)
        if not keys:
            return []
        known = self.index.entries()
        result = []
        for key in keys:
            record = known.get(key) or self._read_metadata(key)
            if record is not None:
                result.append(record)
        return result

    def read(self, key: str) -> SecretValue | None:
        self._check_name(key)
        operation = Operation("read", self._data_path(key))
        response = self._call_optional(operation, lambda: self._read_version(key))
        data = (response or {}).get("data") or {}
        fields = data.get("data")
        if fields is None:
            return None  # absent, or its latest version is deleted
        value = fields.get(VALUE_FIELD)
        if not isinstance(value, str):
            names = ", ".join(sorted(fields)) or "none"
            raise self._error(
                f"the secret has no string field {VALUE_FIELD!r} (its fields: {names}), on {operation}",
                StoreFailure.BAD_DATA,
                operation.path,
            )
        return SecretValue(value)

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
        self._check_name(key)
        _check_metadata(key, {"stack": stack, "digest": digest, "description": description})
        if expected_version is None:
            self._claim(key, stack, description)
        version = self._write_value(key, value, expected_version)
        record = StoredSecret(key, description, MANAGED_BY, stack, digest, version)
        fields = {"stack": stack, "digest": digest, "digest-version": str(version), "description": description}
        # Vault refuses empty custom_metadata values; an absent description reads back as "".
        custom = {"managed-by": MANAGED_BY, **{name: text for name, text in fields.items() if text}}
        path = self._metadata_path(key)
        self._call(
            Operation("write the metadata of", path),
            lambda: self.client.adapter.post(f"/v1/{path}", json={"custom_metadata": custom}),
        )
        self.index.put(key, record)

    def _claim(self, key: str, stack: str, description: str) -> None:
        """Mark a new key as this stack's before its first value is written.

        Why: the value and the metadata that says whose it is are two requests. When the run died, or the server
        was sealed or refused, between them (found by the fault suite), the key held a value with no owner, and
        every later plan reported it as someone else's secret: a conflict no apply could resolve. Claimed first,
        an interrupted write leaves a key that is ours with no value or no recorded digest, which the next apply
        simply writes. A key that already has a value is left alone: the check-and-set write then reports it.
        Both calls are part of writing the key, and failures name that operation.
        """
        operation = Operation("write", self._data_path(key))
        found = self._call_optional(
            operation, lambda: self._kv.read_secret_metadata(path=self._rel(key), mount_point=self.settings.mount)
        )
        if found is not None and int(found["data"].get("current_version") or 0):
            return
        custom = {"managed-by": MANAGED_BY, "stack": stack, **({"description": description} if description else {})}
        path = self._metadata_path(key)
        self._call(operation, lambda: self.client.adapter.post(f"/v1/{path}", json={"custom_metadata": custom}))

    def delete(self, key: str, *, stack: str) -> None:
        """Deleting a secret that is already gone succeeds. Ownership is read from the secret's own metadata."""
        self._check_name(key)
        current = self._read_metadata(key)
        if current is None:
            return
        owner = current.stack if current.managed_by == MANAGED_BY else None
        if owner != stack:
            whose = f"stack {owner!r}" if owner else "no toolhive-apply stack"
            raise ConflictError(
                f"secret {key!r} in {self.endpoint} belongs to {whose}, not {stack!r}; refusing to delete it",
                hint="delete it with the stack that owns it, or with `bao kv metadata delete`",
            )
        self._call(
            Operation("delete", self._metadata_path(key)),
            lambda: self._kv.delete_metadata_and_all_versions(path=self._rel(key), mount_point=self.settings.mount),
        )
        self.index.put(key, None)

    # -- pieces -------------------------------------------------------------------------------------------------

    @property
    def _kv(self) -> Any:
        return self.client.secrets.kv.v2

    def _write_value(self, key: str, value: SecretValue, expected_version: int | None) -> int:
        operation = Operation("write", self._data_path(key))
        try:
            response = self._call(
                operation,
                lambda: self._kv.create_or_update_secret(
                    path=self._rel(key),
                    secret={VALUE_FIELD: value.reveal()},
                    cas=0 if expected_version is None else expected_version,
                    mount_point=self.settings.mount,
                ),
                cas=True,
            )
        except CasMismatchError:
            self.index.repair(key, self._read_metadata(key))
            observed = "it already exists" if expected_version is None else "another writer changed it"
            raise ConflictError(
                conflict_message(key, self.endpoint, expected_version, observed),
                hint="run `toolhive-apply plan` again",
            ) from None
        return int(response["data"]["version"])

    def _list_keys(self) -> builtins.list[str]:
        response = self._kv.list_secrets(path=self.settings.path_prefix, mount_point=self.settings.mount)
        return [str(k) for k in response["data"]["keys"]]

    def _read_metadata(self, key: str) -> StoredSecret | None:
        """The secret's own record; a digest recorded for an older version than the current one is dropped."""
        response = self._call_optional(
            Operation("read the metadata of", self._metadata_path(key)),
            lambda: self._kv.read_secret_metadata(path=self._rel(key), mount_point=self.settings.mount),
        )
        if response is None:
            return None
        data = response["data"]
        custom = data.get("custom_metadata") or {}
        version = int(data.get("current_version") or 0)
        fresh = custom.get("digest-version") == str(version)
        return StoredSecret(
            key=key,
            description=custom.get("description", ""),
            managed_by=custom.get("managed-by"),
            stack=custom.get("stack"),
            digest=custom.get("digest") if fresh else None,
            version=version,
        )

    def _read_version(self, key: str) -> Any:
        return self._kv.read_secret_version(
            path=self._rel(key), mount_point=self.settings.mount, raise_on_deleted_version=False
        )

    def _read_index(self) -> Mapping[str, Any] | None:
        operation = Operation("read the index", self._data_path(INDEX_KEY))
        result: Mapping[str, Any] | None = self._call_optional(operation, lambda: self._read_version(INDEX_KEY))
        return result

    def _write_index(self, document: dict[str, Any], cas: int) -> int:
        rel = self._rel(INDEX_KEY)
        response = self._call(
            Operation("write the index", self._data_path(INDEX_KEY)),
            lambda: self._kv.create_or_update_secret(
                path=rel, secret=document, cas=cas, mount_point=self.settings.mount
            ),
            cas=True,
        )
        return int(response["data"]["version"])

    def _call_optional(self, operation: Operation, call: Callable[[], T]) -> T | None:
        """Like _call, but a plain 404 (nothing at that path) is the answer None."""
        try:
            return self._call(operation, call, missing_ok=True)
        except _NotFoundError:
            return None

    def _call(self, operation: Operation, call: Callable[[], T], *, missing_ok: bool = False, cas: bool = False) -> T:
        """One API call with a live token. Failures are raised outside any `except` block, so no hvac or requests
        exception (whose text may echo request data) rides along as __context__."""
        for attempt in (1, 2):
            self._start_session(operation)
            try:
                return call()
            except TRANSPORT_ERRORS as exc:
                failure: Exception = exc
            # Deciding happens here, after the handler: anything raised now has no hvac exception as __context__.
            outcome = self._outcome(failure, operation, missing_ok=missing_ok, cas=cas, retry=attempt == 1)
            del failure
            if outcome is not None:
                raise outcome
        raise AssertionError("unreachable")  # pragma: no cover - the second attempt never returns None

    def _outcome(
        self, exc: Exception, operation: Operation, *, missing_ok: bool, cas: bool, retry: bool
    ) -> Exception | None:
        """What a failure means: _NotFoundError, CasMismatchError, a StoreError, or None (log in again, retry)."""
        if missing_ok and isinstance(exc, hvac.exceptions.InvalidPath) and not has_phrase(exc, "no handler"):
            return _NotFoundError()
        if cas and isinstance(exc, hvac.exceptions.InvalidRequest) and has_phrase(exc, "check-and-set"):
            return CasMismatchError()
        if isinstance(exc, hvac.exceptions.Forbidden) and not self.auth.token_is_valid(self.client, operation):
            if retry and self.auth.can_login_again:
                self.auth.relogin(self.client, operation)
                return None
            return self._error(
                f"the token is no longer valid (expired or revoked), on {operation}",
                StoreFailure.UNAUTHENTICATED,
                operation.path,
            )
        return translate(exc, self.settings.address, operation)

    def _start_session(self, operation: Operation) -> None:
        self.auth.ensure(self.client, operation)
        with self._session_lock:
            if not self._mount_checked:
                self._check_mount(operation)
                self._mount_checked = True

    def _check_mount(self, operation: Operation) -> None:
        """Refuse a mount that is not KV v2: writing `data/...` paths into KV v1 would silently misplace secrets.

        Tokens without access to sys/internal/ui/mounts get a 403 here; the real operation then reports.
        """
        mount = self.settings.mount
        try:
            info = self.client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}")
        except hvac.exceptions.VaultError:
            return
        except requests.exceptions.RequestException as exc:
            error = translate(exc, self.settings.address, operation, operation.path)
        else:
            data = info.get("data") if isinstance(info, dict) else None
            if not isinstance(data, dict):
                return  # an answer we cannot read: let the operations speak
            engine = data.get("type")
            version = str((data.get("options") or {}).get("version") or "1")
            if engine == "kv" and version == "2":
                return
            error = self._error(
                f"{mount}/ is a {engine} engine (version {version}), not KV version 2, on {operation}",
                StoreFailure.NO_MOUNT,
                operation.path,
            )
        raise error

    def _check_name(self, key: str) -> None:
        check_name(key)
        if not NAME_PATTERN.fullmatch(key) or key == INDEX_KEY:
            raise SecretNameError(
                f"secret name {key!r} cannot be a Vault path segment here: use letters, digits and . _ - @ + = :"
                f" (no '/', not starting with '.')"
            )

    def _rel(self, key: str) -> str:
        return f"{self.settings.path_prefix}/{key}" if self.settings.path_prefix else key

    def _data_path(self, key: str) -> str:
        return f"{self.settings.mount}/data/{self._rel(key)}"

    def _metadata_path(self, key: str) -> str:
        return f"{self.settings.mount}/metadata/{self._rel(key)}".rstrip("/")

    def _error(self, reason: str, failure: StoreFailure, path: str) -> StoreError:
        return StoreError(TARGET, self.settings.address, reason, failure=failure, path=path)


def _check_metadata(key: str, fields: Mapping[str, str]) -> None:
    for name, text in fields.items():
        if len(text) > MAX_METADATA_VALUE:
            raise SecretNameError(
                f"the {name} of secret {key!r} is {len(text)} characters; Vault custom_metadata allows"
                f" {MAX_METADATA_VALUE}"
            )
