"""Anthropic's Messages API through the official ``anthropic`` SDK, against the Poe simulator:
text, stream helpers, thinking with signatures, tool use round trips, images and PDFs,
count_tokens, model names, the model list and every error class."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import pytest
import pytest_asyncio
from pydantic import BaseModel

from poe2openai.frontends.anthropic.ids import signature_of
from poe2openai.pipeline import tokens
from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Event, HttpError, Simulator, error, text

from .conftest import Running

Start = Callable[[Settings], Any]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + b"x" * 5000 + b"\n%%EOF"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest_asyncio.fixture
async def claude(gw: Running) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = anthropic.AsyncAnthropic(base_url=gw.url, api_key="test-key", max_retries=0)
    yield c
    await c.close()


def hi(said: str = "hi") -> list[Any]:
    return [{"role": "user", "content": said}]


def last_query(sim: Simulator) -> list[dict[str, Any]]:
    query: list[dict[str, Any]] = sim.requests[-1].body["query"]
    return query


# --- text --------------------------------------------------------------------------------


async def test_a_text_message(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    msg = await claude.messages.create(model="gpt-4o-mini", max_tokens=100, messages=hi("hello there"))
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.model == "gpt-4o-mini"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: hello there"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    assert sim.requests[-1].bot == "gpt-4o-mini"


async def test_the_stream_helpers_accept_every_event(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=hi("one two three four")) as s:
        kinds = []
        async for event in s:
            kinds.append(event.type)
        final = await s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "text" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].type == "text" and final.content[0].text == "You said: one two three four"
    assert final.stop_reason == "end_turn" and final.usage.input_tokens > 0 and final.usage.output_tokens > 0


async def test_system_prompts_in_every_form_reach_the_bot(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=50,
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.0.abc; cch=12345;"},
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "The user is in Paris."}]},
        ],
    )
    query = last_query(sim)
    assert [m["role"] for m in query] == ["system", "user", "system"]
    assert query[0]["content"] == "You are terse.\n\nAnswer in French."  # the billing header is not for the bot
    assert query[2]["content"] == "The user is in Paris."


# --- thinking ----------------------------------------------------------------------------


async def test_thinking_comes_as_a_signed_thinking_block(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(
        model="deepseek-r1",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=hi("why is the sky blue"),
    ) as s:
        signatures = [e.signature for e in [x async for x in s] if e.type == "signature"]
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    thinking, answer = final.content
    assert thinking.type == "thinking" and "The user wrote: why is the sky blue" in thinking.thinking
    assert thinking.signature == signature_of(thinking.thinking) and signatures == [thinking.signature]
    assert answer.type == "text" and answer.text == "Here is my answer to: why is the sky blue"

    msg = await claude.messages.create(model="deepseek-r1", max_tokens=2000, messages=hi("why is the sky blue"))
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].type == "thinking" and msg.content[0].signature == thinking.signature


async def test_omitted_thinking_keeps_only_the_signature(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(
        model="deepseek-r1",
        max_tokens=2000,
        thinking={"type": "adaptive", "display": "omitted"},
        messages=hi("why"),
    ) as s:
        final = await s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    block = final.content[0]
    assert block.type == "thinking" and block.thinking == "" and len(block.signature) > 20
    assert final.usage.output_tokens > 10  # the thinking was generated, and counts


async def test_thinking_from_earlier_turns_is_accepted_and_not_sent(
    claude: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    msg = await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "secret plan", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
                    {"type": "text", "text": "An answer."},
                ],
            },
            {"role": "user", "content": "second"},
        ],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: second"
    assert [(m["role"], m["content"]) for m in last_query(sim)] == [
        ("user", "first"),
        ("bot", "An answer."),
        ("user", "second"),
    ]


async def test_thinking_options_become_the_bots_parameters(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    await claude.messages.create(
        model="claude-sonnet-4-5-20250929",
        max_tokens=20000,
        thinking={"type": "enabled", "budget_tokens": 31999},
        messages=hi(),
    )
    assert sim.requests[-1].bot == "claude-sonnet-4.5"
    assert last_query(sim)[-1]["parameters"] == {"thinking_budget": 31999}
    await claude.messages.create(
        model="gpt-5",
        max_tokens=20000,
        thinking={"type": "adaptive"},
        extra_body={"output_config": {"effort": "max"}},
        messages=hi(),
    )
    assert last_query(sim)[-1]["parameters"] == {"reasoning_effort": "high"}
    await claude.messages.create(model="deepseek-r1", max_tokens=100, thinking={"type": "disabled"}, messages=hi())
    assert last_query(sim)[-1]["parameters"] == {"enable_thinking": False}


# --- tools -------------------------------------------------------------------------------


async def test_a_tool_use_round_trip(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    async with claude.messages.stream(model="gpt-4o-mini", max_tokens=500, tools=[WEATHER], messages=hi("Paris")) as s:
        deltas = [e.partial_json for e in [x async for x in s] if e.type == "input_json"]
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["tool_use"]  # bots are asked to write no text before a call
    call = final.content[0]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    assert "".join(deltas) == '{"city":"Paris"}'
    assert "## get_weather" in last_query(sim)[0]["content"]  # taught in the system prompt

    history: list[Any] = [
        {"role": "user", "content": "Paris"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24 C"}]},
    ]
    answer = await claude.messages.create(model="gpt-4o-mini", max_tokens=500, tools=[WEATHER], messages=history)
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text == "The tool answered: Sunny, 24 C"
    query = last_query(sim)
    assert '<name>get_weather</name>\n<arguments>{"city":"Paris"}</arguments>' in query[2]["content"]
    assert query[3] == {
        "role": "user",
        "content": '<tool_result name="get_weather">\nSunny, 24 C\n</tool_result>',
        "content_type": "text/markdown",
    }


async def test_a_failed_tool_result_and_blocks_in_results(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    history: list[Any] = [
        {"role": "user", "content": "Paris"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "is_error": True,
                    "content": [{"type": "text", "text": "city not found"}],
                },
                {"type": "text", "text": "Try again please."},
            ],
        },
    ]
    msg = await claude.messages.create(model="gpt-4o-mini", max_tokens=500, tools=[WEATHER], messages=history)
    assert msg.stop_reason == "tool_use"  # the simulator tries again, as asked
    query = last_query(sim)
    assert query[3]["content"] == '<tool_result name="get_weather">\nError: city not found\n</tool_result>'
    assert query[4]["content"] == "Try again please."


async def test_tool_choice_and_parallel_calls_reach_the_instructions(
    claude: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=hi("x"),
    )
    system = last_query(sim)[0]["content"]
    assert "You must call at least one tool" in system and "Call at most one tool per answer" in system
    await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=hi("x"),
    )
    assert "You must call the tool `get_weather`" in last_query(sim)[0]["content"]
    msg = await claude.messages.create(
        model="gpt-4o-mini", max_tokens=100, tools=[WEATHER], tool_choice={"type": "none"}, messages=hi("x")
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: x"
    assert last_query(sim)[0]["role"] == "user"  # no tool instructions at all


async def test_server_tools_map_to_the_bots_web_search_or_are_ignored(
    claude: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    tools: list[Any] = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    await claude.messages.create(model="gpt-5", max_tokens=100, tools=tools, messages=hi())
    assert last_query(sim)[-1]["parameters"] == {"web_search": True}
    await claude.messages.create(model="gpt-4o-mini", max_tokens=100, tools=tools, messages=hi())
    assert "parameters" not in last_query(sim)[-1]  # the bot has no such parameter
    others: list[Any] = [
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "bash_20250124", "name": "bash"},
    ]
    msg = await claude.messages.create(model="gpt-4o-mini", max_tokens=100, tools=others, messages=hi())
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: hi"


async def test_deferred_tools_are_shown_once_loaded(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    tools: list[Any] = [
        {**WEATHER, "name": "search_tools", "description": "Find tools."},
        {**WEATHER, "defer_loading": True},
    ]
    await claude.messages.create(model="gpt-4o-mini", max_tokens=100, tools=tools, messages=hi())
    system = last_query(sim)[0]["content"]
    assert "## search_tools" in system and "## get_weather" not in system
    history: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search_tools", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "tool_reference", "tool_name": "get_weather"}],
                }
            ],
        },
    ]
    await claude.messages.create(model="gpt-4o-mini", max_tokens=100, tools=tools, messages=history)
    query = last_query(sim)
    assert "## get_weather" in query[0]["content"] and "Tool loaded: get_weather" in query[-1]["content"]


# --- images and documents ----------------------------------------------------------------


async def test_images_by_base64_and_url_are_uploaded(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    sim.static_files["cat.png"] = (PNG, "image/png")
    msg = await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
                    },
                    {"type": "image", "source": {"type": "url", "url": f"{sim.base_url}/files/cat.png"}},
                    {"type": "text", "text": "What are these?"},
                ],
            }
        ],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: What are these?"
    atts = last_query(sim)[-1]["attachments"]
    assert [a["content_type"] for a in atts] == ["image/png", "image/png"]
    assert sim.uploads[0].body["size"] == len(PNG)
    assert sim.uploads[1].body["fields"]["download_url"] == f"{sim.base_url}/files/cat.png"


async def test_pdf_and_text_documents(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "report",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": base64.b64encode(PDF).decode(),
                        },
                    },
                    {
                        "type": "document",
                        "title": "Notes",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Buy milk."},
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            }
        ],
    )
    last = last_query(sim)[-1]
    assert [(a["content_type"], a["name"]) for a in last["attachments"]] == [("application/pdf", "report.pdf")]
    assert sim.uploads[-1].body["content_type"] == "application/pdf" and sim.uploads[-1].body["size"] == len(PDF)
    assert last["content"] == "Notes\n\nBuy milk.\n\nSummarise."


async def test_a_files_api_source_is_a_clear_400(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(
            model="gpt-4o-mini",
            max_tokens=100,
            messages=[
                {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}
            ],
        )
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[0].source" in body["error"]["message"]


# --- count_tokens ------------------------------------------------------------------------


CONVERSATION: list[Any] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "Sunny, 24 C. " * 200},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
            },
        ],
    },
]


async def test_count_tokens_agrees_with_the_usage_of_the_same_request(
    claude: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    asked: dict[str, Any] = {"model": "gpt-4o-mini", "system": "Be brief. " * 300, "messages": CONVERSATION}
    before = len(sim.requests)
    counted = await claude.messages.count_tokens(tools=[WEATHER], **asked)
    plain = await claude.messages.count_tokens(**asked)
    assert len(sim.requests) == before and not sim.uploads  # nothing reached Poe
    assert counted.input_tokens > plain.input_tokens + 100  # the tool instructions count
    msg = await claude.messages.create(max_tokens=100, tools=[WEATHER], **asked)
    assert msg.usage.input_tokens == counted.input_tokens
    async with claude.messages.stream(max_tokens=100, tools=[WEATHER], **asked) as s:
        starts = [e.message.usage.input_tokens async for e in s if e.type == "message_start"]
        final = await s.get_final_message()
    assert starts == [counted.input_tokens] and final.usage.input_tokens == counted.input_tokens
    plain_msg = await claude.messages.create(max_tokens=100, **asked)
    assert plain_msg.usage.input_tokens == plain.input_tokens


async def test_count_tokens_with_claude_codes_query_string(
    gw: Running, http: aiohttp.ClientSession, sim: Simulator
) -> None:
    body = {"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "hello"}]}
    async with http.post(
        gw.url + "/v1/messages/count_tokens?beta=true",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "anthropic-beta": "token-counting-2024-11-01"},
        json=body,
    ) as r:
        assert r.status == 200
        counted = (await r.json())["input_tokens"]
    async with http.post(
        gw.url + "/v1/messages?beta=true",
        headers={"Authorization": "Bearer k", "anthropic-version": "2023-06-01"},
        json={**body, "max_tokens": 10},
    ) as r:
        assert r.status == 200
        assert (await r.json())["usage"]["input_tokens"] == counted > 0
    assert sim.requests[-1].bot == "claude-sonnet-4.5"


# --- model names and the model list ------------------------------------------------------


async def test_claude_names_resolve_to_poe_bots_and_models_yaml_maps_any_name(
    start_gateway: Start, settings: Settings, sim: Simulator, tmp_path: Any
) -> None:
    (tmp_path / "models.yaml").write_text("enable: true\nmodels:\n  gpt-5:\n    mapping: claude-opus-4-8\n")
    running = await start_gateway(settings)
    async with anthropic.AsyncAnthropic(base_url=running.url, api_key="k", max_retries=0) as c:
        for name, bot in [
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
            ("claude-sonnet-4-5", "claude-sonnet-4.5"),
            ("Claude-Sonnet-4.5", "claude-sonnet-4.5"),
            ("claude-opus-4-8", "gpt-5"),
            ("claude-opus-4-8-20260101", "gpt-5"),
            ("gpt-5", "gpt-5"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),  # not on Poe's list: sent as it is
        ]:
            msg = await c.messages.create(model=name, max_tokens=10, messages=hi())
            assert msg.model == name and sim.requests[-1].bot == bot.lower(), name
        page = await c.models.list()
    ids = [m.id for m in page.data]
    assert "claude-opus-4-8" in ids and "gpt-5" not in ids


async def test_the_model_list_answers_in_the_asking_dialects_shape(
    gw: Running, claude: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    models = [m async for m in claude.models.list(limit=2)]  # the SDK pages through all of them
    assert [m.id for m in models][:2] == ["claude-sonnet-4.5", "gpt-5"] and len(models) == 6
    assert models[0].type == "model" and models[0].display_name == "Claude-Sonnet-4.5"
    assert models[0].created_at.year >= 2025
    one = await claude.models.retrieve("gpt-5")
    assert one.id == "gpt-5" and one.display_name == "GPT-5"
    with pytest.raises(anthropic.NotFoundError) as info:
        await claude.models.retrieve("no-such-model")
    body: Any = info.value.body
    assert body["error"]["type"] == "not_found_error"
    async with http.get(gw.url + "/v1/models") as r:
        plain = await r.json()
    assert plain["object"] == "list" and plain["data"][0]["object"] == "model"
    async with http.get(gw.url + "/v1/models?limit=5000", headers={"anthropic-version": "2023-06-01"}) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"


# --- errors ------------------------------------------------------------------------------


async def test_each_error_class(
    claude: anthropic.AsyncAnthropic, sim: Simulator, start_gateway: Start, settings: Settings
) -> None:
    async def fails(model: str = "gpt-4o-mini", **extra: Any) -> anthropic.APIStatusError:
        with pytest.raises(anthropic.APIStatusError) as info:
            await claude.messages.create(model=model, max_tokens=100, messages=hi(), **extra)
        return info.value

    def kind(err: anthropic.APIStatusError) -> tuple[int, str]:
        body: Any = err.body
        assert body["type"] == "error" and body["error"]["message"]
        return err.status_code, body["error"]["type"]

    with pytest.raises(anthropic.BadRequestError) as bad:
        await claude.post("/v1/messages", body={"model": "gpt-4o-mini", "messages": hi()}, cast_to=object)
    assert kind(bad.value) == (400, "invalid_request_error") and "max_tokens" in str(bad.value)
    sim.script("gpt-4o-mini", [HttpError(403, {"detail": "nope"})])
    assert kind(await fails()) == (403, "permission_error")
    assert kind(await fails("no-such-bot")) == (404, "not_found_error")
    sim.script("gpt-4o-mini", [HttpError(429, "slow down", headers={"retry-after": "3"})])
    err = await fails()
    assert kind(err) == (429, "rate_limit_error") and err.response.headers["retry-after"] == "3"
    sim.script("gpt-4o-mini", [HttpError(402, "You've used up your points!")])
    err = await fails()
    assert kind(err) == (402, "billing_error") and err.response.headers["x-should-retry"] == "false"
    for _ in range(2):  # one retry, then the failure
        sim.script("gpt-4o-mini", [HttpError(500, "oops")])
    assert kind(await fails()) == (502, "api_error")
    for _ in range(2):
        sim.script("gpt-4o-mini", [HttpError(504, "")])
    assert kind(await fails()) == (504, "timeout_error")
    async with anthropic.AsyncAnthropic(base_url=claude.base_url, api_key="bad-key", max_retries=0) as c:
        with pytest.raises(anthropic.AuthenticationError) as auth:
            await c.messages.create(model="gpt-4o-mini", max_tokens=10, messages=hi())
    assert kind(auth.value) == (401, "authentication_error")
    small = await start_gateway(settings.replace(max_request_size=2000))
    async with anthropic.AsyncAnthropic(base_url=small.url, api_key="k", max_retries=0) as c:
        with pytest.raises(anthropic.APIStatusError) as big:
            await c.messages.create(model="gpt-4o-mini", max_tokens=10, messages=hi("x" * 5000))
    assert kind(big.value) == (413, "request_too_large")


async def test_a_failure_after_the_stream_started_is_an_error_event(
    claude: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    sim.script("gpt-4o-mini", [text("Partial answer"), error("Internal server error", allow_retry=False)])
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=hi()) as s:
            async for e in s:
                seen.append(e.type)
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"] == {"type": "api_error", "message": "Internal server error"}
    assert seen[0] == "message_start" and "text" in seen


async def test_unknown_fields_betas_and_blocks_are_no_400(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    msg = await claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        metadata={"user_id": '{"device_id":"abc"}'},
        extra_headers={"anthropic-beta": "some-future-beta-2030-01-01,context-management-2025-06-27"},
        extra_body={
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high", "format": None},
            "service_tier": "auto",
            "container": "c_1",
            "some_future_field": {"a": 1},
        },
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                    {"type": "future_block", "payload": 1},
                ],
            }
        ],
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: hi"
    assert sim.requests[-1].body["temperature"] == 0.5


async def test_stop_sequences_and_max_tokens_end_the_answer(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    stops = ["NEVER", "END", ""]
    msg = await claude.messages.create(
        model="gpt-4o-mini", max_tokens=100, stop_sequences=stops, messages=hi("one END two")
    )
    assert sim.requests[-1].body["stop_sequences"] == ["NEVER", "END"]
    assert msg.content[0].type == "text" and msg.content[0].text == "You said: one "
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")
    async with claude.messages.stream(
        model="gpt-4o-mini", max_tokens=100, stop_sequences=stops, messages=hi("one END two")
    ) as s:
        final = await s.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    assert final.content[0].type == "text" and final.content[0].text == "You said: one "

    msg = await claude.messages.create(model="gpt-4o-mini", max_tokens=3, messages=hi("a b c d e f g h i j"))
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3
    chunk = {"choices": [{"delta": {"content": "abc"}, "finish_reason": "length"}]}
    sim.script("gpt-4o-mini", [Event("json", chunk), DONE])  # the bot's own limit
    msg = await claude.messages.create(model="gpt-4o-mini", max_tokens=100, messages=hi())
    assert msg.stop_reason == "max_tokens" and msg.content[0].type == "text" and msg.content[0].text == "abc"


async def test_bursts_of_count_tokens_count_off_the_loop_and_once_per_long_text(
    claude: anthropic.AsyncAnthropic, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encoding = tokens._encoding()
    tokenized: list[int] = []
    threads: list[bool] = []

    class Spy:
        def encode_ordinary(self, text: str) -> list[int]:
            tokenized.append(len(text))
            threads.append(threading.current_thread() is threading.main_thread())
            return real_encoding.encode_ordinary(text)

    monkeypatch.setattr(tokens, "_encoding", lambda: Spy())
    system = "You are an agent working with the user, in a session numbered 48213. " * 400
    asked: dict[str, Any] = {"model": "gpt-5", "system": system, "tools": [WEATHER], "messages": hi("go")}
    counts = await asyncio.gather(*(claude.messages.count_tokens(**asked) for _ in range(50)))
    assert len({c.input_tokens for c in counts}) == 1 and counts[0].input_tokens > 5000
    assert not sim.requests
    long_texts = [n for n in tokenized if n >= tokens.CACHED_FROM]
    assert 1 <= len(long_texts) < 10  # the long system prompt: once, or once per worker racing the first
    assert not any(threads)  # never on the event loop's thread
    tokenized.clear()
    again = await claude.messages.count_tokens(**asked)
    assert again.input_tokens == counts[0].input_tokens
    assert all(n < tokens.CACHED_FROM for n in tokenized)  # remembered


async def test_errors_before_the_handler_come_in_anthropics_shape(gw: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(gw.url + "/v1/messages", headers={"x-api-key": "k"}) as r:
        assert r.status == 405
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    async with http.post(gw.url + "/v1/messages/batches", headers={"x-api-key": "k"}, json={}) as r:
        body = await r.json()
        assert r.status == 404 and body["type"] == "error" and body["error"]["type"] == "not_found_error"
    async with http.post(gw.url + "/v1/messages", json={"model": "x", "max_tokens": 1, "messages": hi()}) as r:
        body = await r.json()
        assert r.status == 401 and body["error"]["type"] == "authentication_error"
    async with http.post(gw.url + "/v1/messages", headers={"x-api-key": "k"}, data=b"{not json") as r:
        body = await r.json()
        assert r.status == 400 and body["error"]["type"] == "invalid_request_error"


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_through_the_sdks_parse(claude: anthropic.AsyncAnthropic, sim: Simulator) -> None:
    msg = await claude.messages.parse(model="gpt-4o-mini", max_tokens=500, messages=hi("Paris"), output_format=City)
    assert isinstance(msg.parsed_output, City) and msg.parsed_output.population == 1
    assert "population" in last_query(sim)[0]["content"]  # the schema was asked for in the prompt
    async with claude.messages.stream(
        model="gpt-4o-mini", max_tokens=500, messages=hi("Paris"), output_format=City
    ) as s:
        final = await s.get_final_message()
    assert final.content[0].type == "text" and City.model_validate_json(final.content[0].text).population == 1
