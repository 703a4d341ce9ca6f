"""The admin page in a real headless Chromium (Debian's, driven by Playwright; no browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio

from poe2openai.simulator import Simulator

from .conftest import Running, user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must install Debian's chromium for the admin page tests")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def open_admin(browser: Any, gw: Running, **context: Any) -> Any:
    ctx = await browser.new_context(http_credentials={"username": "admin", "password": "123456"}, **context)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a blocked script, style or fetch of the page itself would show here
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(gw.url + "/admin")
    await page.wait_for_selector('.row[data-id="gpt-5"]')
    page.errors = errors
    return page


async def test_curate_models_from_the_browser(browser: Any, gw: Running, sim: Simulator, tmp_path: Path) -> None:
    page = await open_admin(browser, gw)
    await page.check("#enable")
    await page.uncheck('.row[data-id="gpt-4o-mini"] input.show')
    await page.fill('.row[data-id="claude-sonnet-4.5"] input.mapping', "Sonnet")
    await page.fill("#add-id", "my-private-bot")
    await page.fill("#add-owner", "me")
    await page.click('#add-form button[type="submit"]')
    await page.wait_for_selector('.row[data-id="my-private-bot"]')
    assert "Unsaved" in await page.text_content("#status")
    await page.click("#save")
    await page.wait_for_selector("#status.ok")  # a selector: wait_for_function evals, which the CSP forbids
    await page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)

    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    ids = [m.id async for m in client.models.list()]
    expected = ["claude-sonnet-4.5", "gpt-5", "gemini-2.5-pro", "deepseek-r1", "gpt-4o-mini", "nano-banana"]
    expected = ["Sonnet" if i == "claude-sonnet-4.5" else i for i in expected if i != "gpt-4o-mini"]
    assert ids == [*expected, "my-private-bot"]
    r = await client.chat.completions.create(model="Sonnet", messages=user("hello"))
    await client.close()
    assert r.choices[0].message.content == "You said: hello"
    assert sim.requests[-1].bot == "claude-sonnet-4.5"

    # filters and counts reflect the saved state after a reload
    await page.reload()
    await page.wait_for_selector('.row[data-id="gpt-5"]')
    assert await page.text_content("#count-hidden") == "1"
    assert await page.text_content("#count-custom") == "1"
    await page.click('[data-filter="renamed"]')
    assert [await e.get_attribute("data-id") for e in await page.query_selector_all(".row")] == ["claude-sonnet-4.5"]
    await page.fill("#search", "banana")
    assert await page.is_visible("#empty")
    assert page.errors == []


async def test_failed_save_keeps_edits_and_says_why(browser: Any, gw: Running) -> None:
    page = await open_admin(browser, gw)
    await page.fill('.row[data-id="gpt-5"] input.mapping', "same-name")
    await page.fill('.row[data-id="gemini-2.5-pro"] input.mapping', "same-name")
    await page.click("#save")
    await page.wait_for_selector("#status.error")
    assert "same-name" in await page.text_content("#status")
    assert await page.input_value('.row[data-id="gpt-5"] input.mapping') == "same-name"
    assert not await page.is_disabled("#save")
    await page.fill('.row[data-id="gemini-2.5-pro"] input.mapping', "gemini")
    await page.click("#save")
    await page.wait_for_selector("#status.ok")  # a selector: wait_for_function evals, which the CSP forbids


async def test_chinese_text_and_phone_layout(browser: Any, gw: Running) -> None:
    page = await open_admin(browser, gw, viewport={"width": 390, "height": 844}, locale="zh-TW")
    assert await page.text_content("#save") == "保存"
    assert "預設" in await page.text_content("#default-password")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling on a phone
    await page.click("#lang")
    assert await page.text_content("#save") == "Save"


async def test_content_security_policy_blocks_inline_script(browser: Any, gw: Running) -> None:
    page = await open_admin(browser, gw)
    ran = await page.evaluate(
        """() => {
            window.injected = false;
            const s = document.createElement("script");
            s.textContent = "window.injected = true";
            document.body.append(s);  // an allowed inline script runs right here
            return window.injected;
        }"""
    )
    assert ran is False
    assert any("Content Security Policy" in e for e in page.errors)
    assert await page.text_content("#count-all") != "0"  # the page's own script did run


async def test_an_empty_models_yaml_is_shown_in_the_banner(browser: Any, gw: Running) -> None:
    (Path(gw.gateway.settings.config_dir) / "models.yaml").write_text("")
    page = await open_admin(browser, gw)
    assert await page.is_visible("#config-error")
    text = await page.text_content("#config-error")
    assert text.startswith("models.yaml is empty") and gw.gateway.settings.config_dir not in text
