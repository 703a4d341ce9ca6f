"""Who is calling and with which Poe key: the one place the engine asks.

Pass-through (the default): the caller's bearer token is its Poe key. Team mode (Poe keys in
``POE_API_KEYS`` or added on ``/admin``): the token must be a key issued by the gateway, and
the Poe key comes from the pool; a caller's own Poe key works only with
``ALLOW_CLIENT_POE_KEYS=true``. Every refusal happens before anything reaches Poe: a revoked,
expired or unknown key (401), a model the key may not use (403), a used-up daily or monthly
budget (402, from :mod:`poe2openai.team.ledger`), its requests-per-minute cap (429, shared
through Redis when there is one). The ledger's commits, balance checks and points-history
syncs run in the background from :meth:`Team.start`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from poe2openai.errors import ApiError
from poe2openai.settings import Settings
from poe2openai.team import poe_usage
from poe2openai.team.keys import PREFIX, ClientKey, ClientKeys
from poe2openai.team.ledger import Entry, Ledger, next_day, next_month
from poe2openai.team.pool import Pool, PoolKey, key_id
from poe2openai.team.store import Store

log = logging.getLogger("poe2openai.team")


@dataclass(slots=True)
class Access:
    """What one request may use."""

    client: ClientKey | None  # the issued key, in team mode
    own_key: str | None = None  # the caller's own Poe key (pass-through)
    tried: set[str] = field(default_factory=set)  # pool keys this request already used
    lease: PoolKey | None = None  # the pool key of the current attempt

    def poe_key(self, pool: Pool, now: float) -> str:
        """The Poe key for the next attempt."""
        if self.own_key is not None:
            return self.own_key
        key = pool.pick(now, frozenset(self.tried))
        if key is None:
            raise pool.unavailable(now)
        self.lease = key
        self.tried.add(key.id)
        return key.secret


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, type="authentication_error", code="invalid_api_key")


FLUSH_SECONDS = 1.0
TOTALS_SECONDS = 5.0  # how often other processes' spend is read when this one records none


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def over_budget(client: ClientKey, today: int, month: int, now: float) -> ApiError | None:
    """The 402 for a key whose daily or monthly budget is used up, naming it and its reset."""
    for budget, spent, period, reset in (
        (client.budget_day, today, "daily", next_day(now)),
        (client.budget_month, month, "monthly", next_month(now)),
    ):
        if budget is not None and spent >= budget:
            return ApiError(
                402,
                f"This API key's {period} budget of {budget:,} Poe points is used up ({spent:,} spent); "
                f"it resets at {_utc(reset)}",
                type="insufficient_quota",
                code="budget_exceeded",
                headers={"x-should-retry": "false"},
            )
    return None


class Team:
    """Client keys, the pool, and the background balance checks."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.clients = ClientKeys(store)
        self.ledger = Ledger(store)
        self.pool = Pool(
            PoolKey(key_id(s), f"POE_API_KEYS #{i}", s, "env") for i, s in enumerate(settings.poe_api_keys, 1)
        )
        self._load_pool()
        store.changed()  # what was just read is current
        self._loops: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Future[Any]] = set()
        self.balance_checked: dict[str, float] = {}  # pool key id → Unix time of its last balance
        self.history_synced: float | None = None  # Unix time of the last points-history sync
        self._totals_read = 0.0
        # set with REDIS_URL: the rpm window shared by every process (seconds to wait, 0 to go,
        # None when Redis is away), and the publisher of pool key health to the others
        self.shared_rpm: Callable[[str, int], Awaitable[float | None]] | None = None
        self.publish_health: Callable[[str, dict[str, Any]], None] | None = None

    def _load_pool(self) -> None:
        rows = {row["id"]: row for row in self.store.rows("SELECT * FROM pool_keys ORDER BY added")}
        for gone in [k.id for k in self.pool.keys if k.source == "admin" and k.id not in rows]:
            self.pool.remove(gone)
        for row in rows.values():
            held = self.pool.get(row["id"])
            if held is None:
                self.pool.add(PoolKey(row["id"], row["label"], row["secret"], "admin", disabled=row["disabled"]))
            elif held.source == "admin":
                held.disabled = row["disabled"]

    def refresh(self) -> None:
        """Pick up keys another worker process created, edited, revoked, added or removed."""
        if self.store.changed():
            self.clients.reload()
            self._load_pool()

    @classmethod
    def open(cls, settings: Settings) -> Team:
        """The team records of ``CONFIG_DIR`` (created when missing)."""
        return cls(settings, Store.in_dir(settings.config_dir))

    @property
    def team_mode(self) -> bool:
        """Whether the gateway holds Poe keys (clients then use issued keys)."""
        return bool(self.pool)

    def visible(self, token: str | None, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``/v1/models`` as the caller may see it (401 for a caller team mode refuses)."""
        self.refresh()
        if token is None:
            if self.team_mode and not self.settings.allow_client_poe_keys:
                raise _unauthorized("This gateway needs an API key issued by its operator")
            return models
        client = self.authorize(token, None).client
        return models if client is None else [m for m in models if client.allows(str(m["id"]))]

    def authorize(self, token: str, model: str | None) -> Access:
        """The caller's access for ``model`` (None: no model yet, e.g. ``/v1/models``).

        Raises the 401/402/403 a refused caller gets (the ``rpm`` cap is :meth:`admit`'s)."""
        self.refresh()
        client = self.clients.find(token) if token.startswith(PREFIX) else None
        if client is None:
            if token.startswith(PREFIX) or (self.team_mode and not self.settings.allow_client_poe_keys):
                raise _unauthorized("This gateway needs an API key issued by its operator")
            return Access(None, own_key=token)
        wall = time.time()
        if client.revoked is not None:
            raise _unauthorized("This API key was revoked")
        if client.expires is not None and wall >= client.expires:
            raise _unauthorized("This API key has expired")
        if not self.team_mode:
            raise ApiError(503, "This gateway holds no Poe key yet", type="api_error", code="no_poe_key")
        if model is not None:
            if not client.allows(model) and not client.allows(model.partition(":")[0]):
                raise ApiError(
                    403,
                    f"This API key may not use the model '{model[:200]}'",
                    type="permission_error",
                    code="model_not_allowed",
                    param="model",
                )
            if client.budget_day is not None or client.budget_month is not None:
                today, month = self.ledger.spent(client.id, wall)
                refusal = over_budget(client, today, month, wall)
                if refusal is not None:
                    raise refusal
        return Access(client)

    async def admit(self, access: Access) -> None:
        """Count the request against its client key's ``rpm`` (across every process sharing
        Redis, when it does; else this process's own window); 429 when over it."""
        client = access.client
        if client is None or client.rpm is None:
            return
        wait = await self.shared_rpm(client.id, client.rpm) if self.shared_rpm is not None else None
        if wait is None:  # no Redis, or Redis away: this process's window
            wait = self.clients.admit(client, self.clock())
        if wait:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"This API key's limit of {client.rpm} requests per minute is reached; retry in {seconds} s",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"retry-after": str(seconds)},
            )

    def failed(self, access: Access, error: ApiError) -> bool:
        """Poe failed an attempt; whether another pool key should be tried.

        When the failure was the pool key's own and no other key is left, raises what the
        caller gets instead (a rejected pool key is not the caller's 401)."""
        key = access.lease
        now = self.clock()
        if key is None or not self.pool.report(key, error, now):
            return False
        if key.disabled is not None and key.source == "admin":
            self._write("UPDATE pool_keys SET disabled = ? WHERE id = ?", (key.disabled, key.id))
        self._health_changed(key)
        if self.pool.has_usable(now, frozenset(access.tried)):
            return True
        raise self.pool.unavailable(now)

    def _health_changed(self, key: PoolKey) -> None:
        if self.publish_health is not None:
            cooling = max(0.0, key.cool_until - self.clock())
            state = {"disabled": key.disabled, "out_of_points": key.out_of_points, "cool_until": time.time() + cooling}
            self.publish_health(key.id, state)

    def adopt_health(self, key_id: str, state: dict[str, Any]) -> None:
        """Another process saw a pool key change (through Redis): take its view."""
        key = self.pool.get(key_id)
        if key is None or not isinstance(state, dict):
            return
        disabled, out, until = state.get("disabled"), state.get("out_of_points"), state.get("cool_until")
        key.disabled = disabled[:200] if isinstance(disabled, str) else None
        key.out_of_points = out is True
        if isinstance(until, int | float) and not isinstance(until, bool):
            key.cool_until = self.clock() + max(0.0, min(float(until) - time.time(), 86400.0))

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        fut = asyncio.ensure_future(self.store.run(self.store.execute, sql, args))
        self._writes.add(fut)
        fut.add_done_callback(self._writes.discard)

    # --- pool keys on /admin ------------------------------------------------------------

    async def add_pool_key(self, secret: str, label: str) -> PoolKey:
        """Hold another Poe key (kept in the SQLite file)."""
        key = PoolKey(key_id(secret), label, secret, "admin")
        if self.pool.get(key.id) is not None:
            raise ApiError(409, "The gateway already holds this Poe key", code="pool_key_exists")
        await self.store.run(
            self.store.execute,
            "INSERT INTO pool_keys (id, label, secret, added) VALUES (?, ?, ?, ?)",
            (key.id, label, secret, time.time()),
        )
        self.pool.add(key)
        return key

    async def remove_pool_key(self, pool_id: str) -> None:
        """Stop using a Poe key added on ``/admin``."""
        key = self.pool.get(pool_id)
        if key is None:
            raise ApiError(404, "No pool key with that id", code="key_not_found")
        if key.source != "admin":
            raise ApiError(400, "Keys from POE_API_KEYS are removed by changing that setting", code="pool_key_from_env")
        await self.store.run(self.store.execute, "DELETE FROM pool_keys WHERE id = ?", (pool_id,))
        self.pool.remove(pool_id)

    async def enable_pool_key(self, pool_id: str) -> PoolKey:
        """Use a key Poe rejected again (after the operator fixed it)."""
        key = self.pool.get(pool_id)
        if key is None:
            raise ApiError(404, "No pool key with that id", code="key_not_found")
        key.disabled = None
        key.cool_until = 0.0
        self._health_changed(key)
        if key.source == "admin":
            await self.store.run(self.store.execute, "UPDATE pool_keys SET disabled = NULL WHERE id = ?", (pool_id,))
        return key

    # --- balances -----------------------------------------------------------------------

    async def check_balances(self, session: aiohttp.ClientSession, every_key: bool = False) -> None:
        """Ask Poe for the balance of each key out of points (``every_key``: of every usable
        key, for the admin page); a key with points is used again."""
        base = self.settings.poe_base_url.rstrip("/")
        for key in list(self.pool.keys):
            if key.disabled is not None or not (key.out_of_points or every_key):
                continue
            try:
                found = await poe_usage.balance(session, base, key.secret)
            except poe_usage.KeyRejected:
                key.disabled = "Poe rejected the key (401)"
                self._health_changed(key)
                continue
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                log.info("balance check of %s failed: %s", key.id, type(exc).__name__)
                continue
            if found is None:
                continue
            key.balance = found
            self.balance_checked[key.id] = time.time()
            if found > 0 and key.out_of_points:
                key.out_of_points = False
                self._health_changed(key)
                log.info("pool key %s (%s) has points again", key.id, key.label)

    async def pool_metrics(self) -> list[tuple[str, bool, int | None, int]]:
        """Each pool key's id, health, balance and points spent (Poe's history), for /metrics."""
        if not self.team_mode:
            return []
        spent = await asyncio.to_thread(self.ledger.pool_spent)
        now = self.clock()
        return [(k.id, k.usable(now), k.balance, spent.get(k.id, 0)) for k in self.pool.keys]

    # --- usage --------------------------------------------------------------------------

    def account(self, entry: Awaitable[Entry | None]) -> None:
        """Record a finished request once ``entry`` (an awaitable of an :class:`Entry`, or of
        None for nothing to record) is ready; counting a big prompt may take a thread."""

        async def record() -> None:
            done = await entry
            if done is not None:
                self.ledger.add(done)

        fut = asyncio.ensure_future(record())
        self._writes.add(fut)
        fut.add_done_callback(self._writes.discard)

    async def sync_usage(self, session: aiohttp.ClientSession) -> int:
        """Commit the ledger, then read each pool key's new points history and match it to
        the requests it paid for; also refresh every key's balance. The requests matched."""
        await self.ledger.flush()
        base = self.settings.poe_base_url.rstrip("/")
        matched = 0
        for key in list(self.pool.keys):
            if key.disabled is not None:
                continue
            now = time.time()
            try:
                since = await asyncio.to_thread(self.ledger.history_since, key.id, now)
                rows = await poe_usage.history(session, base, key.secret, since)
                _new, found = await asyncio.to_thread(self.ledger.apply_history, key.id, rows, now)
                matched += found
            except poe_usage.KeyRejected:
                continue  # the next query or balance check disables it
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                log.info("points history of %s could not be read: %s", key.id, type(exc).__name__)
        await self.check_balances(session, every_key=True)
        await self.ledger.flush()  # the totals now include the matched costs
        self.history_synced = time.time()
        return matched

    def start(self, session: aiohttp.ClientSession) -> None:
        """Background work: balance checks every ``BALANCE_CHECK_SECONDS``, the points history
        every ``POINTS_HISTORY_SECONDS``, ledger commits every second."""
        settings = self.settings

        async def every(seconds: float, job: Callable[[], Any]) -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    log.warning("team background job failed: %s", exc)

        async def flush() -> None:
            if self.ledger.pending or time.monotonic() - self._totals_read >= TOTALS_SECONDS:
                self._totals_read = time.monotonic()
                await self.ledger.flush()

        async def history() -> None:
            if self.team_mode:
                await self.sync_usage(session)

        self._loops.append(
            asyncio.ensure_future(every(settings.balance_check_seconds, lambda: self.check_balances(session)))
        )
        self._loops.append(asyncio.ensure_future(every(FLUSH_SECONDS, flush)))
        if settings.points_history_seconds > 0:
            self._loops.append(asyncio.ensure_future(every(settings.points_history_seconds, history)))

    async def close(self) -> None:
        """Stop the background work, finish the writes, commit the ledger, close the file."""
        for task in self._loops:
            task.cancel()
        if self._writes:
            await asyncio.wait(self._writes)
        await self.ledger.flush()
        await asyncio.to_thread(self.store.close)
