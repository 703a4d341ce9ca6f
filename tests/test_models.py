"""``/v1/models``: Poe's list in OpenAI's shape, cached, stale on failure, 502 with none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest

from poe2openai.settings import Settings
from poe2openai.simulator import MODELS, Simulator

from .conftest import Running


async def test_models_in_openai_shape_on_both_routes(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k")
    models = [m async for m in client.models.list()]
    await client.close()
    assert [m.id for m in models] == [m["id"] for m in MODELS]
    first: Any = models[0]
    assert first.object == "model" and first.owned_by == "Anthropic"
    assert first.created == 1758868894  # Poe's milliseconds converted to seconds
    assert first.name == "Claude-Sonnet-4.5"
    async with http.get(gw.url + "/models") as r:
        assert r.status == 200 and (await r.json())["object"] == "list"


async def test_list_is_cached(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        async with http.get(gw.url + "/v1/models") as r:
            assert r.status == 200
    assert sim.model_list_calls == 1


async def test_stale_list_served_when_poe_fails(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(models_cache_seconds=0))
    async with http.get(gw.url + "/v1/models") as r:
        assert r.status == 200
    sim.model_list_fail = True
    async with http.get(gw.url + "/v1/models") as r:
        assert r.status == 200 and len((await r.json())["data"]) == len(MODELS)
    assert sim.model_list_calls >= 2


@pytest.mark.parametrize("models_cache_seconds", [0.0])
async def test_502_when_no_list_was_ever_fetched(
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    models_cache_seconds: float,
) -> None:
    sim.model_list_fail = True
    gw = await start_gateway(settings.replace(models_cache_seconds=models_cache_seconds))
    async with http.get(gw.url + "/v1/models") as r:
        assert r.status == 502
        body = await r.json()
        assert body["error"]["type"] == "api_error" and body["error"]["message"]


async def test_unknown_route_and_method_are_openai_errors(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/v1/nope") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    async with http.get(gw.url + "/v1/chat/completions") as r:
        assert r.status == 405 and "POST" in r.headers["Allow"]
    async with http.get(gw.url + "/healthz") as r:
        assert r.status == 200 and (await r.json()) == {"status": "ok"}


async def test_retrieve_one_model(gw: Running) -> None:
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    model = await client.models.retrieve("Claude-Sonnet-4.5")
    assert model.id == "claude-sonnet-4.5" and model.owned_by == "Anthropic"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")
    await client.close()
