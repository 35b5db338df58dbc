"""What every secret store offers (ToolHive's "secrets provider") and the records it returns.

The errors live in stores/errors.py, the factory (`open_store`) in stores/factory.py: this module imports no store.

Stores are the only place secret values cross the process boundary; everything above them sees SecretValue
objects, keyed digests and owner records, so the plan can compare secrets without ever holding plaintext.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypedDict

from toolhive_apply.ownership import MANAGED_BY
from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.errors import (
    RESERVED_PREFIX,
    SecretNameError,
    StoreConfigError,
    StoreError,
    StoreFailure,
    StoreReadOnlyError,
    check_name,
    conflict_message,
)

__all__ = [  # the errors are re-exported: stores/errors.py is their home, this module was
    "MANAGED_BY",
    "RESERVED_PREFIX",
    "Capabilities",
    "ProviderDescription",
    "SecretNameError",
    "SecretStore",
    "StoreConfigError",
    "StoreError",
    "StoreFailure",
    "StoreKind",
    "StoreReadOnlyError",
    "StoredSecret",
    "check_name",
    "conflict_message",
    "provider_description",
]


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
