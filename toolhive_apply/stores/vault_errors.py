"""Turns hvac and requests failures into StoreErrors whose text toolhive-apply wrote itself.

hvac's exception text carries the server's error strings and requests' carries URLs and socket details; either
could in principle echo request data, which for a write is the secret value. Only the exception *class* and a
few known server phrases are inspected here, to classify; nothing from them is copied into a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin

import hvac.exceptions
import requests
import urllib3.exceptions

from toolhive_apply.stores.base import StoreError, StoreFailure
from toolhive_apply.stores.vault_settings import SKIP_VERIFY_HINT
from toolhive_apply.urls import origin_of

TARGET: Final = "Vault secret store"
TRANSPORT_ERRORS: Final = (hvac.exceptions.VaultError, requests.exceptions.RequestException)
REDIRECT_HINT: Final = (
    "point settings.secrets.vault.address (or VAULT_ADDR) at the active node, or at a load balancer that forwards;"
    " Vault standbys forward requests to the active node unless forwarding is disabled"
)


class RedirectRefusedError(requests.exceptions.RequestException):
    """The server answered with a redirect, which is never followed.

    Why: every request carries X-Vault-Token, and a login carries the AppRole secret_id, the JWT or the Kubernetes
    service-account token in its body. requests re-sends both to wherever a 307/308 points (https to http
    included), so one redirect from a compromised or misconfigured listener handed the credentials to another
    host. Vault's own client follows one redirect (refusing only a downgrade), for standbys whose request
    forwarding is off; toolhive-apply follows none, and says where the server pointed so the address can be fixed.
    """

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"redirect (HTTP {status})")
        self.status = status
        self.location = location


def refuse_redirects(session: requests.Session) -> None:
    """Make `session` raise RedirectRefusedError on any 3xx answer, before requests could follow it."""
    hooks = session.hooks.setdefault("response", [])
    if _refuse_redirect not in hooks:
        hooks.append(_refuse_redirect)


def _refuse_redirect(response: requests.Response, *args: object, **kwargs: object) -> None:
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location")
        response.close()
        shown = origin_of(urljoin(response.url or "", location)) if location else "no address (no Location)"
        raise RedirectRefusedError(response.status_code, shown)


@dataclass(frozen=True, slots=True)
class Operation:
    """What was being done when a call failed: `action` is a verb phrase, `path` the API path under /v1."""

    action: str
    path: str

    def __str__(self) -> str:
        return f"{self.action} {self.path}"


_HTTP: Final[dict[type[hvac.exceptions.VaultError], tuple[str, StoreFailure]]] = {
    hvac.exceptions.Unauthorized: ("not authenticated (HTTP 401)", StoreFailure.UNAUTHENTICATED),
    hvac.exceptions.Forbidden: ("permission denied (HTTP 403)", StoreFailure.FORBIDDEN),
    hvac.exceptions.InvalidRequest: ("the request was rejected (HTTP 400)", StoreFailure.REJECTED),
    hvac.exceptions.InvalidPath: ("not found (HTTP 404)", StoreFailure.REJECTED),
    hvac.exceptions.PreconditionFailed: ("not yet consistent (HTTP 412)", StoreFailure.UNAVAILABLE),
    hvac.exceptions.RateLimitExceeded: ("rate limited (HTTP 429)", StoreFailure.RATE_LIMITED),
    hvac.exceptions.InternalServerError: ("internal server error (HTTP 500)", StoreFailure.SERVER_ERROR),
    hvac.exceptions.VaultNotInitialized: ("not initialized (HTTP 501)", StoreFailure.UNAVAILABLE),
    hvac.exceptions.BadGateway: ("bad gateway (HTTP 502)", StoreFailure.SERVER_ERROR),
    hvac.exceptions.VaultDown: ("unavailable (HTTP 503: standby or maintenance)", StoreFailure.UNAVAILABLE),
}

_HINTS: Final[dict[StoreFailure, str]] = {
    StoreFailure.UNREACHABLE: "is the server running? check settings.secrets.vault.address or VAULT_ADDR",
    StoreFailure.CONNECTION_LOST: "the server or a proxy closed the connection; retry, and check the server's log",
    StoreFailure.TIMEOUT: "the server did not answer in time; check its load and the network",
    StoreFailure.TLS: SKIP_VERIFY_HINT,
    StoreFailure.SEALED: "unseal it (`bao operator unseal` / `vault operator unseal`), then retry",
    StoreFailure.UNAUTHENTICATED: "log in again (VAULT_TOKEN, ~/.vault-token) or check settings.secrets.vault.auth",
    StoreFailure.NO_MOUNT: "check settings.secrets.vault.mount: it must name a KV version 2 secrets engine",
    StoreFailure.RATE_LIMITED: "the server's rate-limit quota was hit; retry later",
    StoreFailure.SERVER_ERROR: "the server failed; check its log and retry",
    StoreFailure.REDIRECTED: REDIRECT_HINT,
}


def has_phrase(exc: hvac.exceptions.VaultError, phrase: str) -> bool:
    """Whether the server's error strings contain `phrase` (used to classify only, never to build text)."""
    return any(phrase in str(item).lower() for item in exc.errors or ())


def translate(exc: Exception, address: str, operation: Operation, key_path: str | None = None) -> StoreError:
    """A StoreError naming `address` and the operation; the caller raises it outside its `except` block."""
    summary, failure = _classify(exc)
    hint = _HINTS.get(failure)
    if failure is StoreFailure.FORBIDDEN:
        hint = f"the token's policies must allow this on {operation.path} (check with `bao token capabilities`)"
    return StoreError(
        TARGET, address, f"{summary}, on {operation}", failure=failure, path=key_path or operation.path, hint=hint
    )


def _classify(exc: Exception) -> tuple[str, StoreFailure]:
    if isinstance(exc, hvac.exceptions.VaultError):
        return _classify_http(exc)
    if isinstance(exc, RedirectRefusedError):
        summary = f"the server redirected (HTTP {exc.status}) to {exc.location}, and a Vault redirect is never"
        return f"{summary} followed: it would carry the token or login credentials", StoreFailure.REDIRECTED
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed", StoreFailure.TLS
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "cannot connect (timed out)", StoreFailure.UNREACHABLE
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time (read timed out)", StoreFailure.TIMEOUT
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _refused(exc):
            return "cannot connect (connection refused or unknown host)", StoreFailure.UNREACHABLE
        return "the connection was dropped before an answer came", StoreFailure.CONNECTION_LOST
    return f"the request failed ({type(exc).__name__})", StoreFailure.UNREACHABLE


def _classify_http(exc: hvac.exceptions.VaultError) -> tuple[str, StoreFailure]:
    if isinstance(exc, hvac.exceptions.VaultDown) and has_phrase(exc, "sealed"):
        return "the server is sealed (HTTP 503)", StoreFailure.SEALED
    if isinstance(exc, hvac.exceptions.InvalidPath) and has_phrase(exc, "no handler for route"):
        return "no secrets engine is mounted there (HTTP 404)", StoreFailure.NO_MOUNT
    for kind, outcome in _HTTP.items():
        if isinstance(exc, kind):
            return outcome
    return "unexpected HTTP status", StoreFailure.SERVER_ERROR


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    """Connection refused / DNS failure (nothing listening) as opposed to a connection that broke mid-request."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the real cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)
