"""The admin API over HTTP: auth, cross-site protection, bad bodies, and the effect of a save."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Event, Simulator

from .conftest import Running, user


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


AUTH = basic("admin", "123456")


async def put_config(http: aiohttp.ClientSession, gw: Running, config: dict[str, Any], **kw: Any) -> Any:
    headers = {"Origin": gw.url, **AUTH, **kw.pop("headers", {})}
    return await http.put(gw.url + "/admin/api/config", json=config, headers=headers, **kw)


async def test_auth_required_with_basic_challenge(gw: Running, http: aiohttp.ClientSession) -> None:
    for path in ("/admin", "/admin/api/state", "/api/admin/config"):
        async with http.get(gw.url + path) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
        async with http.get(gw.url + path, headers=basic("admin", "wrong")) as r:
            assert r.status == 401
    async with http.get(gw.url + "/admin", headers=AUTH) as r:
        assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        page = await r.text()
        assert 'src="static/admin.js"' in page and "123456" in page  # default password banner
    async with http.get(gw.url + "/static/admin.js") as r:
        assert r.status == 200


async def test_custom_password(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(admin_username="ops", admin_password="s3cret pass"))
    async with http.get(gw.url + "/admin", headers=AUTH) as r:
        assert r.status == 401
    async with http.get(gw.url + "/admin", headers=basic("ops", "s3cret pass")) as r:
        assert r.status == 200 and "123456" not in await r.text()


async def test_cross_site_and_non_json_writes_are_refused(gw: Running, http: aiohttp.ClientSession) -> None:
    async with await put_config(http, gw, {"enable": True}, headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403
    async with await put_config(http, gw, {"enable": True}, headers={"Sec-Fetch-Site": "cross-site"}) as r:
        assert r.status == 403
    async with http.post(
        gw.url + "/api/admin/config",
        data="enable=true",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        assert r.status == 403
    async with await put_config(http, gw, {"enable": True}) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"models": {"a": {"mapping": "x"}, "b": {"mapping": "x"}}}, "models.b.mapping"),
        ({"models": {"a": {"nickname": "x"}}}, "models.a.nickname"),
        ({"custom_models": [{"id": ""}]}, "custom_models[0].id"),
    ],
)
async def test_bad_bodies_name_the_entry(
    gw: Running, http: aiohttp.ClientSession, config: dict[str, Any], param: str, tmp_path: Path
) -> None:
    async with await put_config(http, gw, config) as r:
        assert r.status == 400
        assert (await r.json())["error"]["param"] == param
    assert not (Path(gw.gateway.settings.config_dir) / "models.yaml").exists()


async def test_save_changes_what_clients_see(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    config = {
        "enable": True,
        "models": {"gpt-4o-mini": {"enable": False}, "claude-sonnet-4.5": {"mapping": "Sonnet"}},
        "custom_models": [{"id": "my-private-bot", "owned_by": "me", "created": 1735689600}],
    }
    async with await put_config(http, gw, config) as r:
        assert r.status == 200, await r.text()
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    ids = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" not in ids and "claude-sonnet-4.5" not in ids
    assert "Sonnet" in ids and "my-private-bot" in ids
    r1 = await client.chat.completions.create(model="sonnet", messages=user("hi"))
    assert r1.model == "sonnet" and sim.requests[-1].bot == "claude-sonnet-4.5"
    await client.chat.completions.create(model="my-private-bot", messages=user("hi"))
    assert sim.requests[-1].bot == "my-private-bot"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("hi"))
    await client.close()
    saved = yaml.safe_load((Path(gw.gateway.settings.config_dir) / "models.yaml").read_text())
    assert saved["models"]["claude-sonnet-4.5"] == {"mapping": "Sonnet"}


async def test_state_never_returns_the_token(gw: Running, http: aiohttp.ClientSession) -> None:
    path = Path(gw.gateway.settings.config_dir) / "models.yaml"
    path.write_text("enable: false\nmodels: {}\napi_token: pk-secret\n")
    async with http.get(gw.url + "/admin/api/state", headers=AUTH) as r:
        body = await r.json()
    assert "pk-secret" not in json.dumps(body) and body["config"]["api_token_set"] is True
    assert body["poe_models"] and body["config_error"] is None
    async with await put_config(http, gw, {**body["config"], "enable": True}) as r:
        assert r.status == 200
    assert "api_token: pk-secret" in path.read_text()  # kept across saves from the page
    async with http.get(gw.url + "/api/admin/config", headers=AUTH) as r:
        assert "pk-secret" not in await r.text()


async def test_broken_file_is_reported_and_last_good_kept(gw: Running, http: aiohttp.ClientSession) -> None:
    async with await put_config(http, gw, {"enable": True, "models": {"gpt-5": {"mapping": "five"}}}) as r:
        assert r.status == 200
    path = Path(gw.gateway.settings.config_dir) / "models.yaml"
    path.write_text("enable: true\nmodels: {gpt-5: [\n")
    async with http.get(gw.url + "/admin/api/state", headers=AUTH) as r:
        body = await r.json()
    assert body["config_error"] and body["config"]["models"]["gpt-5"]["mapping"] == "five"
    async with http.get(gw.url + "/v1/models") as r:
        assert "five" in [m["id"] for m in (await r.json())["data"]]


async def test_native_tool_mode_relays_poe_tool_calls(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with await put_config(http, gw, {"models": {"gpt-5": {"tool_mode": "native"}}}) as r:
        assert r.status == 200
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-5",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_123",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ],
    }
    frag = {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"SF"}'}}]},
                "finish_reason": None,
            }
        ]
    }
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    sim.script("gpt-5", [Event("json", chunk), Event("json", frag), Event("json", end), DONE])
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    r = await client.chat.completions.create(model="gpt-5", messages=user("weather?"), tools=[tool])  # type: ignore[list-item]
    await client.close()
    call: Any = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_123" and call.function.name == "get_weather" and call.function.arguments == '{"city":"SF"}'
    sent = sim.bodies("gpt-5")[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert "<tool_call>" not in json.dumps(sent["query"])  # no XML prompt for native bots


async def test_replace_response_sends_system_as_user(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with await put_config(http, gw, {"models": {"nano-banana": {"replace_response": True}}}) as r:
        assert r.status == 200
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    await client.chat.completions.create(
        model="Nano-Banana",
        messages=[{"role": "system", "content": "style: ink"}, {"role": "user", "content": "a fox"}],
    )
    await client.close()
    assert [m["role"] for m in sim.bodies("nano-banana")[-1]["query"]] == ["user", "user"]
