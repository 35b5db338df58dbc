"""The errors a secret store raises, and the rules whose breach they report (names, check-and-set conflicts)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from toolhive_apply.errors import TargetUnavailableError, ToolhiveApplyError

RESERVED_PREFIX: Final = "__thv_"
"""ToolHive keeps its own system secrets under this prefix (pkg/secrets/scoped.go); users may not touch them."""


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
