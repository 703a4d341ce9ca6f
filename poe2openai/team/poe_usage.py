"""Poe's usage API for one Poe key: its point balance and its points history."""

from __future__ import annotations

import aiohttp

from poe2openai.team.ledger import HistoryRow, parse_history

TIMEOUT = aiohttp.ClientTimeout(total=30)
PAGE = 100
MAX_PAGES = 20  # 2,000 rows a sync; a key busier than that between syncs catches up next time


class KeyRejected(Exception):
    """Poe answered 401: the key is not valid."""


async def balance(session: aiohttp.ClientSession, base: str, secret: str) -> int | None:
    """The key's point balance; None when Poe did not give one."""
    async with session.get(
        f"{base}/usage/current_balance", headers={"Authorization": f"Bearer {secret}"}, timeout=TIMEOUT
    ) as resp:
        if resp.status == 401:
            raise KeyRejected
        if resp.status != 200:
            return None
        data = await resp.json(content_type=None)
    value = data.get("current_point_balance") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def history(session: aiohttp.ClientSession, base: str, secret: str, since: float) -> list[HistoryRow]:
    """The key's history rows newer than ``since`` (Unix seconds), newest first."""
    out: list[HistoryRow] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        params = {"limit": str(PAGE)}
        if after is not None:
            params["starting_after"] = after
        async with session.get(
            f"{base}/usage/points_history",
            params=params,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=TIMEOUT,
        ) as resp:
            if resp.status == 401:
                raise KeyRejected
            if resp.status != 200:
                break
            rows, more = parse_history(await resp.json(content_type=None))
        fresh = [r for r in rows if r.time >= since]
        out += fresh
        if not more or not rows or len(fresh) < len(rows):
            break
        after = rows[-1].query_id
    return out
