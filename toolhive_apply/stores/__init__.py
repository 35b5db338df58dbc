"""Secret stores (ToolHive's "secrets providers"): the encrypted file ToolHive uses, Vault/OpenBao KV v2, and the
read-only environment. Callers need only `open_store` and the types re-exported here."""

from toolhive_apply.stores.base import (
    MANAGED_BY,
    ProviderDescription,
    SecretNameError,
    SecretStore,
    StoreConfigError,
    StoredSecret,
    StoreError,
    StoreFailure,
    StoreKind,
    StoreReadOnlyError,
)
from toolhive_apply.stores.factory import open_store

__all__ = [
    "MANAGED_BY",
    "ProviderDescription",
    "SecretNameError",
    "SecretStore",
    "StoreConfigError",
    "StoreError",
    "StoreFailure",
    "StoreKind",
    "StoreReadOnlyError",
    "StoredSecret",
    "open_store",
]
