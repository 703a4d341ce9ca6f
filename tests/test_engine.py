"""The call engine over loopback: deadlines, keep-alives from the start, failures after the
stream started, HTTP/1.0 streams, bounded work for failed requests and large answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from poe2openai.engine import call as engine
from poe2openai.frontends.openai_chat import stream as openai_stream
from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Simulator, Sleep, text

from .conftest import Running, user
from .sse_frames import data_frames

Start = Callable[[Settings], Any]


async def raw_stream(http: aiohttp.ClientSession, url: str, model: str = "gpt-4o-mini") -> bytes:
    async with http.post(
        url + "/v1/chat/completions",
        headers={"Authorization": "Bearer k"},
        json={"model": model, "messages": user("x"), "stream": True},
    ) as r:
        assert r.status == 200
        return await r.read()


async def test_keepalives_while_poe_has_not_sent_its_headers(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    sim.script("gpt-4o-mini", [text("late"), DONE], headers_after=0.5)
    raw = await raw_stream(http, gw.url)
    head, _, rest = raw.partition(b'"content":"late"')
    assert b'"role":"assistant"' in head and b": keep-alive" in head
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_keepalives_while_waiting_in_the_rate_limiter(
    start_gateway: Start,
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    running = await start_gateway(settings.replace(rate_limit_ms=600))
    first, second = await asyncio.gather(raw_stream(http, running.url), raw_stream(http, running.url))
    waited = second if b": keep-alive" in second else first
    assert b": keep-alive" in waited.split(b'"content":"You said')[0]
    assert all(r.endswith(b"data: [DONE]\n\n") for r in (first, second))


async def test_poe_that_never_answers_is_a_504_or_an_error_frame(
    start_gateway: Start,
    settings: Settings,
    sim: Simulator,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = await start_gateway(settings.replace(poe_idle_timeout_seconds=0.3))
    client = openai.AsyncOpenAI(base_url=f"{running.url}/v1", api_key="k", max_retries=0)
    sim.script("gpt-4o-mini", [text("never"), DONE], headers_after=3)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.status_code == 504 and "did not answer within 0.3 s" in info.value.message
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    sim.script("gpt-4o-mini", [text("never"), DONE], headers_after=3)
    frames = data_frames(await raw_stream(http, running.url))
    assert frames[0]["choices"][0]["delta"]["role"] == "assistant"
    assert frames[-2]["error"]["code"] == "upstream_timeout" and frames[-1] == "[DONE]"
    await client.close()


async def test_a_dripping_answer_ends_at_the_request_deadline(
    start_gateway: Start, settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    running = await start_gateway(settings.replace(request_timeout_seconds=1.0, poe_idle_timeout_seconds=5))
    drip = [s for i in range(300) for s in (text(f"{i} "), Sleep(0.05))]
    sim.script("gpt-4o-mini", [*drip, DONE])
    frames = data_frames(await raw_stream(http, running.url))
    assert frames[-2]["error"]["code"] == "request_timeout" and frames[-1] == "[DONE]"
    assert any("0 " in (f["choices"][0]["delta"].get("content") or "") for f in frames[:-2] if f.get("choices"))
    await asyncio.sleep(0.2)
    assert sim.open_streams == 0  # the Poe request was closed


async def test_an_unexpected_error_mid_stream_is_one_error_frame_and_done(
    gw: Running,
    sim: Simulator,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = openai_stream.ChunkEncoder.encode
    calls = 0

    def failing_encode(self: openai_stream.ChunkEncoder, batch: list[Any]) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OverflowError("boom")  # any bug after the headers went out
        return real(self, batch)

    monkeypatch.setattr(openai_stream.ChunkEncoder, "encode", failing_encode)
    sim.script("gpt-4o-mini", [text("one"), Sleep(0.05), text("two"), DONE])
    with caplog.at_level(logging.ERROR):
        raw = await raw_stream(http, gw.url)
    assert b"HTTP/1.1" not in raw  # no second header block inside the stream
    frames = data_frames(raw)
    assert frames[-2]["error"]["code"] == "internal_error" and frames[-1] == "[DONE]"
    assert [f for f in frames if isinstance(f, dict) and "error" in f] == [frames[-2]]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


async def test_http_10_client_gets_a_stream_without_chunked_encoding(gw: Running) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": user("hi"), "stream": True})
    writer.write(
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    raw = await asyncio.wait_for(reader.read(), 10)  # the server closes the connection at the end
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower()
    frames = data_frames(rest)
    assert frames[-1] == "[DONE]" and "You said: hi" in "".join(
        f["choices"][0]["delta"].get("content") or "" for f in frames if isinstance(f, dict) and f["choices"]
    )


async def test_a_rejected_key_costs_no_token_counting(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[int] = []
    real = engine.count_messages

    def spy(texts: list[str]) -> int:
        counted.append(len(texts))
        return real(texts)

    monkeypatch.setattr(engine, "count_messages", spy)
    big = "lorem ipsum " * 50_000
    async with http.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer bad-key"},
        json={"model": "gpt-4o-mini", "messages": user(big)},
    ) as r:
        assert r.status == 401
    await asyncio.sleep(0.1)
    assert counted == []
    async with http.post(
        gw.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer k"},
        json={"model": "gpt-4o-mini", "messages": user(big)},
    ) as r:
        assert r.status == 200 and (await r.json())["usage"]["prompt_tokens"] > 50_000
    assert counted == [1]


async def test_an_answer_over_the_non_stream_limit_is_a_clear_error(
    start_gateway: Start, settings: Settings, sim: Simulator
) -> None:
    running = await start_gateway(settings.replace(max_response_size=10_000))
    client = openai.AsyncOpenAI(base_url=f"{running.url}/v1", api_key="k", max_retries=0)
    sim.script("gpt-4o-mini", [text("x" * 6000), text("y" * 6000), Sleep(5), DONE])
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.status_code == 502 and "stream: true" in info.value.message
    sim.script("gpt-4o-mini", [text("x" * 6000), text("y" * 6000), DONE])
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True)
    assert len("".join([c.choices[0].delta.content or "" async for c in stream])) == 12_000
    await client.close()


async def test_a_long_streamed_answer_holds_bounded_memory(gw: Running, sim: Simulator) -> None:
    import tracemalloc

    piece = "lorem ipsum dolor sit amet " * 2000  # 54 KB per event
    paced = [s for _ in range(100) for s in (text(piece), Sleep(0.002))]  # so no buffer piles up
    sim.script("gpt-4o-mini", [*paced, DONE])  # about 5.4 MB in all
    tracemalloc.start()
    try:
        received = 0
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                gw.url + "/v1/chat/completions",
                headers={"Authorization": "Bearer k"},
                json={
                    "model": "gpt-4o-mini",
                    "messages": user("x"),
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            ) as r,
        ):
            async for chunk in r.content.iter_any():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received > 5_000_000
    # no copy of the whole answer: the events in flight, and at most 1 MiB remembered to compare a
    # replacement with (the simulator and the client in this process add their buffers)
    assert peak < 4_000_000, peak
