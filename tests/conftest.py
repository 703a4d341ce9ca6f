"""Fixtures: a Poe simulator and the gateway, both served over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web

from poe2openai.engine.gateway import GATEWAY, Gateway
from poe2openai.server.app import create_app
from poe2openai.server.serve import start_site
from poe2openai.settings import Settings
from poe2openai.simulator import Simulator


@dataclass
class Running:
    """A started gateway."""

    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator()
    runner, port = await start_site(simulator.app, "127.0.0.1", 0, grace=0.5)
    simulator.base_url = f"http://127.0.0.1:{port}"
    yield simulator
    await runner.cleanup()


@pytest.fixture
def settings(sim: Simulator, tmp_path: Any) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        poe_base_url=sim.base_url,
        poe_file_upload_url=f"{sim.base_url}/file_upload",
        config_dir=str(tmp_path),
        rate_limit_ms=0,
        shutdown_grace_seconds=2,
    )


@pytest_asyncio.fixture
async def start_gateway() -> AsyncIterator[Callable[[Settings], Any]]:
    runners: list[web.AppRunner] = []

    async def start(settings: Settings) -> Running:
        app = create_app(settings)
        runner, port = await start_site(app, "127.0.0.1", 0, grace=settings.shutdown_grace_seconds, settings=settings)
        runners.append(runner)
        return Running(f"http://127.0.0.1:{port}", app, runner)

    yield start
    for r in runners:
        await r.cleanup()


@pytest_asyncio.fixture
async def gw(start_gateway: Callable[[Settings], Any], settings: Settings) -> Running:
    running: Running = await start_gateway(settings)
    return running


@pytest_asyncio.fixture
async def client(gw: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="test-key", max_retries=0)
    yield c
    await c.close()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def user(text: str) -> list[dict[str, Any]]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]
