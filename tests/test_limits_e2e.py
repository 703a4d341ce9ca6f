"""max_tokens and stop enforced by the gateway, over loopback: the answer is cut, the Poe
request is closed at once, and the finish reason says why."""

from __future__ import annotations

import asyncio

import openai
import pytest

from poe2openai.simulator import DONE, Simulator, Sleep, text

from .conftest import user


def slow_words(n: int) -> list[object]:
    """A long answer the bot would keep writing: n words, a little apart."""
    return [s for i in range(n) for s in (text(f"word{i} "), Sleep(0.01))] + [DONE]


async def closed(sim: Simulator) -> bool:
    for _ in range(100):
        if sim.open_streams == 0:
            return sim.cancelled_streams > 0
        await asyncio.sleep(0.02)
    return False


async def test_max_tokens_cuts_the_stream_and_closes_the_poe_request(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.script("gpt-4o-mini", slow_words(400))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("x"), stream=True, max_tokens=10, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["length"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens <= 10
    assert "word4" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert await closed(sim)


async def test_max_tokens_not_streamed(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", slow_words(400))
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), max_completion_tokens=10)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens <= 10 and r.choices[0].message.content
    assert await closed(sim)


async def test_stop_ends_before_the_sequence_split_across_events(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    steps = [text("alpha be"), text("ta EN"), text("D gamma"), *slow_words(200)]
    sim.script("gpt-4o-mini", steps)
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=True, stop=["END"])
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "alpha beta "
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sim.bodies("gpt-4o-mini")[-1]["stop_sequences"] == ["END"]  # still sent to Poe
    assert await closed(sim)
    sim.script("gpt-4o-mini", steps)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stop="END")
    assert r.choices[0].message.content == "alpha beta " and r.choices[0].finish_reason == "stop"


async def test_too_many_or_too_long_stop_sequences_are_a_400(client: openai.AsyncOpenAI) -> None:
    for stop in (["x"] * 17, ["y" * 1001]):
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stop=stop)
        assert info.value.body["param"] == "stop"  # type: ignore[index]
