"""The team's records in SQLite (``CONFIG_DIR/poe2openai.sqlite3``): client keys, pool keys, usage.

The file is created on the first write, so a gateway in pass-through mode leaves no trace in
``CONFIG_DIR``. One connection, used by one thread at a time under a lock; the async methods run it in a
worker thread so the event loop never waits on the disk. WAL mode with ``synchronous=FULL``:
a commit that returned survives a crash of the process (and of the machine). The schema
version is SQLite's ``user_version``; :data:`MIGRATIONS` brings an older file up to date.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FILE_NAME = "poe2openai.sqlite3"

# Each entry moves the schema from version i to i + 1; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE client_keys (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        created REAL NOT NULL,
        expires REAL,
        models TEXT NOT NULL DEFAULT '[]',
        rpm INTEGER,
        revoked REAL
    );
    CREATE TABLE pool_keys (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        secret TEXT NOT NULL UNIQUE,
        added REAL NOT NULL,
        disabled TEXT
    );
    """,
    # budgets, and the usage ledger (see poe2openai.team.ledger)
    """
    ALTER TABLE client_keys ADD COLUMN budget_day INTEGER;
    ALTER TABLE client_keys ADD COLUMN budget_month INTEGER;
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        done REAL NOT NULL,
        client_key TEXT NOT NULL,
        pool_key TEXT NOT NULL,
        model TEXT NOT NULL,
        bot TEXT NOT NULL,
        status INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        points INTEGER NOT NULL,
        estimated INTEGER NOT NULL,
        query_id TEXT
    );
    CREATE INDEX requests_by_time ON requests (ts);
    CREATE INDEX requests_unmatched ON requests (pool_key, bot, ts) WHERE estimated = 1;
    CREATE TABLE daily (
        day TEXT NOT NULL,
        client_key TEXT NOT NULL,
        pool_key TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        points INTEGER NOT NULL DEFAULT 0,
        estimated_points INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, client_key, pool_key, model)
    );
    CREATE TABLE poe_queries (
        query_id TEXT PRIMARY KEY,
        pool_key TEXT NOT NULL,
        time REAL NOT NULL,
        bot TEXT NOT NULL,
        cost INTEGER NOT NULL,
        matched INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX poe_queries_unmatched ON poe_queries (pool_key, time) WHERE matched = 0;
    CREATE TABLE pool_spend (
        pool_key TEXT NOT NULL,
        day TEXT NOT NULL,
        bot TEXT NOT NULL,
        points INTEGER NOT NULL DEFAULT 0,
        queries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (pool_key, day, bot)
    );
    """,
)


class Store:
    """The SQLite file; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = os.fspath(path)  # checked per request: os.path is cheaper than pathlib
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._data_version = -1
        if path.exists():
            self._open()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            fresh = not self.path.exists()
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if fresh:
                os.chmod(self.path, 0o600)  # it holds Poe keys
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            self._migrate(conn)
            self._conn = conn
        return self._conn

    @classmethod
    def in_dir(cls, config_dir: str) -> Store:
        """The store of ``CONFIG_DIR``."""
        return cls(Path(config_dir) / FILE_NAME)

    def changed(self) -> bool:
        """Whether another connection (another worker process) committed since the last call.

        Cheap (one pragma); never waits: while this process writes, the answer is False."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._conn is None:
                if not os.path.exists(self._file):
                    return False
                self._open()
            assert self._conn is not None
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            seen, self._data_version = self._data_version, version
            return version != seen
        finally:
            self._lock.release()

    @property
    def version(self) -> int:
        """The schema version of the file (0 before it exists)."""
        with self._lock:
            if self._conn is None:
                return 0
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            conn.close()
            raise RuntimeError(f"{self.path} was written by a newer poe2openai (schema {version})")
        for i in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={i + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run one write in its own transaction; the number of rows changed."""
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                changed = db.execute(sql, args).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return changed

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection inside one transaction (all of it, or none)."""
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """The rows of a query."""
        with self._lock:
            if self._conn is None:
                if not self.path.exists():
                    return []  # no file yet: nothing stored
                self._open()  # another process created it
            assert self._conn is not None
            return list(self._conn.execute(sql, args).fetchall())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (for :meth:`execute` and :meth:`rows`)."""
        return await asyncio.to_thread(fn, *args)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
