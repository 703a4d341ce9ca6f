"""Legacy Completions (``/v1/completions``) through the official openai SDK."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai

from poe2openai.simulator import DONE, Event, Simulator, error, text, texts

from .conftest import Running


async def test_completion_without_suffix(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts(" jumps over", " the lazy dog."))
    r = await client.completions.create(
        model="gpt-4o-mini", prompt="The quick brown fox", max_tokens=20, stop=["\n\n"], temperature=0.2
    )
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == "gpt-4o-mini"
    (choice,) = r.choices
    assert choice.text == " jumps over the lazy dog." and choice.index == 0
    assert choice.finish_reason == "stop" and choice.logprobs is None
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    body = sim.bodies("gpt-4o-mini")[-1]
    system, prompt = body["query"]
    assert system["role"] == "system" and "continuing exactly where it stops" in system["content"]
    assert prompt == {**prompt, "role": "user", "content": "The quick brown fox"}
    assert body["temperature"] == 0.2 and body["stop_sequences"] == ["\n\n"]


async def test_fill_in_the_middle_with_suffix(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("a + b"))
    r = await client.completions.create(
        model="gpt-4o-mini", prompt=["def add(a, b):\n    return "], suffix="\n\nprint(add(1, 2))\n"
    )
    assert r.choices[0].text == "a + b"
    system, user = sim.bodies("gpt-4o-mini")[-1]["query"]
    assert "fill-in-the-middle" in system["content"] and "only the text that belongs in the gap" in system["content"]
    assert user["content"] == "<prefix>def add(a, b):\n    return </prefix>\n<suffix>\n\nprint(add(1, 2))\n</suffix>"


async def test_stream_with_usage_and_echo(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts(" world", "!"))
    stream = await client.completions.create(
        model="gpt-4o-mini", prompt="Hello", stream=True, echo=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert all(c.object == "text_completion" and c.id == chunks[0].id for c in chunks)
    texts_seen = "".join(c.choices[0].text for c in chunks if c.choices)
    assert texts_seen == "Hello world!"  # echo: the prompt first
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "stop" and reasons.count("stop") == 1
    assert not chunks[-1].choices and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_reasoning_is_not_part_of_the_completion(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    r = await client.completions.create(model="deepseek-r1", prompt="Once upon a time")
    assert r.choices[0].text == "Here is my answer to: Once upon a time"
    stream = await client.completions.create(model="deepseek-r1", prompt="Once upon a time", stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices]) == "Here is my answer to: Once upon a time"


async def test_cut_by_length(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "A long"}}]}
    length = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    sim.script("gpt-4o-mini", [Event("json", chunk), Event("json", length), DONE])
    r = await client.completions.create(model="gpt-4o-mini", prompt="Write", max_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.choices[0].text == "A long"


async def test_failure_mid_stream_is_an_error_frame(gw: Running, sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.script("gpt-4o-mini", [text("Part"), error("The bot crashed")])
    body = {"model": "gpt-4o-mini", "prompt": "Hi", "stream": True}
    async with http.post(f"{gw.url}/v1/completions", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 200
        raw = (await r.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.startswith("data: ")]
    assert frames[-1] == "data: [DONE]" and '"error"' in frames[-2] and "crashed" in frames[-2]


async def test_bad_input_names_the_field(gw: Running, http: aiohttp.ClientSession) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prompt": "x"}, "model"),
        ({"model": "gpt-4o-mini"}, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": [[1, 2, 3]]}, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": "x", "suffix": 3}, "suffix"),
        ({"model": "gpt-4o-mini", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o-mini", "prompt": "x", "n": 2}, "n"),
        ({"model": "gpt-4o-mini", "prompt": "x", "logprobs": 3}, "logprobs"),
        ({"model": "gpt-4o-mini", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "gpt-4o-mini", "prompt": "x", "echo": "yes"}, "echo"),
    ]
    for body, param in cases:
        async with http.post(f"{gw.url}/v1/completions", json=body, headers={"Authorization": "Bearer k"}) as r:
            assert r.status == 400, body
            assert (await r.json())["error"]["param"] == param, body
    async with http.get(f"{gw.url}/v1/completions") as r:
        assert r.status == 405 and "error" in await r.json()
