"""The key set tokens are verified against: an inline JWKS document, or one fetched from ``jwks_url``.

Keys rotate by ``kid``: a token naming an unknown ``kid`` triggers one refresh, but at most once per
``REFRESH_INTERVAL`` (a stream of made-up kids must not turn the proxy into a load generator against the IdP). The
fetched set is also refreshed when older than ``MAX_AGE``. A failed fetch keeps the previous keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from toolhive_apply.proxy.jwt_verify import TokenError, parse_jwks
from toolhive_apply.proxy.oidc_fetch import FetchError, fetch_json

REFRESH_INTERVAL: Final = 30.0
"""Seconds between two refreshes caused by unknown kids."""
MAX_AGE: Final = 600.0
"""Seconds a fetched key set is used before it is fetched again."""
_log = logging.getLogger(__name__)


class KeySet:
    """Invariant: ``keys`` is the last key set successfully read (empty before the first fetch succeeds)."""

    def __init__(
        self,
        *,
        document: object = None,
        url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        self._url = url
        self._clock = clock
        self._interval = refresh_interval
        self.keys: list[dict[str, Any]] = parse_jwks(document) if document is not None else []
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def refreshable(self) -> bool:
        return self._url is not None

    async def current(self) -> list[dict[str, Any]]:
        """The keys, fetched first when there are none yet or they are older than ``MAX_AGE``."""
        if self._url is not None and (self._fetched_at is None or self._clock() - self._fetched_at > MAX_AGE):
            await self.refresh(force=self._fetched_at is None)
        return self.keys

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch again unless one was tried less than the refresh interval ago; whether a fetch was made."""
        if self._url is None:
            return False
        async with self._lock:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._interval and not force:
                return False
            if self._last_attempt is not None and now - self._last_attempt < 1.0:
                return False  # even a forced refresh waits a second: no fetch storm while the IdP is down
            self._last_attempt = now
            self.fetches += 1
            try:
                document = await fetch_json(self._url)
                self.keys = parse_jwks(document)
                self._fetched_at = now
            except (FetchError, TokenError) as error:
                _log.warning("JWKS fetch failed: %s", error)
            return True


def key_set_from(oidc: Mapping[str, Any]) -> KeySet:
    return KeySet(document=oidc.get("jwks"), url=oidc.get("jwks_url"))
