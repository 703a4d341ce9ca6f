"""``/metrics`` after real traffic, parsed with prometheus_client's own parser; its auth; and the
``x-gateway-overhead-ms`` header on every answer."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
from prometheus_client.parser import text_string_to_metric_families

from poe2openai.settings import Settings
from poe2openai.simulator import DONE, HttpError, Simulator, Sleep, text

from .conftest import Running, user

AUTH = {"Authorization": aiohttp.encode_basic_auth("admin", "123456")}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"metrics" * 20).decode()


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by (name, labels)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


async def scrape(http: aiohttp.ClientSession, gw: Running, headers: dict[str, str]) -> str:
    async with http.get(gw.url + "/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        return await r.text()


async def test_metrics_after_real_traffic(
    gw: Running, client: openai.AsyncOpenAI, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    await client.chat.completions.create(model="gpt-4o-mini", messages=user("hello"))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("hello"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None
    for _ in range(2):  # the failure and its retry
        sim.script("gpt-4o-mini", [HttpError(500, {"error": "boom"})])
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("fail"))
    except openai.APIStatusError as exc:
        assert exc.status_code == 502
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": [image]}])

    found = samples(await scrape(http, gw, AUTH))
    route = "/v1/chat/completions"
    assert value(found, "poe2openai_requests_total", route=route, status="200", model="gpt-4o-mini") == 4
    assert value(found, "poe2openai_requests_total", route=route, dialect="openai-chat", status="502") == 1
    assert value(found, "poe2openai_errors_total", status="502") == 1
    assert value(found, "poe2openai_time_to_first_token_seconds_count", model="gpt-4o-mini") == 4
    assert value(found, "poe2openai_request_duration_seconds_count", stream="true") == 1
    assert value(found, "poe2openai_request_duration_seconds_count", stream="false") == 4
    assert value(found, "poe2openai_gateway_overhead_seconds_count") == 5
    assert value(found, "poe2openai_completion_tokens_total", model="gpt-4o-mini") > 0
    assert value(found, "poe2openai_prompt_tokens_total", model="gpt-4o-mini") > 0
    assert value(found, "poe2openai_open_streams") == 0
    assert value(found, "poe2openai_rate_limit_queue") == 0
    assert value(found, "poe2openai_rate_limit_wait_seconds_count") >= 5
    assert value(found, "poe2openai_attachment_cache_misses_total") == 1
    assert value(found, "poe2openai_attachment_cache_hits_total") == 1
    assert value(found, "poe2openai_attachment_uploaded_bytes_total") > 0
    assert len(sim.uploads) == 1


async def test_unknown_paths_share_one_label(gw: Running, http: aiohttp.ClientSession) -> None:
    for path in ("/nope-1", "/nope-2"):
        async with http.get(gw.url + path) as r:
            assert r.status == 404
    found = samples(await scrape(http, gw, AUTH))
    assert value(found, "poe2openai_requests_total", route="unmatched", status="404") == 2
    assert not any("nope" in str(labels) for (_, labels) in found)


async def test_metrics_need_the_admin_credentials_or_the_token(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    gw: Running = await start_gateway(settings.replace(metrics_token="scrape-me"))
    async with http.get(gw.url + "/metrics", headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert (await r.json())["error"]["code"] == "metrics_auth_required"
    for headers in ({}, {"Authorization": aiohttp.encode_basic_auth("admin", "x")}):
        async with http.get(gw.url + "/metrics", headers=headers) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert "poe2openai_requests_total" in await scrape(http, gw, {"Authorization": "Bearer scrape-me"})
    assert "poe2openai_requests_total" in await scrape(http, gw, AUTH)


async def test_wrong_metrics_tokens_are_throttled_like_admin_logins(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    gw: Running = await start_gateway(settings.replace(metrics_token="scrape-me"))
    statuses = []
    for _ in range(7):
        async with http.get(gw.url + "/metrics", headers={"Authorization": "Bearer guess"}) as r:
            statuses.append(r.status)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    # and the throttle is the admin page's: the guesser is refused there too
    async with http.get(gw.url + "/admin/api/state", headers=AUTH) as r:
        assert r.status == 429


async def test_without_a_token_metrics_ask_for_basic_auth(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/metrics", headers={"Authorization": "Bearer anything"}) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic")


async def test_overhead_header_on_every_answer_and_poe_time_excluded(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = gw.url + "/v1/chat/completions"
    headers = {"Authorization": "Bearer test-key"}
    # Poe takes its time: one second of pauses that are not the gateway's
    sim.script("gpt-4o-mini", [text("slow"), Sleep(0.5), text(" answer"), Sleep(0.5), DONE])
    async with http.post(url, json={"model": "gpt-4o-mini", "messages": user("hi")}, headers=headers) as r:
        assert r.status == 200
        slow = float(r.headers["X-Gateway-Overhead-Ms"])
    assert 0 <= slow < 500
    body = {"model": "gpt-4o-mini", "messages": user("hi"), "stream": True}
    async with http.post(url, json=body, headers=headers) as r:
        assert r.status == 200
        assert float(r.headers["X-Gateway-Overhead-Ms"]) >= 0
        await r.read()
    browser = {**headers, "Origin": "https://app.example"}
    async with http.post(url, json={"model": "gpt-4o-mini"}, headers=browser) as r:
        assert r.status == 400
        assert float(r.headers["X-Gateway-Overhead-Ms"]) >= 0
        assert "x-gateway-overhead-ms" in r.headers["Access-Control-Expose-Headers"]  # readable by a web page
