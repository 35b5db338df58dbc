"""Authentication at the endpoint: a bearer token in, a verified ``Principal`` (or a 401) out.

A token is checked locally when it is a JWT and a key set is configured, else by introspection when an
``introspection_url`` is configured; anything else is refused. Only the ``Authorization: Bearer`` header carries
tokens (no query parameter, no form field: RFC 6750 §2.1 only, as MCP requires). Whatever the outcome, the
client's ``Authorization`` and ``Cookie`` headers never reach the server (no token passthrough): the request passed
down carries the ``Principal`` instead. When ``scopes`` are configured, a valid token must grant every one of them,
else 403 with ``error="insufficient_scope"`` and the scopes to ask for (MCP's step-up authorization).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from toolhive_apply.proxy.auth_config import OidcConfig
from toolhive_apply.proxy.httpserver import Request, Response, json_response
from toolhive_apply.proxy.httpwire import Headers
from toolhive_apply.proxy.introspection import Introspector
from toolhive_apply.proxy.jsonrpc import FORBIDDEN, UNAUTHORIZED, error_response
from toolhive_apply.proxy.jwks import KeySet, key_set_from
from toolhive_apply.proxy.jwt_verify import (
    TokenError,
    TransientTokenError,
    UnknownKeyError,
    looks_like_jwt,
    verify_jwt,
)
from toolhive_apply.proxy.principal import PRINCIPAL, Principal
from toolhive_apply.proxy.resource_metadata import challenge

_BEARER: Final = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)
"""RFC 6750 §2.1 b64token."""
CACHE_SECONDS: Final = 60.0
"""A verified token is remembered (by its SHA-256) this long at most, never past its ``exp``: one signature check
per token and minute instead of one per request."""
CACHE_ENTRIES: Final = 4096
REFUSAL_SECONDS: Final = 10.0
"""A refused token is refused again from memory this long (a replayed forgery costs no signature check and no
introspection), unless the refusal may not last (``TransientTokenError``: unknown key, not yet valid, IdP down)."""
CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
_log = logging.getLogger(__name__)


def granted_scopes(claims: Mapping[str, object]) -> frozenset[str]:
    """The scopes a verified token grants: ``scope``, space-separated (RFC 9068 §2.2.3, RFC 7662), else ``scp`` as
    a list or string (how Okta and Entra ID write it). Anything else grants nothing."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()


def without_credentials(request: Request) -> Request:
    """The request with the client's credentials removed, so nothing passes them on."""
    kept = [(k, v) for k, v in request.headers if k.lower() not in CREDENTIAL_HEADERS]
    return dataclasses.replace(request, headers=Headers(kept))


class Authenticator:
    def __init__(self, oidc: OidcConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.oidc = oidc
        self._clock = clock
        self.keys: KeySet | None = None
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._refused: OrderedDict[bytes, tuple[float, str]] = OrderedDict()
        if oidc.jwks is not None or oidc.jwks_url is not None:
            self.keys = key_set_from({"jwks": oidc.jwks, "jwks_url": oidc.jwks_url})
        self._introspector = (
            Introspector(
                oidc.introspection_url,
                client_id=oidc.client_id,
                client_secret=oidc.client_secret,
                issuer=oidc.issuer,
                audience=oidc.audience,
                clock=clock,
            )
            if oidc.introspection_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        """The principal the token proves, or TokenError."""
        key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._verified.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        refused = self._refused.get(key)
        if refused is not None and now < refused[0]:
            raise TokenError(refused[1])
        try:
            principal = await self._verify_uncached(token)
        except TransientTokenError:
            raise
        except TokenError as error:
            self._refused[key] = (now + REFUSAL_SECONDS, str(error))
            while len(self._refused) > CACHE_ENTRIES:
                self._refused.popitem(last=False)
            raise
        exp = principal.claims.get("exp")
        until = min(now + CACHE_SECONDS, float(exp)) if isinstance(exp, int | float) else now
        if until > now:
            self._verified[key] = (until, principal)
            while len(self._verified) > CACHE_ENTRIES:
                self._verified.popitem(last=False)
        return principal

    async def _verify_uncached(self, token: str) -> Principal:
        if self.keys is not None and looks_like_jwt(token):
            claims = await self._verify_jwt(token)
        elif self._introspector is not None:
            claims = await self._introspector.claims(token)
        else:
            raise TokenError("not a JWT")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            # no fallback to client_id: a client registered under a user's name would get that user's policies
            raise TokenError("token without a subject (sub)")
        return Principal.of(subject, claims)

    async def _verify_jwt(self, token: str) -> dict[str, Any]:
        assert self.keys is not None
        try:
            return await self._verify_off_loop(token, await self.keys.current())
        except UnknownKeyError:
            if not await self.keys.refresh():
                raise
            return await self._verify_off_loop(token, self.keys.keys)

    async def _verify_off_loop(self, token: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
        """A signature check is pure-Python arithmetic (milliseconds for ECDSA) on a token anyone may send: in a
        worker thread, the event loop keeps serving other requests (the GIL is handed back every few ms)."""
        verify = functools.partial(
            verify_jwt, token, keys, issuer=self.oidc.issuer, audience=self.oidc.audience, now=self._clock()
        )
        return await asyncio.to_thread(verify)

    async def authenticate(self, request: Request) -> Request | Response:
        """The request (credentials removed, principal set) or the 401 to send."""
        values = request.headers.get_all("authorization")
        if not values:
            return self._unauthorized(request, None, "Unauthorized: a bearer token is required")
        match = _BEARER.fullmatch(values[0].strip())
        if len(values) != 1 or match is None:
            return self._unauthorized(request, "invalid_request", "Unauthorized: malformed Authorization header")
        try:
            principal = await self.verify(match.group(1))
        except TokenError as error:
            _log.info("token refused: %s", error)
            return self._unauthorized(request, "invalid_token", f"Unauthorized: {error}")
        request.context[PRINCIPAL] = principal  # for the observer outside, which holds the original request
        missing = [s for s in self.oidc.scopes if s not in granted_scopes(principal.claims)]
        if missing:
            _log.info("token of %s lacks scopes %s", principal.subject, missing)
            return self._insufficient_scope(request, missing)
        return dataclasses.replace(without_credentials(request), principal=principal)

    def _insufficient_scope(self, request: Request, missing: list[str]) -> Response:
        """403 and the step-up challenge (MCP authorization 2025-11-25, RFC 6750 §3.1): ``scope`` names every scope
        the endpoint requires, so the client asks for all of them at once."""
        header = ("WWW-Authenticate", challenge(self.oidc, request, "insufficient_scope"))
        message = f"Forbidden: the token lacks the scope(s) {' '.join(missing)}"
        return json_response(HTTPStatus.FORBIDDEN, error_response(None, FORBIDDEN, message), [header])

    def _unauthorized(self, request: Request, error: str | None, message: str) -> Response:
        header = ("WWW-Authenticate", challenge(self.oidc, request, error))
        return json_response(HTTPStatus.UNAUTHORIZED, error_response(None, UNAUTHORIZED, message), [header])
