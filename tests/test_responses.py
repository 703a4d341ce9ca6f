"""The Responses API end to end: the official openai SDK → gateway → Poe simulator, over loopback."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import openai
import pydantic
import pytest

from poe2openai.engine import call as engine
from poe2openai.simulator import DONE, Event, Simulator, Sleep, error, text, texts

from .conftest import Running

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PATCH_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch. This is a FREEFORM tool, so do not wrap the patch in JSON.",
    "format": {
        "type": "grammar",
        "syntax": "lark",
        "definition": 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n',
    },
}
PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+Hello, "world" <3\n+{"not": "json"}\n*** End Patch'


def tool_result(body: dict[str, Any]) -> str | None:
    """The tool result the gateway wrote into the last user message, if any."""
    last = body["query"][-1]["content"]
    if "<tool_result" not in last:
        return None
    return str(last.split("\n", 1)[1].rsplit("\n</tool_result>", 1)[0])


def weather_bot(body: dict[str, Any]) -> list[Any]:
    """A text-only bot following the gateway's tool instructions."""
    result = tool_result(body)
    if result is not None:
        return texts("The weather tool says: ", result)
    call = 'Checking.\n<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Paris"}</arguments>\n</tool_call>'
    return [*(text(call[i : i + 9]) for i in range(0, len(call), 9)), DONE]


def patch_bot(body: dict[str, Any]) -> list[Any]:
    """A text-only bot calling a free-form tool the way the gateway's prompt teaches."""
    result = tool_result(body)
    if result is not None:
        return texts("Patched: ", result)
    call = f"I will add the file.\n<tool_call>\n<name>apply_patch</name>\n<input>\n{PATCH}\n</input>\n</tool_call>"
    return [*(text(call[i : i + 11]) for i in range(0, len(call), 11)), DONE]


async def events_of(stream: Any) -> list[Any]:
    return [e async for e in stream]


def check_sequence(events: list[Any]) -> None:
    """Every event numbered in order, one lifecycle start and exactly one terminal event, last."""
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    terminal = [k for k in kinds if k in ("response.completed", "response.incomplete", "response.failed")]
    assert len(terminal) == 1 and kinds[-1] == terminal[0]
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done")


async def test_non_stream_text(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("The capital", " of Nepal is", " Kathmandu."))
    r = await client.responses.create(model="gpt-4o-mini", input="Capital of Nepal?", instructions="Be brief.")
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.model == "gpt-4o-mini" and r.instructions == "Be brief."
    assert r.output_text == "The capital of Nepal is Kathmandu."
    (msg,) = r.output
    assert msg.type == "message" and msg.role == "assistant" and msg.status == "completed"
    assert msg.content[0].type == "output_text" and msg.content[0].annotations == []
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    assert r.incomplete_details is None and r.error is None
    query = sim.bodies("gpt-4o-mini")[-1]["query"]
    assert [(m["role"], m["content"]) for m in query] == [("system", "Be brief."), ("user", "Capital of Nepal?")]


async def test_stream_events_and_input_items(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("Hel", "lo", " there"))
    stream = await client.responses.create(
        model="gpt-4o-mini",
        stream=True,
        input=[
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are terse."}]},
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"role": "user", "content": [{"type": "input_text", "text": "Again"}]},
        ],
    )
    events = await events_of(stream)
    check_sequence(events)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[4].delta == "Hello there"  # one read of the simulator: one delta event
    assert events[5].text == "Hello there" and events[7].item.content[0].text == "Hello there"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == "Hello there" and done.usage is not None
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    query = sim.bodies("gpt-4o-mini")[-1]["query"]
    assert [(m["role"], m["content"]) for m in query] == [
        ("system", "You are terse."),
        ("user", "Hi"),
        ("bot", "Hello!"),
        ("user", "Again"),
    ]


async def test_stream_helper_and_final_response(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("One", ", two", ", three."))
    async with client.responses.stream(model="gpt-4o-mini", input="Count") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "One, two, three."
    assert final.output_text == "One, two, three." and final.status == "completed"


async def test_function_tool_round_trip(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    first = await client.responses.create(model="weather-bot", input="Weather in Paris?", tools=[WEATHER_TOOL])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1
    call: Any = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert first.output_text == "Checking.\n"
    system = sim.bodies("weather-bot")[-1]["query"][0]
    assert "## get_weather" in system["content"] and "<tool_call>" in system["content"]

    second = await client.responses.create(
        model="weather-bot",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *[o.model_dump(exclude_none=True) for o in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 °C"},
        ],
    )
    assert second.output_text == "The weather tool says: Sunny, 21 °C"
    query = sim.bodies("weather-bot")[-1]["query"]
    assert query[-2]["role"] == "bot" and "<name>get_weather</name>" in query[-2]["content"]
    assert query[-1]["content"].startswith('<tool_result name="get_weather">')


async def test_function_tool_stream_and_output_as_parts(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["weather-bot"] = weather_bot
    stream = await client.responses.create(
        model="weather-bot", input="Weather?", tools=[WEATHER_TOOL], stream=True, parallel_tool_calls=False
    )
    events = await events_of(stream)
    check_sequence(events)
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [i.type for i in added] == ["message", "function_call"]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    (args_done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    (call,) = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "function_call"]
    assert json.loads(args) == json.loads(args_done.arguments) == json.loads(call.arguments) == {"city": "Paris"}
    assert call.status == "completed" and call.id == added[1].id and call.call_id == added[1].call_id
    assert "Call at most one tool per answer." in sim.bodies("weather-bot")[-1]["query"][0]["content"]

    second = await client.responses.create(
        model="weather-bot",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": call.call_id, "name": "get_weather", "arguments": call.arguments},
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": [{"type": "input_text", "text": "Rain"}, {"type": "input_text", "text": "8 °C"}],
            },
        ],
    )
    assert second.output_text == "The weather tool says: Rain\n\n8 °C"


async def test_custom_tool_round_trip(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["patch-bot"] = patch_bot
    async with client.responses.stream(model="patch-bot", input="Add hello.txt", tools=[PATCH_TOOL]) as stream:
        events = [e async for e in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" not in kinds
    streamed = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
    (done,) = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert streamed == done.input == PATCH
    (call,) = [o for o in final.output if o.type == "custom_tool_call"]
    assert call.name == "apply_patch" and call.input == PATCH and call.call_id.startswith("call_")
    assert not [o for o in final.output if o.type == "function_call"]
    system = sim.bodies("patch-bot")[-1]["query"][0]["content"]
    assert "## apply_patch" in system and "<input>" in system and "begin_patch" in system

    second = await client.responses.create(
        model="patch-bot",
        tools=[PATCH_TOOL],
        input=[
            {"role": "user", "content": "Add hello.txt"},
            {"type": "custom_tool_call", "call_id": call.call_id, "name": "apply_patch", "input": call.input},
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done: A hello.txt"},
        ],
    )
    assert second.output_text == "Patched: Done: A hello.txt"
    query = sim.bodies("patch-bot")[-1]["query"]
    assert f"<input>\n{PATCH}\n</input>" in query[-2]["content"]  # the earlier call, as the prompt taught it


async def test_custom_tool_non_stream(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.behaviours["patch-bot"] = patch_bot
    r = await client.responses.create(model="patch-bot", input="Add hello.txt", tools=[PATCH_TOOL])
    assert [o.type for o in r.output] == ["message", "custom_tool_call"]
    call: Any = r.output[1]
    assert call.input == PATCH and call.id.startswith("ctc_")


async def test_previous_response_id_and_another_key(gw: Running, client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("Nice to meet you, Ada."))
    first = await client.responses.create(model="gpt-4o-mini", input="My name is Ada.", instructions="Be kind.")
    sim.script("gpt-4o-mini", texts("Your name is Ada."))
    second = await client.responses.create(model="gpt-4o-mini", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada." and second.previous_response_id == first.id
    query = sim.bodies("gpt-4o-mini")[-1]["query"]
    assert [(m["role"], m["content"]) for m in query] == [
        ("user", "My name is Ada."),  # instructions are not carried over, as OpenAI documents
        ("bot", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    sim.script("gpt-4o-mini", texts("Still Ada."))
    third = await client.responses.create(model="gpt-4o-mini", input="And now?", previous_response_id=second.id)
    assert [m["content"] for m in sim.bodies("gpt-4o-mini")[-1]["query"]] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
        "Your name is Ada.",
        "And now?",
    ]
    assert third.output_text == "Still Ada."

    got = await client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "Your name is Ada."

    other = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="another-key", max_retries=0)
    try:
        with pytest.raises(openai.NotFoundError) as caught:
            await other.responses.create(model="gpt-4o-mini", input="Name?", previous_response_id=first.id)
        body: Any = caught.value.body
        assert body["param"] == "previous_response_id" and body["code"] == "previous_response_not_found"
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(first.id)
    finally:
        await other.close()
    calls = len(sim.bodies("gpt-4o-mini"))

    await client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="gpt-4o-mini", input="Name?", previous_response_id=third.id)
    assert len(sim.bodies("gpt-4o-mini")) == calls  # refused before anything reached Poe


async def test_store_false_keeps_nothing(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    r = await client.responses.create(model="gpt-4o-mini", input="Hi", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(model="gpt-4o-mini", input="Again", previous_response_id=r.id)
    body: Any = caught.value.body
    assert body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(r.id)


async def test_streamed_response_is_kept_too(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("Blue."))
    async with client.responses.stream(model="gpt-4o-mini", input="Favourite colour: blue.") as stream:
        final = await stream.get_final_response()
    sim.script("gpt-4o-mini", texts("You said blue."))
    r = await client.responses.create(model="gpt-4o-mini", input="Which colour?", previous_response_id=final.id)
    assert r.output_text == "You said blue."
    assert [m["content"] for m in sim.bodies("gpt-4o-mini")[-1]["query"]] == [
        "Favourite colour: blue.",
        "Blue.",
        "Which colour?",
    ]


class City(pydantic.BaseModel):
    name: str
    population: int


async def test_text_format_json_schema(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    wrapped = 'Here you go:\n```json\n{"name": "Kathmandu",', ' "population": 1442271}\n```\nHope it helps!'
    sim.script("gpt-4o-mini", texts(*wrapped))
    r = await client.responses.parse(model="gpt-4o-mini", input="The capital of Nepal, as JSON", text_format=City)
    assert r.output_parsed == City(name="Kathmandu", population=1442271)
    assert r.output_text == '{"name": "Kathmandu", "population": 1442271}'  # only the value
    assert r.text is not None and r.text.format is not None and r.text.format.type == "json_schema"
    assert r.text.format.name == "City"  # type: ignore[union-attr]
    assert '"population"' in sim.bodies("gpt-4o-mini")[-1]["query"][0]["content"]  # the schema was asked for

    sim.script("gpt-4o-mini", texts(*wrapped))
    async with client.responses.stream(model="gpt-4o-mini", input="Again", text_format=City) as stream:
        final = await stream.get_final_response()
    assert final.output_parsed == City(name="Kathmandu", population=1442271)


async def test_reasoning_summary_and_effort(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    stream = await client.responses.create(
        model="gemini-2.5-pro", input="17×19?", reasoning={"effort": "high", "summary": "auto"}, stream=True
    )
    events = await events_of(stream)
    check_sequence(events)
    assert sim.bodies("gemini-2.5-pro")[-1]["query"][-1]["parameters"] == {"thinking_budget": 16384}
    kinds = [e.type for e in events]
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.output_text.delta")
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert all(e.summary_index == 0 for e in events if e.type.startswith("response.reasoning_summary"))
    assert "The user wrote: 17×19?" in summary
    final = events[-1].response
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == summary
    assert final.output_text == "Here is my answer to: 17×19?"
    assert final.reasoning.effort == "high" and final.reasoning.summary == "auto"
    assert final.usage.output_tokens_details.reasoning_tokens > 0

    r = await client.responses.create(model="deepseek-r1", input="Why?", reasoning={"effort": "none"})
    assert sim.bodies("deepseek-r1")[-1]["query"][-1]["parameters"] == {"enable_thinking": False}
    assert [o.type for o in r.output] == ["reasoning", "message"]
    summary_item: Any = r.output[0]
    assert summary_item.summary[0].type == "summary_text" and "Why?" in summary_item.summary[0].text


async def test_cut_by_length_is_incomplete(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "A long"}}]}
    length = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    sim.script("gpt-4o-mini", [Event("json", chunk), Event("json", length), DONE])
    r = await client.responses.create(model="gpt-4o-mini", input="Write an essay", max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens" and r.max_output_tokens == 16
    assert r.output_text == "A long" and r.output[0].status == "incomplete"  # type: ignore[union-attr]

    sim.script("gpt-4o-mini", [Event("json", chunk), Event("json", length), DONE])
    stream = await client.responses.create(model="gpt-4o-mini", input="Again", max_output_tokens=16, stream=True)
    events = await events_of(stream)
    check_sequence(events)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


async def test_max_output_tokens_is_enforced(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", texts("one two three four five six seven eight nine ten eleven twelve"))
    r = await client.responses.create(model="gpt-4o-mini", input="Count", max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.output_text == "one two three" and r.usage is not None and r.usage.output_tokens == 3
    sim.script("gpt-4o-mini", texts("one two three four five six seven eight nine ten eleven twelve"))
    async with client.responses.stream(model="gpt-4o-mini", input="Count", max_output_tokens=3) as stream:
        events = [e async for e in stream]
    assert events[-1].type == "response.incomplete" and events[-1].response.output_text == "one two three"


async def test_failure_mid_stream_ends_with_response_failed(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.script("gpt-4o-mini", [text("Partial"), error("The bot crashed")])
    stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
    events = await events_of(stream)
    check_sequence(events)
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error.code == "server_error" and "crashed" in failed.response.error.message
    (item,) = [e.item for e in events if e.type == "response.output_item.done"]
    assert item.content[0].text == "Partial" and item.status == "incomplete"


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (error("Rate limit reached for this bot, slow down"), "rate_limit_exceeded"),
        (error("You do not have enough points", error_type="insufficient_fund"), "insufficient_quota"),
        (error("The message is too long", error_type="user_message_too_long"), "context_length_exceeded"),
        (error("Something odd", error_type="user_caused_error"), "invalid_prompt"),
    ],
)
async def test_failure_codes_codex_understands(
    client: openai.AsyncOpenAI, sim: Simulator, event: Event, code: str
) -> None:
    sim.script("gpt-4o-mini", [text("So"), event])
    stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
    events = await events_of(stream)
    check_sequence(events)
    assert events[-1].type == "response.failed" and events[-1].response.error.code == code


async def test_errors_before_the_stream_are_openai_shaped(gw: Running, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": "Bearer k"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"input": "hi"}, "model"),
        ({"model": "gpt-4o-mini"}, "input"),
        ({"model": "gpt-4o-mini", "input": 3}, "input"),
        ({"model": "gpt-4o-mini", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": "gpt-4o-mini", "input": "hi", "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "gpt-4o-mini", "input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "gpt-4o-mini", "input": "hi", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "gpt-4o-mini", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {"model": "gpt-4o-mini", "input": "hi", "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice.name",
        ),
        ({"model": "gpt-4o-mini", "input": "hi", "background": True}, "background"),
        (
            {"model": "gpt-4o-mini", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
    ]
    for body, param in cases:
        async with http.post(f"{gw.url}/v1/responses", json=body, headers=auth) as r:
            assert r.status == 400, body
            err = (await r.json())["error"]
            assert err["param"] == param and err["type"] == "invalid_request_error", (body, err)
    async with http.post(f"{gw.url}/v1/responses", json={"model": "gpt-4o-mini", "input": "hi"}) as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
    async with http.get(f"{gw.url}/v1/responses/resp_nope", headers=auth) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "response_not_found"
    async with http.put(f"{gw.url}/v1/responses", headers=auth) as r:
        assert r.status == 405 and "error" in await r.json()


async def test_unknown_fields_and_hosted_tools_are_accepted(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    body = {
        "model": "claude-sonnet-4.5",
        "input": "Search the news",
        "tools": [{"type": "web_search", "external_web_access": True}, {"type": "file_search", "vector_store_ids": []}],
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k1",
        "service_tier": "auto",
        "metadata": {"a": "b"},
        "user": "u1",
        "top_p": 0.9,
        "store": False,
        "text": {"verbosity": "low"},
        "client_metadata": {"x": 1},
        "some_future_field": {"y": 2},
    }
    async with http.post(f"{gw.url}/v1/responses", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 200
        got = await r.json()
    assert got["output_text"] == "You said: Search the news" and got["metadata"] == {"a": "b"}
    assert got["tools"] == body["tools"] and got["top_p"] == 0.9 and got["user"] == "u1"
    # the hosted search is the bot's own web_search parameter; the bot lists it
    assert sim.bodies("claude-sonnet-4.5")[-1]["query"][-1]["parameters"] == {"web_search": True}
    body["model"] = "gpt-4o-mini"  # lists no web_search parameter: nothing is sent
    async with http.post(f"{gw.url}/v1/responses", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 200
    assert "parameters" not in sim.bodies("gpt-4o-mini")[-1]["query"][-1]


async def test_without_v1_prefix(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{gw.url}/responses", json={"model": "gpt-4o-mini", "input": "hi"}, headers={"Authorization": "Bearer k"}
    ) as r:
        assert r.status == 200 and (await r.json())["output_text"] == "You said: hi"


async def test_image_and_file_inputs_go_through_the_upload_cache(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()
    pdf = base64.b64encode(b"%PDF-1.4\n" + b"x" * 300 + b"\n%%EOF").decode()
    content: Any = [
        {"type": "input_text", "text": "What is in these?"},
        {"type": "input_image", "image_url": png, "detail": "auto"},
        {"type": "input_file", "filename": "report.pdf", "file_data": pdf},
    ]
    for _ in range(2):
        r = await client.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": content}])
        assert r.output_text == "You said: What is in these?"
    (message,) = sim.bodies("gpt-4o-mini")[-1]["query"]
    assert [a["content_type"] for a in message["attachments"]] == ["image/png", "application/pdf"]
    assert message["attachments"][1]["name"] == "report.pdf"
    assert len(sim.uploads) == 2  # the second request reused both uploads


async def test_slow_start_opens_the_stream_and_keeps_it_alive(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    sim.script("gpt-4o-mini", [Sleep(0.4), text("late"), DONE])
    body = {"model": "gpt-4o-mini", "input": "hi", "stream": True}
    async with http.post(f"{gw.url}/v1/responses", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    assert raw.startswith(b"event: response.created\ndata: ") and b": keep-alive" in raw
    assert raw.index(b"response.in_progress") < raw.index(b": keep-alive") < raw.index(b'"delta":"late"')
    assert raw.rstrip().split(b"\n")[-2] == b"event: response.completed"
