"""What every secret store offers (ToolHive's "secrets provider"), the records it returns and the errors it raises.

Stores are the only place secret values cross the process boundary; everything above them sees SecretValue
objects, keyed digests and owner records, so the plan can compare secrets without ever holding plaintext.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, TypedDict

from toolhive_apply.errors import TargetUnavailableError, ToolhiveApplyError
from toolhive_apply.redact import SecretValue

MANAGED_BY: Final = "toolhive-apply"
RESERVED_PREFIX: Final = "__thv_"
"""ToolHive keeps its own system secrets under this prefix (pkg/secrets/scoped.go); users may not touch them."""


class StoreKind(StrEnum):
    ENCRYPTED = "encrypted"
    VAULT = "vault"
    ENVIRONMENT = "environment"


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """One secret as a store lists it: never the value, only who owns it and a keyed digest of it.

    `version` is the store's check-and-set token: pass it back as `expected_version` to update. `digest` is the
    caller's keyed HMAC as recorded at the last toolhive-apply write, or None when unknown or when the value was
    changed since by something else (so a digest is never stale). `managed_by`/`stack` are None for secrets
    toolhive-apply did not write.
    """

    key: str
    description: str = ""
    managed_by: str | None = None
    stack: str | None = None
    digest: str | None = None
    version: int | None = None


class Capabilities(TypedDict):
    can_read: bool
    can_write: bool
    can_delete: bool
    can_list: bool
    can_cleanup: bool


class ProviderDescription(TypedDict):
    """The shape of ToolHive's `GET /api/v1beta/secrets/default`."""

    name: str
    provider_type: str
    capabilities: Capabilities


def provider_description(kind: StoreKind, *, writable: bool, listable: bool) -> ProviderDescription:
    capabilities = Capabilities(
        can_read=True, can_write=writable, can_delete=writable, can_list=listable, can_cleanup=writable
    )
    return ProviderDescription(name="default", provider_type=kind.value, capabilities=capabilities)


class SecretStore(Protocol):
    """A place secrets live. Every method is one unit of work with its own error mapping; none prints."""

    @property
    def kind(self) -> StoreKind: ...

    @property
    def endpoint(self) -> str:
        """Where the store is, for messages: a file path, or a Vault address with mount and prefix."""
        ...

    def describe(self) -> ProviderDescription: ...

    def list(self) -> builtins.list[StoredSecret]:
        """Every secret's record, in a constant number of round trips, sorted by key."""
        ...

    def read(self, key: str) -> SecretValue | None: ...

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
        """Check-and-set: `expected_version` None means the key must not exist; a mismatch raises ConflictError."""
        ...

    def delete(self, key: str, *, stack: str) -> None:
        """Remove a secret this stack owns; one owned by another stack (or by nobody) raises ConflictError."""
        ...


class StoreFailure(StrEnum):
    """Why a store could not be used; stable codes for the JSON envelope and for tests."""

    UNREACHABLE = "unreachable"
    CONNECTION_LOST = "connection_lost"
    TIMEOUT = "timeout"
    TLS = "tls"
    SEALED = "sealed"
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    UNAUTHENTICATED = "unauthenticated"
    NO_MOUNT = "no_mount"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    REJECTED = "rejected"
    BAD_DATA = "bad_data"
    LOCKED = "locked"
    BAD_PASSWORD = "bad_password"
    NO_PASSWORD = "no_password"
    IO = "io"
    REDIRECTED = "redirected"


class StoreError(TargetUnavailableError):
    """A secret store could not do what was asked. The message names the store and the key path, never a value.

    Messages are always built by toolhive-apply itself: client-library exception text can echo request data.
    """

    code = "store_unavailable"

    def __init__(
        self,
        target: str,
        endpoint: str,
        reason: str,
        *,
        failure: StoreFailure,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(target, endpoint, reason, hint=hint)
        self.failure = failure
        self.path = path

    def as_json(self) -> dict[str, object]:
        return {**super().as_json(), "failure": self.failure.value, "path": self.path}


class StoreConfigError(ToolhiveApplyError):
    """settings.secrets (plus the environment it defers to) does not describe a usable store."""

    code = "store_config"


class StoreReadOnlyError(ToolhiveApplyError):
    """The store cannot write or delete (the environment store)."""

    code = "store_read_only"


class SecretNameError(ToolhiveApplyError):
    """A secret name the store cannot hold (reserved, empty, or outside the store's alphabet)."""

    code = "secret_name_invalid"


def check_name(key: str) -> str:
    """Names every store accepts: non-empty, no `,` (ToolHive's `name,target=ENV` syntax), not reserved."""
    if not key or key != key.strip():
        raise SecretNameError(f"secret name {key!r} is empty or has surrounding whitespace")
    if "," in key:
        raise SecretNameError(
            f"secret name {key!r} contains ',', which ToolHive's '<name>,target=<ENV>' references cannot express"
        )
    if key.startswith(RESERVED_PREFIX):
        raise SecretNameError(
            f"secret name {key!r} starts with {RESERVED_PREFIX!r}, which ToolHive reserves for its own system secrets"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise SecretNameError(f"secret name {key!r} contains control characters")
    return key


def conflict_message(key: str, endpoint: str, expected: int | None, observed: str) -> str:
    """The one wording for a failed check-and-set: versions only, never values."""
    wanted = "not to exist" if expected is None else f"to be at version {expected}"
    return f"secret {key!r} in {endpoint} changed since it was read: expected it {wanted}, but {observed}"


def open_store(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> SecretStore:
    """The store `settings.secrets` names (default: ToolHive's encrypted file). Opening never touches the network.

    `environ` defaults to os.environ; tests pass their own so nothing leaks in from the developer's shell.
    """
    env = os.environ if environ is None else environ
    provider = settings.get("provider") or StoreKind.ENCRYPTED.value
    if provider == StoreKind.ENCRYPTED:
        from toolhive_apply.stores.encrypted import EncryptedStore

        return EncryptedStore.from_settings(settings.get("encrypted") or {}, env)
    if provider == StoreKind.VAULT:
        from toolhive_apply.stores.vault import VaultStore

        return VaultStore.from_settings(settings.get("vault") or {}, env)
    if provider == StoreKind.ENVIRONMENT:
        from toolhive_apply.stores.environment import EnvironmentStore

        return EnvironmentStore(env)
    choices = ", ".join(kind.value for kind in StoreKind)
    raise StoreConfigError(f"settings.secrets.provider: unknown secret store {provider!r} (expected one of {choices})")
