"""The secret resource kind, on top of a SecretStore; and the resolver workloads use to get values and digests.

Values are compared through a keyed HMAC, never shown and never hashed plainly: a plain SHA-256 of a short
token in a container label could be brute-forced, and so could an HMAC whose key is derivable. The key is
random and secret: a per-stack secret in the store itself, or, for the read-only environment store, a key the
store finds outside itself (EnvironmentStore.digest_key). The value exists only inside SecretValue objects,
read from their source at plan time and again at apply time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as pyrandom
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from toolhive_apply.engine.plan import Action, Change
from toolhive_apply.engine.provider import EventSink
from toolhive_apply.engine.resource import (
    HASH_VERSION,
    DesiredResource,
    Kind,
    ObservedResource,
    ResourceId,
    Status,
)
from toolhive_apply.errors import ConflictError, ManifestError, ManifestIssue, ProviderError, ToolhiveApplyError
from toolhive_apply.fileio import InputFileError, read_input
from toolhive_apply.manifest.model import Manifest, Secret
from toolhive_apply.ownership import MANAGED_BY
from toolhive_apply.providers.fields import SECRET_FIELDS
from toolhive_apply.providers.stack_key import (
    KEY_DESCRIPTION,
    KEY_DIGEST_MARK,
    KEY_ENV,
    environment_key_made,
    hmac_key_name,
)
from toolhive_apply.redact import MIN_SCRUB_LENGTH, SecretValue
from toolhive_apply.stores.environment import EnvironmentStore

if TYPE_CHECKING:
    from toolhive_apply.stores.base import SecretStore, StoredSecret


def read_source(secret: Secret, environ: Mapping[str, str], inline: SecretValue | None) -> SecretValue:
    """The value from its declared source; a missing or (unless allowed) empty one is an error naming the secret."""
    value, field = _source_value(secret, environ, inline)
    if not value.reveal() and not secret.allow_empty:
        what = {
            "from.env": f"environment variable {secret.env} is set but empty",
            "from.file": f"{secret.file} is empty",
        }
        raise ManifestError.single(
            secret.origin,
            f"secrets[{secret.key}].{field}",
            f"{what.get(field, 'the value is empty')}; set allow_empty: true if an empty secret is intended",
        )
    return value


def _source_value(secret: Secret, environ: Mapping[str, str], inline: SecretValue | None) -> tuple[SecretValue, str]:
    if secret.env is not None:
        value = environ.get(secret.env)
        if value is None:
            raise ManifestError.single(
                secret.origin, f"secrets[{secret.key}].from.env", f"environment variable {secret.env} is not set"
            )
        return SecretValue(value), "from.env"
    if secret.file is not None:
        path = (secret.base_dir / secret.file).resolve()
        try:
            return SecretValue(read_secret_file(path)), "from.file"
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError.single(
                secret.origin,
                f"secrets[{secret.key}].from.file",
                str(exc) if isinstance(exc, InputFileError) else f"cannot read {path}: {exc}",
            ) from None
    if inline is not None:
        return inline, "value"
    msg = f"secret {secret.key!r} has no source"
    raise ToolhiveApplyError(msg)


MAX_SECRET_FILE_BYTES = 1024 * 1024
"""A secret file is a token, a key or a certificate chain: a megabyte is ample, and a larger one is a mistake."""


def read_secret_file(path: Path) -> str:
    """A `from: {file}` value: the file's text without its final newline (what an editor adds)."""
    text = read_input(path, MAX_SECRET_FILE_BYTES).decode("utf-8")
    return text[:-1] if text.endswith("\n") else text


def source_label(secret: Secret) -> str:
    if secret.env is not None:
        return f"env:{secret.env}"
    if secret.file is not None:
        return f"file:{(secret.base_dir / secret.file).resolve()}"
    return "inline"


class SecretResolver:
    """Values and keyed digests of secrets, shared by the secret and workload providers of one run."""

    def __init__(self, open_store: Callable[[], SecretStore], stack: str) -> None:
        self._open_store = open_store
        self._store: SecretStore | None = None
        self.stack = stack
        self.values: dict[str, SecretValue] = {}
        self._key: bytes | None = None
        self._key_is_new = False
        self.warnings: list[str] = []
        self._listing: dict[str, StoredSecret] | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> SecretStore:
        """Opened on first use: a manifest without secrets never needs a password or a Vault login."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    @property
    def opened(self) -> bool:
        return self._store is not None

    def listing(self, refresh: bool = False) -> dict[str, StoredSecret]:
        with self._lock:
            if self._listing is None or refresh:
                self._listing = {item.key: item for item in self.store.list()}
            return self._listing

    def forget_listing(self) -> None:
        """After a write or delete: the next observation (apply's convergence check) lists the store again."""
        with self._lock:
            self._listing = None

    def key(self) -> bytes:
        """The stack's HMAC key: read from the store, or made now (and written by the secret provider)."""
        with self._lock:
            if self._key is None:
                if isinstance(self.store, EnvironmentStore):
                    self._key, created = environment_key_made(self.stack, self.store.environ)
                    if created is not None:
                        self.warnings.append(
                            f"made a new digest key for environment secrets in {created}: workloads whose secret "
                            f"digests were recorded with another key will be replaced once; in pipelines without "
                            f"local state, set {KEY_ENV} to the same random value in every run"
                        )
                else:
                    stored = self.store.read(hmac_key_name(self.stack))
                    self._key_is_new = stored is None
                    self._key = bytes.fromhex(stored.reveal()) if stored else pyrandom.token_bytes(32)
            return self._key

    @property
    def key_is_new(self) -> bool:
        self.key()
        return self._key_is_new

    def digest(self, value: SecretValue) -> str:
        return "hmac-sha256:" + hmac.new(self.key(), value.reveal().encode(), hashlib.sha256).hexdigest()

    def value(self, name: str) -> SecretValue:
        """A declared value (read from its source) or the store's; missing is an error naming the secret."""
        if name in self.values:
            return self.values[name]
        stored = self.store.read(name)
        if stored is None:
            raise ToolhiveApplyError(
                f"secret {name!r} is not in the {self.store.kind} store ({self.store.endpoint})",
                hint="create it in the store, or declare it under secrets with from: {env: ...}",
            )
        self.values[name] = stored
        return stored


class SecretProvider:
    kind: ClassVar[Kind] = Kind.SECRET

    def __init__(self, resolver: SecretResolver, environ: Mapping[str, str] | None = None) -> None:
        self.resolver = resolver
        self.environ = os.environ if environ is None else environ

    @property
    def warnings(self) -> tuple[str, ...]:
        """Shown with the plan: the resolver's and the store's own (e.g. a short typed password), and short values."""
        short = sorted(
            name for name, value in self.resolver.values.items() if 0 < len(value.reveal()) < MIN_SCRUB_LENGTH
        )
        notes = [
            f"secret {name!r} is shorter than {MIN_SCRUB_LENGTH} characters: such a value cannot be told apart from "
            "ordinary text, so it is neither scrubbed from output nor refused in plain fields"
            for name in short
        ]
        store_notes = tuple(getattr(self.resolver.store, "warnings", ())) if self.resolver.opened else ()
        return (*self.resolver.warnings, *store_notes, *notes)

    def desired(self, manifest: Manifest) -> list[DesiredResource]:
        result = []
        missing = []
        listing = self.resolver.listing(refresh=True) if manifest.secrets else {}
        for secret in manifest.secrets:
            if secret.present:
                stored = listing.get(secret.key)
                if stored is None and self.resolver.store.read(secret.key) is None:
                    missing.append(
                        ManifestIssue(
                            secret.origin,
                            f"secrets[{secret.key}]",
                            f"present: true, but {secret.key!r} is not in the {self.resolver.store.kind} store "
                            f"({self.resolver.store.endpoint})",
                        )
                    )
                elif stored is not None and self._ours(stored):
                    # one of ours, now declared present (as `export --as-manifest` writes it): kept as it is
                    spec = {"key": secret.key, "description": secret.description, "digest": stored.digest or ""}
                    result.append(DesiredResource(ResourceId(Kind.SECRET, secret.key), spec, secret.origin))
                continue
            value = read_source(secret, self.environ, secret.inline)
            self.resolver.values[secret.key] = value
            spec = {
                "key": secret.key,
                "description": secret.description,
                "digest": self.resolver.digest(value),
                "source": source_label(secret),
            }
            result.append(DesiredResource(ResourceId(Kind.SECRET, secret.key), spec, secret.origin))
        if missing:
            raise ManifestError(missing)
        if manifest.secrets and self.resolver.store.kind != "environment":
            # Wanted whenever secrets are (present: true ones too, whose digests it keys): created when new, in
            # sync once stored, never pruned as "not declared" by --prune-secrets.
            name = hmac_key_name(self.resolver.stack)
            spec = {"key": name, "description": KEY_DESCRIPTION, "digest": KEY_DIGEST_MARK}
            result.append(DesiredResource(ResourceId(Kind.SECRET, name), spec))
        return result

    def _ours(self, item: StoredSecret) -> bool:
        return item.managed_by == MANAGED_BY and item.stack == self.resolver.stack

    def observe(self, names: Sequence[str]) -> list[ObservedResource]:
        if not names and not self.resolver.opened:
            return []  # nothing declared and nothing read: the store is not even opened
        observed = []
        for item in self.resolver.listing().values():
            ours = self._ours(item)
            if not ours and item.key not in names:
                continue
            spec = {"key": item.key, "description": item.description, "digest": item.digest or ""}
            observed.append(
                ObservedResource(
                    ResourceId(Kind.SECRET, item.key),
                    str(item.version or 0),
                    ours,
                    item.stack,
                    SECRET_FIELDS.hash(spec) if ours else None,
                    HASH_VERSION,
                    Status.PRESENT,
                    spec,
                    {"version": item.version},
                )
            )
        return observed

    def apply(self, change: Change, emit: EventSink) -> str:
        try:
            return self._apply(change)
        finally:
            self.resolver.forget_listing()  # listed again when apply checks that it converged

    def _apply(self, change: Change) -> str:
        store = self.resolver.store
        if change.action is Action.DELETE:
            assert change.observed is not None
            store.delete(change.id.name, stack=self.resolver.stack)
            return "deleted"
        assert change.desired is not None
        name = change.id.name
        version = int(change.observed.handle) if change.observed is not None else None
        if name == hmac_key_name(self.resolver.stack):
            value = SecretValue(self.resolver.key().hex())
            digest = KEY_DIGEST_MARK
        else:
            value = self._value_for(change)
            digest = self.resolver.digest(value)
        try:
            store.write(
                name,
                value,
                expected_version=version,
                stack=self.resolver.stack,
                digest=digest,
                description=str(change.desired.spec.get("description", "")),
            )
        except ConflictError as exc:
            raise ProviderError(str(change.id), change.action.value, exc.message) from None
        return "written"

    def _value_for(self, change: Change) -> SecretValue:
        """At apply time the value is read again from its source; a plan made from another value is stale."""
        assert change.desired is not None
        name = change.id.name
        if name in self.resolver.values:
            return self.resolver.values[name]
        source = str(change.desired.spec.get("source", ""))
        kind, _, where = source.partition(":")
        if kind == "env" and where in self.environ:
            value = SecretValue(self.environ[where])
        elif kind == "file" and Path(where).is_file():
            try:
                value = SecretValue(read_secret_file(Path(where)))
            except (OSError, UnicodeDecodeError) as exc:
                detail = str(exc) if isinstance(exc, InputFileError) else f"cannot read {where}: {exc}"
                raise ProviderError(str(change.id), "write", detail) from None
        else:
            raise ProviderError(str(change.id), "write", f"the value's source ({source}) cannot be read at apply time")
        if not self.resolver.key_is_new and self.resolver.digest(value) != change.desired.spec.get("digest"):
            raise ProviderError(str(change.id), "write", "the value changed since the plan was made (stale plan)")
        self.resolver.values[name] = value
        return value
