"""The proxy's small HTTP(S) client for its identity provider: JWKS documents and token introspection.

Blocking ``urllib`` run in a worker thread (the proxy is asyncio and standard-library only). Redirects are not
followed (a key set or an introspection answer comes from the configured URL or not at all), answers are size
limited and must be strict JSON (no duplicate keys: a second ``"active"`` must not win), and errors never carry the
request body (it may hold a token or the client secret).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

from toolhive_apply.proxy import strictjson

TIMEOUT: Final = 5.0
MAX_ANSWER: Final = 1024 * 1024


class FetchError(RuntimeError):
    """The identity provider could not be asked; the message is safe to log."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirect())


def _fetch_json(url: str, data: bytes | None, headers: Mapping[str, str]) -> Any:
    if not url.startswith(("http://", "https://")):
        raise FetchError("only http(s) URLs are fetched")
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json", **headers})
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            if response.status != 200:
                raise FetchError(f"HTTP {response.status}")
            body = response.read(MAX_ANSWER + 1)
    except urllib.error.HTTPError as error:
        raise FetchError(f"HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise FetchError(type(error).__name__) from None
    if len(body) > MAX_ANSWER:
        raise FetchError("answer too large")
    try:
        return strictjson.loads(body)  # a duplicate "active" or "keys" must not be read the lenient way
    except strictjson.StrictJsonError:
        raise FetchError("answer is not strict JSON") from None


async def fetch_json(url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> Any:
    """GET (or POST when ``data`` is given) ``url`` and decode its JSON answer, off the event loop."""
    return await asyncio.to_thread(_fetch_json, url, data, dict(headers or {}))
