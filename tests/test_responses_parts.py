"""The Responses dialect's parts without HTTP: Codex's recorded requests, the response store, and
free-form tools in the prompt and the extractor (also for native bots)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from poe2openai.conversation import OutputFormat, ToolPlan, ToolSpec
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_responses.request import conversation, parse_body
from poe2openai.frontends.openai_responses.response import ResponseMeta
from poe2openai.frontends.openai_responses.store import ResponseStore, owner_of
from poe2openai.frontends.openai_responses.stream import ResponsesEncoder
from poe2openai.frontends.openai_responses.tools import read_tools
from poe2openai.pipeline.deltas import End, ReasoningDelta, TextDelta, ToolCallDelta
from poe2openai.poe.query import QueryOptions, build_query
from poe2openai.tools.prompt import instructions, render_messages
from poe2openai.tools.xml_extract import XmlToolExtractor, parse_block

CODEX = json.loads((Path(__file__).parent / "data" / "codex_requests.json").read_text())
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+x < y && {"k": 1}\n*** End Patch'
FREEFORM = ToolSpec("apply_patch", "Edit files", {}, freeform=True, input_format="a patch")
FUNCTION = ToolSpec("exec_command", "Run", {"type": "object", "properties": {"cmd": {"type": "string"}}})
PLAN = ToolPlan((FREEFORM, FUNCTION), by_name={"apply_patch": FREEFORM, "exec_command": FUNCTION})


# --- Codex's requests ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unknown_model", "gpt-5.5", "default_model"])
def test_codex_requests_parse(name: str) -> None:
    body = CODEX[name]
    parsed = parse_body(body)
    req = conversation(parsed, [])
    assert req.stream and req.stream_usage and not parsed.store
    roles = [m.role for m in req.messages]
    assert roles[0] == "developer" and roles[-1] == "user"
    assert req.messages[-1].text == "Say hello"
    names = {t.name for t in req.tools.tools}
    assert req.tools.active and req.tools.choice == "auto"
    if name == "unknown_model":
        assert "exec_command" in names and "multi_agent_v1.spawn_agent" in names
        assert parsed.tools.namespaced["multi_agent_v1.spawn_agent"] == ("multi_agent_v1", "spawn_agent")
        assert parsed.tools.web_search and req.reasoning.if_supported == {"web_search": True}
    elif name == "gpt-5.5":
        patch = req.tools.by_name["apply_patch"]
        assert patch.freeform and "begin_patch" in patch.input_format
        assert req.reasoning.effort == "medium"
    else:  # the tools arrive in an additional_tools input item, grouped in namespaces
        assert {"exec", "wait", "collaboration.spawn_agent", "clock.sleep"} <= names
        assert req.tools.by_name["exec"].freeform
        assert parsed.tools.namespaced["exec"] == ("functions", "exec")
    # the whole conversation reaches Poe as one query, the tool instructions in the system prompt
    rendered = render_messages(req.messages, req.tools, {})
    query = build_query(req, QueryOptions(), rendered)["query"]
    assert query[0]["role"] == "system" and "# Tools" in query[0]["content"]


def test_codex_turn_after_a_tool_call_parses() -> None:
    """Codex's second request: the whole history again, its call and the call's output."""
    req = conversation(parse_body(CODEX["unknown_model_after_tool"]), [])
    call, result = req.messages[-2:]
    assert call.role == "assistant" and [(c.id, c.name) for c in call.tool_calls] == [("call_abc", "exec_command")]
    assert result.role == "tool" and result.tool_call_id == "call_abc" and "hi.txt" in result.text
    rendered = render_messages(req.messages, req.tools, {})
    assert rendered[-1]["content"].startswith('<tool_result name="exec_command">')


def test_codex_history_turn_parses() -> None:
    """A later Codex turn: its reasoning item, a call of a namespaced tool, outputs as parts."""
    body = dict(CODEX["unknown_model"])
    body["input"] = [
        *body["input"],
        {"type": "reasoning", "summary": [], "content": None, "encrypted_content": None},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "name": "exec_command", "arguments": '{"cmd":"ls"}', "call_id": "call_1"},
        {
            "type": "function_call",
            "name": "spawn_agent",
            "namespace": "multi_agent_v1",
            "arguments": "{}",
            "call_id": "call_2",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "a.txt"}]},
        {"type": "function_call_output", "call_id": "call_2", "output": "spawned"},
    ]
    req = conversation(parse_body(body), [])
    assistant = req.messages[-3]
    assert assistant.role == "assistant" and assistant.text == "Let me look."
    assert [(c.name, c.arguments) for c in assistant.tool_calls] == [
        ("exec_command", '{"cmd":"ls"}'),
        ("multi_agent_v1.spawn_agent", "{}"),
    ]
    assert [(m.role, m.tool_call_id, m.text) for m in req.messages[-2:]] == [
        ("tool", "call_1", "a.txt"),
        ("tool", "call_2", "spawned"),
    ]


def test_namespaced_call_comes_back_with_its_namespace() -> None:
    parsed = parse_body(CODEX["unknown_model"])
    enc = ResponsesEncoder(ResponseMeta("resp_1", "m", parsed.echo), parsed.tools, parsed.call.tools)
    enc.encode([ToolCallDelta(0, "call_9", "multi_agent_v1.spawn_agent", '{"task": "x"}')])
    enc.finish(End(), None)
    (item,) = enc.output
    assert item["type"] == "function_call" and item["name"] == "spawn_agent"
    assert item["namespace"] == "multi_agent_v1" and item["call_id"] == "call_9"


def test_max_output_tokens_and_sampling_reach_the_engine() -> None:
    parsed = parse_body({"model": "m", "input": "hi", "max_output_tokens": 77, "temperature": 0.5, "top_p": 0.3})
    req = conversation(parsed, [])
    assert req.max_tokens == 77 and req.temperature == 0.5 and req.stream_usage
    assert parsed.echo["top_p"] == 0.3 and parsed.echo["max_output_tokens"] == 77


def test_text_format_becomes_the_engines_output_format() -> None:
    fmt = {"type": "json_schema", "name": "City", "schema": {"type": "object"}, "strict": True}
    parsed = parse_body({"model": "m", "input": "hi", "text": {"format": fmt, "verbosity": "low"}})
    assert parsed.call.output == OutputFormat("json_schema", {"type": "object"}, "City", "", True)
    assert parsed.echo["text"] == {"format": fmt, "verbosity": "low"}
    plain = parse_body({"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}})
    assert plain.call.output == OutputFormat("json_object")
    assert not parse_body({"model": "m", "input": "hi"}).call.output.structured
    for bad, param in [
        ({"type": "json_schema", "name": "x"}, "text.format.schema"),
        ({"type": "json_schema", "name": "a b", "schema": {}}, "text.format.name"),
        ({"type": "json_schema", "name": "x", "schema": {"type": 3}}, "text.format.schema"),
    ]:
        with pytest.raises(ApiError) as caught:
            parse_body({"model": "m", "input": "hi", "text": {"format": bad}})
        assert caught.value.param == param


def test_duplicate_tool_names_are_refused() -> None:
    tool = {"type": "function", "name": "f"}
    with pytest.raises(ApiError) as caught:
        read_tools([tool, {"type": "custom", "name": "f"}], [])
    assert caught.value.status == 400 and caught.value.param == "tools[1].name"


def test_stream_event_order_for_reasoning_text_and_a_call() -> None:
    enc = ResponsesEncoder(ResponseMeta("resp_1", "m", {}), read_tools(None, []), PLAN)
    out = enc.encode([ReasoningDelta("Hmm"), ReasoningDelta(" ok"), TextDelta("Hi"), TextDelta("!")])
    out += enc.encode([ToolCallDelta(0, "call_1", "apply_patch", PATCH[:10]), ToolCallDelta(0, None, None, PATCH[10:])])
    out += enc.finish(End(), None)
    events = [json.loads(line[6:]) for line in out.decode().splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[4]["delta"] == "Hmm ok" and events[10]["delta"] == "Hi!"
    assert [o["type"] for o in events[-1]["response"]["output"]] == ["reasoning", "message", "custom_tool_call"]
    assert events[-1]["response"]["output"][2]["input"] == PATCH


# --- the store ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def response(rid: str, text: str = "x") -> dict[str, Any]:
    message = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
    return {"id": rid, "output": [message]}


def test_store_chain_owner_age_and_size() -> None:
    clock = Clock()
    store = ResponseStore(10_000, 60, clock)
    alice, bob = owner_of("key-a"), owner_of("key-b")
    assert alice != bob and "key-a" not in alice
    store.put(alice, response("r1", "one"), [{"role": "user", "content": "q1"}], None)
    store.put(alice, response("r2", "two"), [{"role": "user", "content": "q2"}], "r1")
    history = store.history(alice, "r2")
    assert history is not None
    assert [i.get("content") if "role" in i and i["role"] == "user" else i["content"][0]["text"] for i in history] == [
        "q1",
        "one",
        "q2",
        "two",
    ]
    assert store.history(bob, "r2") is None and store.get(bob, "r1") is None

    clock.now += 61  # expired
    assert store.get(alice, "r1") is None and store.history(alice, "r2") is None and len(store) == 0

    small = ResponseStore(400, 60, clock)
    for i in range(10):
        small.put(alice, response(f"s{i}", "y" * 50), [], None)
    assert small.size <= 400 and small.get(alice, "s9") is not None and small.get(alice, "s0") is None
    small.put(alice, response("huge", "z" * 1000), [], None)  # larger than the whole store: not kept
    assert small.get(alice, "huge") is None and small.get(alice, "s9") is not None
    assert small.delete(alice, "s9") and not small.delete(alice, "s9")

    off = ResponseStore(0, 60, clock)
    off.put(alice, response("r"), [], None)
    assert not off.enabled and off.get(alice, "r") is None


def test_store_evicted_link_breaks_the_chain() -> None:
    store = ResponseStore(10_000, 60, Clock())
    owner = owner_of("k")
    store.put(owner, response("a"), [], None)
    store.put(owner, response("b"), [], "a")
    store.delete(owner, "a")
    assert store.get(owner, "b") is not None and store.history(owner, "b") is None


def test_long_history_is_fast_to_parse() -> None:
    """Codex re-sends the whole history every turn: 2,000 items parse well under a second."""
    items: list[Any] = [{"role": "user", "content": "start"}]
    for i in range(500):
        items += [
            {"type": "function_call", "name": "exec_command", "arguments": '{"cmd": "ls"}', "call_id": f"c{i}"},
            {"type": "function_call_output", "call_id": f"c{i}", "output": "file.txt\n" * 20},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok " * 30}]},
            {"role": "user", "content": [{"type": "input_text", "text": "next"}]},
        ]
    body = {"model": "m", "input": items, "tools": CODEX["unknown_model"]["tools"]}
    started = time.perf_counter()
    req = conversation(parse_body(body), [])
    render_messages(req.messages, req.tools, {})
    assert len(req.messages) == 2001
    assert time.perf_counter() - started < 1.0


# --- free-form tools in the prompt and the extractor --------------------------------------


def test_prompt_teaches_raw_input_only_when_a_tool_is_freeform() -> None:
    block = instructions(PLAN)
    assert "<input>" in block and "free-form" in block
    assert "## apply_patch\nEdit files\nInput: free-form text in <input> (not JSON)\nInput format: a patch" in block
    assert "## exec_command\nRun\nParameters (JSON Schema): " in block
    plain = ToolPlan((FUNCTION,), by_name={"exec_command": FUNCTION})
    assert "<input>" not in instructions(plain) and "free-form" not in instructions(plain)


@pytest.mark.parametrize(
    "block",
    [
        f"<tool_call>\n<name>apply_patch</name>\n<input>\n{PATCH}\n</input>\n</tool_call>",
        f"<tool_call><name>apply_patch</name><input>{PATCH}</input></tool_call>",
        f"<tool_call>\n<name>apply_patch</name>\n<arguments>\n{PATCH}\n</arguments>\n</tool_call>",
        "<tool_call>\n<name>apply_patch</name>\n<arguments>"
        + json.dumps({"input": PATCH})
        + "</arguments>\n</tool_call>",
        '<tool_call>{"name": "apply_patch", "arguments": ' + json.dumps({"input": PATCH}) + "}</tool_call>",
        f'<invoke name="apply_patch">\n<parameter name="input">{PATCH}</parameter>\n</invoke>',
        f"<tool_call><apply_patch>\n{PATCH}\n</apply_patch></tool_call>",
    ],
)
def test_freeform_call_forms_give_the_raw_text(block: str) -> None:
    assert parse_block(block, PLAN.by_name) == [("apply_patch", PATCH)]


def test_extractor_streams_a_freeform_call_split_anywhere() -> None:
    answer = f"Here.\n<tool_call>\n<name>apply_patch</name>\n<input>\n{PATCH}\n</input>\n</tool_call>"
    ex = XmlToolExtractor(PLAN)
    out: list[Any] = []
    for i in range(0, len(answer), 3):
        out += ex.feed([TextDelta(answer[i : i + 3])])
    out += ex.feed([End()])
    calls = [d for d in out if isinstance(d, ToolCallDelta)]
    assert [(c.name, c.arguments) for c in calls] == [("apply_patch", PATCH)]
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == "Here.\n"


def test_freeform_call_written_as_json_arguments_is_not_streamed_as_json() -> None:
    answer = (
        "<tool_call>\n<name>apply_patch</name>\n<arguments>"
        + json.dumps({"input": PATCH})
        + "</arguments>\n</tool_call>"
    )
    ex = XmlToolExtractor(PLAN)
    out: list[Any] = []
    for i in range(0, len(answer), 5):
        out += ex.feed([TextDelta(answer[i : i + 5])])
    out += ex.feed([End()])
    calls = [d for d in out if isinstance(d, ToolCallDelta)]
    assert [(c.name, c.arguments) for c in calls] == [("apply_patch", PATCH)]


def test_native_freeform_call_is_unwrapped_to_raw_text() -> None:
    ex = XmlToolExtractor(PLAN)
    args = json.dumps({"input": PATCH})
    out = ex.feed([ToolCallDelta(0, "call_1", "apply_patch", args[:7])])
    out += ex.feed([ToolCallDelta(0, None, None, args[7:]), ToolCallDelta(1, "call_2", "exec_command", "{}")])
    assert [d.name for d in out if isinstance(d, ToolCallDelta)] == ["exec_command"]  # function calls pass at once
    out += ex.feed([End()])
    calls = [d for d in out if isinstance(d, ToolCallDelta) and d.name == "apply_patch"]
    assert [(c.index, c.id, c.arguments) for c in calls] == [(0, "call_1", PATCH)]
    assert isinstance(out[-1], End)
    assert FREEFORM.as_openai()["function"]["parameters"]["required"] == ["input"]
