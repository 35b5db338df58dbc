"""ToolHive's read-only `environment` provider: secret X is the environment variable TOOLHIVE_SECRET_X.

It exists for CI and containers where secrets arrive as variables. It cannot list: the environment has no
notion of which variables are secrets, and scanning for the prefix would report whatever the shell happens to
export. So `list()` returns nothing, `describe()` says can_list is false, and callers must ask by name.

Nor can it keep the key of the stack's secret digests, which the other stores keep as a secret of their own:
providers/stack_key.py says where that key comes from for this store.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import ClassVar, Final, NoReturn

from toolhive_apply.redact import SecretValue
from toolhive_apply.stores.base import (
    ProviderDescription,
    StoredSecret,
    StoreKind,
    StoreReadOnlyError,
    check_name,
    provider_description,
)

PREFIX: Final = "TOOLHIVE_SECRET_"


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Every TOOLHIVE_SECRET_* value is a secret whichever store a run uses: scrub them all from its output."""
    for name, value in environ.items():
        if name.startswith(PREFIX):
            SecretValue(value)


class EnvironmentStore:
    kind: ClassVar[StoreKind] = StoreKind.ENVIRONMENT

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    @property
    def endpoint(self) -> str:
        return f"environment variables {PREFIX}*"

    def describe(self) -> ProviderDescription:
        return provider_description(self.kind, writable=False, listable=False)

    def list(self) -> builtins.list[StoredSecret]:
        """Always empty: this store cannot enumerate its secrets (ToolHive answers 405 here)."""
        return []

    def read(self, key: str) -> SecretValue | None:
        check_name(key)
        value = self.environ.get(PREFIX + key)
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
    ) -> NoReturn:
        raise self._read_only(key, "write")

    def delete(self, key: str, *, stack: str) -> NoReturn:
        raise self._read_only(key, "delete")

    def _read_only(self, key: str, action: str) -> StoreReadOnlyError:
        return StoreReadOnlyError(
            f"cannot {action} secret {key!r}: the environment store is read-only (it reads {PREFIX}{key})",
            hint=f"set {PREFIX}{key} in the environment instead, or use the encrypted or vault store",
        )
