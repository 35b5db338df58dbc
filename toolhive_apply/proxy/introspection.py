"""Opaque access tokens, checked with the authorization server (RFC 7662 token introspection).

The proxy authenticates as ``client_id`` with the secret from ``client_secret_env`` (HTTP Basic, RFC 6749 §2.3.1).
An answer counts only with ``"active": true`` and the same issuer/audience/lifetime rules as a JWT (``iss`` when
present, ``aud`` and ``exp`` required). Answers are cached for at most ``CACHE_SECONDS`` (never past ``exp``), keyed
by the token's SHA-256, so neither the token nor a revocation lingers long; at most ``MAX_IN_FLIGHT`` questions are
asked at once. Refusals are remembered by the authenticator (``authn.REFUSAL_SECONDS``), not here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote, urlencode

from toolhive_apply.proxy.jwt_verify import TokenError, TransientTokenError, check_claims
from toolhive_apply.proxy.oidc_fetch import FetchError, fetch_json

CACHE_SECONDS: Final = 30.0
CACHE_ENTRIES: Final = 1024
MAX_IN_FLIGHT: Final = 8
"""Introspection requests at once: a flood of made-up tokens queues here instead of reaching the IdP all at once."""


class Introspector:
    def __init__(
        self,
        url: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if client_id is not None:
            pair = f"{quote(client_id, safe='')}:{quote(client_secret or '', safe='')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self._cache: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def claims(self, token: str) -> dict[str, Any]:
        """The active token's claims, or TokenError."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            check_claims(cached[1], issuer=self._issuer, audience=self._audience, now=now)
            return cached[1]
        body = urlencode({"token": token, "token_type_hint": "access_token"}).encode()
        try:
            async with self._in_flight:
                answer = await fetch_json(self._url, body, self._headers)
        except FetchError as error:
            raise TransientTokenError(f"token introspection failed: {error}") from None
        if not isinstance(answer, dict) or answer.get("active") is not True:
            raise TokenError("token is not active")
        claims = dict(answer)
        claims.setdefault("iss", self._issuer)
        check_claims(claims, issuer=self._issuer, audience=self._audience, now=now)
        until = min(now + CACHE_SECONDS, float(claims["exp"]))
        self._cache[key] = (until, claims)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return claims
