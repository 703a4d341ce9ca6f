"""Odd input from clients and odd content from Poe: a 4xx naming the field (never a 500), error
bodies that stay small whatever the client sent, and nothing unchecked relayed from bots."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from poe2openai.errors import shown
from poe2openai.frontends.openai_chat.reasoning import read_request
from poe2openai.poe.bot_parameters import bot_parameters
from poe2openai.server.serve import start_site
from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Event, Raw, Simulator, text

from .conftest import Running, user

MB = 1 << 20


async def post(http: aiohttp.ClientSession, gw: Running, body: bytes | dict[str, Any]) -> tuple[int, bytes]:
    """POST a chat request (raw bytes, or a dict encoded here); the status and the raw body."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # orjson stops at 254 levels
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    async with http.post(gw.url + "/v1/chat/completions", data=raw, headers=headers) as r:
        return r.status, await r.read()


def error_of(raw: bytes) -> dict[str, Any]:
    err: dict[str, Any] = orjson.loads(raw)["error"]
    return err


def nested(depth: int, leaf: Any = 1) -> Any:
    """``{"a": {"a": ... leaf}}``: ``depth`` objects deep."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": user("hi"), **extra}


def image_message(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


# --- 1a: digits ------------------------------------------------------------------------


async def test_superscript_digit_in_a_thinking_suffix_is_not_a_500(
    http: aiohttp.ClientSession, gw: Running, sim: Simulator
) -> None:
    status, raw = await post(http, gw, chat(model="claude-sonnet-4.5x:thinking-²"))
    assert status == 200, raw
    sent = sim.bodies()[-1]
    # not a budget suffix: the name goes to Poe as it is, with no thinking parameter
    assert sim.requests[-1].bot == "claude-sonnet-4.5x:thinking-²"
    assert "parameters" not in sent["query"][-1]
    status, raw = await post(http, gw, chat(model="no-such-bot:thinking-²"))
    assert status == 404 and error_of(raw)["code"] == "model_not_found"


# --- 1b: links -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/a.png",
        "http://[not-an-address]/a.png",
        "https://example.com:99999/a.png",
        "https:///a.png",
        "http://a..b/x.png",
        "http://" + "a" * 64 + ".example/x.png",
        "http://a.example\\@b.example/x.png",
    ],
)
async def test_malformed_links_are_400s_naming_the_part(
    http: aiohttp.ClientSession, gw: Running, sim: Simulator, url: str
) -> None:
    sim.refuse_download_url = True  # so the gateway would try to fetch the link itself
    status, raw = await post(http, gw, chat(messages=image_message(url)))
    assert status == 400, raw
    err = error_of(raw)
    assert err["param"] == "messages[0].content[1]" and err["code"] in ("invalid_url", "unsupported_url")
    assert not sim.bodies()


# --- 1c: nesting -----------------------------------------------------------------------


def _deep_tool_call_arguments() -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": nested(300)}}
    return chat(
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ]
    )


def _deep_tool_parameters() -> dict[str, Any]:
    return chat(tools=[{"type": "function", "function": {"name": "f", "parameters": nested(300)}}])


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (_deep_tool_call_arguments, "messages[1].tool_calls[0].function.arguments"),
        (_deep_tool_parameters, "tools[0].function.parameters"),
        (lambda: chat(poe_parameters={"style": nested(300)}), "poe_parameters.style"),
        (lambda: chat(extra_body={"poe_parameters": nested(300)}), "extra_body.poe_parameters.a"),
        (lambda: chat(model="claude-sonnet-4.5", poe_parameters={"web_search": nested(300)}), "poe_parameters"),
    ],
)
async def test_deep_nesting_is_a_400_naming_the_field(
    http: aiohttp.ClientSession, gw: Running, sim: Simulator, make: Callable[[], dict[str, Any]], param: str
) -> None:
    status, raw = await post(http, gw, make())
    assert status == 400, raw
    assert error_of(raw)["param"].startswith(param)
    assert "nest" in error_of(raw)["message"]
    assert not sim.bodies()


async def test_nesting_within_the_limit_still_works(http: aiohttp.ClientSession, gw: Running, sim: Simulator) -> None:
    status, raw = await post(http, gw, chat(poe_parameters={"style": nested(100)}))
    assert status == 200, raw
    assert sim.bodies()[-1]["query"][-1]["parameters"]["style"] == nested(100)


async def test_a_body_nested_past_the_parsers_limit_is_a_400(http: aiohttp.ClientSession, gw: Running) -> None:
    deep = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":'
    body = deep + b"[" * 5000 + b"]" * 5000 + b"}"
    status, raw = await post(http, gw, body)
    assert status == 400 and error_of(raw)["code"] == "invalid_json"
    assert len(raw) < 1000


async def test_deep_nesting_in_an_ignored_field_is_ignored(http: aiohttp.ClientSession, gw: Running) -> None:
    body = orjson.dumps(chat())[:-1] + b',"metadata":' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"}"
    status, raw = await post(http, gw, body)
    assert status == 200, raw


# --- 2: echo floods --------------------------------------------------------------------

HUGE = "x" * MB
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(tools=[{"type": "function", "function": {"name": HUGE}}]), "tools[0].function.name"),
        (chat(tools=[{"type": HUGE, "function": {"name": "f"}}]), "tools[0].type"),
        (
            chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": HUGE}}),
            "tool_choice.function.name",
        ),
        (chat(tool_choice={"type": "function", "function": {"name": HUGE}}), "tool_choice.function.name"),
        (chat(tool_choice=HUGE), "tool_choice"),
        (
            chat(messages=[{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": HUGE, "content": "r"}]),
            "messages[1].tool_call_id",
        ),
        (chat(messages=[{"role": HUGE, "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": nested(900), "content": "x"}]), "messages[0].role"),
        (chat(messages=[{"role": "user", "content": [{"type": HUGE}]}]), "messages[0].content[0].type"),
        (chat(logit_bias={HUGE: 1000}), "logit_bias"),
        (chat(messages=image_message(f"data:{HUGE},abcd")), "messages[0].content[1]"),
        (chat(messages=image_message(f"{HUGE}://example.com/a.png")), "messages[0].content[1]"),
        (chat(model=HUGE), "model"),
        (chat(model="gpt-4o-mini:thinking-" + "9" * MB), "model"),
        (chat(reasoning_effort=HUGE), "reasoning_effort"),
    ],
)
async def test_error_bodies_stay_small(
    http: aiohttp.ClientSession, gw: Running, body: dict[str, Any], param: str
) -> None:
    status, raw = await post(http, gw, body)
    assert 400 <= status < 500, raw[:300]
    assert len(raw) < 1000, raw[:300]
    assert error_of(raw)["param"] == param


async def test_unknown_model_error_is_small_with_a_long_name(http: aiohttp.ClientSession, gw: Running) -> None:
    status, raw = await post(http, gw, chat(model="no-such-" + "x" * 200))
    assert status == 404, raw[:300]
    assert len(raw) < 1500


async def test_model_lookup_echo_is_small(http: aiohttp.ClientSession, gw: Running) -> None:
    async with http.get(gw.url + "/v1/models/" + "x" * 8000, headers={"Authorization": "Bearer k"}) as r:
        raw = await r.read()
        assert r.status == 404
    assert len(raw) < 1000


# --- 3: files from Poe -----------------------------------------------------------------


def file_event(url: str, name: str, content_type: str = "image/png", ref: str | None = None) -> Event:
    return Event("file", {"url": url, "content_type": content_type, "name": name, "inline_ref": ref})


async def test_unsafe_file_urls_from_bots_are_not_relayed(
    client: openai.AsyncOpenAI, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    secret = "alert(document.cookie)" + "y" * 300
    sim.script(
        "nano-banana",
        [
            file_event("data:text/html,<script>alert(1)</script>", "b.html", "text/html", "ref12345"),
            text("Here: ![b.html][ref12345] and "),
            file_event(f"javascript:{secret}", "a.png"),
            file_event("vbscript:msgbox(1)", "v.png", ref="ref99999"),
            file_event('https://cdn.example/a b(1)<x>.png?q="1"', "fo]x\n[y].png"),
            text("done"),
            DONE,
        ],
    )
    r = await client.chat.completions.create(model="nano-banana", messages=user("draw"))
    content = r.choices[0].message.content or ""
    assert "javascript:" not in content and "data:text" not in content and "vbscript" not in content
    assert "![fo\\]x \\[y\\].png](https://cdn.example/a%20b%281%29%3Cx%3E.png?q=%221%22)" in content
    assert "![b.html][ref12345]" in content  # the bot's reference stays unresolved
    warnings = [
        rec.getMessage() for rec in caplog.records if rec.name == "poe2openai.poe" and rec.levelno == logging.WARNING
    ]
    assert len(warnings) == 3
    assert not any(secret in w or "<script>" in w for w in warnings)


async def test_unsafe_file_urls_are_dropped_in_streams_too(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script(
        "nano-banana",
        [
            file_event("javascript:alert(1)", "a.png"),
            file_event("https://cdn.example/ok).png", "x", ref="abcdefgh"),
            text("![x][abcdefgh] "),
            DONE,
        ],
    )
    stream = await client.chat.completions.create(model="nano-banana", messages=user("draw"), stream=True)
    content = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "javascript:" not in content
    assert content.strip() == "![x](https://cdn.example/ok%29.png)"


# --- 4: numbers from Poe ---------------------------------------------------------------


def json_event(raw: bytes) -> Raw:
    """A ``json`` event with a body written by hand (orjson cannot write 2**64)."""
    return Raw(b"event: json\ndata: " + raw + b"\n\n")


def usage_chunk(prompt: str, completion: str) -> Raw:
    return json_event(
        b'{"choices":[{"index":0,"delta":{"content":"Hello there."},"finish_reason":null}],'
        b'"usage":{"prompt_tokens":' + prompt.encode() + b',"completion_tokens":' + completion.encode() + b"}}"
    )


@pytest.mark.parametrize(
    ("prompt", "completion"),
    [
        (str(2**64 - 1), "1"),
        (str(2**64), "1"),
        ("5", "-5"),
        ("true", "3"),
        ("1000000001", "4"),
        ("3.5", "4"),
    ],
)
async def test_bot_usage_out_of_range_is_ignored(
    client: openai.AsyncOpenAI, sim: Simulator, prompt: str, completion: str
) -> None:
    sim.script("gpt-5", [json_event(b'{"choices":[{"index":0,"delta":{"content":"Hello there."}}]}'), DONE])
    base = await client.chat.completions.create(
        model="gpt-5", messages=user("hi"), stream=True, stream_options={"include_usage": True}
    )
    expected = [c.usage async for c in base][-1]
    assert expected is not None
    sim.script("gpt-5", [usage_chunk(prompt, completion), DONE])
    stream = await client.chat.completions.create(
        model="gpt-5", messages=user("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there."
    assert chunks[-1].usage == expected
    sim.script("gpt-5", [usage_chunk(prompt, completion), DONE])
    r = await client.chat.completions.create(model="gpt-5", messages=user("hi"))
    assert r.usage == expected


async def test_bot_usage_in_range_is_relayed(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-5", [usage_chunk("7", "1000000000"), DONE])
    r = await client.chat.completions.create(model="gpt-5", messages=user("hi"))
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (7, 10**9)


def tool_chunk(index: bytes, call_id: bytes, name: str, arguments: str) -> Raw:
    fn = orjson.dumps({"name": name, "arguments": arguments})
    call = b'{"index":' + index + b',"id":' + call_id + b',"type":"function","function":' + fn + b"}"
    return json_event(b'{"choices":[{"index":0,"delta":{"tool_calls":[' + call + b"]}}]}")


async def test_odd_tool_call_indexes_and_ids_from_bots(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    script = [
        tool_chunk(b"-3", b"7", "first", '{"a":'),
        tool_chunk(str(2**64 - 1).encode(), b'"' + b"i" * 5000 + b'"', "second", "{}"),
        tool_chunk(b"-3", b"null", "", "1}"),
        json_event(b'{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}'),
        DONE,
    ]
    sim.script("gpt-5", script)
    stream = await client.chat.completions.create(model="gpt-5", messages=user("hi"), stream=True)
    deltas = [tc for c in [c async for c in stream] if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert sorted({d.index for d in deltas}) == [0, 1]
    sim.script("gpt-5", script)
    r = await client.chat.completions.create(model="gpt-5", messages=user("hi"))
    calls = r.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [("first", '{"a":1}'), ("second", "{}")]  # type: ignore[union-attr]
    assert all(c.id.startswith("call_") and len(c.id) < 100 for c in calls)


async def test_odd_numbers_in_poes_model_list(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    async def models(request: web.Request) -> web.Response:
        data = [
            {"id": "huge", "created": 1e300, "owned_by": "x"},
            {"id": "negative", "created": -5, "owned_by": "x"},
            {"id": "fine", "created": 1758868894776, "owned_by": "x"},
        ]
        return web.json_response({"object": "list", "data": data})

    poe = web.Application()
    poe.router.add_get("/v1/models", models)
    runner, port = await start_site(poe, "127.0.0.1", 0, grace=0)
    try:
        gw = await start_gateway(settings.replace(poe_base_url=f"http://127.0.0.1:{port}"))
        async with http.get(gw.url + "/v1/models") as r:
            assert r.status == 200
            listed = {m["id"]: m["created"] for m in (await r.json())["data"]}
    finally:
        await runner.cleanup()
    assert listed == {"huge": 0, "negative": 0, "fine": 1758868894}


def test_a_huge_bound_published_by_poe_still_encodes() -> None:
    spec = [{"name": "thinking_budget", "schema": {"type": "integer", "minimum": 1e300}}]
    out = bot_parameters(read_request({"thinking": {"budget_tokens": 100}}), spec)
    assert out == {"thinking_budget": 1e300}
    orjson.dumps(out)


def test_shown_keeps_echoes_small() -> None:
    assert shown("x" * 10**6) == repr("x" * 100) + "…"
    assert shown("ok") == "'ok'"
    assert shown(nested(900)) == "an object" and shown([1]) == "a list"
    assert shown(2**64 - 1) == str(2**64 - 1) and shown(10**500) == "a huge number" and shown(None) == "None"
