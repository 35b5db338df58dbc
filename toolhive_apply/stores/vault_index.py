"""The Vault store's index: one KV entry mirroring every toolhive-apply record, so listing costs two calls.

The index is a cache of the custom_metadata each secret carries, never the source of truth: LIST decides which
keys exist, a key missing from the index is read from its own metadata, a malformed index counts as empty, and a
check-and-set failure on a secret repairs that secret's entry. Updates are CAS-protected and retried, because
several writers (threads of one apply, or other stacks) share it. The last version seen is kept, so a write in
steady state costs one index call (the CAS write) rather than two; a lost race reloads.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from toolhive_apply.errors import ConflictError, ToolhiveApplyError
from toolhive_apply.stores.base import StoredSecret

INDEX_KEY: Final = ".toolhive-apply-index"
INDEX_FORMAT: Final = 1
RETRIES: Final = 10

ReadIndex = Callable[[], "Mapping[str, Any] | None"]
"""Returns the KV v2 read response of the index entry, or None when there is none."""
WriteIndex = Callable[[dict[str, Any], int], int]
"""Writes the index document with the given CAS version and returns the new version; raises CasMismatchError
when it lost a race."""


class CasMismatchError(Exception):
    """A check-and-set write lost: the entry changed since it was read."""


class Index:
    def __init__(self, read: ReadIndex, write: WriteIndex, *, enabled: bool, path: str) -> None:
        self._read = read
        self._write = write
        self.enabled = enabled
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[dict[str, StoredSecret], int] | None = None

    def entries(self) -> dict[str, StoredSecret]:
        if not self.enabled:
            return {}
        entries, version = self._load()
        with self._lock:
            self._seen = (entries, version)
        return dict(entries)

    def put(self, key: str, record: StoredSecret | None) -> None:
        """Record (or with None, forget) one key; retried on CAS races, a ConflictError if it never wins."""
        if not self.enabled:
            return
        with self._lock:
            for attempt in range(RETRIES):
                cached = self._seen is not None
                entries, version = self._seen if self._seen is not None else self._load()
                entries = dict(entries)
                if record is None and key not in entries:
                    if cached:  # the copy we hold may predate another writer's entry for this key
                        self._seen = None
                        continue
                    return
                if record is None:
                    entries.pop(key)
                else:
                    entries[key] = record
                try:
                    new_version = self._write(_document(entries), version)
                except CasMismatchError:
                    self._seen = None
                    if attempt:
                        time.sleep(random.uniform(0.01, 0.05) * attempt)  # jitter, not crypto
                else:
                    self._seen = (entries, new_version)
                    return
        raise ConflictError(
            f"the index {self.path} kept changing under concurrent writers ({RETRIES} attempts)",
            hint="retry; the secret itself was written, and list() still finds it through its own metadata",
        )

    def repair(self, key: str, actual: StoredSecret | None) -> None:
        """Best effort after a CAS failure on `key`: make its entry match the secret's own metadata."""
        if not self.enabled:
            return
        try:
            if self.entries().get(key) != actual:
                self.put(key, actual if actual is not None and actual.managed_by else None)
        except ToolhiveApplyError:
            pass  # the caller is already reporting the conflict that brought us here

    def _load(self) -> tuple[dict[str, StoredSecret], int]:
        response = self._read()
        if response is None:
            return {}, 0
        data = response.get("data") or {}
        version = int((data.get("metadata") or {}).get("version") or 0)
        return _parse(data.get("data")), version


def _parse(document: Any) -> dict[str, StoredSecret]:
    """Entries of a well-formed index; anything unexpected is dropped (a cache may be lost, never trusted wrong)."""
    if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
        return {}
    entries = document.get("entries")
    if not isinstance(entries, dict):
        return {}
    result = {}
    for key, entry in entries.items():
        try:
            result[str(key)] = StoredSecret(
                key=str(key),
                description=str(entry.get("description", "")),
                managed_by=entry.get("managed_by"),
                stack=entry.get("stack"),
                digest=entry.get("digest"),
                version=int(entry["version"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return result


def _document(entries: Mapping[str, StoredSecret]) -> dict[str, Any]:
    return {
        "format": INDEX_FORMAT,
        "entries": {
            key: {
                "version": record.version,
                "managed_by": record.managed_by,
                "stack": record.stack,
                "digest": record.digest,
                "description": record.description,
            }
            for key, record in sorted(entries.items())
        },
    }
