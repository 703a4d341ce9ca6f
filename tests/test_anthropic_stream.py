"""The Anthropic event stream byte by byte: event order and indices, thinking signatures, tool
input as ``input_json_delta`` fragments, pings on slow starts, and a recorded Claude Code
request shape accepted."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from poe2openai.engine import call as engine
from poe2openai.errors import ApiError
from poe2openai.frontends.anthropic.ids import signature_of
from poe2openai.frontends.anthropic.stream import MessageEncoder
from poe2openai.pipeline.deltas import End, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta
from poe2openai.pipeline.usage import Usage
from poe2openai.simulator import DONE, Event, Simulator, Sleep, text

from .conftest import Running

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def events(raw: bytes) -> list[tuple[str, Any]]:
    """``(event name, data)`` of each SSE frame; the name always matches ``data.type``."""
    out: list[tuple[str, Any]] = []
    for frame in raw.split(b"\n\n"):
        if not frame.strip():
            continue
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        name, data = name_line[7:].decode(), orjson.loads(data_line[6:])
        assert data["type"] == name
        out.append((name, data))
    return out


def check_sequence(evs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Assert Anthropic's grammar of a stream; return the content blocks it builds."""
    names = [n for n, _ in evs if n != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_delta") == 1
    blocks: list[dict[str, Any]] = []
    open_index: int | None = None
    for name, data in evs[1:-2]:
        if name == "ping":
            continue
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(blocks)
            open_index = data["index"]
            block = dict(data["content_block"])
            if block["type"] == "tool_use":
                assert block["input"] == {}  # the input comes only as fragments
                block["partial"] = ""
            blocks.append(block)
        elif name == "content_block_delta":
            assert data["index"] == open_index
            block, delta = blocks[data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            else:
                assert delta["type"] == "input_json_delta" and block["type"] == "tool_use"
                block["partial"] += delta["partial_json"]
        else:
            assert name == "content_block_stop" and data["index"] == open_index
            open_index = None
    assert open_index is None
    for block in blocks:
        assert block["type"] != "text" or block["text"]  # no empty text blocks
        if block["type"] == "thinking":
            assert block["signature"] == signature_of(block["thinking"])
        if block["type"] == "tool_use":
            block["input"] = orjson.loads(block.pop("partial"))
    delta = evs[-2][1]
    assert delta["delta"]["stop_reason"] is not None
    assert set(delta["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    return blocks


async def raw_stream(http: aiohttp.ClientSession, gw: Running, **body: Any) -> bytes:
    payload = {"max_tokens": 1000, "stream": True, **body}
    async with http.post(gw.url + "/v1/messages", headers=HEADERS, json=payload) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        return await r.read()


async def test_event_order_of_thinking_text_and_tool_calls(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.script(
        "gpt-4o-mini",
        [
            text("*Thinking...*\n\n> Let me look"),
            text(" it up.\n\nI will check.\n\n<tool_call>\n<name>get_weather</name>\n"),
            text('<arguments>{"city": "Paris"}</arguments>\n</tool_call>\n'),
            text('<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Rome"}</arguments>\n</tool_call>'),
            DONE,
        ],
        write_size=7,
    )
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    raw = await raw_stream(http, gw, model="gpt-4o-mini", tools=tools, messages=[{"role": "user", "content": "x"}])
    evs = events(raw)
    blocks = check_sequence(evs)
    assert [b["type"] for b in blocks] == ["thinking", "text", "tool_use", "tool_use"]
    assert blocks[0]["thinking"] == "Let me look it up."
    assert blocks[1]["text"].strip() == "I will check."
    assert [b["input"] for b in blocks[2:]] == [{"city": "Paris"}, {"city": "Rome"}]
    assert blocks[2]["id"] != blocks[3]["id"]
    assert evs[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert evs[0][1]["message"]["usage"]["input_tokens"] == evs[-2][1]["usage"]["input_tokens"] > 0


async def test_native_tool_calls_streamed_at_once_stay_in_separate_blocks(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    def chunk(calls: list[dict[str, Any]]) -> Event:
        return Event("json", {"choices": [{"delta": {"tool_calls": calls}}]})

    sim.script(
        "gpt-4o-mini",
        [
            chunk([{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x"'}}]),
            chunk([{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": '{"y"'}}]),
            chunk([{"index": 0, "function": {"arguments": ": 1}"}}, {"index": 1, "function": {"arguments": ": 2}"}}]),
            DONE,
        ],
    )
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("f", "g")]
    raw = await raw_stream(http, gw, model="gpt-4o-mini", tools=tools, messages=[{"role": "user", "content": "x"}])
    blocks = check_sequence(events(raw))
    assert [(b["id"], b["name"], b["input"]) for b in blocks] == [("call_a", "f", {"x": 1}), ("call_b", "g", {"y": 2})]


async def test_a_slow_start_sends_message_start_then_pings(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "HEADERS_AFTER", 0.05)
    monkeypatch.setattr(engine, "KEEPALIVE_EVERY", 0.05)
    sim.script("gpt-4o-mini", [text("late"), Sleep(0.3), text(" answer"), DONE], headers_after=0.3)
    raw = await raw_stream(http, gw, model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    evs = events(raw)
    names = [n for n, _ in evs]
    assert names[0] == "message_start" and names[1] == "ping"  # committed before Poe answered
    assert "ping" in names[names.index("content_block_start") :]  # and while Poe is silent mid-answer
    blocks = check_sequence(evs)
    assert blocks == [{"type": "text", "text": "late answer"}]
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 0  # not counted yet when the stream opened
    assert evs[-2][1]["usage"]["input_tokens"] > 0  # the message_delta has it


async def test_output_files_come_as_markdown_text(gw: Running, http: aiohttp.ClientSession) -> None:
    raw = await raw_stream(http, gw, model="nano-banana", messages=[{"role": "user", "content": "a cat"}])
    blocks = check_sequence(events(raw))
    assert len(blocks) == 1 and "\n\n![image.png](http://127.0.0.1:" in blocks[0]["text"]


# --- the encoder alone -------------------------------------------------------------------


def test_the_encoder_ends_with_the_stop_sequence_and_skips_empty_text() -> None:
    enc = MessageEncoder("msg_1", "m")
    raw = enc.start(12) + enc.encode([TextDelta(""), TextDelta("Hello"), TextDelta(" world")])
    raw += enc.finish(End("stop", stop_sequence="STOP"), Usage(12, 3))
    evs = events(raw)
    assert check_sequence(evs) == [{"type": "text", "text": "Hello world"}]
    assert evs[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    assert evs[-2][1]["usage"]["output_tokens"] == 3 and evs[0][1]["message"]["usage"]["input_tokens"] == 12
    assert [n for n, _ in evs].count("content_block_delta") == 1  # adjacent text shares one delta

    empty = MessageEncoder("msg_2", "m")
    evs = events(empty.encode([TextDelta("")]) + empty.finish(End("length"), Usage(1, 0)))
    assert check_sequence(evs) == [] and evs[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_the_encoder_interleaves_blocks_in_order() -> None:
    enc = MessageEncoder("msg_1", "m")
    raw = enc.encode([ReasoningDelta("think"), TextDelta("a"), ReasoningDelta("more")])
    raw += enc.encode([FileDelta("https://x.test/i.png", "i.png", "image/png"), ToolCallDelta(0, "c1", "f", "")])
    raw += enc.encode([ToolCallDelta(0, None, None, "")]) + enc.finish(End(), None)
    blocks = check_sequence(events(raw))
    assert [b["type"] for b in blocks] == ["thinking", "text", "thinking", "text", "tool_use"]
    assert blocks[3]["text"] == "\n\n![i.png](https://x.test/i.png)"
    assert blocks[4]["input"] == {}  # a call without arguments still gets its input as a fragment


def test_omitted_thinking_and_the_encoders_other_frames() -> None:
    enc = MessageEncoder("msg_1", "m", omit_thinking=True)
    evs = events(enc.encode([ReasoningDelta("secret"), TextDelta("ok")]) + enc.finish(End(), Usage(1, 2)))
    names = [n for n, _ in evs]
    assert names[1:5] == ["content_block_start", "content_block_delta", "content_block_stop", "content_block_start"]
    assert evs[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert evs[2][1]["delta"] == {"type": "signature_delta", "signature": signature_of("secret")}
    assert events(enc.keepalive()) == [("ping", {"type": "ping"})]
    err = ApiError(529, "Overloaded", type="api_error")
    assert events(enc.failure(err)) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    ]


# --- a recorded Claude Code request shape ------------------------------------------------


def claude_code_body(model: str, tools: int = 24) -> dict[str, Any]:
    """The shape Claude Code 2.1.332 sends (recorded against a stub; texts shortened): three
    system blocks (a billing header without cache_control), a system message inside
    ``messages``, system reminders, 24 tools with only name, description and input_schema
    (one deferred), adaptive thinking with ``display``, effort, context management, metadata."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "file_path": {"description": "The absolute path to the file to write", "type": "string"},
            "content": {"description": "The content to write to the file", "type": "string"},
        },
        "required": ["file_path", "content"],
        "additionalProperties": False,
    }
    names = ["Write", "Read", "Edit", "Bash", "Agent", "Skill", "ToolSearch", "Workflow"]
    names += [f"mcp__server__tool_{i}" for i in range(tools - len(names))]
    tool_list: list[dict[str, Any]] = [
        {"name": n, "description": f"{n} does one thing. " * 40, "input_schema": schema} for n in names
    ]
    tool_list.append(
        {
            "name": "DeferredToolPlaceholder",
            "description": "x",
            "input_schema": {"type": "object", "properties": {}},
            "defer_loading": True,
        }
    )
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}},
            {
                "type": "text",
                "text": "You are an agent working with the user. " * 400,
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nAttribution for git commits...\n</system-reminder>"},
                    {
                        "type": "text",
                        "text": "Write hello.txt containing hello",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "# Environment\n - Platform: linux",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        "tools": tool_list,
        "metadata": {"user_id": '{"device_id":"b277","account_uuid":"","session_id":"1507"}'},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
    }


CLAUDE_CODE_HEADERS = {
    **HEADERS,
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,"
    "effort-2025-11-24",
    "anthropic-dangerous-direct-browser-access": "true",
    "x-app": "cli",
    "X-Claude-Code-Session-Id": "1507b5df-a63e-4606-a5f6-33fd60b19d89",
}


async def test_a_recorded_claude_code_request_is_served(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    body = claude_code_body("gpt-5")
    async with http.post(gw.url + "/v1/messages/count_tokens?beta=true", headers=CLAUDE_CODE_HEADERS, json=body) as r:
        assert r.status == 200
        counted = (await r.json())["input_tokens"]
    async with http.post(gw.url + "/v1/messages?beta=true", headers=CLAUDE_CODE_HEADERS, json=body) as r:
        assert r.status == 200
        evs = events(await r.read())
    blocks = check_sequence(evs)
    assert blocks[-1]["type"] == "tool_use" and blocks[-1]["name"] == "Write"  # the simulator calls the first tool
    said = "<system-reminder>\nAttribution for git commits...\n</system-reminder>\n\nWrite hello.txt containing hello"
    assert blocks[-1]["input"] == {"file_path": said, "content": said}
    assert evs[0][1]["message"]["usage"]["input_tokens"] == counted > 5000
    query = sim.requests[-1].body["query"]
    assert [m["role"] for m in query] == ["system", "user", "system"]
    system = query[0]["content"]
    assert not system.startswith("x-anthropic-billing-header") and "## mcp__server__tool_15" in system
    assert "DeferredToolPlaceholder" not in system
    assert query[-2]["parameters"] == {"reasoning_effort": "high"}
