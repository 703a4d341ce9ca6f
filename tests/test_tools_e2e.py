"""Tool calling end to end: the openai SDK's tool loop against a text-only bot answering in XML."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from poe2openai.simulator import DONE, Simulator, Sleep, text, texts

from .conftest import user

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
NO_ARGS_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "attempt_completion"}}

XML_CALL = (
    "I'll check the weather.\n\n<tool_call>\n<name>get_weather</name>\n"
    '<arguments>{"city": "Paris", "days": 2}</arguments>\n</tool_call>\nWaiting for the result.'
)


def weather_bot(body: dict[str, Any]) -> list[Any]:
    """A text-only bot that follows the gateway's tool instructions."""
    last = body["query"][-1]["content"]
    if "<tool_result" in last:
        return texts("The weather tool says: ", last.split("\n", 1)[1].split("\n</tool_result>")[0])
    return [text(XML_CALL[i : i + 7]) for i in range(0, len(XML_CALL), 7)] + [DONE]


async def test_non_stream_tool_call(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    r = await client.chat.completions.create(
        model="weather-bot", messages=user("Weather in Paris?"), tools=[WEATHER_TOOL]
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather.\n\n"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call: Any = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 2}
    system = sim.bodies("weather-bot")[-1]["query"][0]
    assert system["role"] == "system" and "<tool_call>" in system["content"] and "## get_weather" in system["content"]
    assert "tools" not in sim.bodies("weather-bot")[-1]  # text-only bot: the XML prompt, not native tools


async def test_stream_tool_call_chunks_are_spec_exact(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    stream = await client.chat.completions.create(
        model="weather-bot", messages=user("Weather?"), tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "<tool_call>" not in content and "tool_call" not in content
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and all(d.index == 0 for d in deltas)
    assert deltas[0].id and deltas[0].type == "function" and deltas[0].function
    assert deltas[0].function.name == "get_weather"
    args = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert json.loads(args) == {"city": "Paris", "days": 2}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_sdk_stream_helper_parses_the_calls(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    async with client.chat.completions.stream(
        model="weather-bot", messages=user("Weather?"), tools=[WEATHER_TOOL]
    ) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "days": 2}  # type: ignore[union-attr]


async def test_multi_turn_tool_loop(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    messages: list[Any] = user("What's the weather in Paris?")
    first = await client.chat.completions.create(model="weather-bot", messages=messages, tools=[WEATHER_TOOL])
    call: Any = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24°C"})
    final = await client.chat.completions.create(model="weather-bot", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The weather tool says: Sunny, 24°C"
    query = sim.bodies("weather-bot")[-1]["query"]
    assert [m["role"] for m in query] == ["system", "user", "bot", "user"]
    assert (
        '<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Paris", "days": 2}</arguments>'
        in query[2]["content"]  # the arguments as the bot wrote them
    )
    assert query[3]["content"] == '<tool_result name="get_weather">\nSunny, 24°C\n</tool_result>'


async def test_roo_code_request_shape(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    stream = await client.chat.completions.create(
        model="weather-bot",
        messages=[
            {
                "role": "developer",
                "content": [{"type": "text", "text": "You are Roo.", "cache_control": {"type": "ephemeral"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<task>weather</task>"},
                    {
                        "type": "text",
                        "text": "<environment_details>x</environment_details>",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
        tools=[WEATHER_TOOL, NO_ARGS_TOOL],
        tool_choice="auto",
        parallel_tool_calls=False,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    system = sim.bodies("weather-bot")[-1]["query"][0]["content"]
    assert system.startswith("You are Roo.") and "Call at most one tool per answer." in system
    assert "## attempt_completion" in system


async def test_required_and_named_choice_insist(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    await client.chat.completions.create(
        model="weather-bot", messages=user("x"), tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert "You must call at least one tool" in sim.bodies("weather-bot")[-1]["query"][0]["content"]
    await client.chat.completions.create(
        model="weather-bot",
        messages=user("x"),
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert "You must call the tool `get_weather`" in sim.bodies("weather-bot")[-1]["query"][0]["content"]


async def test_tool_choice_none_leaves_xml_alone(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts(XML_CALL))
    r = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("x"), tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert r.choices[0].message.content == XML_CALL and not r.choices[0].message.tool_calls
    assert sim.bodies("gpt-4o-mini")[-1]["query"][0]["role"] == "user"  # no instructions added


async def test_no_tools_means_no_extraction(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    roo_xml = "<read_file>\n<path>src/main.py</path>\n</read_file>"
    sim.script("gpt-4o-mini", texts(XML_CALL + roo_xml))
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert r.choices[0].message.content == XML_CALL + roo_xml


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": {"a": 1}}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "get_weather\n"}}]}, "tools[0].function.name"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [WEATHER_TOOL], "parallel_tool_calls": "no"}, "parallel_tool_calls"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]},
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "call_x", "content": "r"},
                ]
            },
            "messages[1].tool_call_id",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]},
            "messages[0].tool_calls[0].id",
        ),
    ],
)
async def test_bad_tool_shapes_are_400s(client: openai.AsyncOpenAI, extra: dict[str, Any], param: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": user("x"), **extra}
    with pytest.raises(openai.BadRequestError) as info:
        await client.post("/chat/completions", body=body, cast_to=object)
    assert info.value.body["param"] == param  # type: ignore[index]


async def test_tool_result_content_as_parts(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    messages: list[Any] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "Snow"}]},
    ]
    r = await client.chat.completions.create(model="weather-bot", messages=messages, tools=[WEATHER_TOOL])
    assert r.choices[0].message.content == "The weather tool says: Snow"


async def test_simulated_bots_use_offered_tools(client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = user("Oslo")
    first = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    call: Any = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo", "days": 1}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Cold"},
    ]
    final = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "The tool answered: Cold"


async def test_prompt_tokens_count_what_the_bot_is_sent(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    plain = await client.chat.completions.create(model="gpt-4o-mini", messages=user("Weather in Paris?"))
    with_tools = await client.chat.completions.create(
        model="weather-bot", messages=user("Weather in Paris?"), tools=[WEATHER_TOOL]
    )
    assert plain.usage is not None and with_tools.usage is not None
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 100  # the tool instructions count


WRITE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "write_to_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}},
    },
}


async def test_a_long_call_streams_its_arguments_in_many_fragments(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    args = json.dumps({"path": "src/app.py", "content": "".join(f"line = {i}\n" for i in range(300))})
    answer = f"<tool_call>\n<name>write_to_file</name>\n<arguments>{args}</arguments>\n</tool_call>"
    steps: list[Any] = []
    for i in range(0, len(answer), 40):  # paced, so that the gateway reads the events one by one
        steps += [text(answer[i : i + 40]), Sleep(0.002)]
    sim.script("coder-bot", [*steps, DONE])
    stream = await client.chat.completions.create(
        model="coder-bot", messages=user("Write it"), tools=[WRITE_TOOL], stream=True
    )
    deltas = [tc for c in [c async for c in stream] if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) > 20 and all(d.index == 0 for d in deltas)
    assert deltas[0].id and deltas[0].type == "function" and deltas[0].function.name == "write_to_file"  # type: ignore[union-attr]
    assert all(d.id is None and d.function and d.function.name is None for d in deltas[1:])
    assert "".join((d.function.arguments or "") for d in deltas if d.function) == args


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}], ids=["required", "named"]
)
async def test_text_before_a_required_call_is_held_back(
    client: openai.AsyncOpenAI, sim: Simulator, choice: Any
) -> None:
    sim.behaviours["weather-bot"] = weather_bot  # writes "I'll check the weather." before its call
    stream = await client.chat.completions.create(
        model="weather-bot", messages=user("Weather?"), tools=[WEATHER_TOOL], tool_choice=choice, stream=True
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    system = sim.bodies("weather-bot")[-1]["query"][0]["content"]
    assert "no text before it" in system
