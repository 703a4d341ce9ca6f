"""REDIS_URL: gateways sharing one real redis-server keep one pace, share uploads and see each
other's admin saves; with Redis gone they keep serving from local state, log it once, and pick
Redis up again by themselves."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from poe2openai.settings import Settings
from poe2openai.simulator import Simulator

from .conftest import Running
from .test_operations import free_port

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(
    not Path(REDIS).exists(), reason="redis-server is not installed (Debian: apt-get install redis-server)"
)
AUTH = {"Authorization": aiohttp.encode_basic_auth("admin", "123456")}
KEY = {"Authorization": "Bearer test-key"}


@dataclass
class RedisServer:
    """A redis-server on a loopback port, that a test may stop and start again."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest_asyncio.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port())
    await server.start()
    yield server
    server.stop()


async def chat(http: aiohttp.ClientSession, gw: Running, content: Any = "hi") -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body, headers=KEY) as r:
        await r.read()
        return r.status


async def two_gateways(
    start_gateway: Callable[[Settings], Any], settings: Settings, tmp_path: Path, **changes: Any
) -> tuple[Running, Running]:
    """Two gateways as on two hosts: their own memory and their own models.yaml folder."""
    made = []
    for name in ("host-a", "host-b"):
        folder = tmp_path / name
        folder.mkdir()
        made.append(await start_gateway(settings.replace(config_dir=str(folder), **changes)))
    return made[0], made[1]


async def test_two_gateways_keep_one_pace(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    tmp_path: Path,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    a, b = await two_gateways(start_gateway, settings, tmp_path, rate_limit_ms=200, redis_url=redis_server.url)
    statuses = await asyncio.gather(*(chat(http, gw) for gw in (a, b, a, b, a, b)))
    assert statuses == [200] * 6
    arrivals = sorted(r.at for r in sim.requests)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # a generous lower bound (a late wake-up of one request shortens the next gap); unshared: ~0
    assert len(gaps) == 5 and min(gaps) >= 0.1, gaps


async def test_the_second_gateway_does_not_upload_again(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    tmp_path: Path,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    a, b = await two_gateways(start_gateway, settings, tmp_path, redis_url=redis_server.url)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"shared" * 50).decode()
    image = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]
    assert await chat(http, a, image) == 200
    assert await chat(http, b, image) == 200
    assert len(sim.uploads) == 1
    urls = [m["attachments"][0]["url"] for m in (body["query"][0] for body in sim.bodies("gpt-4o-mini"))]
    assert len(urls) == 2 and urls[0] == urls[1]


async def test_an_admin_save_reaches_the_other_gateway(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    tmp_path: Path,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    a, b = await two_gateways(start_gateway, settings, tmp_path, redis_url=redis_server.url)
    config = {"enable": True, "models": {"gpt-4o-mini": {"mapping": "team-model"}}}
    async with http.put(a.url + "/admin/api/config", json=config, headers={"Origin": a.url, **AUTH}) as r:
        assert r.status == 200
    for _ in range(200):
        if b.gateway.config.config.by_public_name("team-model") is not None:
            break
        await asyncio.sleep(0.05)
    assert b.gateway.config.config.by_public_name("team-model") == "gpt-4o-mini"
    assert "team-model" in (tmp_path / "host-b" / "models.yaml").read_text()
    # and a gateway that starts later, with no file of its own, takes the saved one
    late_dir = tmp_path / "host-c"
    late_dir.mkdir()
    c: Running = await start_gateway(settings.replace(config_dir=str(late_dir), redis_url=redis_server.url))
    for _ in range(200):
        if c.gateway.config.config.by_public_name("team-model") is not None:
            break
        await asyncio.sleep(0.05)
    assert c.gateway.config.config.by_public_name("team-model") == "gpt-4o-mini"


async def test_redis_killed_mid_test_requests_still_served_logged_once_then_back(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="poe2openai.shared")
    gw: Running = await start_gateway(settings.replace(rate_limit_ms=20, redis_url=redis_server.url))
    assert await chat(http, gw) == 200
    redis_server.stop()
    statuses = [await chat(http, gw, f"alone {i}") for i in range(5)]
    assert statuses == [200] * 5
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1  # five requests (and the background tasks), one line
    await redis_server.start()
    for _ in range(100):  # the next request after the retry delay finds Redis again
        if any("reachable again" in r.getMessage() for r in caplog.records):
            break
        assert await chat(http, gw) == 200
        await asyncio.sleep(0.1)
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert "Traceback" not in caplog.text


async def test_a_conversation_started_on_one_gateway_continues_on_the_other(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    import openai

    from poe2openai.simulator import texts

    a, b = await two_gateways(start_gateway, settings, tmp_path, redis_url=redis_server.url)
    on_a = openai.AsyncOpenAI(base_url=f"{a.url}/v1", api_key="test-key", max_retries=0)
    on_b = openai.AsyncOpenAI(base_url=f"{b.url}/v1", api_key="test-key", max_retries=0)
    stranger = openai.AsyncOpenAI(base_url=f"{b.url}/v1", api_key="other-key", max_retries=0)
    sim.script("gpt-4o-mini", texts("Nice to meet you, Ada."))
    first = await on_a.responses.create(model="gpt-4o-mini", input="My name is Ada.")
    sim.script("gpt-4o-mini", texts("Your name is Ada."))
    second = await on_b.responses.create(model="gpt-4o-mini", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada."
    assert [m["content"] for m in sim.bodies("gpt-4o-mini")[-1]["query"]] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
    ]
    assert (await on_b.responses.retrieve(first.id)).output_text == "Nice to meet you, Ada."
    with pytest.raises(openai.NotFoundError):
        await stranger.responses.create(model="gpt-4o-mini", input="x", previous_response_id=first.id)
    for c in (on_a, on_b, stranger):
        await c.close()


async def test_team_gateways_share_rpm_windows_and_pool_key_health(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    tmp_path: Path,
    redis_server: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    from poe2openai.simulator import HttpError

    from .test_team import admin, issue
    from .test_team import chat as team_chat

    pool = ("poe-key-1", "poe-key-2")
    both = settings.replace(config_dir=str(tmp_path), poe_api_keys=pool, redis_url=redis_server.url)
    a: Running = await start_gateway(both)
    b: Running = await start_gateway(both)
    _, token = await issue(http, a, rpm=2)
    assert (await team_chat(http, a, token))[0] == 200
    assert (await team_chat(http, b, token))[0] == 200
    status, headers, _ = await team_chat(http, a, token)  # the third in a minute, whichever gateway
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60

    _, other = await issue(http, a)
    sim.requests.clear()
    # each gateway has handed out key 1 once, so each would take key 2 next
    sim.script_for_key(pool[1], [HttpError(429, {"error": {"message": "slow down"}}, {"retry-after": "90"})])
    assert (await team_chat(http, a, other))[0] == 200  # key 2 is told to rest; key 1 serves
    seen = [r.headers["Authorization"].removeprefix("Bearer ") for r in sim.requests]
    assert seen == [pool[1], pool[0]], seen
    resting = b.gateway.team.pool.keys[1]
    for _ in range(200):  # b learns it through Redis
        if resting.cool_until > b.gateway.team.clock():
            break
        await asyncio.sleep(0.02)
    _, listing = await admin(http, b, "GET", "/admin/api/keys")
    assert listing["pool_keys"][1]["health"] == "cooling_down" and listing["pool_keys"][1]["cooling_seconds"] > 60
    sim.requests.clear()
    for _ in range(2):
        assert (await team_chat(http, b, other))[0] == 200
    assert {r.headers["Authorization"] for r in sim.requests} == {f"Bearer {pool[0]}"}  # b skips the resting key
