"""Finished responses kept for ``previous_response_id`` and ``GET /v1/responses/{id}``.

An in-memory LRU bounded by bytes (``RESPONSE_STORE_SIZE_MB``, the JSON size of what an entry
holds) and by age (``RESPONSE_STORE_TTL_SECONDS`` after it was stored; reading does not extend
it). Entries are keyed by the caller's key (a digest of it, never the key) and the response id,
so one key can never read or continue another key's conversation.

An entry holds its response object, the input items of its own request and the id of the
response it continued; a conversation is rebuilt by walking that chain back, so a long
conversation costs memory once, not once per turn. A chain whose older link is gone (evicted
or expired) cannot be continued. The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from poe2openai.engine.shared import SharedMap

MAX_CHAIN = 100_000  # links walked at most (a chain cannot loop: ids are fresh; this is a promise)


def owner_of(key: str) -> str:
    """The store's name for a caller: a digest of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    """One kept response."""

    response: dict[str, Any]
    items: list[Any]  # the input items of its request
    previous: str | None
    size: int
    expires: float


class ResponseStore:
    """LRU by bytes and age, keyed by (owner, response id)."""

    def __init__(self, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], Stored] = OrderedDict()
        self._by_age: deque[tuple[float, tuple[str, str]]] = deque()  # stored order = expiry order
        self.size = 0

    @property
    def enabled(self) -> bool:
        """Whether anything is kept at all."""
        return self.max_bytes > 0 and self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        now = self.clock()
        while self._by_age and self._by_age[0][0] <= now:
            expires, key = self._by_age.popleft()
            entry = self._entries.get(key)
            if entry is not None and entry.expires == expires:
                self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key)
        self.size -= entry.size

    def put(self, owner: str, response: dict[str, Any], items: list[Any], previous: str | None) -> None:
        """Keep a finished response; evict the least recently used to fit."""
        if not self.enabled:
            return
        key = (owner, str(response["id"]))
        size = len(orjson.dumps(response)) + len(orjson.dumps(items))
        if key in self._entries:
            self._drop(key)
        if size > self.max_bytes:
            return
        self._expire()
        expires = self.clock() + self.ttl
        self._entries[key] = Stored(response, items, previous, size, expires)
        self._by_age.append((expires, key))
        self.size += size
        while self.size > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def get(self, owner: str, rid: str) -> Stored | None:
        """A kept response of ``owner`` (and mark it recently used)."""
        self._expire()
        key = (owner, rid)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def delete(self, owner: str, rid: str) -> bool:
        """Forget a response; whether it was there."""
        self._expire()
        key = (owner, rid)
        if key not in self._entries:
            return False
        self._drop(key)
        return True

    def history(self, owner: str, rid: str) -> list[Any] | None:
        """The conversation up to and including response ``rid``, as input items, oldest first:
        each link's input items then its output. ``None`` if ``rid`` or an older link is gone."""
        segments: list[list[Any]] = []
        at: str | None = rid
        for _ in range(MAX_CHAIN):
            if at is None:
                break
            entry = self.get(owner, at)
            if entry is None:
                return None
            segments.append(entry.items + list(entry.response.get("output") or []))
            at = entry.previous
        else:
            return None
        return [item for segment in reversed(segments) for item in segment]


class SharedResponses:
    """The store, backed by the state several gateways share (Redis) when there is one.

    Every kept response is also written to the shared map under ``owner:id`` with the store's
    age limit, so a conversation started on one gateway continues on another; a link missing
    here is fetched from there (and kept here). Without Redis, or while it is away, only the
    local store answers.
    """

    def __init__(self, local: ResponseStore, shared: SharedMap | None) -> None:
        self.local = local
        self.shared = shared
        self._writes: set[asyncio.Task[None]] = set()

    def put(
        self, owner: str, response: dict[str, Any], items: list[Any], previous: str | None
    ) -> asyncio.Task[None] | None:
        """Keep a finished response here, and there in the background: the write to the shared
        map, for the caller to await before its answer goes out (None: nothing to wait for)."""
        self.local.put(owner, response, items, previous)
        if self.shared is None or not self.local.enabled:
            return None
        body = orjson.dumps({"response": response, "items": items, "previous": previous})
        if len(body) > self.local.max_bytes:
            return None
        task = asyncio.ensure_future(self.shared.put(f"{owner}:{response['id']}", body, self.local.ttl))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def get(self, owner: str, rid: str) -> Stored | None:
        """A kept response of ``owner``, from here or from the shared map."""
        entry = self.local.get(owner, rid)
        if entry is not None or self.shared is None:
            return entry
        raw = await self.shared.get(f"{owner}:{rid}")
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
            response, items, previous = data["response"], data["items"], data["previous"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        self.local.put(owner, response, items, previous)
        return self.local.get(owner, rid)

    async def delete(self, owner: str, rid: str) -> bool:
        """Forget a response here and there; whether it was kept."""
        found = await self.get(owner, rid) is not None
        self.local.delete(owner, rid)
        if self.shared is not None:
            await self.shared.delete(f"{owner}:{rid}")
        return found

    async def history(self, owner: str, rid: str) -> list[Any] | None:
        """As :meth:`ResponseStore.history`, fetching missing links from the shared map."""
        at: str | None = rid
        for _ in range(MAX_CHAIN):
            if at is None:
                return self.local.history(owner, rid)
            entry = await self.get(owner, at)
            if entry is None:
                return None
            at = entry.previous
        return None
