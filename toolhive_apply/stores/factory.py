"""Open the secret store a manifest's settings name. Apart from base.py so the protocol imports no implementation
(each implementation imports the protocol: with the factory in base.py that was an import cycle)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from toolhive_apply.stores.base import SecretStore, StoreKind
from toolhive_apply.stores.errors import StoreConfigError

DEFAULT_SETTINGS: Final[Mapping[str, Any]] = {"provider": StoreKind.ENCRYPTED.value}
"""`settings.secrets` when a manifest sets none: ToolHive's encrypted file."""


def default_settings() -> dict[str, Any]:
    """A fresh copy of DEFAULT_SETTINGS, for a caller that fills it in."""
    return dict(DEFAULT_SETTINGS)


def open_store(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> SecretStore:
    """The store `settings.secrets` names (default: ToolHive's encrypted file). Opening never touches the network.

    `environ` defaults to os.environ; tests pass their own so nothing leaks in from the developer's shell.
    """
    env = os.environ if environ is None else environ
    provider = settings.get("provider") or StoreKind.ENCRYPTED.value
    if provider == StoreKind.ENCRYPTED:
        from toolhive_apply.stores.encrypted import EncryptedStore  # only the store asked for is imported

        return EncryptedStore.from_settings(settings.get("encrypted") or {}, env)
    if provider == StoreKind.VAULT:
        from toolhive_apply.stores.vault import VaultStore

        return VaultStore.from_settings(settings.get("vault") or {}, env)
    if provider == StoreKind.ENVIRONMENT:
        from toolhive_apply.stores.environment import EnvironmentStore

        return EnvironmentStore(env)
    choices = ", ".join(kind.value for kind in StoreKind)
    raise StoreConfigError(f"settings.secrets.provider: unknown secret store {provider!r} (expected one of {choices})")
