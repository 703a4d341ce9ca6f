"""The usage ledger: who spent how many Poe points on what, in the team's SQLite file.

Each request made with a client key is one row of ``requests`` (kept :data:`DETAIL_DAYS` days:
long enough to be matched with Poe's points history) and counts in ``daily``, one row per UTC
day, client key, pool key and model (kept :data:`DAILY_DAYS` days): that is the roll-up the
admin page and the budgets read, so the file stays small however busy the gateway is.

A request's points are first an estimate: the bot's published price (Poe's ``pricing``, US
dollars per token) times the counted tokens, times ``POINTS_PER_USD``; 0 for a bot with no
price. When the pool key's points history (``GET /usage/points_history``) shows the query,
its real cost replaces the estimate. Poe gives API callers no query id, so a history row
(pool key, bot, time, cost) is matched to the still-estimated request of the same pool key and
bot whose start is nearest, among those running at that time (:data:`MATCH_SLACK` seconds
either side). A history row no request matches (the key used elsewhere, or a request not
yet committed) is tried again at later syncs for a day. Every history row also counts in
``pool_spend`` (per pool key, day and bot): the key's spend as Poe reports it.

Writes are batched: the engine adds entries in memory and :meth:`Ledger.flush` commits them
in one transaction in a worker thread (every second while there are any). Budgets read each
client key's points today and this month from memory: the committed totals (re-read after
each flush and every few seconds, so other worker processes' spend shows within seconds)
plus the entries not committed yet.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from poe2openai.poe.catalog import Price
from poe2openai.team.store import Store

log = logging.getLogger("poe2openai.ledger")

DETAIL_DAYS = 3
DAILY_DAYS = 400
HISTORY_DAYS = 32  # Poe keeps 30
MATCH_SLACK = 30.0
RETRY_MATCH_SECONDS = 86400.0
DAY = 86400.0


def day_of(ts: float) -> str:
    """The UTC day of a Unix time, ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def next_day(ts: float) -> float:
    """The Unix time of the next UTC midnight."""
    t = time.gmtime(ts)
    return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + DAY


def next_month(ts: float) -> float:
    """The Unix time the next UTC calendar month starts."""
    t = time.gmtime(ts)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def estimate(price: Price | None, prompt_tokens: int, completion_tokens: int, points_per_usd: float) -> int:
    """Points a request probably cost, from the bot's published price (0 without one)."""
    if price is None:
        return 0
    usd = price.usd(prompt_tokens, completion_tokens)
    return max(0, math.ceil(usd * points_per_usd - 1e-9)) if usd > 0 else 0


@dataclass(frozen=True, slots=True)
class Entry:
    """One request made with a client key, as it ended."""

    ts: float  # Unix time it started
    done: float  # Unix time it ended
    client_key: str
    pool_key: str
    model: str  # as the client named it
    bot: str  # the Poe bot, lower case
    status: int  # 200, or the status of the error it ended with
    prompt_tokens: int
    completion_tokens: int
    points: int  # the estimate


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of a pool key's points history."""

    query_id: str
    time: float  # Unix seconds
    bot: str  # lower case
    cost: int


def _epoch_seconds(value: float) -> float:
    # the reference page says microseconds, the guide's example looks like seconds
    if value > 1e14:
        return value / 1e6
    if value > 1e11:
        return value / 1e3
    return value


def parse_history(data: Any) -> tuple[list[HistoryRow], bool]:
    """The rows of one ``/usage/points_history`` page and its ``has_more`` (bad rows skipped)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return [], False
    rows: list[HistoryRow] = []
    for raw in data["data"]:
        if not isinstance(raw, dict):
            continue
        qid, when, cost = raw.get("query_id"), raw.get("creation_time"), raw.get("cost_points")
        bot = raw.get("bot_name") or raw.get("app_name")
        if not (isinstance(qid, str) and qid and len(qid) <= 200 and isinstance(bot, str) and bot):
            continue
        if isinstance(when, bool) or not isinstance(when, int | float) or not 0 < when < 1e18:
            continue
        if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= 10**12:
            continue
        rows.append(HistoryRow(qid, _epoch_seconds(float(when)), bot.lower()[:200], cost))
    return rows, data.get("has_more") is True


class Ledger:
    """The ledger of one gateway process (the file is shared with its other processes)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pending: list[Entry] = []
        self._flushing: list[Entry] = []
        # client key → day → points: not committed yet, and committed this month
        self._uncommitted: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._committed: dict[str, dict[str, int]] = {}
        self._month = ""
        self._lock = asyncio.Lock()
        self._pruned = 0.0
        self._warned = False

    # --- recording ----------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Record a request (committed at the next :meth:`flush`)."""
        self._pending.append(entry)
        self._uncommitted[entry.client_key][day_of(entry.ts)] += entry.points

    @property
    def pending(self) -> int:
        """Entries not committed yet."""
        return len(self._pending) + len(self._flushing)

    def spent(self, client_key: str, now: float) -> tuple[int, int]:
        """Points the key spent today and this month (UTC), as far as known."""
        day = day_of(now)
        month = day[:7]
        today = month_total = 0
        for source in (self._committed if self._month == month else {}, self._uncommitted):
            for d, points in source.get(client_key, {}).items():
                if d.startswith(month):
                    month_total += points
                    if d == day:
                        today += points
        return today, month_total

    async def flush(self) -> None:
        """Commit what was recorded and re-read the totals (other processes' spend too)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            self._flushing = batch
            now = self.clock()
            try:
                month, totals = await asyncio.to_thread(self._commit, batch, now)
            except (OSError, sqlite3.Error) as exc:
                self._pending[:0] = batch  # kept for the next try
                self._flushing = []
                if not self._warned:
                    log.error("could not write the usage ledger (will retry): %s", exc)
                    self._warned = True
                return
            self._warned = False
            self._flushing = []
            for e in batch:
                days = self._uncommitted[e.client_key]
                d = day_of(e.ts)
                days[d] -= e.points
                if not days[d]:
                    del days[d]
                if not days:
                    del self._uncommitted[e.client_key]
            self._month, self._committed = month, totals

    def _commit(self, batch: list[Entry], now: float) -> tuple[str, dict[str, dict[str, int]]]:
        if batch:
            self.store.write(lambda db: self._insert(db, batch))
        if now - self._pruned > 3600:
            self._pruned = now
            if self.store.rows("SELECT 1 FROM sqlite_master WHERE name = 'daily'"):
                self.store.write(lambda db: self._prune(db, now))
        month = day_of(now)[:7]
        rows = self.store.rows(
            "SELECT client_key, day, SUM(points) AS points FROM daily WHERE day >= ? GROUP BY client_key, day",
            (month + "-01",),
        )
        totals: dict[str, dict[str, int]] = {}
        for r in rows:
            totals.setdefault(r["client_key"], {})[r["day"]] = int(r["points"])
        return month, totals

    @staticmethod
    def _insert(db: sqlite3.Connection, batch: list[Entry]) -> None:
        db.executemany(
            "INSERT INTO requests (ts, done, client_key, pool_key, model, bot, status, prompt_tokens,"
            " completion_tokens, points, estimated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            [
                (
                    e.ts,
                    e.done,
                    e.client_key,
                    e.pool_key,
                    e.model,
                    e.bot,
                    e.status,
                    e.prompt_tokens,
                    e.completion_tokens,
                    e.points,
                )
                for e in batch
            ],
        )
        db.executemany(
            "INSERT INTO daily (day, client_key, pool_key, model, requests, errors, prompt_tokens,"
            " completion_tokens, points, estimated_points) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)"
            " ON CONFLICT (day, client_key, pool_key, model) DO UPDATE SET requests = requests + 1,"
            " errors = errors + excluded.errors, prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
            " completion_tokens = completion_tokens + excluded.completion_tokens,"
            " points = points + excluded.points, estimated_points = estimated_points + excluded.estimated_points",
            [
                (
                    day_of(e.ts),
                    e.client_key,
                    e.pool_key,
                    e.model,
                    int(e.status >= 400),
                    e.prompt_tokens,
                    e.completion_tokens,
                    e.points,
                    e.points,
                )
                for e in batch
            ],
        )

    @staticmethod
    def _prune(db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM requests WHERE ts < ?", (now - DETAIL_DAYS * DAY,))
        db.execute("DELETE FROM poe_queries WHERE time < ?", (now - HISTORY_DAYS * DAY,))
        oldest = day_of(now - DAILY_DAYS * DAY)
        db.execute("DELETE FROM daily WHERE day < ?", (oldest,))
        db.execute("DELETE FROM pool_spend WHERE day < ?", (oldest,))

    # --- Poe's points history -----------------------------------------------------------

    def history_since(self, pool_key: str, now: float) -> float:
        """How far back a sync of ``pool_key``'s history should read."""
        rows = self.store.rows("SELECT MAX(time) AS t FROM poe_queries WHERE pool_key = ?", (pool_key,))
        newest = rows[0]["t"] if rows and rows[0]["t"] is not None else None
        return now - 7 * DAY if newest is None else float(newest) - 300.0

    def apply_history(self, pool_key: str, rows: Iterable[HistoryRow], now: float) -> tuple[int, int]:
        """Take in history rows (seen ones are ignored); (new rows, requests matched).

        Blocking: run it in a worker thread."""
        return self.store.write(lambda db: self._apply(db, pool_key, list(rows), now))

    def _apply(self, db: sqlite3.Connection, pool_key: str, rows: list[HistoryRow], now: float) -> tuple[int, int]:
        new = 0
        for r in rows:
            cur = db.execute(
                "INSERT OR IGNORE INTO poe_queries (query_id, pool_key, time, bot, cost) VALUES (?, ?, ?, ?, ?)",
                (r.query_id, pool_key, r.time, r.bot, r.cost),
            )
            if cur.rowcount:
                new += 1
                db.execute(
                    "INSERT INTO pool_spend (pool_key, day, bot, points, queries) VALUES (?, ?, ?, ?, 1)"
                    " ON CONFLICT (pool_key, day, bot) DO UPDATE SET points = points + excluded.points,"
                    " queries = queries + 1",
                    (pool_key, day_of(r.time), r.bot, r.cost),
                )
        matched = 0
        waiting = db.execute(
            "SELECT query_id, time, bot, cost FROM poe_queries WHERE pool_key = ? AND matched = 0 AND time >= ?"
            " ORDER BY time",
            (pool_key, now - RETRY_MATCH_SECONDS),
        ).fetchall()
        for q in waiting:
            req = db.execute(
                "SELECT id, ts, client_key, model, points FROM requests WHERE pool_key = ? AND bot = ?"
                " AND estimated = 1 AND ts <= ? AND done >= ? ORDER BY abs(ts - ?) LIMIT 1",
                (pool_key, q["bot"], q["time"] + MATCH_SLACK, q["time"] - MATCH_SLACK, q["time"]),
            ).fetchone()
            if req is None:
                continue
            db.execute(
                "UPDATE requests SET points = ?, estimated = 0, query_id = ? WHERE id = ?",
                (q["cost"], q["query_id"], req["id"]),
            )
            db.execute(
                "UPDATE daily SET points = points + ?, estimated_points = estimated_points - ?"
                " WHERE day = ? AND client_key = ? AND pool_key = ? AND model = ?",
                (
                    q["cost"] - req["points"],
                    req["points"],
                    day_of(req["ts"]),
                    req["client_key"],
                    pool_key,
                    req["model"],
                ),
            )
            db.execute("UPDATE poe_queries SET matched = 1 WHERE query_id = ?", (q["query_id"],))
            matched += 1
        return new, matched

    # --- reports ------------------------------------------------------------------------

    def pool_spent(self) -> dict[str, int]:
        """Points each pool key spent over the days kept, as Poe's history reports. Blocking."""
        rows = self.store.rows("SELECT pool_key, SUM(points) AS points FROM pool_spend GROUP BY pool_key")
        return {r["pool_key"]: int(r["points"]) for r in rows}

    def unflushed(self) -> list[Entry]:
        """The entries not committed yet (a copy, for :meth:`key_usage`)."""
        return [*self._flushing, *self._pending]

    def key_usage(self, now: float, pending: list[Entry]) -> dict[str, dict[str, dict[str, int]]]:
        """Per client key, today's and this month's requests, tokens and points: committed, plus
        ``pending`` (:meth:`unflushed`, taken on the event loop). Blocking: run it in a thread."""
        day = day_of(now)
        month = day[:7]
        out: dict[str, dict[str, dict[str, int]]] = {}

        def slot(key: str, period: str) -> dict[str, int]:
            periods = out.setdefault(key, {"day": _zero(), "month": _zero()})
            return periods[period]

        rows = self.store.rows(
            "SELECT client_key, day, SUM(requests) AS requests, SUM(prompt_tokens + completion_tokens) AS tokens,"
            " SUM(points) AS points, SUM(estimated_points) AS estimated_points FROM daily WHERE day >= ?"
            " GROUP BY client_key, day",
            (month + "-01",),
        )
        for r in rows:
            periods = ["month", "day"] if r["day"] == day else ["month"]
            for period in periods:
                s = slot(r["client_key"], period)
                for name in ("requests", "tokens", "points", "estimated_points"):
                    s[name] += int(r[name])
        for e in pending:
            periods = ["month", "day"] if day_of(e.ts) == day else (["month"] if day_of(e.ts)[:7] == month else [])
            for period in periods:
                s = slot(e.client_key, period)
                s["requests"] += 1
                s["tokens"] += e.prompt_tokens + e.completion_tokens
                s["points"] += e.points
                s["estimated_points"] += e.points
        return out

    def report(self, days: int, now: float) -> dict[str, Any]:
        """Requests, tokens and points per day over the last ``days`` days: in total, per client
        key, per model, and each pool key's spend as Poe reports it. Blocking."""
        names = [day_of(now - (days - 1 - i) * DAY) for i in range(days)]
        index = {d: i for i, d in enumerate(names)}

        def series() -> dict[str, list[int]]:
            return {k: [0] * days for k in ("requests", "errors", "tokens", "points", "estimated_points")}

        total = series()
        by_key: dict[str, dict[str, list[int]]] = {}
        by_model: dict[str, dict[str, list[int]]] = {}
        rows = self.store.rows(
            "SELECT day, client_key, model, SUM(requests) AS requests, SUM(errors) AS errors,"
            " SUM(prompt_tokens + completion_tokens) AS tokens, SUM(points) AS points,"
            " SUM(estimated_points) AS estimated_points FROM daily WHERE day >= ? GROUP BY day, client_key, model",
            (names[0],),
        )
        for r in rows:
            i = index.get(r["day"])
            if i is None:
                continue
            for target in (
                total,
                by_key.setdefault(r["client_key"], series()),
                by_model.setdefault(r["model"], series()),
            ):
                for name in target:
                    target[name][i] += int(r[name])
        pool: dict[str, dict[str, Any]] = {}
        for r in self.store.rows(
            "SELECT pool_key, day, bot, SUM(points) AS points, SUM(queries) AS queries FROM pool_spend"
            " WHERE day >= ? GROUP BY pool_key, day, bot",
            (names[0],),
        ):
            i = index.get(r["day"])
            if i is None:
                continue
            p = pool.setdefault(r["pool_key"], {"points": [0] * days, "queries": [0] * days, "by_bot": {}})
            p["points"][i] += int(r["points"])
            p["queries"][i] += int(r["queries"])
            p["by_bot"][r["bot"]] = p["by_bot"].get(r["bot"], 0) + int(r["points"])
        return {"days": names, "total": total, "by_key": by_key, "by_model": by_model, "pool": pool}


def _zero() -> dict[str, int]:
    return {"requests": 0, "tokens": 0, "points": 0, "estimated_points": 0}
