"""The chat path end to end: the official openai SDK → gateway → Poe simulator, over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from poe2openai.engine import call as engine
from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Cut, Event, HttpError, Simulator, Sleep, error, replace, text, texts

from .conftest import Running, user


async def test_non_stream_answer_with_usage(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("The capital", " of Nepal is", " Kathmandu."))
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("Capital of Nepal?"))
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "gpt-4o-mini"
    assert r.choices[0].message.content == "The capital of Nepal is Kathmandu."
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details is not None and r.usage.prompt_tokens_details.cached_tokens == 0


async def test_stream_chunks_and_reasoning(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script(
        "deepseek-r1",
        texts(
            "*Thinking...*",
            "\n\n> **Checking the arithmetic**\n> \n> ",
            "17 × 19 = 17 × 20 − 17 = 323.",
            "\n> \n\n",
            "17 × 19 = **323**.",
        ),
    )
    stream = await client.chat.completions.create(model="DeepSeek-R1", messages=user("17×19?"), stream=True)
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert reasoning == "**Checking the arithmetic**\n\n17 × 19 = 17 × 20 − 17 = 323."
    assert content == "17 × 19 = **323**."
    assert [c.choices[0].finish_reason for c in chunks].count("stop") == 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_non_stream_reasoning_content(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("deepseek-r1", texts("<think>\nThe user greets me.", " Reply briefly.\n</think>\n\n", "Hello!"))
    r = await client.chat.completions.create(model="deepseek-r1", messages=user("hi"))
    msg: Any = r.choices[0].message
    assert msg.content == "Hello!" and msg.reasoning_content == "The user greets me. Reply briefly."


async def test_include_usage_adds_one_last_chunk(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("Hello", " there"))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_helper_of_the_sdk(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("a", "b", "c"))
    async with client.chat.completions.stream(model="gpt-4o-mini", messages=user("x")) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "abc"


async def test_both_routes_and_request_translation(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    body = {
        "model": "GPT-4O-MINI",
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "developer", "content": "Use English."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Part one"}, {"type": "text", "text": "Part two"}]},
        ],
        "temperature": 0.3,
        "stop": "\n\nUser:",
        "logit_bias": {"50256": -100},
        "max_tokens": 50,
        "top_p": 0.9,
        "n": 1,
        "user": "u1",
        "metadata": {"a": "b"},
        "parallel_tool_calls": False,
        "some_future_key": {"x": 1},
    }
    for path in ("/v1/chat/completions", "/chat/completions"):
        async with http.post(gw.url + path, json=body, headers={"Authorization": "Bearer k"}) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
            assert data["model"] == "GPT-4O-MINI"
    sent = sim.bodies("gpt-4o-mini")[-1]
    assert sent["version"] == "1.2" and sent["type"] == "query"
    assert [m["role"] for m in sent["query"]] == ["system", "system", "user", "bot", "user"]
    assert sent["query"][0]["content"] == "Be brief."
    assert sent["query"][4]["content"] == "Part one\n\nPart two"
    assert all(m["content_type"] == "text/markdown" for m in sent["query"])
    assert sent["temperature"] == 0.3 and sent["stop_sequences"] == ["\n\nUser:"]
    assert sent["logit_bias"] == {"50256": -100.0}
    assert sent["user_id"] == "" and sent["conversation_id"] == "" and sent["message_id"] == ""
    recorded = [r for r in sim.requests if r.bot == "gpt-4o-mini"][-1]
    assert recorded.headers["Authorization"] == "Bearer k"
    assert recorded.headers["Accept"] == "text/event-stream"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0].text",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 5}, "stop"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    client: openai.AsyncOpenAI, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.post("/chat/completions", body=body, cast_to=object)
    assert info.value.status_code == 400
    err: Any = info.value.body
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


async def test_invalid_json_and_non_object(gw: Running, http: aiohttp.ClientSession) -> None:
    for raw in (b"{not json", b"[1, 2]", b""):
        async with http.post(
            gw.url + "/v1/chat/completions",
            data=raw,
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        ) as r:
            assert r.status == 400
            body = await r.json()
            assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_missing_key_is_401(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.post(gw.url + "/v1/chat/completions", json={"model": "m", "messages": user("x")}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "invalid_api_key"


async def test_rejected_key_is_401(gw: Running) -> None:
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="bad-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await c.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    await c.close()


async def test_unknown_bot_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="no-such-bot", messages=user("x"))
    assert info.value.code == "model_not_found"


async def test_out_of_points_is_402_and_not_retried(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.script(
        "gpt-4o-mini",
        [error("You do not have enough points to message this bot.", error_type="insufficient_fund"), DONE],
    )
    async with http.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": user("x")},
        headers={"Authorization": "Bearer k"},
    ) as r:
        assert r.status == 402
        assert r.headers["x-should-retry"] == "false"
        assert (await r.json())["error"]["code"] == "insufficient_quota"
    assert len(sim.bodies("gpt-4o-mini")) == 1


async def test_upstream_rate_limit_passes_retry_after(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [HttpError(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})])
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.response.headers["retry-after"] == "7"


async def test_one_retry_before_first_byte(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [HttpError(500, {"error": {"message": "oops"}})])
    sim.script("gpt-4o-mini", texts("recovered"))
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == "recovered"
    sim.script("gpt-4o-mini", [error("Internal server error", allow_retry=True)])
    sim.script("gpt-4o-mini", texts("again"))
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "again"
    assert len(sim.bodies("gpt-4o-mini")) == 4


async def test_persistent_upstream_failure_is_502_after_two_tries(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    for _ in range(3):
        sim.script("gpt-4o-mini", [HttpError(503, b"down")])
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.status_code == 502
    assert len(sim.bodies("gpt-4o-mini")) == 2


async def test_error_after_first_chunk_is_an_sdk_api_error(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script(
        "gpt-4o-mini", [text("partial "), error("The bot encountered an unexpected issue.", allow_retry=True), DONE]
    )
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "partial "
    assert "unexpected issue" in info.value.message
    assert len(sim.bodies("gpt-4o-mini")) == 1  # never retried after output


async def test_cut_stream_ends_with_an_error_after_the_partial_text(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [text("some"), text(" response."), Cut()])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError, match="cut off"):
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
            assert c.choices[0].finish_reason is None
    assert "".join(got) == "some response."


async def test_close_without_done_is_a_cut_answer_too(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [text("some"), text(" response.")])  # the body ends, no done event
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    with pytest.raises(openai.APIError, match="cut off"):
        async for _ in stream:
            pass


async def test_cut_answer_not_streamed_is_retried_then_a_502(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [text("half an"), Cut()])
    sim.script("gpt-4o-mini", [text("whole answer"), DONE])
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == "whole answer" and r.choices[0].finish_reason == "stop"
    sim.script("gpt-4o-mini", [text("half an"), Cut()])
    sim.script("gpt-4o-mini", [text("half again"), Cut()])
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.status_code == 502 and "cut off" in info.value.message


async def test_empty_answer_is_an_empty_completion(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [text(""), text(""), DONE])
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == "" and r.choices[0].finish_reason == "stop"
    sim.script("gpt-4o-mini", [DONE])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"


async def test_replace_response_in_both_modes(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    steps = [
        text("draft"),
        Event("meta", {"suggested_replies": True}),
        replace(" response."),
        Event("suggested_reply", {"text": "what do you mean?"}),
        DONE,
    ]
    sim.script("gpt-4o-mini", steps)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == " response."
    sim.script("gpt-4o-mini", [text("Final "), replace("Final "), text("answer."), DONE])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "Final answer."


async def test_image_bot_inline_file(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(model="nano-banana", messages=user("a red fox"))
    content = r.choices[0].message.content or ""
    assert content.startswith("![image.png](http://127.0.0.1:") and "/base/image/" in content


async def test_crlf_pings_and_byte_by_byte_utf8(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("你好，", "世界 🌍"), crlf=True, pings=True, write_size=1)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "你好，世界 🌍"


async def test_huge_event_line(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    big = "x" * 500_000
    sim.script("gpt-4o-mini", [replace(big), DONE], write_size=7000)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == big


async def raw_stream(http: aiohttp.ClientSession, gw: Running, model: str = "gpt-4o-mini") -> bytes:
    """The bytes of one streamed answer, as a client without an SDK sees them."""
    async with http.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer k"},
        json={"model": model, "messages": user("x"), "stream": True},
    ) as r:
        return await r.read()


async def test_slow_start_sends_keepalives(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    sim.script("gpt-4o-mini", [Sleep(0.4), text("late"), DONE])
    raw = await raw_stream(http, gw)
    assert b": keep-alive" in raw
    assert b'"content":"late"' in raw and raw.endswith(b"data: [DONE]\n\n")


async def test_client_disconnect_cancels_upstream(gw: Running, sim: Simulator) -> None:
    steps = [text("first")] + [s for i in range(200) for s in (Sleep(0.05), text(f" {i}"))] + [DONE]
    sim.script("slow-bot", steps)
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            gw.url + "/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "slow-bot", "messages": user("x"), "stream": True},
        )
        async for line in resp.content:
            if b"first" in line:
                break
        resp.close()
    for _ in range(200):  # wait for the condition, bounded; no timing is asserted
        if sim.cancelled_streams:
            break
        await asyncio.sleep(0.05)
    assert sim.cancelled_streams == 1 and sim.open_streams == 0


async def test_thousand_concurrent_requests_never_cross(gw: Running, sim: Simulator) -> None:
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> None:
            stream = i % 2 == 0
            async with s.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": "Bearer k"},
                json={"model": "gpt-4o-mini", "messages": user(f"token-{i}-end"), "stream": stream},
            ) as r:
                assert r.status == 200
                if stream:
                    raw = await r.read()
                    text_ = "".join(
                        orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                        for line in raw.split(b"\n\n")
                        if line.startswith(b"data: {") and b'"choices":[{' in line
                    )
                else:
                    text_ = (await r.json())["choices"][0]["message"]["content"]
                assert text_ == f"You said: token-{i}-end", (i, text_)

        await asyncio.gather(*(one(i) for i in range(1000)))


async def test_usage_of_a_large_prompt(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    long_prompt = "Roo Code sends long system prompts. " * 3000  # counted in a thread while Poe answers
    for stream in (False, True):
        sim.script("gpt-4o-mini", texts("ok"))
        if stream:
            s = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "system", "content": long_prompt}, *user("x")],
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [c async for c in s][-1].usage
        else:
            r = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "system", "content": long_prompt}, *user("x")]
            )
            usage = r.usage
        assert usage is not None and 20_000 < usage.prompt_tokens < 30_000


async def test_pause_mid_answer_sends_keepalives(
    gw: Running,
    sim: Simulator,
    http: aiohttp.ClientSession,
    client: openai.AsyncOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    sim.script("gpt-4o-mini", [text("before "), Sleep(0.4), text("after"), DONE])
    raw = await raw_stream(http, gw)
    _, rest = raw.split(b'"content":"before "', 1)
    assert b": keep-alive" in rest.split(b'"content":"after"')[0] and raw.endswith(b"data: [DONE]\n\n")
    sim.script("gpt-4o-mini", [text("before "), Sleep(0.3), text("after"), DONE])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "before after"


async def test_poe_going_silent_mid_stream_ends_with_an_error(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator
) -> None:
    running = await start_gateway(settings.replace(poe_idle_timeout_seconds=0.2))
    client = openai.AsyncOpenAI(base_url=f"{running.url}/v1", api_key="k", max_retries=0)
    sim.script("gpt-4o-mini", [text("partial "), Sleep(2), text("never"), DONE])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "partial " and "Poe sent nothing for 0.2 s" in info.value.message
    await client.close()
