"""State shared by several gateway processes and hosts through Redis (``REDIS_URL``).

What is shared:

- the pace towards Poe: one slot schedule in Redis (:meth:`Shared.reserve`), so
  ``RATE_LIMIT_MS`` holds in total across every process;
- the attachment map (data-URL hash or link → Poe's attachment URL) with its expiry
  (:class:`SharedMap`, used by the uploader on a local miss);
- ``models.yaml``: a save publishes the validated file; every process adopts it
  (:meth:`Shared.watch_config`);
- a key-value seam for what other parts store per id (:meth:`Shared.map`): stored Responses
  API conversations (``previous_response_id``) plug in there;
- team mode: each client key's requests of the last minute, for its ``rpm`` cap
  (:meth:`Shared.admit_rpm`), and the pool keys' health (rejected, out of points, cooling
  down): a process that sees a change publishes it, every process takes it in
  (:meth:`Shared.publish_health`, :meth:`Shared.watch_health`).

Without ``REDIS_URL`` none of this exists and each process keeps its state in memory. When Redis
goes away every operation falls back to the local state at once (the local limiter, the local
cache, the file on disk); this is logged once, not per request, and the next operation after
:data:`RETRY_AFTER` seconds tries Redis again (logged once when it answers again).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("poe2openai.shared")

PREFIX = "poe2openai:"
CONFIG_KEY = PREFIX + "config"  # the last saved models.yaml: {"id": ..., "text": ...}
CONFIG_CHANNEL = PREFIX + "config-saved"
TRAFFIC = PREFIX + "traffic:"  # + a process id: that process's last hour, for the admin page
RETRY_AFTER = 2.0  # seconds before a failed Redis is tried again
TIMEOUT = 1.0  # seconds for one command; a hung Redis costs a request at most this, once

# The next free slot for a query to Poe, in microseconds of Redis's own clock (one clock for
# every host). Returns the wait before this query's slot, or minus the wait when it would be
# longer than the allowed maximum (nothing is reserved then).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local at = math.max(now, nxt)
local wait = at - now
if wait > tonumber(ARGV[2]) then return -wait - 1 end
redis.call('SET', KEYS[1], at + interval, 'PX', math.floor((wait + interval) / 1000) + 1000)
return wait
"""


# A sliding minute of one client key's requests, on Redis's clock: the microseconds until one
# more fits, or -1 when it fits (and is counted).
_RPM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + 60000000 - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 61000)
return -1
"""
HEALTH_KEY = PREFIX + "pool-health"  # hash: pool key id → its last published state
HEALTH_CHANNEL = PREFIX + "pool-health"


class Shared:
    """One Redis connection pool, with the fall-back bookkeeping."""

    def __init__(self, url: str) -> None:
        self.redis: Redis = Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, health_check_interval=30
        )
        self.down = False
        self._retry_at = 0.0
        self._reserve = self.redis.register_script(_RESERVE)
        self._rpm = self.redis.register_script(_RPM)
        self._watcher: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._health_watcher: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[Any]] = set()
        self.ident = uuid.uuid4().hex[:12]  # this process, in the traffic keys
        self._config_seen: str | None = None

    @property
    def usable(self) -> bool:
        """Whether to try Redis now (it answered last time, or it is time to try again)."""
        return not self.down or time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        """Redis did not answer: use local state for a while (logged once)."""
        if not self.down:
            detail = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
            log.warning("Redis unreachable (%s): serving from local state until it is back", detail)
        self.down = True
        self._retry_at = time.monotonic() + RETRY_AFTER

    def answered(self) -> None:
        """Redis answered."""
        if self.down:
            log.warning("Redis reachable again: shared state resumed")
            self.down = False

    async def call(self, op: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run ``op`` against Redis: (True, result), or (False, None) when Redis is not there."""
        if not self.usable:
            return False, None
        try:
            result = await op()
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return False, None
        self.answered()
        return True, result

    # --- pace ---------------------------------------------------------------------------

    async def reserve(self, bucket: str, interval: float, max_wait: float) -> float | None:
        """Reserve the next slot of ``bucket`` (seconds between slots): the wait in seconds,
        ``-wait`` when the wait would pass ``max_wait`` (nothing reserved), None without Redis."""
        args = [int(interval * 1e6), int(max_wait * 1e6)]
        ok, result = await self.call(lambda: self._reserve(keys=[PREFIX + "pace:" + bucket], args=args))
        if not ok:
            return None
        return int(result) / 1e6

    # --- the admin page's traffic view -------------------------------------------------

    def publish_traffic(self, export: Callable[[], dict[str, Any]], every: float = 5.0) -> None:
        """Keep this process's last hour in Redis, refreshed every ``every`` seconds."""
        self._publisher = asyncio.ensure_future(self._publish(export, every))

    async def put_traffic(self, data: dict[str, Any]) -> None:
        """Store this process's buckets now."""
        payload = orjson.dumps(data)
        await self.call(lambda: self.redis.set(TRAFFIC + self.ident, payload, ex=3700))

    async def _publish(self, export: Callable[[], dict[str, Any]], every: float) -> None:
        while True:
            await self.put_traffic(export())
            await asyncio.sleep(every)

    async def all_traffic(self) -> list[dict[str, Any]] | None:
        """Every process's buckets (this one's included), or None without Redis."""

        async def read() -> list[Any]:
            keys = [k async for k in self.redis.scan_iter(match=TRAFFIC + "*", count=100)]
            return list(await self.redis.mget(keys)) if keys else []

        ok, values = await self.call(read)
        if not ok:
            return None
        return [orjson.loads(v) for v in values if v is not None]

    # --- key-value ----------------------------------------------------------------------

    def map(self, namespace: str) -> SharedMap:
        """Values by id under ``namespace``, each with an expiry."""
        return SharedMap(self, PREFIX + namespace + ":")

    # --- models.yaml --------------------------------------------------------------------

    async def config_saved(self, text: str) -> None:
        """This process saved ``models.yaml``: store it and tell the others."""
        ident = uuid.uuid4().hex
        self._config_seen = ident
        payload = orjson.dumps({"id": ident, "text": text})

        async def publish() -> None:
            await self.redis.set(CONFIG_KEY, payload)
            await self.redis.publish(CONFIG_CHANNEL, payload)

        await self.call(publish)

    async def stored_config(self) -> tuple[str, str] | None:
        """The last saved ``models.yaml`` (id, text), if Redis has one."""
        ok, raw = await self.call(lambda: self.redis.get(CONFIG_KEY))
        if not ok or raw is None:
            return None
        data = orjson.loads(raw)
        return str(data["id"]), str(data["text"])

    def watch_config(self, adopt: Callable[[str], Awaitable[None]], first: bool) -> None:
        """Adopt every save another process publishes, and one missed while Redis was away.

        ``first``: also adopt the stored file at start (when this process has none)."""

        async def on_connect(attempt: int) -> None:
            stored = await self.stored_config()
            if stored is not None and stored[0] != self._config_seen:
                if attempt > 0 or first:
                    await adopt(stored[1])
                self._config_seen = stored[0]

        async def on_message(raw: bytes) -> None:
            data = orjson.loads(raw)
            if data["id"] != self._config_seen:
                self._config_seen = data["id"]
                await adopt(str(data["text"]))

        self._watcher = asyncio.ensure_future(self._follow(CONFIG_CHANNEL, on_connect, on_message, "models.yaml"))

    async def _follow(
        self,
        channel: str,
        on_connect: Callable[[int], Awaitable[None]],
        on_message: Callable[[bytes], Awaitable[None]],
        what: str,
    ) -> None:
        """Subscribe to ``channel`` for good: ``on_connect(attempt)`` after each (re)connection
        (to catch up on what was missed), ``on_message`` for each message."""
        attempt = 0
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                self.answered()
                await on_connect(attempt)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
                    if message is None or message.get("type") != "message":
                        continue
                    await on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.failed(exc)
            except Exception:
                log.exception("%s from Redis not taken in", what)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except (RedisError, OSError):
                    pass
            attempt += 1
            await asyncio.sleep(RETRY_AFTER)

    # --- team mode ----------------------------------------------------------------------

    async def admit_rpm(self, key_id: str, cap: int) -> float | None:
        """Count a request of client key ``key_id`` in its shared minute: 0 when it fits, else
        the seconds until one would; None when Redis is away (nothing counted)."""
        args: list[int | str] = [cap, uuid.uuid4().hex]
        ok, result = await self.call(lambda: self._rpm(keys=[PREFIX + "rpm:" + key_id], args=args))
        if not ok:
            return None
        return 0.0 if int(result) < 0 else int(result) / 1e6

    def publish_health(self, key_id: str, state: dict[str, Any]) -> None:
        """Tell the other processes a pool key's new state (in the background, best effort)."""
        payload = orjson.dumps({"from": self.ident, "key": key_id, "state": state})

        async def send() -> None:
            await self.redis.hset(HEALTH_KEY, key_id, payload)
            await self.redis.publish(HEALTH_CHANNEL, payload)

        task = asyncio.ensure_future(self.call(send))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def watch_health(self, adopt: Callable[[str, dict[str, Any]], None]) -> None:
        """Take in the pool key states other processes publish (and, after each connection,
        the last state of every key)."""

        def take(raw: bytes | str) -> None:
            data = orjson.loads(raw)
            if isinstance(data, dict) and data.get("from") != self.ident and isinstance(data.get("key"), str):
                adopt(data["key"], data.get("state") or {})

        async def on_connect(attempt: int) -> None:
            stored = await self.redis.hgetall(HEALTH_KEY)
            for raw in stored.values():
                take(raw if isinstance(raw, bytes) else str(raw).encode())

        async def on_message(raw: bytes) -> None:
            take(raw)

        self._health_watcher = asyncio.ensure_future(
            self._follow(HEALTH_CHANNEL, on_connect, on_message, "pool key health")
        )

    async def close(self) -> None:
        """Stop watching and close the connections."""
        for task in (self._watcher, self._publisher, self._health_watcher, *self._sends):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            await self.redis.aclose()
        except (RedisError, OSError):
            pass


class SharedMap:
    """Byte values by id in Redis, each with its own expiry; None when absent or Redis is away.

    This is the seam for any state several processes must see by id. The Responses API's stored
    conversations plug in as ``shared.map("responses")``: ``put(response_id, body, ttl)`` when a
    response is stored, ``get(previous_response_id)`` when a request continues one (falling
    back to the process's own store when this answers None).
    """

    def __init__(self, shared: Shared, prefix: str) -> None:
        self.shared = shared
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        """The value, or None (absent, expired, or Redis away)."""
        ok, value = await self.shared.call(lambda: self.shared.redis.get(self.prefix + key))
        return value if ok and isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (best effort)."""
        if ttl > 0:
            await self.shared.call(lambda: self.shared.redis.set(self.prefix + key, value, px=int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        """Forget ``key`` (best effort)."""
        await self.shared.call(lambda: self.shared.redis.delete(self.prefix + key))
