"""The admin API over HTTP: auth, cross-site protection, bad bodies, and the effect of a save."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
import yaml
from yarl import URL

from poe2openai.admin.api import ADMIN_THROTTLE, LoginThrottle
from poe2openai.engine.models_yaml import ConfigStore
from poe2openai.server.app import create_app
from poe2openai.server.serve import start_site
from poe2openai.settings import Settings, SettingsError, from_env
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


def host_headers(gw: Running, host: str) -> dict[str, str]:
    """``Host`` and a matching ``Origin`` for ``host`` (a name or address, without the port)."""
    netloc = f"{host}:{URL(gw.url).port}"
    return {"Host": netloc, "Origin": f"http://{netloc}"}


ADMIN_ROUTES = [
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/api/state"),
    ("PUT", "/admin/api/config"),
    ("POST", "/admin/api/config"),
    ("POST", "/admin/api/refresh"),
    ("GET", "/api/admin/config"),
    ("POST", "/api/admin/config"),
]


async def test_foreign_host_is_refused_on_every_admin_route(gw: Running, http: aiohttp.ClientSession) -> None:
    # DNS rebinding: evil's name now points at the gateway, so Origin and Host agree
    async with await put_config(http, gw, {"enable": True}, headers={"Host": "evil", "Origin": "http://evil"}) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "admin_host_not_allowed"
    for method, path in ADMIN_ROUTES:
        headers = {**AUTH, **host_headers(gw, "evil.example"), "Content-Type": "application/json"}
        async with http.request(method, gw.url + path, headers=headers, data='{"enable": true}') as r:
            assert r.status == 403, (method, path)
            assert "enable" not in await r.text()
    assert not (Path(gw.gateway.settings.config_dir) / "models.yaml").exists()
    async with http.get(gw.url + "/v1/models", headers={"Host": "evil"}) as r:
        assert r.status == 200  # the API itself is not bound to a host name


@pytest.mark.parametrize(
    "host", ["localhost", "LocalHost.", "127.0.0.1", "127.8.9.10", "[::1]", "192.0.2.7", "[fe80::1]"]
)
async def test_loopback_names_and_addresses_are_allowed_hosts(
    gw: Running, http: aiohttp.ClientSession, host: str
) -> None:
    async with await put_config(http, gw, {"enable": True}, headers=host_headers(gw, host)) as r:
        assert r.status == 200, await r.text()
    async with http.get(gw.url + "/admin", headers={**AUTH, **host_headers(gw, host)}) as r:
        assert r.status == 200


async def test_configured_and_listening_host_names_are_allowed(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    env = {"ADMIN_ALLOWED_HOSTS": "Admin.Example.com, gw.lan.", "HOST": "box.internal"}
    parsed = from_env(env)
    assert parsed.admin_allowed_hosts == ("admin.example.com", "gw.lan") and parsed.host == "box.internal"
    with pytest.raises(SettingsError, match="ADMIN_ALLOWED_HOSTS"):
        from_env({"ADMIN_ALLOWED_HOSTS": "gw.lan:8080"})
    gw = await start_gateway(settings.replace(admin_allowed_hosts=parsed.admin_allowed_hosts, host=parsed.host))
    for host in ("admin.example.com", "GW.LAN", "box.internal"):
        async with await put_config(http, gw, {"enable": True}, headers=host_headers(gw, host)) as r:
            assert r.status == 200, host
    for host in ("example.com", "evil.admin.example.com", "box.internal.evil"):
        async with http.get(gw.url + "/admin/api/state", headers={**AUTH, **host_headers(gw, host)}) as r:
            assert r.status == 403, host


def csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {d[0]: d[1:] for d in directives}


async def test_admin_responses_carry_a_content_security_policy(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/admin", headers=AUTH) as r:
        policy = csp(r.headers["Content-Security-Policy"])
        page = await r.text()
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert not any("unsafe" in source for sources in policy.values() for source in sources)
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="static/admin.js">']  # nothing inline
    for method, path in [("GET", "/admin/api/state"), ("GET", "/api/admin/config"), ("GET", "/admin/nope")]:
        async with http.request(method, gw.url + path, headers=AUTH) as r:
            if r.status == 404:
                continue  # not an admin route: no guard
            api_policy = csp(r.headers["Content-Security-Policy"])
            assert api_policy["default-src"] == ["'none'"] and api_policy["frame-ancestors"] == ["'none'"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    async with await put_config(http, gw, {"models": {"a": {"mapin": "x"}}}) as r:
        assert r.status == 400 and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    async with http.get(gw.url + "/admin") as r:
        assert r.status == 401 and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


async def test_page_is_never_told_the_config_files_path(gw: Running, http: aiohttp.ClientSession) -> None:
    folder = Path(gw.gateway.settings.config_dir)
    path = folder / "models.yaml"
    path.write_text("enable: true\nmodels: [\n")
    async with http.get(gw.url + "/admin/api/state", headers=AUTH) as r:
        text = await r.text()
    assert str(folder) not in text and json.loads(text)["config_error"].startswith("models.yaml is invalid")
    path.unlink()
    path.mkdir()  # a save cannot replace a folder
    async with await put_config(http, gw, {"enable": True}) as r:
        assert r.status == 500
        text = await r.text()
    assert str(folder) not in text and "models.yaml" in json.loads(text)["error"]["message"]
    async with http.get(gw.url + "/admin", headers=AUTH) as r:
        assert str(folder) not in await r.text()


async def test_empty_file_is_reported_and_last_good_kept(gw: Running, http: aiohttp.ClientSession) -> None:
    async with await put_config(http, gw, {"enable": True, "models": {"gpt-5": {"mapping": "five"}}}) as r:
        assert r.status == 200
    path = Path(gw.gateway.settings.config_dir) / "models.yaml"
    path.write_text("# nothing here\n")
    async with http.get(gw.url + "/admin/api/state", headers=AUTH) as r:
        body = await r.json()
    assert "empty" in body["config_error"] and body["config"]["models"]["gpt-5"]["mapping"] == "five"
    async with http.get(gw.url + "/v1/models") as r:
        assert "five" in [m["id"] for m in (await r.json())["data"]]


async def test_requests_are_answered_while_a_changed_file_is_parsed(gw: Running, http: aiohttp.ClientSession) -> None:
    folder = Path(gw.gateway.settings.config_dir)
    gate = threading.Event()
    parsed_in: list[int] = []

    def slow_parse(text: str) -> Any:
        parsed_in.append(threading.get_ident())
        gate.wait(timeout=10)  # only a guard against a hang when parsing blocks the loop
        return yaml.safe_load(text)

    ticks = itertools.count(0.0, ConfigStore.CHECK_EVERY)  # every request checks the file
    store = ConfigStore(str(folder), clock=lambda: next(ticks), parse=slow_parse)
    gw.gateway.config = store
    (folder / "models.yaml").write_text("enable: true\nmodels:\n  gpt-5:\n    mapping: five\n")
    for _ in range(3):
        async with http.get(gw.url + "/v1/models") as r:
            ids = [m["id"] for m in (await r.json())["data"]]
        assert r.status == 200 and "gpt-5" in ids and not gate.is_set()  # the last good config answers
    gate.set()
    await store.refresh()
    async with http.get(gw.url + "/v1/models") as r:
        assert "five" in [m["id"] for m in (await r.json())["data"]]
    assert len(parsed_in) == 1 and threading.get_ident() not in parsed_in


def test_login_throttle_doubles_the_wait_up_to_a_cap_and_forgets_on_success() -> None:
    now = [0.0]
    throttle = LoginThrottle(lambda: now[0], free=3, base=1.0, cap=8.0)
    for _ in range(2):
        throttle.failed("10.0.0.1")
        assert throttle.retry_after("10.0.0.1") is None
    waits = []
    for _ in range(6):
        throttle.failed("10.0.0.1")
        wait = throttle.retry_after("10.0.0.1")
        assert wait is not None
        waits.append(wait)
        now[0] += wait
        assert throttle.retry_after("10.0.0.1") is None  # the wait is over
    assert waits == [1, 2, 4, 8, 8, 8]
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.2") is None  # per address
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None and len(throttle) == 0
    for _ in range(3):
        throttle.failed("2001:db8::1")
    assert throttle.retry_after("2001:db8::ffff") is not None  # one /64 is one client
    assert throttle.retry_after("2001:db8:0:1::1") is None
    for _ in range(3):
        throttle.failed("::ffff:192.0.2.1")
    assert throttle.retry_after("192.0.2.1") is not None


def test_login_throttle_remembers_a_bounded_number_of_clients() -> None:
    now = [0.0]
    throttle = LoginThrottle(lambda: now[0], free=1, max_clients=50, forget=3600.0)
    addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(5000)]
    for address in addresses:
        throttle.failed(address)
    assert len(throttle) == 50
    assert throttle.retry_after(addresses[-1]) is not None and throttle.retry_after(addresses[0]) is None
    now[0] += 3600.0
    throttle.failed("192.0.2.1")
    assert len(throttle) == 1  # clients idle for the forget period are dropped


@pytest_asyncio.fixture
async def throttled(settings: Settings) -> AsyncIterator[tuple[Running, list[float]]]:
    """The gateway with the login throttle on a clock the test moves."""
    now = [0.0]
    app = create_app(settings)
    app[ADMIN_THROTTLE] = LoginThrottle(lambda: now[0])
    runner, port = await start_site(app, "127.0.0.1", 0, grace=1.0)
    yield Running(f"http://127.0.0.1:{port}", app, runner), now
    await runner.cleanup()


async def test_wrong_passwords_back_off_per_address(
    throttled: tuple[Running, list[float]], http: aiohttp.ClientSession
) -> None:
    gw, now = throttled
    wrong = basic("admin", "guess")

    async def status(headers: dict[str, str], session: aiohttp.ClientSession = http) -> tuple[int, str | None]:
        async with session.get(gw.url + "/admin/api/state", headers=headers) as r:
            return r.status, r.headers.get("Retry-After")

    for _ in range(10):
        assert await status({}) == (401, None)  # no credentials sent: a browser's first request
    for _ in range(5):
        assert await status(wrong) == (401, None)
    async with http.get(gw.url + "/admin", headers=wrong) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await r.json())["error"]["code"] == "admin_login_throttled"
    assert await status(AUTH) == (429, "1")  # while refused, even the right password is not tried
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as other:
        assert await status(AUTH, other) == (200, None)  # another address is not held up
    now[0] += 1
    assert await status(wrong) == (401, None)
    assert await status(wrong) == (429, "2")
    now[0] += 2
    assert await status(wrong) == (401, None)
    assert await status(AUTH) == (429, "4")
    now[0] += 4
    assert await status(AUTH) == (200, None)  # a good login starts afresh
    for _ in range(5):
        assert await status(wrong) == (401, None)
    assert await status(wrong) == (429, "1")
