"""The admin page's Keys and Usage views in a real headless Chromium, against a team gateway."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from poe2openai.settings import Settings
from poe2openai.simulator import HttpError, Simulator
from poe2openai.team.ledger import day_of

from .conftest import Running, user
from .test_admin_browser import CHROMIUM, browser, open_admin
from .test_team import POOL, admin, chat, issue, poe_keys_seen

__all__ = ["browser"]  # a fixture: pytest finds it here by name

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


async def keys_view(page: Any) -> None:
    await page.click('[data-view="keys"]')
    await page.wait_for_selector('.key-form[data-key="new"]')


def accept_dialogs(page: Any, answers: list[bool]) -> list[str]:
    """Answer the page's confirm() boxes in turn; the messages they showed."""
    shown: list[str] = []

    async def answer(dialog: Any) -> None:
        shown.append(dialog.message)
        await (dialog.accept() if answers.pop(0) else dialog.dismiss())

    page.on("dialog", answer)
    return shown


async def test_operator_issues_a_key_and_sees_its_spend_against_the_budget(
    browser: Any, start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, tmp_path: Path
) -> None:
    gw: Running = await start_gateway(settings.replace(poe_api_keys=POOL[:1]))
    sim.query_costs["gpt-4o-mini"] = 30
    page = await open_admin(browser, gw, permissions=["clipboard-read", "clipboard-write"])
    await keys_view(page)
    assert await page.is_hidden("#team-off")
    await page.fill('.key-form[data-key="new"] [name="label"]', "alice")
    await page.fill('.key-form[data-key="new"] [name="models"]', "gpt-4o-mini, claude-*")
    await page.fill('.key-form[data-key="new"] [name="budget_month"]', "400")
    await page.click('.key-form[data-key="new"] button[type="submit"]')
    await page.wait_for_selector("#token-banner:not([hidden])")
    token = await page.text_content("#token-value")
    assert token is not None and token.startswith("p2o-")
    assert "will not be shown again" in await page.text_content("#token-banner")
    await page.click("#token-copy")
    await page.wait_for_selector('#token-copy[data-copied="true"]')
    assert await page.evaluate("navigator.clipboard.readText()") == token
    row = await page.wait_for_selector('.key-row[data-status="active"]')
    key_id = await row.get_attribute("data-id")
    assert "gpt-4o-mini, claude-*" in await row.text_content()
    assert await page.input_value('.key-form[data-key="new"] [name="label"]') == ""  # ready for the next one
    await page.screenshot(path=str(tmp_path / "token.png"), full_page=True)

    await page.reload()  # the token was shown once
    await page.wait_for_selector(f'.key-row[data-id="{key_id}"]')
    assert await page.is_hidden("#token-banner") and token not in await page.content()

    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=token, max_retries=0)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("hello"))
    assert r.choices[0].message.content == "You said: hello"
    with pytest.raises(openai.PermissionDeniedError):  # not in the key's models
        await client.chat.completions.create(model="gpt-5", messages=user("hello"))
    await client.close()

    await page.click("#sync")
    month = f'.key-row[data-id="{key_id}"] .usage[data-period="month"]'
    await page.wait_for_selector(f'{month}[data-requests="1"][data-points="30"][data-estimated="0"][data-budget="400"]')
    assert "30 / 400" in await page.text_content(month)
    assert await page.get_attribute(f"{month} .budget-bar .used", "width") == "7.5"  # 30 of 400
    assert await page.is_hidden(f"{month} .estimated:not(rect)")  # confirmed by Poe: no estimate left
    day = f'.key-row[data-id="{key_id}"] .usage[data-period="day"]'
    assert await page.get_attribute(day, "data-points") == "30" and await page.get_attribute(day, "data-budget") == ""
    assert "Last sync with Poe" in await page.text_content("#synced")
    await page.screenshot(path=str(tmp_path / "keys.png"), full_page=True)
    assert page.errors == []


async def test_edit_and_revoke_a_key_on_the_page(
    browser: Any,
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:1]))
    key_id, token = await issue(http, gw, label="bob", models=["gpt-4o-mini"])
    old_id, _ = await issue(http, gw, label="old", expires=time.time() - 1)
    page = await open_admin(browser, gw, timezone_id="UTC")
    await keys_view(page)
    assert await page.get_attribute(f'.key-row[data-id="{old_id}"]', "data-status") == "expired"

    # the API's validation errors appear next to the field they name
    new = '.key-form[data-key="new"]'
    await page.fill(f"{new} [name=budget_month]", "2.5")
    await page.click(f"{new} button[type=submit]")
    await page.wait_for_selector(f'{new} .field-error[data-for="label"]:has-text("label must be")')
    await page.fill(f"{new} [name=label]", "carol")
    await page.click(f"{new} button[type=submit]")
    await page.wait_for_selector(f'{new} .field-error[data-for="budget_month"]:has-text("whole number of Poe points")')
    assert await page.text_content(f'{new} .field-error[data-for="label"]') == ""
    assert await page.get_attribute(f"{new} [name=budget_month]", "aria-invalid") == "true"

    row = f'.key-row[data-id="{key_id}"]'
    await page.click(f"{row} button.edit")
    form = f'{row} .key-form[data-key="{key_id}"]'
    assert await page.input_value(f"{form} [name=models]") == "gpt-4o-mini"
    await page.fill(f"{form} [name=rpm]", "0")
    await page.click(f"{form} button[type=submit]")
    await page.wait_for_selector(f'{form} .field-error[data-for="rpm"]:has-text("rpm must be")')
    await page.fill(f"{form} [name=rpm]", "5")
    await page.fill(f"{form} [name=label]", "bobby")
    await page.fill(f"{form} [name=budget_day]", "100")
    await page.fill(f"{form} [name=models]", "gpt-4o-mini gpt-5")
    await page.fill(f"{form} [name=expires]", "2099-12-31")
    await page.click(f"{form} button[type=submit]")
    await page.wait_for_selector(f'{row} .key-label:has-text("bobby")')
    assert await page.is_hidden(form) and "valid until 2099-12-31" in await page.text_content(row)
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    key = next(k for k in listing["client_keys"] if k["id"] == key_id)
    assert (key["label"], key["rpm"], key["budget_day"], key["models"]) == ("bobby", 5, 100, ["gpt-4o-mini", "gpt-5"])
    assert key["expires"] == calendar.timegm((2100, 1, 1, 0, 0, 0))  # valid through that day
    assert (await chat(http, gw, token, model="gpt-5"))[0] == 200

    await page.click(f"{row} button.edit")  # emptied fields are cleared
    await page.fill(f"{form} [name=budget_day]", "")
    await page.fill(f"{form} [name=expires]", "")
    await page.click(f"{form} button[type=submit]")
    await page.wait_for_selector(f'{row} .usage[data-period="day"][data-budget=""]')
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    key = next(k for k in listing["client_keys"] if k["id"] == key_id)
    assert key["budget_day"] is None and key["expires"] is None and key["rpm"] == 5

    shown = accept_dialogs(page, [False, True])
    await page.click(f"{row} button.revoke")  # dismissed: nothing happens
    await page.click(f"{row} button.revoke")
    await page.wait_for_selector(f'{row}[data-status="revoked"]')
    assert "bobby" in shown[0] and len(shown) == 2
    assert await page.query_selector(f"{row} button.revoke") is None
    status, _, body = await chat(http, gw, token)
    assert status == 401 and "revoked" in body["error"]["message"]
    assert page.errors == []


async def test_pool_keys_added_and_removed_on_the_page(
    browser: Any,
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(settings)  # pass-through: no Poe key yet
    _, token = await issue(http, gw)
    page = await open_admin(browser, gw)
    await keys_view(page)
    await page.wait_for_selector("#team-off:not([hidden])")
    assert "POE_API_KEYS" in await page.text_content("#team-off")

    await page.fill("#pool-label", "team")
    await page.click('#pool-form button[type="submit"]')
    await page.wait_for_selector('#pool-form .field-error[data-for="key"]:has-text("Poe API key")')
    await page.fill("#pool-secret", "poe-secret-9")
    await page.click('#pool-form button[type="submit"]')
    row = await page.wait_for_selector('.pool-row[data-source="admin"][data-health="healthy"]')
    pool_id = await row.get_attribute("data-id")
    assert "team" in await row.text_content() and "added on this page" in await row.text_content()
    assert await page.input_value("#pool-secret") == "" and await page.input_value("#pool-label") == ""
    assert await page.is_hidden("#team-off")
    assert "poe-secret-9" not in await page.content()
    assert (await chat(http, gw, token))[0] == 200
    assert poe_keys_seen(sim) == ["poe-secret-9"]

    await page.fill("#pool-secret", "poe-secret-9")  # already held: the form says so
    await page.click('#pool-form button[type="submit"]')
    await page.wait_for_selector('#pool-form .field-error[data-for=""]:has-text("already holds")')

    shown = accept_dialogs(page, [True])
    await page.click(f'.pool-row[data-id="{pool_id}"] button.remove')
    await page.wait_for_selector("#team-off:not([hidden])")
    assert await page.query_selector(".pool-row") is None and "team" in shown[0]
    assert "poe-secret-9" not in await page.content()
    status, listing = await admin(http, gw, "GET", "/admin/api/keys")
    assert status == 200 and listing["pool_keys"] == []
    assert page.errors == []


async def test_pool_key_health_balance_spend_and_re_enable(
    browser: Any,
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:2]))
    sim.query_costs.update({"gpt-5": 11, "gpt-4o-mini": 7})
    _, token = await issue(http, gw)
    for model in ("gpt-5", "gpt-4o-mini", "gpt-5", "gpt-5"):
        assert (await chat(http, gw, token, model=model))[0] == 200
    sim.script_for_key(POOL[0], [HttpError(401, {"error": {"message": "Invalid API key"}})])
    assert (await chat(http, gw, token, model="gpt-5"))[0] == 200  # the first key is rejected, the second answers
    page = await open_admin(browser, gw)
    await keys_view(page)
    await page.click("#sync")
    await page.wait_for_selector(".pool-row[data-health='disabled']")
    first, second = (f'.pool-row[data-id="{k.id}"]' for k in gw.gateway.team.pool.keys)
    await page.wait_for_selector(f'{second}[data-health="healthy"][data-balance="{sim.balances[POOL[1]]}"]')
    text = await page.text_content(first)
    assert "disabled" in text and "Poe rejected the key (401)" in text and "from POE_API_KEYS" in text
    assert await page.query_selector(f"{first} button.remove") is None  # POE_API_KEYS is changed in settings
    assert await page.get_attribute(second, "data-spend") == str(7 + 11 + 11)  # Poe's history of that key
    assert sim.balances[POOL[1]] == 1000 - 29
    assert "Top bots: gpt-5 22 · gpt-4o-mini 7" in await page.text_content(second)
    assert "checked" in await page.text_content(second) and await page.get_attribute(first, "data-balance") == ""
    await page.click(f"{first} button.enable")
    await page.wait_for_selector(f'{first}[data-health="healthy"]')
    assert page.errors == []


async def test_usage_view_totals_per_key_and_model_switch_metric_and_period(
    browser: Any,
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:2]))
    sim.query_costs.update({"gpt-4o-mini": 7, "gpt-5": 11})
    alice_id, alice = await issue(http, gw, label="alice")
    bob_id, bob = await issue(http, gw, label="bob")
    for token, model in ((alice, "gpt-4o-mini"), (alice, "gpt-5"), (bob, "gpt-5"), (bob, "gpt-5")):
        assert (await chat(http, gw, token, model=model))[0] == 200
    status, body = await admin(http, gw, "POST", "/admin/api/usage/sync")
    assert status == 200 and body["matched"] == 4
    long = "explain this " * 300  # priced by the token count: an estimate until the next sync
    assert (await chat(http, gw, bob, model="claude-sonnet-4.5", messages=user(long)))[0] == 200
    await gw.gateway.team.ledger.flush()
    _, report = await admin(http, gw, "GET", "/admin/api/usage?days=30")
    guess = sum(report["total"]["estimated_points"])
    tokens = sum(report["total"]["tokens"])
    assert guess > 0 and tokens > 0

    page = await open_admin(browser, gw)
    await page.click('[data-view="usage"]')
    total = "#chart-usage-total svg"
    await page.wait_for_selector(f'{total}[data-metric="points"][data-days="30"][data-total="{40 + guess}"]')
    assert await page.get_attribute('#chart-usage-total [data-series="estimated"].legend-item', "data-total") == str(
        guess
    )
    today = day_of(time.time())
    assert await page.get_attribute(f'{total} rect[data-series="confirmed"]', "data-day") == today
    legend = "#chart-usage-keys .legend-item"
    assert await page.get_attribute(f'{legend}[data-series="{alice_id}"]', "data-total") == "18"
    assert await page.get_attribute(f'{legend}[data-series="{bob_id}"]', "data-total") == str(22 + guess)
    assert "alice 18" in await page.text_content("#chart-usage-keys .legend")
    models = "#chart-usage-models .legend-item"
    assert await page.get_attribute(f'{models}[data-series="gpt-5"]', "data-total") == "33"
    assert await page.get_attribute(f'{models}[data-series="gpt-4o-mini"]', "data-total") == "7"
    assert await page.get_attribute("#chart-usage-pool svg", "data-total") == "40"  # Poe's history at the sync
    by_key = "#usage-by-key tbody tr"
    assert await page.get_attribute(f'{by_key}[data-id="{alice_id}"]', "data-requests") == "2"
    assert await page.get_attribute(f'{by_key}[data-id="{bob_id}"]', "data-estimated") == str(guess)
    assert await page.get_attribute(f'{by_key}[data-id="*"]', "data-points") == str(40 + guess)
    by_model = "#usage-by-model tbody tr"
    assert await page.get_attribute(f'{by_model}[data-id="gpt-5"]', "data-requests") == "3"
    assert await page.get_attribute(f'{by_model}[data-id="claude-sonnet-4.5"]', "data-points") == str(guess)
    await page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)

    await page.click('[data-metric="requests"]')
    await page.wait_for_selector(f'{total}[data-metric="requests"][data-total="5"]')
    assert await page.get_attribute(f'{legend}[data-series="{bob_id}"]', "data-total") == "3"
    assert "Requests per day" in await page.text_content("#chart-usage-total figcaption")
    ids = [await r.get_attribute("data-id") for r in await page.query_selector_all(by_key)]
    assert ids == [bob_id, alice_id, "*"]  # sorted by the metric shown
    await page.click('[data-metric="tokens"]')
    await page.wait_for_selector(f'{total}[data-metric="tokens"][data-total="{tokens}"]')

    await page.click('[data-days="7"]')
    await page.wait_for_selector(f'{total}[data-days="7"][data-total="{tokens}"]')
    assert await page.get_attribute('[data-days="7"]', "class") == "active"
    await page.click('[data-days="90"]')
    await page.wait_for_selector(f'{total}[data-days="90"]')
    await page.click("#usage-sync")  # the estimate becomes Poe's cost
    await page.click('[data-metric="points"]')
    await page.wait_for_selector(f'{total}[data-metric="points"][data-total="60"]')
    assert await page.query_selector('#chart-usage-total rect[data-series="estimated"]') is None
    assert page.errors == []


async def test_keys_and_usage_views_in_chinese_on_a_phone(
    browser: Any,
    start_gateway: Callable[[Settings], Any],
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    gw = await start_gateway(settings.replace(poe_api_keys=POOL[:1]))
    key_id, token = await issue(http, gw, label="alice", budget_day=50, budget_month=400, models=["gpt-*"], rpm=30)
    assert (await chat(http, gw, token))[0] == 200
    await admin(http, gw, "POST", "/admin/api/usage/sync")
    page = await open_admin(browser, gw, viewport={"width": 390, "height": 844}, locale="zh-TW")
    missing = await page.evaluate(
        "[Object.keys(STRINGS.en).filter((k) => !(k in STRINGS.zh)),"
        " Object.keys(STRINGS.zh).filter((k) => !(k in STRINGS.en))]"
    )
    assert missing == [[], []]  # every string in both tables
    await keys_view(page)
    assert await page.text_content('[data-view="keys"]') == "金鑰"
    assert await page.text_content("#sync") == "立即與 Poe 同步"
    row = f'.key-row[data-id="{key_id}"]'
    assert "使用中" in await page.text_content(f"{row} .badge")
    assert "20 / 50 點" in await page.text_content(f'{row} .usage[data-period="day"]')
    assert "正常" in await page.text_content(".pool-row .badge")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.click(f"{row} button.edit")
    assert await page.text_content(f"{row} .key-form button[type=submit]") == "保存更改"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=str(tmp_path / "keys-zh.png"), full_page=True)

    await page.click('[data-view="usage"]')
    await page.wait_for_selector('#chart-usage-total svg[data-total="20"]')
    assert await page.text_content("#chart-usage-total figcaption") == "每日點數"
    assert await page.text_content("#usage-by-key thead th") == "金鑰"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=str(tmp_path / "usage-zh.png"), full_page=True)
    await page.click("#lang")
    assert await page.text_content("#chart-usage-total figcaption") == "Points per day"
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.errors == []
