"""A bounded table of client sessions: at most ``limit`` entries, each forgotten after ``ttl`` seconds unused.

Clients open sessions with ``initialize`` and often never end them (the SDKs do not on exit, and every readiness
probe is one more), so a table that only grows is a memory leak anyone who can reach the port can drive. Entries are
kept in least-recently-used order; an entry past its TTL is gone the next time it is looked up or the table is swept,
and adding one to a full table ends the least recently used (one without an open stream, if there is such). Entries
that are ``busy`` (an event stream is open) never expire while busy. Whoever owns the values is told of every
eviction through ``on_evict``, so it can release what a session holds (queues, upstream sessions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")
SWEEP_INTERVAL = 60.0
_log = logging.getLogger(__name__)


class SessionTable(Generic[V]):
    def __init__(
        self,
        ttl: float,
        limit: int,
        on_evict: Callable[[str, V], None],
        busy: Callable[[V], bool] = lambda _: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._limit = limit
        self._on_evict = on_evict
        self._busy = busy
        self._clock = clock
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def values(self) -> list[V]:
        return [value for value, _ in self._entries.values()]

    def add(self, key: str, value: V) -> None:
        """Insert (or refresh) ``key``, evicting expired entries and, when full, the least recently used."""
        self.sweep()
        self._entries.pop(key, None)
        while len(self._entries) >= self._limit:
            self._evict(self._victim())
        self._entries[key] = (value, self._clock())

    def get(self, key: str) -> V | None:
        """The value, now counted as used; None when unknown or expired (an expired entry is evicted)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, used = entry
        if self._expired(value, used):
            self._evict(key)
            return None
        self.touch(key)
        return value

    def touch(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], self._clock())
            self._entries.move_to_end(key)

    def pop(self, key: str) -> V | None:
        """Remove ``key`` without telling ``on_evict`` (the owner ends the session itself)."""
        entry = self._entries.pop(key, None)
        return entry[0] if entry is not None else None

    def sweep(self) -> int:
        """Evict every expired entry; how many. Entries are in last-use order, so only the expired head is read
        (plus busy entries in it, which are skipped)."""
        expired = []
        for key, (value, used) in self._entries.items():
            if self._clock() - used <= self._ttl:
                break
            if not self._busy(value):
                expired.append(key)
        for key in expired:
            self._evict(key)
        return len(expired)

    def _expired(self, value: V, used: float) -> bool:
        return self._clock() - used > self._ttl and not self._busy(value)

    def _victim(self) -> str:
        for key, (value, _) in self._entries.items():
            if not self._busy(value):
                return key
        return next(iter(self._entries))

    def _evict(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._on_evict(key, entry[0])


async def sweep_forever(table: SessionTable[V], interval: float = SWEEP_INTERVAL) -> None:
    """End expired sessions every ``interval`` seconds (lookups expire them too; this frees the idle ones)."""
    while True:
        await asyncio.sleep(interval)
        if ended := table.sweep():
            _log.info("ended %d idle session(s)", ended)
