"""Logging in to Vault/OpenBao and keeping the token alive for a long run.

Login is lazy (opening a store costs nothing) and happens once; before each operation the token's remaining TTL
is checked against the clock, and a token about to expire is renewed (renew-self) or, when it cannot be renewed,
obtained again by logging in. A token given directly (method `token`) can only be renewed, never re-obtained.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import hvac

from toolhive_apply.credentials import VAULT_TOKEN_ENV
from toolhive_apply.stores.base import StoreConfigError, StoreError, StoreFailure
from toolhive_apply.stores.vault_errors import TARGET, TRANSPORT_ERRORS, Operation, translate
from toolhive_apply.stores.vault_settings import KUBERNETES_TOKEN_FILE, AuthMethod, AuthSettings, VaultSettings

RENEW_BELOW: Final = 300.0
"""Renew when fewer seconds than this remain (or less than half the lease, for short leases)."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Lease:
    """A token's life as last reported by the server. `ttl` 0 means it never expires (e.g. a root token)."""

    ttl: float
    renewable: bool
    obtained: float

    def remaining(self, now: float) -> float | None:
        return None if self.ttl <= 0 else self.ttl - (now - self.obtained)

    def due(self, now: float, renew_below: float) -> bool:
        remaining = self.remaining(now)
        return remaining is not None and remaining < min(renew_below, self.ttl / 2)


class Authenticator:
    """Owns the client's token. Thread-safe: the executor may run store operations in parallel."""

    def __init__(
        self,
        settings: VaultSettings,
        environ: Mapping[str, str],
        clock: Clock = time.monotonic,
        renew_below: float = RENEW_BELOW,
    ) -> None:
        self.settings = settings
        self.auth: AuthSettings = settings.auth
        self.environ = environ
        self.clock = clock
        self.renew_below = renew_below
        self.lease: Lease | None = None
        self._lock = threading.Lock()

    @property
    def can_login_again(self) -> bool:
        return self.auth.method is not AuthMethod.TOKEN

    def ensure(self, client: hvac.Client, purpose: Operation) -> None:
        """Make sure the client holds a live token before `purpose`: log in, renew, or log in again."""
        with self._lock:
            lease = self.lease
            if lease is not None and not lease.due(self.clock(), self.renew_below):
                return
            if lease is not None and lease.renewable and self._renew(client, purpose):
                return
            if lease is None or self.can_login_again:
                self.lease = self._login(client, purpose)
            # else: a given token that cannot be renewed is used until the server refuses it

    def relogin(self, client: hvac.Client, purpose: Operation) -> None:
        """After the server refused the token mid-run: log in afresh (login methods only)."""
        with self._lock:
            self.lease = self._login(client, purpose)

    def token_is_valid(self, client: hvac.Client, purpose: Operation) -> bool:
        """Whether the server still accepts the token (to tell a policy denial from an expired token)."""
        try:
            client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return False
        except TRANSPORT_ERRORS as exc:
            error = translate(
                exc, self.settings.address, Operation("look up the token, after", str(purpose)), purpose.path
            )
        else:
            return True
        raise error

    def _renew(self, client: hvac.Client, purpose: Operation) -> bool:
        try:
            auth = client.auth.token.renew_self()["auth"]
        except hvac.exceptions.Forbidden:
            return False  # expired or past its max TTL: log in again if we can
        except TRANSPORT_ERRORS as exc:
            error = translate(
                exc, self.settings.address, Operation("renew the token, before", str(purpose)), purpose.path
            )
        else:
            self.lease = Lease(float(auth["lease_duration"]), bool(auth["renewable"]), self.clock())
            return True
        raise error

    def _login(self, client: hvac.Client, purpose: Operation) -> Lease:
        operation = Operation(f"{self.auth.method.value} login, before", str(purpose))
        started = self.clock()
        refused: StoreError | None = None
        try:
            return self._lease_from(self._call_login(client), started)
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest, hvac.exceptions.Unauthorized):
            refused = self._refused(operation, purpose.path)
        except TRANSPORT_ERRORS as exc:
            refused = translate(exc, self.settings.address, operation, purpose.path)
        raise refused

    def _call_login(self, client: hvac.Client) -> Mapping[str, Any]:
        """The login response's `auth` block (for a given token: the lookup-self `data` block)."""
        auth, mount = self.auth, self.auth.mount
        if auth.method is AuthMethod.TOKEN:
            client.token = self._given_token()
            data: Mapping[str, Any] = client.auth.token.lookup_self()["data"]
            return {"lease_duration": data.get("ttl") or 0, "renewable": bool(data.get("renewable"))}
        client.token = ""  # never send an ambient token along with a login
        if auth.method is AuthMethod.APPROLE:
            response = client.auth.approle.login(role_id=auth.role_id, secret_id=self._secret_id(), mount_point=mount)
        elif auth.method is AuthMethod.KUBERNETES:
            jwt = _read_secret_file(
                auth.token_file or Path(KUBERNETES_TOKEN_FILE), "the Kubernetes service-account token"
            )
            response = client.auth.kubernetes.login(role=auth.role, jwt=jwt, mount_point=mount)
        else:
            response = client.auth.jwt.jwt_login(role=auth.role, jwt=self._jwt(), path=mount)
        result: Mapping[str, Any] = response["auth"]
        return result

    def _lease_from(self, auth: Mapping[str, Any], started: float) -> Lease:
        return Lease(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")), started)

    def _refused(self, operation: Operation, key_path: str) -> StoreError:
        if self.auth.method is AuthMethod.TOKEN:
            reason = "the token was refused (invalid, revoked or expired)"
            hint = "set VAULT_TOKEN to a valid token, or log in again (`bao login` / `vault login`)"
        else:
            reason = f"the {self.auth.method.value} login at auth/{self.auth.mount} was refused"
            hint = f"check settings.secrets.vault.auth ({self._credential_names()})"
        return StoreError(
            TARGET,
            self.settings.address,
            f"{reason}, on {operation}",
            failure=StoreFailure.UNAUTHENTICATED,
            path=key_path,
            hint=hint,
        )

    def _credential_names(self) -> str:
        if self.auth.method is AuthMethod.APPROLE:
            return "role_id and the secret id in " + (str(self.auth.secret_id_file or "") or self.auth.secret_id_env)
        return f"role {self.auth.role!r} and the token it is given"

    def _given_token(self) -> str:
        token = self.environ.get(VAULT_TOKEN_ENV)
        if token:
            return token
        home = self.environ.get("HOME") or str(Path.home())
        stored = Path(home) / ".vault-token"
        if stored.is_file():
            return _read_secret_file(stored, "the Vault token file")
        raise StoreConfigError(
            f"no Vault token for {self.settings.address}: VAULT_TOKEN is not set and {stored} does not exist",
            hint="export VAULT_TOKEN, run `bao login` / `vault login`, or set settings.secrets.vault.auth.method",
        )

    def _secret_id(self) -> str | None:
        if self.auth.secret_id_file:
            return _read_secret_file(self.auth.secret_id_file, "the AppRole secret id file")
        return self.environ.get(self.auth.secret_id_env) or None  # roles with bind_secret_id=false need none

    def _jwt(self) -> str:
        if self.auth.jwt_file:
            return _read_secret_file(self.auth.jwt_file, "the JWT file")
        token = self.environ.get(self.auth.jwt_env or "")
        if not token:
            raise StoreConfigError(
                f"the environment variable {self.auth.jwt_env} with the JWT for Vault login is not set"
            )
        return token


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StoreConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
