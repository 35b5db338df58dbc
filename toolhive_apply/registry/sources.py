"""Fetch registry documents from a file, a static URL or an MCP Registry API, with an on-disk cache.

Remote sources are read once per run, with a timeout and a size limit; a fresh cache entry is used without
asking; a stale one is revalidated with ETag/Last-Modified; an unreachable source falls back to the cached copy
with a visible warning, and fails clearly when there is none (ToolHive's caching rules, §3.3 of the facts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

from toolhive_apply.fileio import private_dir, read_owned, replace_atomically
from toolhive_apply.registry.formats import RegistryError

TIMEOUT_SECONDS = 10.0
MAX_BYTES = 16 * 1024 * 1024
MAX_PAGES = 200
PAGE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Fetched:
    document: Any
    warning: str | None = None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolhive-apply" / "registries"


def _cache_paths(key: str) -> tuple[Path, Path]:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{digest}.json", cache_dir() / f"{digest}.meta.json"


def _read_limited(response: Any, what: str) -> bytes:
    body = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise RegistryError(f"{what}: the document is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return bytes(body)


def _parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{what}: not valid JSON ({exc})") from None


def _get(url: str, what: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _read_limited(response, what), dict(response.headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return 304, b"", {}
        raise RegistryError(f"{what}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"{what}: unreachable ({reason})") from None


def load_file(path: Path, registry: str) -> Fetched:
    what = f"registry {registry!r} ({path})"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise RegistryError(f"{what}: the document is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        return Fetched(_parse_json(path.read_bytes(), what))
    except OSError as exc:
        raise RegistryError(f"{what}: cannot read ({exc.strerror})") from None


def _fetch_api(api_url: str, what: str, timeout: float) -> Any:
    """All pages of `GET {api_url}/v0.1/servers`, as an upstream-format document.

    Cursor paging (`metadata.nextCursor`, the MCP Registry API) and page numbers (`metadata.page/total/limit`,
    ToolHive's own server) are both followed, within MAX_PAGES.
    """
    servers: list[Any] = []
    params: dict[str, Any] = {"limit": PAGE_LIMIT}
    base = urljoin(api_url.rstrip("/") + "/", "v0.1/servers")
    for _ in range(MAX_PAGES):
        _, raw, _ = _get(f"{base}?{urlencode(params)}", what, {}, timeout)
        page = _parse_json(raw, what)
        if not isinstance(page, dict) or not isinstance(page.get("servers"), list):
            raise RegistryError(f"{what}: not an MCP Registry API response (no `servers` list)")
        servers.extend(item.get("server", item) if isinstance(item, dict) else item for item in page["servers"])
        if not _next_page(page.get("metadata"), params, what):
            break
    else:
        raise RegistryError(f"{what}: more than {MAX_PAGES} pages")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"version": "1.0.0", "meta": {"last_updated": stamp}, "data": {"servers": servers}}


def _next_page(meta: object, params: dict[str, Any], what: str) -> bool:
    """Set `params` for the page after this one; False when this one was the last.

    Why: the metadata was used as it came, so `"metadata": true` or a string page number crashed with
    AttributeError/TypeError instead of a RegistryError (found by the fault suite's registry fuzzing).
    """
    if meta is None:
        return False
    if not isinstance(meta, dict):
        raise RegistryError(f"{what}: not an MCP Registry API response (`metadata` is not an object)")
    cursor = meta.get("nextCursor")
    if cursor:
        if not isinstance(cursor, str):
            raise RegistryError(f"{what}: not an MCP Registry API response (`metadata.nextCursor` is not a string)")
        params["cursor"] = cursor
        return True
    numbers = {key: meta.get(key) for key in ("page", "total", "limit")}
    if not numbers["page"] or not numbers["total"]:
        return False
    if numbers["limit"] is None:
        numbers["limit"] = PAGE_LIMIT
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers.values()):
        raise RegistryError(f"{what}: not an MCP Registry API response (`metadata.page/total/limit` are not numbers)")
    if numbers["page"] * numbers["limit"] >= numbers["total"]:
        return False
    params["page"] = numbers["page"] + 1
    return True


def _fetch_url(url: str, what: str, timeout: float, meta: dict[str, Any]) -> tuple[Any, dict[str, str]] | None:
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    status, raw, response_headers = _get(url, what, headers, timeout)
    if status == 304:
        return None
    return _parse_json(raw, what), response_headers


def load_remote(key: str, registry: str, ttl: float, timeout: float = TIMEOUT_SECONDS) -> Fetched:
    """`key` is `url:<url>` or `api:<base url>`; the cache is shared by every stack on this machine."""
    kind, _, url = key.partition(":")
    what = f"registry {registry!r} ({url})"
    data_path, meta_path = _cache_paths(key)
    found = _read_cached(meta_path)
    meta = found if isinstance(found, dict) else {}
    cached_document = _read_cached(data_path)
    cached = cached_document is not None
    if cached and time.time() - float(meta.get("fetched_at", 0)) < ttl:
        return Fetched(cached_document)
    fetch: Callable[[], tuple[Any, dict[str, str]] | None]
    if kind == "api":
        fetch = lambda: (_fetch_api(url, what, timeout), {})  # noqa: E731
    else:
        fetch = lambda: _fetch_url(url, what, timeout, meta if cached else {})  # noqa: E731
    try:
        result = fetch()
    except RegistryError as exc:
        if not cached:
            raise
        age = int(time.time() - float(meta.get("fetched_at", 0)))
        return Fetched(cached_document, f"{exc.message}; using the cached copy from {age} s ago")
    if result is None:  # 304: still valid
        _write_cache(data_path, meta_path, cached_document, {**meta, "fetched_at": time.time()})
        return Fetched(cached_document)
    document, headers = result
    lower = {k.lower(): v for k, v in headers.items()}
    new_meta = {"fetched_at": time.time(), "etag": lower.get("etag"), "last_modified": lower.get("last-modified")}
    _write_cache(data_path, meta_path, document, new_meta)
    return Fetched(document)


def _read_cached(path: Path) -> Any:
    """A cache file only when no one else can have written it (ours, not a link, in our 0700 directory): what it
    says becomes images and arguments, so a file someone else could have put there is no cache at all."""
    try:
        private_dir(path.parent, levels=2)
        raw = read_owned(path)
        return None if raw is None else json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None


def _write_cache(data_path: Path, meta_path: Path, document: Any, meta: dict[str, Any]) -> None:
    """Through the project's writer: 0600 files in a 0700 directory, fresh temp names, never through a link."""
    try:
        private_dir(data_path.parent, levels=2)
        for path, content in ((data_path, document), (meta_path, meta)):
            replace_atomically(path, json.dumps(content).encode("utf-8"))
    except OSError:
        pass  # a cache that cannot be written only costs a fetch next time
