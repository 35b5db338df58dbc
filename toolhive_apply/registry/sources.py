"""Fetch registry documents from a file, a static URL or an MCP Registry API, with an on-disk cache.

Remote sources are read once per run, within one deadline and a size limit, under the registry's address policy
(transport.py); a fresh cache entry is used without asking; a stale one is revalidated with ETag/Last-Modified;
an unreachable source falls back to the cached copy with a visible warning, and fails clearly when there is none
(ToolHive's caching rules, §3.3 of the facts). URLs appear in messages only masked: they may carry credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from toolhive_apply.fileio import (
    InputFileError,
    UnsafePathError,
    private_dir,
    read_input,
    read_owned,
    replace_atomically,
)
from toolhive_apply.registry import transport
from toolhive_apply.registry.formats import RegistryError
from toolhive_apply.registry.transport import TIMEOUT_SECONDS, Deadline, FetchPolicy
from toolhive_apply.urls import mask_url

__all__ = ["TIMEOUT_SECONDS", "FetchPolicy", "Fetched", "load_cached", "load_file", "load_remote"]

MAX_BYTES = transport.MAX_BYTES
MAX_PAGES = 200
PAGE_LIMIT = 100
MAX_DEPTH: Final = 64
"""Deeper documents are refused: no registry needs it, and the parsers and checks after this recurse."""


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


def _parse_json(raw: bytes, what: str) -> Any:
    try:
        document = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise RegistryError(f"{what}: the document is nested more than {MAX_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"{what}: not valid JSON ({exc})") from None
    if _depth_exceeds(document, MAX_DEPTH):
        raise RegistryError(f"{what}: the document is nested more than {MAX_DEPTH} levels deep")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Iteratively, so the check itself cannot overflow the stack."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _describe(url: str, registry: str) -> str:
    return f"registry {registry!r} ({mask_url(url)})"


def load_file(path: Path, registry: str) -> Fetched:
    what = f"registry {registry!r} ({path})"
    try:
        data = read_input(path, MAX_BYTES)
    except InputFileError as exc:
        if exc.reason.startswith("larger than"):
            raise RegistryError(f"{what}: the document is larger than {transport.size_text(MAX_BYTES)}") from None
        raise RegistryError(f"{what}: cannot read ({exc.reason})") from None
    return Fetched(_parse_json(data, what))


def _get(url: str, what: str, headers: dict[str, str], fetch: _Fetch) -> transport.Response:
    request = transport.Request(what, headers, fetch.policy, fetch.deadline, MAX_BYTES)
    response = transport.get(url, request)
    fetch.private = fetch.private or response.private
    if response.status == 304 or 200 <= response.status < 300:
        return response
    raise RegistryError(f"{what}: HTTP {response.status}")


@dataclass(slots=True)
class _Fetch:
    """One fetch of one source: its policy, its single deadline, and whether it reached a private address."""

    policy: FetchPolicy
    deadline: Deadline
    private: bool = False


def _api_page_url(api_url: str, params: dict[str, Any]) -> str:
    """`{api_url}/v0.1/servers` with the paging parameters added to any query the API URL already has."""
    parts = urlsplit(api_url)
    path = parts.path.rstrip("/") + "/v0.1/servers"
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _fetch_api(api_url: str, what: str, fetch: _Fetch) -> Any:
    """All pages of `GET {api_url}/v0.1/servers`, as an upstream-format document.

    Cursor paging (`metadata.nextCursor`, the MCP Registry API) and page numbers (`metadata.page/total/limit`,
    ToolHive's own server) are both followed, within MAX_PAGES and the fetch's one deadline.
    """
    servers: list[Any] = []
    params: dict[str, Any] = {"limit": PAGE_LIMIT}
    for _ in range(MAX_PAGES):
        page = _parse_json(_get(_api_page_url(api_url, params), what, {}, fetch).body, what)
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


def _fetch_url(url: str, what: str, fetch: _Fetch, meta: dict[str, Any]) -> tuple[Any, dict[str, str]] | None:
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = str(meta["etag"])
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = str(meta["last_modified"])
    response = _get(url, what, headers, fetch)
    if response.status == 304:
        return None
    return _parse_json(response.body, what), dict(response.headers)


@dataclass(frozen=True, slots=True)
class _Cached:
    document: Any
    meta: dict[str, Any]

    @property
    def age(self) -> float:
        return time.time() - float(self.meta.get("fetched_at", 0))


def _read_cache(key: str, policy: FetchPolicy) -> _Cached | None:
    """The cached copy, if it is readable and was fetched under rules this registry still allows.

    A copy fetched from a private address is not used once the registry no longer allows one (an entry from
    before this was recorded counts as private), so a cache never smuggles in what the policy now refuses.
    """
    data_path, meta_path = _cache_paths(key)
    try:
        raw_meta, raw_data = _read_owned(meta_path), _read_owned(data_path)
        if raw_meta is None or raw_data is None:
            return None
        meta = json.loads(raw_meta.decode("utf-8"))
        if not isinstance(meta, dict):
            return None
        if meta.get("private", True) and not policy.allow_private_ip:
            return None
        float(meta.get("fetched_at", 0))
        document = _parse_json(raw_data, "the cache")
    except (OSError, ValueError, TypeError, RecursionError, RegistryError):
        return None  # a damaged cache is no cache
    return _Cached(document, meta)


def load_cached(key: str, policy: FetchPolicy | None = None) -> Fetched | None:
    """The cached copy of a remote source whatever its age, without asking the network (for `validate`); None when
    there is none this registry's policy still allows."""
    cached = _read_cache(key, policy or FetchPolicy())
    return None if cached is None else Fetched(cached.document)


def load_remote(
    key: str,
    registry: str,
    ttl: float,
    timeout: float = TIMEOUT_SECONDS,
    policy: FetchPolicy | None = None,
) -> Fetched:
    """`key` is `url:<url>` or `api:<base url>`; the cache is shared by every stack on this machine.

    `timeout` is one deadline for the whole fetch (every page and redirect), not a per-read timeout.
    """
    policy = policy or FetchPolicy()
    kind, _, url = key.partition(":")
    what = _describe(url, registry)
    cached = _read_cache(key, policy)
    if cached is not None and cached.age < ttl:
        return Fetched(cached.document)
    fetch = _Fetch(policy, Deadline(timeout))
    run: Callable[[], tuple[Any, dict[str, str]] | None]
    if kind == "api":
        run = lambda: (_fetch_api(url, what, fetch), {})  # noqa: E731
    else:
        run = lambda: _fetch_url(url, what, fetch, cached.meta if cached else {})  # noqa: E731
    try:
        result = run()
    except RegistryError as exc:
        if cached is None:
            raise
        return Fetched(cached.document, f"{exc.message}; using the cached copy from {int(cached.age)} s ago")
    data_path, meta_path = _cache_paths(key)
    if result is None:  # 304: still valid
        assert cached is not None
        _write_cache(data_path, meta_path, cached.document, {**cached.meta, "fetched_at": time.time()})
        return Fetched(cached.document)
    document, headers = result
    lower = {k.lower(): v for k, v in headers.items()}
    new_meta = {
        "fetched_at": time.time(),
        "etag": lower.get("etag"),
        "last_modified": lower.get("last-modified"),
        "private": fetch.private,
    }
    _write_cache(data_path, meta_path, document, new_meta)
    return Fetched(document)


def _read_owned(path: Path) -> bytes | None:
    """A cache file only when no one else can have written it (ours, not a link, in our 0700 directory): what it
    says becomes images and arguments, so a file someone else could have put there is no cache at all."""
    if not os.path.lexists(path.parent):
        return None  # no cache yet: reading makes nothing (validate changes nothing on disk)
    try:
        private_dir(path.parent, levels=2)
        return read_owned(path)
    except (OSError, UnsafePathError):
        return None


def _write_cache(data_path: Path, meta_path: Path, document: Any, meta: dict[str, Any]) -> None:
    """Through the project's writer: 0600 files in a 0700 directory, fresh temp names, never through a link."""
    try:
        private_dir(data_path.parent, levels=2)
        for path, content in ((data_path, document), (meta_path, meta)):
            replace_atomically(path, json.dumps(content).encode("utf-8"))
    except (OSError, ValueError, RecursionError):
        pass  # a cache that cannot be written only costs a fetch next time
