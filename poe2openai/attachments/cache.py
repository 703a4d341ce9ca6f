"""The attachment cache: an LRU bounded by bytes and by age, with single-flight uploads.

Keys are the content hash for inline data and the URL for links, so a conversation that
resends the same screenshot every turn uploads it once. Entries expire a fixed time after
their upload (Poe's CDN links do not live forever; hits do not extend them). The size of an
entry is the size of the file it stands for (the original's meaning of URL_CACHE_SIZE_MB),
so memory stays bounded whatever clients send. Concurrent requests for the same new key
share one upload; a failed upload is not cached. The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")


class Remote(Protocol[V]):
    """A cache several processes share (Redis), consulted on a local miss."""

    async def get(self, key: str) -> tuple[V, int, float] | None:
        """The value, its size and the seconds it has left; None when absent or unreachable."""
        ...

    async def put(self, key: str, value: V, size: int, ttl: float) -> None:
        """Share a value made here for ``ttl`` seconds (best effort)."""
        ...


class CacheStats(Protocol):
    """Where the cache reports its hits and uploads (the metrics)."""

    def hit(self) -> None:
        """A value came from the cache."""
        ...

    def miss(self, size: int) -> None:
        """A value of ``size`` bytes was made (uploaded)."""
        ...


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires: float


class UploadCache(Generic[V]):
    """LRU by bytes and age, plus single flight for misses."""

    def __init__(self, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[tuple[V, int]]] = {}
        self.size = 0
        self.stats: CacheStats | None = None
        self.remote: Remote[V] | None = None  # shared with other processes when set

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        """A fresh cached value (and mark it recently used)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    def put(self, key: str, value: V, size: int, ttl: float | None = None) -> None:
        """Store ``value`` standing for ``size`` bytes for ``ttl`` seconds (default: the cache's);
        evict the least recently used to fit."""
        if key in self._entries:
            self._drop(key)
        life = self.ttl if ttl is None else min(ttl, self.ttl)
        if self.ttl <= 0 or life <= 0 or size > self.max_bytes:
            return
        self._entries[key] = _Entry(value, size, self.clock() + life)
        self.size += size
        now = self.clock()
        for k in [k for k, e in self._entries.items() if e.expires <= now]:
            self._drop(k)
        while self.size > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.size -= entry.size

    async def get_or_make(self, key: str, make: Callable[[], Awaitable[tuple[V, int]]]) -> V:
        """The cached value, or the result of one shared ``make()`` (value, size) for all callers."""
        found = self.get(key)
        stats = self.stats
        if found is not None:
            if stats is not None:
                stats.hit()
            return found
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._make(key, make))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        elif stats is not None:
            stats.hit()  # shares an upload in progress
        # shield: a caller that goes away must not cancel the upload others wait for
        value, _ = await asyncio.shield(task)
        return value

    async def _make(self, key: str, make: Callable[[], Awaitable[tuple[V, int]]]) -> tuple[V, int]:
        try:
            remote = self.remote
            if remote is not None:
                found = await remote.get(key)
                if found is not None:  # another process made it
                    value, size, left = found
                    if self.stats is not None:
                        self.stats.hit()
                    self.put(key, value, size, left)
                    return value, size
            value, size = await make()
            if self.stats is not None:
                self.stats.miss(size)
            self.put(key, value, size)
            if remote is not None:
                await remote.put(key, value, size, self.ttl)
            return value, size
        finally:
            self._inflight.pop(key, None)


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a failure as seen: every waiter already got it; nobody else needs a warning."""
    if not task.cancelled():
        task.exception()
