"""The admin page's Traffic view: its API merges processes by minute and model; in Chromium,
after a burst of requests the charts show them and refresh by themselves."""

from __future__ import annotations

from typing import Any

import openai

from poe2openai.engine.traffic import Traffic, merge
from poe2openai.simulator import HttpError, Simulator

from .conftest import Running, user
from .test_admin_browser import CHROMIUM, browser, open_admin  # noqa: F401 (browser is a fixture)


def test_traffic_buckets_merge_by_minute_and_model() -> None:
    now = [3600.0 * 100]
    a, b = Traffic(lambda: now[0]), Traffic(lambda: now[0])
    a.request("gpt-4o-mini", 0.08, error=False)
    a.request("gpt-4o-mini", 2.5, error=True)
    b.request("gpt-4o-mini", 0.08, error=False)
    b.request("claude", None, error=False)
    b.streams(1)
    b.streams(1)
    b.streams(-1)
    now[0] += 60
    a.request("gpt-4o-mini", 0.4, error=False)
    view = merge([a.export(), b.export()], now[0])
    assert view["models"]["*"]["requests"][-2:] == [4, 1]
    assert view["models"]["gpt-4o-mini"]["errors"][-2:] == [1, 0]
    assert view["models"]["gpt-4o-mini"]["p50"][-2] == 0.1 and view["models"]["gpt-4o-mini"]["p95"][-2] == 3
    assert view["models"]["claude"]["p50"][-2] is None
    assert view["open_streams"][-2] == 2
    now[0] += 3600  # an hour later the first minutes are gone
    a.request("claude", 0.2, error=False)
    later = merge([a.export()], now[0])
    assert sum(later["models"]["*"]["requests"]) == 1 and len(a.export()) == 1


async def burst(gw: Running, sim: Simulator) -> None:
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    for i in range(5):
        if i < 2:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("s"), stream=True)
            _ = [c async for c in stream]
        else:
            await client.chat.completions.create(model="gpt-4o-mini", messages=user("hello"))
    for _ in range(2):
        sim.script("gpt-4o-mini", [HttpError(500, {"error": "boom"})])
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("fail"))
    except openai.APIStatusError:
        pass
    await client.close()


async def test_traffic_view_shows_a_burst_and_refreshes(browser: Any, gw: Running, sim: Simulator) -> None:  # noqa: F811
    await burst(gw, sim)
    page = await open_admin(browser, gw)
    await page.click('[data-view="traffic"]')
    await page.wait_for_selector('#chart-requests svg[data-total="6"]')
    await page.wait_for_selector('#chart-errors svg[data-total="1"]')
    await page.wait_for_selector('#chart-streams svg rect.bar[data-value="1"]', state="attached")
    assert int(await page.get_attribute("#chart-ttft svg", "data-points")) >= 2  # p50 and p95 of one minute
    await page.select_option("#traffic-model", "gpt-4o-mini")
    await page.wait_for_selector('#chart-requests svg[data-total="5"]')
    assert await page.is_hidden("#models-view")
    # more traffic while the view is open: it shows without a click
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=user("more"))
    await client.close()
    await page.wait_for_selector('#chart-requests svg[data-total="6"]', timeout=15000)
    await page.click('[data-view="models"]')
    assert await page.is_visible("#models-view")
    assert page.errors == []
