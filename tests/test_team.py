"""A shared gateway: issued client keys, the pool of Poe keys, and the SQLite store behind them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from poe2openai.errors import ApiError
from poe2openai.settings import Settings, SettingsError, from_env
from poe2openai.simulator import DONE, HttpError, Simulator, error, text
from poe2openai.team.access import Team
from poe2openai.team.store import FILE_NAME, MIGRATIONS, Store

from .conftest import Running, user

ADMIN = {"Authorization": aiohttp.encode_basic_auth("admin", "123456")}
PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
POOL = ("poe-key-1", "poe-key-2", "poe-key-3", "poe-key-4")


async def chat(
    http: aiohttp.ClientSession, gw: Running, token: str | None, model: str = "gpt-4o-mini", **body: Any
) -> tuple[int, CIMultiDict[str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    payload = {"model": model, "messages": user("hi"), **body}
    async with http.post(gw.url + "/v1/chat/completions", json=payload, headers=headers) as r:
        data = await r.json() if not body.get("stream") or r.status != 200 else await r.text()
        return r.status, CIMultiDict(r.headers), data


async def admin(http: aiohttp.ClientSession, gw: Running, method: str, path: str, body: Any = None) -> Any:
    async with http.request(
        method, gw.url + path, json=body if body is not None else {}, headers={**ADMIN, "Origin": gw.url}
    ) as r:
        return r.status, await r.json()


async def issue(http: aiohttp.ClientSession, gw: Running, **fields: Any) -> tuple[str, str]:
    status, body = await admin(http, gw, "POST", "/admin/api/keys", {"label": "alice", **fields})
    assert status == 201, body
    return body["key"]["id"], body["token"]


def poe_keys_seen(sim: Simulator) -> list[str]:
    return [r.headers["Authorization"].removeprefix("Bearer ") for r in sim.requests]


@pytest.fixture
def team(settings: Settings) -> Settings:
    return settings.replace(poe_api_keys=POOL[:1])


async def test_pass_through_unchanged(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, _, body = await chat(http, gw, "my-own-poe-key")
    assert status == 200 and body["choices"][0]["message"]["content"]
    assert poe_keys_seen(sim) == ["my-own-poe-key"]
    async with http.get(gw.url + "/v1/models") as r:  # no key needed to list models
        assert r.status == 200 and len((await r.json())["data"]) > 3
    assert not (Path(gw.gateway.settings.config_dir) / FILE_NAME).exists()  # pass-through leaves no file


async def test_team_mode_refuses_other_keys_before_poe(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    for token in ("my-own-poe-key", "p2o-made-up", None):
        status, _, body = await chat(http, gw, token)
        assert status == 401 and body["error"]["code"] == "invalid_api_key", (token, body)
    async with http.get(gw.url + "/v1/models") as r:
        assert r.status == 401
    assert sim.requests == []


async def test_own_poe_keys_allowed_when_the_operator_says_so(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team.replace(allow_client_poe_keys=True))
    _, token = await issue(http, gw)
    assert (await chat(http, gw, "my-own-poe-key"))[0] == 200
    assert (await chat(http, gw, token))[0] == 200
    assert poe_keys_seen(sim) == ["my-own-poe-key", POOL[0]]


async def test_issued_key_is_served_with_a_pool_key(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    key_id, token = await issue(http, gw, models=["gpt-*"])
    assert token.startswith("p2o-") and len(token) > 40
    for stream in (False, True):
        status, _, _ = await chat(http, gw, token, stream=stream)
        assert status == 200
    assert poe_keys_seen(sim) == [POOL[0], POOL[0]]
    status, listing = await admin(http, gw, "GET", "/admin/api/keys")
    assert status == 200 and listing["team_mode"] is True
    assert [k["id"] for k in listing["client_keys"]] == [key_id]
    assert listing["pool_keys"][0]["health"] == "healthy" and listing["pool_keys"][0]["source"] == "env"
    shown = str(listing)
    assert token not in shown and POOL[0] not in shown
    stored = (Path(team.config_dir) / FILE_NAME).read_bytes()
    assert token.encode() not in stored  # only its hash is kept


async def test_issued_key_refusals(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    _, limited = await issue(http, gw, models=["gpt-4o-mini", "claude-*"], rpm=2)
    status, _, body = await chat(http, gw, limited, model="gpt-5")
    assert status == 403 and body["error"]["code"] == "model_not_allowed" and "gpt-5" in body["error"]["message"]
    assert (await chat(http, gw, limited, model="claude-sonnet-4.5:high"))[0] == 200  # a suffix is the same model
    assert (await chat(http, gw, limited))[0] == 200
    status, headers, body = await chat(http, gw, limited)
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 60
    async with http.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {limited}"}) as r:
        ids = sorted(m["id"] for m in (await r.json())["data"])
    assert ids == ["claude-sonnet-4.5", "gpt-4o-mini"]
    async with http.get(gw.url + "/v1/models/gpt-5", headers={"Authorization": f"Bearer {limited}"}) as r:
        assert r.status == 404

    _, expired = await issue(http, gw, expires=time.time() - 1)
    status, _, body = await chat(http, gw, expired)
    assert status == 401 and "expired" in body["error"]["message"]

    key_id, revoked = await issue(http, gw)
    assert (await chat(http, gw, revoked))[0] == 200
    status, body = await admin(http, gw, "DELETE", f"/admin/api/keys/{key_id}")
    assert status == 200 and body["key"]["revoked"] is not None
    status, _, body = await chat(http, gw, revoked)
    assert status == 401 and "revoked" in body["error"]["message"]
    assert len(sim.requests) == 3  # no refused request reached Poe


async def test_key_admin_api_validates_and_is_guarded(
    start_gateway: Callable[[Settings], Any], team: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    for body, param in (
        ({}, "label"),
        ({"label": "x", "rpm": 0}, "rpm"),
        ({"label": "x", "models": "gpt-5"}, "models"),
        ({"label": "x", "expires": "tomorrow"}, "expires"),
        ({"label": "x", "colour": "red"}, "colour"),
    ):
        status, answer = await admin(http, gw, "POST", "/admin/api/keys", body)
        assert status == 400 and answer["error"]["param"] == param, (body, answer)
    key_id, _ = await issue(http, gw)
    status, answer = await admin(http, gw, "PATCH", f"/admin/api/keys/{key_id}", {"label": "bob", "rpm": 5})
    assert status == 200 and answer["key"]["label"] == "bob" and answer["key"]["rpm"] == 5
    assert (await admin(http, gw, "PATCH", "/admin/api/keys/ck_nope", {"label": "x"}))[0] == 404
    async with http.post(gw.url + "/admin/api/keys", json={"label": "x"}) as r:
        assert r.status == 401
    async with http.post(
        gw.url + "/admin/api/keys", json={"label": "x"}, headers={**ADMIN, "Origin": "https://evil.example"}
    ) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"
    async with http.get(gw.url + "/admin/api/keys", headers={**ADMIN, "Host": "evil.example"}) as r:
        assert r.status == 403


async def test_pool_keys_added_on_admin_are_kept_and_never_shown(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings)
    _, token = await issue(http, gw)
    assert (await chat(http, gw, token))[0] == 503  # an issued key, but no Poe key yet
    status, body = await admin(http, gw, "POST", "/admin/api/pool", {"key": "poe-secret-9", "label": "team"})
    assert status == 201 and "poe-secret-9" not in str(body)
    assert (await admin(http, gw, "POST", "/admin/api/pool", {"key": "poe-secret-9"}))[0] == 409
    assert (await chat(http, gw, token))[0] == 200
    assert (await chat(http, gw, "my-own-poe-key"))[0] == 401  # team mode from now on
    again = await start_gateway(settings)  # a restart reads the file
    assert (await chat(http, again, token))[0] == 200
    assert poe_keys_seen(sim) == ["poe-secret-9", "poe-secret-9"]
    status, body = await admin(http, again, "DELETE", f"/admin/api/pool/{body['pool_key']['id']}")
    assert status == 200 and body["pool_keys"] == [] and body["team_mode"] is False


@pytest.mark.parametrize("stream", [False, True])
async def test_pool_failover_to_the_fourth_key(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    stream: bool,
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL))
    _, token = await issue(http, gw)
    sim.script_for_key(POOL[0], [HttpError(401, {"error": {"message": "Invalid API key"}})])
    sim.script_for_key(POOL[1], [error("You do not have enough points.", error_type="insufficient_fund")])
    sim.script_for_key(
        POOL[2], [HttpError(429, {"error": {"message": "slow down"}}, {"x-ratelimit-reset-requests": "1m30s"})]
    )
    status, _, body = await chat(http, gw, token, stream=stream)
    assert status == 200 and "error" not in str(body)
    assert poe_keys_seen(sim) == list(POOL)
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    health = {k["label"] + str(i): k for i, k in enumerate(listing["pool_keys"])}
    assert [k["health"] for k in health.values()] == ["disabled", "out_of_points", "cooling_down", "healthy"]
    assert 80 < listing["pool_keys"][2]["cooling_seconds"] <= 90
    assert (await chat(http, gw, token))[0] == 200
    assert poe_keys_seen(sim)[-1] == POOL[3]  # the others are skipped

    sim.balances[POOL[1]] = 0
    await gw.gateway.team.check_balances(gw.gateway.session)
    assert gw.gateway.team.pool.keys[1].out_of_points and sim.balance_calls == [POOL[1]]  # only that key is asked
    sim.balances[POOL[1]] = 500
    await gw.gateway.team.check_balances(gw.gateway.session)
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    assert listing["pool_keys"][1]["health"] == "healthy" and listing["pool_keys"][1]["balance"] == 500
    status, _ = await admin(http, gw, "POST", f"/admin/api/pool/{listing['pool_keys'][0]['id']}/enable")
    assert status == 200
    sim.requests.clear()
    for _ in range(3):
        assert (await chat(http, gw, token))[0] == 200
    assert sorted(poe_keys_seen(sim)) == [POOL[0], POOL[1], POOL[3]]  # round robin over the healthy keys


async def test_all_pool_keys_out_of_points_is_402(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    _, token = await issue(http, gw)
    sim.script_for_key(POOL[0], [error("You do not have enough points.", error_type="insufficient_fund"), DONE])
    status, headers, body = await chat(http, gw, token)
    assert status == 402 and body["error"]["code"] == "insufficient_quota"
    status, headers, body = await chat(http, gw, token)  # the key is skipped without asking Poe
    assert status == 402 and headers["x-should-retry"] == "false" and len(sim.requests) == 1


async def test_keys_never_in_logs(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:2]))
    _, token = await issue(http, gw)
    sim.script_for_key(POOL[0], [HttpError(401, {"error": {"message": "Invalid API key"}})])
    sim.script("gpt-4o-mini", [text("fine"), DONE])
    assert (await chat(http, gw, token))[0] == 200
    await admin(http, gw, "POST", "/admin/api/pool", {"key": "poe-secret-9"})
    await chat(http, gw, "p2o-wrong")
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "disabled" in everything  # the pool's log lines are there, naming keys by id
    for secret in (token, *POOL[:2], "poe-secret-9"):
        assert secret not in everything


def test_poe_api_keys_setting() -> None:
    assert from_env({"POE_API_KEYS": " a, b ,,a"}).poe_api_keys == ("a", "b")
    assert from_env({}).poe_api_keys == () and from_env({}).allow_client_poe_keys is False
    with pytest.raises(SettingsError, match="POE_API_KEYS") as info:
        from_env({"POE_API_KEYS": "good, bad\x01key"})
    assert "bad" not in str(info.value)  # the message never quotes a key


def test_store_schema_version_and_newer_file_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / FILE_NAME)
    assert store.version == 0 and not store.path.exists()
    store.execute("INSERT INTO pool_keys (id, label, secret, added) VALUES ('p', 'l', 's', 0)")
    assert store.version == len(MIGRATIONS)
    mode = store.path.stat().st_mode & 0o777
    store.close()
    assert mode == 0o600
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer poe2openai"):
        Store(tmp_path / FILE_NAME)


WRITER = """
import asyncio, sys
from pathlib import Path
from poe2openai.team.keys import ClientKeys
from poe2openai.team.store import Store

async def main() -> None:
    keys = ClientKeys(Store(Path(sys.argv[1])))
    while True:
        made = await asyncio.gather(*(keys.create({"label": "burst"}) for _ in range(8)))
        for key, _ in made:
            print(key.id, flush=True)

asyncio.run(main())
"""


def test_sqlite_survives_kill_9_during_a_burst(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    committed = [proc.stdout.readline().strip() for _ in range(200)]
    proc.kill()  # SIGKILL, in the middle of further writes
    proc.wait()
    committed += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    store = Store(path)
    stored = {row["id"] for row in store.rows("SELECT id FROM client_keys")}
    store.close()
    assert len(committed) >= 200 and set(committed) <= stored


async def test_a_rejected_pool_key_is_not_the_callers_401(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    _, token = await issue(http, gw)
    sim.script_for_key(POOL[0], [HttpError(401, {"error": {"message": "Invalid API key"}})])
    for _ in range(2):  # the first asks Poe, the second knows
        status, _, body = await chat(http, gw, token)
        assert status == 503 and body["error"]["code"] == "no_poe_key"
    assert len(sim.requests) == 1


async def test_pacing_applies_per_pool_key(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    paced = settings.replace(poe_api_keys=POOL[:2], rate_limit_ms=60_000, rate_limit_max_wait_ms=90_000)
    gw = await start_gateway(paced)
    _, token = await issue(http, gw)
    assert (await chat(http, gw, token))[0] == 200  # key 1 takes its bucket's place
    assert (await chat(http, gw, token))[0] == 200  # key 2 has its own: no minute's wait
    assert poe_keys_seen(sim) == list(POOL[:2])
    waiting = asyncio.ensure_future(chat(http, gw, token))  # key 1 again: paced
    limiters = gw.gateway.key_limiters
    while not any(lim.waiting for lim in limiters.values()):
        await asyncio.sleep(0.01)
    assert [lim.waiting for lim in limiters.values()] == [1, 0] and gw.gateway.limiter.waiting == 0
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert len(sim.requests) == 2


async def test_a_pool_key_rejected_at_upload_moves_to_the_next(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=("bad-key", POOL[1])))
    _, token = await issue(http, gw)
    image = {"type": "image_url", "image_url": {"url": PNG_URL}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]
    status, _, body = await chat(http, gw, token, messages=messages)
    assert status == 200, body
    assert [r.headers["Authorization"] for r in sim.uploads][-1] == POOL[1]
    assert poe_keys_seen(sim) == [POOL[1]]  # the rejected key never asked a bot
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    assert [k["health"] for k in listing["pool_keys"]] == ["disabled", "healthy"]


async def test_workers_sharing_the_file_see_each_others_changes(team: Settings) -> None:
    one, two = Team.open(team), Team.open(team)  # two worker processes on one CONFIG_DIR
    try:
        key, token = await one.clients.create({"label": "alice"})
        assert two.authorize(token, "gpt-4o-mini").client == key
        await one.clients.revoke(key.id)
        with pytest.raises(ApiError) as info:
            two.authorize(token, "gpt-4o-mini")
        assert info.value.status == 401 and "revoked" in info.value.message
        added = await two.add_pool_key("poe-secret-9", "team")
        one.refresh()
        assert one.pool.get(added.id) is not None
        await two.remove_pool_key(added.id)
        one.refresh()
        assert one.pool.get(added.id) is None
    finally:
        await one.close()
        await two.close()


async def test_the_admin_api_of_one_worker_sees_what_another_changed(
    start_gateway: Callable[[Settings], Any], team: Settings, http: aiohttp.ClientSession
) -> None:
    one, two = await start_gateway(team), await start_gateway(team)  # two workers on one CONFIG_DIR
    key_id, _ = await issue(http, one)
    _, listing = await admin(http, two, "GET", "/admin/api/keys")
    assert [k["id"] for k in listing["client_keys"]] == [key_id]
    _, report = await admin(http, two, "GET", "/admin/api/usage?days=1")
    assert report["labels"][key_id] == "alice"
    status, body = await admin(http, two, "PATCH", f"/admin/api/keys/{key_id}", {"rpm": 5})
    assert status == 200, body
    status, body = await admin(http, one, "DELETE", f"/admin/api/keys/{key_id}")
    assert status == 200 and body["key"]["rpm"] == 5 and body["key"]["revoked"] is not None
    status, body = await admin(http, one, "POST", "/admin/api/pool", {"key": "poe-secret-9", "label": "team"})
    assert status == 201
    pool_id = body["pool_key"]["id"]
    assert (await admin(http, two, "POST", "/admin/api/pool", {"key": "poe-secret-9"}))[0] == 409
    status, body = await admin(http, two, "DELETE", f"/admin/api/pool/{pool_id}")
    assert status == 200 and [k["source"] for k in body["pool_keys"]] == ["env"]
    _, listing = await admin(http, one, "GET", "/admin/api/keys")
    assert [k["id"] for k in listing["pool_keys"]] == [k["id"] for k in body["pool_keys"]]
    assert listing["client_keys"][0]["status"] == "revoked"


async def test_key_listing_says_whether_each_key_is_active_expired_or_revoked(
    start_gateway: Callable[[Settings], Any], team: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    active, _ = await issue(http, gw, expires=time.time() + 3600)
    expired, _ = await issue(http, gw, expires=time.time() - 1)
    revoked, _ = await issue(http, gw, expires=time.time() - 1)
    await admin(http, gw, "DELETE", f"/admin/api/keys/{revoked}")
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    status = {k["id"]: k["status"] for k in listing["client_keys"]}
    assert status == {active: "active", expired: "expired", revoked: "revoked"}  # by the gateway's clock


async def test_every_dialect_goes_through_the_same_access(
    start_gateway: Callable[[Settings], Any], team: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(team)
    _, token = await issue(http, gw, models=["gpt-4o-mini"])
    for path, body in (
        ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hi"}),
    ):
        for bearer, want in (("my-own-poe-key", 401), (token, 200)):
            async with http.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {bearer}"}) as r:
                assert r.status == want, (path, await r.text())
        async with http.post(
            gw.url + path, json={**body, "model": "gpt-5"}, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 403 and "gpt-5" in await r.text()
    assert poe_keys_seen(sim) == [POOL[0], POOL[0]]
