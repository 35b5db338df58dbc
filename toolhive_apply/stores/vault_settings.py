"""settings.secrets.vault resolved against the environment, once, into typed values.

Every default the Vault CLI takes from the environment (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT, VAULT_ROLE_ID)
is read here from the mapping the caller passes, never from os.environ behind its back, so tests and the CLI see
the same behaviour. TLS is always verified: VAULT_SKIP_VERIFY is deliberately not honoured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from toolhive_apply.stores.base import StoreConfigError
from toolhive_apply.urls import mask_url

DEFAULT_MOUNT: Final = "secret"
DEFAULT_PREFIX: Final = "toolhive"
DEFAULT_SECRET_ID_ENV: Final = "VAULT_SECRET_ID"
KUBERNETES_TOKEN_FILE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SKIP_VERIFY_HINT: Final = (
    "toolhive-apply always verifies TLS and ignores VAULT_SKIP_VERIFY; set settings.secrets.vault.ca_cert"
    " (or VAULT_CACERT) to the CA that signed the server's certificate"
)


class AuthMethod(StrEnum):
    TOKEN = "token"
    APPROLE = "approle"
    JWT = "jwt"
    OIDC = "oidc"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How to log in. Credentials themselves are read at login time (files such as service-account tokens rotate)."""

    method: AuthMethod = AuthMethod.TOKEN
    mount: str = "token"
    role: str | None = None
    role_id: str | None = None
    secret_id_env: str = DEFAULT_SECRET_ID_ENV
    secret_id_file: Path | None = None
    jwt_env: str | None = None
    jwt_file: Path | None = None
    token_file: Path | None = None


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """A Vault/OpenBao KV v2 location. `mount` and `path_prefix` carry no leading or trailing slashes."""

    address: str
    mount: str = DEFAULT_MOUNT
    path_prefix: str = DEFAULT_PREFIX
    namespace: str | None = None
    verify: bool | str = True
    client_cert: tuple[str, str] | None = None
    auth: AuthSettings = AuthSettings()

    @property
    def location(self) -> str:
        """The address plus where the secrets sit, for messages."""
        where = f"{self.mount}/{self.path_prefix}".rstrip("/")
        namespace = f", namespace {self.namespace}" if self.namespace else ""
        return f"{self.address} ({where}{namespace})"


def parse_vault_settings(settings: Mapping[str, Any], environ: Mapping[str, str]) -> VaultSettings:
    address = str(settings.get("address") or environ.get("VAULT_ADDR") or "").rstrip("/")
    if not address:
        raise StoreConfigError(
            "the vault secret store has no address: set settings.secrets.vault.address or VAULT_ADDR",
            hint="for example https://vault.example.com:8200",
        )
    if not address.startswith(("http://", "https://")):
        raise StoreConfigError(
            f"settings.secrets.vault.address {mask_url(address)!r} must start with http:// or https://"
        )
    if mask_url(address) != address:  # a user:password@ or a query would ride along in every message
        raise StoreConfigError(
            f"settings.secrets.vault.address {mask_url(address)!r} must not carry credentials or a query",
            hint="give the token with VAULT_TOKEN or settings.secrets.vault.auth",
        )
    client_cert = None
    if environ.get("VAULT_CLIENT_CERT") and environ.get("VAULT_CLIENT_KEY"):
        client_cert = (environ["VAULT_CLIENT_CERT"], environ["VAULT_CLIENT_KEY"])
    return VaultSettings(
        address=address,
        mount=_segment(settings.get("mount"), DEFAULT_MOUNT, "mount"),
        path_prefix=str(settings.get("path_prefix", DEFAULT_PREFIX) or "").strip("/"),
        namespace=settings.get("namespace") or environ.get("VAULT_NAMESPACE") or None,
        verify=_verify(settings, environ),
        client_cert=client_cert,
        auth=_auth(settings.get("auth") or {}, environ),
    )


def _segment(value: Any, default: str, name: str) -> str:
    text = str(value or default).strip("/")
    if not text:
        raise StoreConfigError(f"settings.secrets.vault.{name} must not be empty")
    return text


def _verify(settings: Mapping[str, Any], environ: Mapping[str, str]) -> bool | str:
    """A CA bundle or directory to trust, or True for the system store; never False."""
    ca = settings.get("ca_cert") or environ.get("VAULT_CACERT") or environ.get("VAULT_CAPATH")
    if not ca:
        return True
    if not Path(ca).exists():
        raise StoreConfigError(f"the Vault CA certificate {ca} does not exist", hint="check ca_cert or VAULT_CACERT")
    return str(ca)


def _auth(auth: Mapping[str, Any], environ: Mapping[str, str]) -> AuthSettings:
    try:
        method = AuthMethod(auth.get("method") or AuthMethod.TOKEN)
    except ValueError:
        choices = ", ".join(m.value for m in AuthMethod)
        raise StoreConfigError(
            f"settings.secrets.vault.auth.method {auth.get('method')!r} is not one of {choices}"
        ) from None
    result = AuthSettings(
        method=method,
        mount=_segment(auth.get("mount"), method.value, "auth.mount"),
        role=auth.get("role"),
        role_id=auth.get("role_id") or environ.get("VAULT_ROLE_ID"),
        secret_id_env=auth.get("secret_id_env") or DEFAULT_SECRET_ID_ENV,
        secret_id_file=_path(auth.get("secret_id_file")),
        jwt_env=auth.get("jwt_env"),
        jwt_file=_path(auth.get("jwt_file")),
        token_file=_path(auth.get("token_file")),
    )
    _check_auth(result)
    return result


def _check_auth(auth: AuthSettings) -> None:
    """Report a missing setting now, at plan time, rather than at the first login."""
    where = "settings.secrets.vault.auth"
    if auth.method in (AuthMethod.JWT, AuthMethod.OIDC, AuthMethod.KUBERNETES) and not auth.role:
        raise StoreConfigError(f"{where}.role is required for {auth.method.value} login")
    if auth.method is AuthMethod.APPROLE and not auth.role_id:
        raise StoreConfigError(f"{where}.role_id (or VAULT_ROLE_ID) is required for approle login")
    if auth.method in (AuthMethod.JWT, AuthMethod.OIDC) and not (auth.jwt_env or auth.jwt_file):
        raise StoreConfigError(
            f"{where}: set jwt_env or jwt_file to say where the JWT for {auth.method.value} comes from"
        )


def _path(value: Any) -> Path | None:
    return Path(str(value)).expanduser() if value else None
