"""Points: the usage ledger, budgets per client key, Poe's points history and balances."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest

from poe2openai.errors import ApiError
from poe2openai.poe.catalog import Price
from poe2openai.settings import Settings
from poe2openai.simulator import HttpError, Simulator
from poe2openai.team.access import Team
from poe2openai.team.ledger import DAY, Entry, HistoryRow, Ledger, day_of, estimate, parse_history
from poe2openai.team.store import FILE_NAME, Store

from .test_metrics import samples, value
from .test_team import ADMIN, POOL, admin, chat, issue


@pytest.fixture
def team(settings: Settings) -> Settings:
    return settings.replace(poe_api_keys=POOL[:1])


async def sync(http: aiohttp.ClientSession, gw: Any) -> int:
    status, body = await admin(http, gw, "POST", "/admin/api/usage/sync")
    assert status == 200, body
    return int(body["matched"])


async def key_usage(http: aiohttp.ClientSession, gw: Any, key_id: str) -> dict[str, Any]:
    status, listing = await admin(http, gw, "GET", "/admin/api/keys")
    assert status == 200
    return next(k for k in listing["client_keys"] if k["id"] == key_id)


async def test_daily_budget_is_enforced_from_the_points_history(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    sim.query_costs["gpt-4o-mini"] = 30
    key_id, token = await issue(http, gw, budget_day=50)
    assert (await chat(http, gw, token))[0] == 200
    assert await sync(http, gw) == 1  # the history row is this request's
    usage = (await key_usage(http, gw, key_id))["usage"]
    assert usage["day"] == {"requests": 1, "tokens": usage["day"]["tokens"], "points": 30, "estimated_points": 0}
    assert usage["month"]["points"] == 30 and usage["day"]["tokens"] > 0
    assert (await chat(http, gw, token, stream=True))[0] == 200  # 30 of 50 spent: still allowed
    assert await sync(http, gw) == 1
    status, headers, body = await chat(http, gw, token)
    assert status == 402 and body["error"]["code"] == "budget_exceeded", body
    message = body["error"]["message"]
    assert "daily budget of 50 Poe points" in message and "60 spent" in message
    assert "resets at " + day_of(time.time() + DAY) + " 00:00 UTC" in message
    assert headers["x-should-retry"] == "false"
    assert len(sim.requests) == 2  # the refused request never reached Poe
    # raising the budget lets the key through again
    assert (await admin(http, gw, "PATCH", f"/admin/api/keys/{key_id}", {"budget_day": 1000}))[0] == 200
    assert (await chat(http, gw, token))[0] == 200


async def test_monthly_budget_names_itself_and_every_dialect_gets_402(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    sim.query_costs["claude-sonnet-4.5"] = 500
    _, token = await issue(http, gw, budget_month=400)
    assert (await chat(http, gw, token, model="claude-sonnet-4.5"))[0] == 200
    await sync(http, gw)
    status, _, body = await chat(http, gw, token, model="claude-sonnet-4.5")
    assert status == 402 and "monthly budget of 400 Poe points" in body["error"]["message"]
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=token, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(
            model="claude-sonnet-4.5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    await client.close()
    assert info.value.status_code == 402 and "monthly budget" in str(info.value.message)


async def test_spend_is_estimated_from_the_price_until_the_history_shows_it(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    key_id, token = await issue(http, gw, budget_day=1)
    long_question = "explain this " * 200
    status, _, body = await chat(
        http, gw, token, model="claude-sonnet-4.5", messages=[{"role": "user", "content": long_question}]
    )
    assert status == 200
    tokens = body["usage"]
    price = Price(prompt=0.0000026, completion=0.000013)  # the simulator's published price
    expected = estimate(price, tokens["prompt_tokens"], tokens["completion_tokens"], team.points_per_usd)
    assert expected >= 1
    await gw.gateway.team.ledger.flush()
    usage = (await key_usage(http, gw, key_id))["usage"]["day"]
    assert usage["points"] == expected and usage["estimated_points"] == expected  # marked as an estimate
    status, _, body = await chat(http, gw, token, model="claude-sonnet-4.5")
    assert status == 402 and "daily budget of 1 Poe points" in body["error"]["message"]  # the estimate counts
    sim.points_history.clear()  # Poe's history never shows the query: the estimate stays
    assert await sync(http, gw) == 0
    assert (await key_usage(http, gw, key_id))["usage"]["day"]["estimated_points"] == expected


async def test_usage_report_per_day_key_model_and_pool_spend(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:2]))
    sim.query_costs.update({"gpt-4o-mini": 7, "gpt-5": 11})
    alice_id, alice = await issue(http, gw, label="alice")
    bob_id, bob = await issue(http, gw, label="bob")
    for token, model in ((alice, "gpt-4o-mini"), (alice, "gpt-5"), (bob, "gpt-5"), (bob, "gpt-5")):
        assert (await chat(http, gw, token, model=model))[0] == 200
    assert await sync(http, gw) == 4
    status, report = await admin(http, gw, "GET", "/admin/api/usage?days=7")
    assert status == 200
    assert len(report["days"]) == 7 and report["days"][-1] == day_of(time.time())
    assert report["total"]["requests"][-1] == 4 and report["total"]["points"][-1] == 7 + 3 * 11
    assert report["total"]["estimated_points"][-1] == 0 and report["total"]["requests"][:-1] == [0] * 6
    assert report["by_key"][alice_id]["points"][-1] == 18 and report["by_key"][bob_id]["points"][-1] == 22
    assert report["by_model"]["gpt-5"]["requests"][-1] == 3 and report["by_model"]["gpt-4o-mini"]["points"][-1] == 7
    assert report["labels"][alice_id] == "alice" and report["labels"][bob_id] == "bob"
    spend = report["pool"]
    assert sum(p["points"][-1] for p in spend.values()) == 40
    assert sum(p["by_bot"].get("gpt-5", 0) for p in spend.values()) == 33
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    pool = listing["pool_keys"]
    assert sum(1000 - p["balance"] for p in pool) == 40  # each key's balance, as Poe gives it
    assert sum(p["spend_7d"] for p in pool) == 40 and all(p["balance_checked"] for p in pool)
    for secret in POOL:
        assert secret not in str(report) and secret not in str(listing)
    status, body = await admin(http, gw, "GET", "/admin/api/usage?days=0")
    assert status == 400 and body["error"]["param"] == "days"


async def test_budget_fields_are_validated(
    start_gateway: Callable[[Settings], Any], team: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    for bad in (-1, 2.5, "100", True):
        status, body = await admin(http, gw, "POST", "/admin/api/keys", {"label": "x", "budget_month": bad})
        assert status == 400 and body["error"]["param"] == "budget_month", bad
    key_id, _ = await issue(http, gw, budget_day=0, budget_month=None)
    status, body = await admin(http, gw, "PATCH", f"/admin/api/keys/{key_id}", {"budget_day": None})
    assert status == 200 and body["key"]["budget_day"] is None


def test_history_pages_are_parsed_in_every_documented_shape() -> None:
    rows, more = parse_history(
        {
            "has_more": True,
            "data": [
                {"creation_time": 1764590000123456, "bot_name": "GPT-5", "query_id": "a", "cost_points": 10},
                {"creation_time": 1764590000, "app_name": "my-app", "query_id": "b", "cost_points": 0},
                {"creation_time": 1764590000, "bot_name": "x", "query_id": "c", "cost_points": -1},
                {"creation_time": True, "bot_name": "x", "query_id": "d", "cost_points": 1},
                {"bot_name": "x", "query_id": "e", "cost_points": 1},
                "junk",
            ],
        }
    )
    assert more is True
    assert [(r.query_id, r.bot, r.cost) for r in rows] == [("a", "gpt-5", 10), ("b", "my-app", 0)]
    assert abs(rows[0].time - 1764590000.123456) < 1e-3 and rows[1].time == 1764590000
    assert parse_history({"detail": "nope"}) == ([], False)


def _entry(ts: float, done: float, points: int = 3, client: str = "ck_a", bot: str = "gpt-5") -> Entry:
    return Entry(ts, done, client, "pk_1", "gpt-5", bot, 200, 10, 5, points)


async def test_each_history_row_goes_to_the_nearest_request_running_then(tmp_path: Path) -> None:
    now = time.time()
    ledger = Ledger(Store(tmp_path / FILE_NAME), clock=lambda: now)
    for e in (_entry(now - 100, now - 90), _entry(now - 95, now - 60, client="ck_b"), _entry(now - 10, now - 5)):
        ledger.add(e)
    await ledger.flush()
    assert ledger.spent("ck_a", now) == (6, 6)
    rows = [
        HistoryRow("q1", now - 94, "gpt-5", 40),  # ck_b started nearest
        HistoryRow("q2", now - 99, "gpt-5", 50),  # ck_a's first
        HistoryRow("q3", now - 9, "claude", 60),  # no request to that bot: stays unmatched
    ]
    assert ledger.apply_history("pk_1", rows, now) == (3, 2)
    assert ledger.apply_history("pk_1", rows, now) == (0, 0)  # seen rows are not counted twice
    await ledger.flush()
    assert ledger.spent("ck_b", now) == (40, 40) and ledger.spent("ck_a", now) == (53, 53)
    report = ledger.report(1, now)
    assert report["pool"]["pk_1"]["by_bot"] == {"gpt-5": 90, "claude": 60}
    assert report["by_key"]["ck_a"]["estimated_points"] == [3]
    ledger.store.close()


async def test_old_detail_rows_roll_up_into_days(tmp_path: Path) -> None:
    now = time.time()
    ledger = Ledger(Store(tmp_path / FILE_NAME), clock=lambda: now)
    ledger.add(_entry(now - 5 * DAY, now - 5 * DAY + 1))
    ledger.add(_entry(now - 1, now))
    await ledger.flush()  # the first commit also prunes
    ledger._pruned = 0.0
    await ledger.flush()
    store = ledger.store
    assert [r["n"] for r in store.rows("SELECT COUNT(*) AS n FROM requests")] == [1]  # the old one is gone
    days = {r["day"]: r["requests"] for r in store.rows("SELECT day, requests FROM daily")}
    assert days == {day_of(now - 5 * DAY): 1, day_of(now - 1): 1}  # its day is kept
    store.close()


async def test_two_processes_see_each_others_spend(team: Settings) -> None:
    one, two = Team.open(team), Team.open(team)  # two worker processes on one CONFIG_DIR
    try:
        key, token = await one.clients.create({"label": "alice", "budget_day": 10})
        now = time.time()
        one.ledger.add(_entry(now, now, points=12, client=key.id))
        await one.ledger.flush()
        await two.ledger.flush()  # what a worker does every few seconds
        with pytest.raises(ApiError) as info:
            two.authorize(token, "gpt-5")
        assert info.value.status == 402 and "daily budget of 10" in info.value.message
    finally:
        await one.close()
        await two.close()


LEDGER_WRITER = """
import asyncio, sys, time
from pathlib import Path
from poe2openai.team.ledger import Entry, Ledger
from poe2openai.team.store import Store

async def main() -> None:
    ledger = Ledger(Store(Path(sys.argv[1])))
    n = 0
    while True:
        for _ in range(25):
            n += 1
            ledger.add(Entry(time.time(), time.time(), "ck_" + str(n), "pk_1", "gpt-5", "gpt-5", 200, 1, 1, 1))
        await ledger.flush()
        print(n, flush=True)

asyncio.run(main())
"""


def test_ledger_rows_survive_kill_9_during_a_burst(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    proc = subprocess.Popen(
        [sys.executable, "-c", LEDGER_WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    committed = [int(proc.stdout.readline()) for _ in range(20)]
    proc.kill()  # SIGKILL, in the middle of further commits
    proc.wait()
    committed += [int(line) for line in proc.stdout.read().split()]
    store = Store(path)
    rows = store.rows("SELECT COUNT(*) AS n FROM requests")[0]["n"]
    total = store.rows("SELECT SUM(requests) AS n FROM daily")[0]["n"]
    store.close()
    assert committed[-1] >= 500 and rows >= committed[-1] and rows == total  # detail and roll-up agree


async def test_pool_keys_in_the_metrics(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:2]))
    sim.query_costs["gpt-4o-mini"] = 9
    sim.script_for_key(POOL[0], [HttpError(401, {"error": {"message": "Invalid API key"}})])
    _, token = await issue(http, gw)
    assert (await chat(http, gw, token))[0] == 200  # served by the second key
    await sync(http, gw)
    async with http.get(gw.url + "/metrics", headers=ADMIN) as r:
        found = samples(await r.text())
    ids = [k.id for k in gw.gateway.team.pool.keys]
    assert value(found, "poe2openai_pool_key_healthy", key=ids[0]) == 0
    assert value(found, "poe2openai_pool_key_healthy", key=ids[1]) == 1
    assert value(found, "poe2openai_pool_key_balance_points", key=ids[1]) == 1000 - 9
    assert value(found, "poe2openai_pool_points_spent_total", key=ids[1]) == 9
    assert not any(secret in str(found) for secret in POOL)


def test_a_file_from_before_budgets_is_migrated_with_its_keys(tmp_path: Path) -> None:
    import sqlite3

    from poe2openai.team.keys import ClientKeys, digest
    from poe2openai.team.store import MIGRATIONS

    path = tmp_path / FILE_NAME
    with sqlite3.connect(path) as db:  # what the first team release wrote
        db.executescript(MIGRATIONS[0])
        db.execute(
            "INSERT INTO client_keys (id, label, hash, created, models, rpm) VALUES (?, ?, ?, ?, ?, ?)",
            ("ck_old", "old", digest("p2o-old-token"), 1.0, '["gpt-*"]', 5),
        )
        db.execute("PRAGMA user_version=1")
    store = Store(path)
    key = ClientKeys(store).find("p2o-old-token")
    assert store.version == len(MIGRATIONS) == 2
    assert key is not None and key.models == ("gpt-*",) and key.rpm == 5
    assert key.budget_day is None and key.budget_month is None
    assert store.rows("SELECT COUNT(*) AS n FROM daily")[0]["n"] == 0
    store.close()
