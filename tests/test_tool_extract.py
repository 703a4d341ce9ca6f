"""The XML tool-call extractor: the same calls and text for every chunking."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.errors import MAX_NESTING
from poe2openai.pipeline.deltas import RESET, Delta, End, TextDelta, ToolCallDelta
from poe2openai.tools.arguments import coerce, parse_json_arguments
from poe2openai.tools.xml_extract import XmlToolExtractor

from .chunking import cuts, every_two_way_split, splits

WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "tags": {"type": "array"},
            "extra": {"type": "object"},
            "ratio": {"type": "number"},
        },
        "required": ["city"],
    },
)
READ = ToolSpec("read_file", "", {"type": "object", "properties": {"path": {"type": "string"}}})


def plan(parallel: bool = True) -> ToolPlan:
    return ToolPlan((WEATHER, READ), "auto", None, parallel, {"get_weather": WEATHER, "read_file": READ})


def extract(chunks: list[str], parallel: bool = True) -> tuple[str, list[tuple[int, str, Any]]]:
    x = XmlToolExtractor(plan(parallel))
    out: list[Delta] = []
    for c in chunks:
        out += x.feed([TextDelta(c)])
    out += x.feed([End()])
    assert isinstance(out[-1], End)
    text = "".join(d.text for d in out if isinstance(d, TextDelta))
    return text, assemble(out)


def assemble(out: list[Delta]) -> list[tuple[int, str, Any]]:
    """The calls as a client puts them together: the first delta of an index names it (and has
    an id), later ones add argument fragments."""
    calls: dict[int, tuple[str, list[str]]] = {}
    for d in out:
        if isinstance(d, ToolCallDelta):
            if d.index not in calls:
                assert d.id and d.id.startswith("call_") and d.name
                calls[d.index] = (d.name, [])
            else:
                assert d.id is None and d.name is None
            calls[d.index][1].append(d.arguments)
    return [(i, name, orjson.loads("".join(parts))) for i, (name, parts) in sorted(calls.items())]


CALL = '<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Paris"}</arguments>\n</tool_call>'
CASES: list[tuple[str, str, list[tuple[int, str, Any]]]] = [
    ("Let me check.\n\n" + CALL, "Let me check.\n\n", [(0, "get_weather", {"city": "Paris"})]),
    (
        CALL + "\n" + CALL.replace("Paris", "Rome") + "\nI called two tools.",
        "",
        [(0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Rome"})],
    ),
    (
        '<tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris &amp; Co</parameter>\n'
        '<parameter name="days">5</parameter>\n<parameter name="metric">true</parameter>\n'
        '<parameter name="tags">["a", "b"]</parameter>\n<parameter name="extra">{"k": 1}</parameter>\n'
        '<parameter name="ratio">0.5</parameter>\n</invoke>\n</tool_call>',
        "",
        [
            (
                0,
                "get_weather",
                {"city": "Paris & Co", "days": 5, "metric": True, "tags": ["a", "b"], "extra": {"k": 1}, "ratio": 0.5},
            )
        ],
    ),
    (
        'Reading.<invoke name="read_file"><parameter name="path">a.py</parameter></invoke>',
        "Reading.",
        [(0, "read_file", {"path": "a.py"})],
    ),
    (
        '<function_calls>\n<invoke name="read_file">\n<parameter name="path">x</parameter>\n</invoke>\n'
        '<invoke name="get_weather">\n<parameter name="city">Oslo</parameter>\n</invoke>\n</function_calls>',
        "",
        [(0, "read_file", {"path": "x"}), (1, "get_weather", {"city": "Oslo"})],
    ),
    ("```xml\n" + CALL + "\n```\n", "", [(0, "get_weather", {"city": "Paris"})]),
    (
        '<tool_call>\n<name>get_weather</name>\n<arguments>\n```json\n{"city": "Lima",}\n```\n'
        "</arguments>\n</tool_call>",
        "",
        [(0, "get_weather", {"city": "Lima"})],
    ),
    ('<tool_call>{"name": "read_file", "arguments": {"path": "b"}}</tool_call>', "", [(0, "read_file", {"path": "b"})]),
    ("<tool_call><read_file><path>c.txt</path></read_file></tool_call>", "", [(0, "read_file", {"path": "c.txt"})]),
    # not calls: unknown tool, bad arguments, prose about the format, other XML, comparisons
    (
        "<tool_call>\n<name>launch_rockets</name>\n<arguments>{}</arguments>\n</tool_call>",
        "<tool_call>\n<name>launch_rockets</name>\n<arguments>{}</arguments>\n</tool_call>",
        [],
    ),
    (
        "<tool_call>\n<name>get_weather</name>\n<arguments>{not json</arguments>\n</tool_call>",
        "<tool_call>\n<name>get_weather</name>\n<arguments>{not json</arguments>\n</tool_call>",
        [],
    ),
    (
        "Wrap calls in <tool_call> tags, like <invoke> elements.",
        "Wrap calls in <tool_call> tags, like <invoke> elements.",
        [],
    ),
    ("<read_file>\n<path>src/a.py</path>\n</read_file>", "<read_file>\n<path>src/a.py</path>\n</read_file>", []),
    ("if a < b and c<d: `code` and\n``` fence\n```", "if a < b and c<d: `code` and\n``` fence\n```", []),
    (
        '<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Nice"}</arguments>',
        "",
        [(0, "get_weather", {"city": "Nice"})],
    ),  # unclosed at the end, still a valid call
    ("plain answer with no tags", "plain answer with no tags", []),
    ("ends with <", "ends with <", []),
]


@pytest.mark.parametrize(("answer", "text", "calls"), CASES)
def test_every_two_way_split(answer: str, text: str, calls: list[tuple[int, str, Any]]) -> None:
    for chunks in every_two_way_split(answer):
        assert extract(chunks) == (text, calls), chunks


@settings(max_examples=300)
@given(cuts)
def test_any_chunking(points: list[int]) -> None:
    for answer, text, calls in CASES:
        assert extract(splits(answer, points)) == (text, calls)


def test_text_before_the_call_streams_immediately() -> None:
    x = XmlToolExtractor(plan())
    assert x.feed([TextDelta("Let me look that up. ")]) == [TextDelta("Let me look that up. ")]
    assert x.feed([TextDelta("<")]) == []
    assert x.feed([TextDelta("b>bold</b>")]) == [TextDelta("<b>bold</b>")]
    assert x.feed([TextDelta("<tool_")]) == []
    assert x.feed([TextDelta("call> is how you call")]) == [TextDelta("<tool_call> is how you call")]


def test_parallel_false_keeps_only_the_first_call() -> None:
    assert extract([CALL + CALL.replace("Paris", "Rome")], parallel=False) == (
        "",
        [(0, "get_weather", {"city": "Paris"})],
    )


def test_reset_keeps_call_indices_distinct() -> None:
    x = XmlToolExtractor(plan())
    out = x.feed([TextDelta(CALL), RESET, TextDelta(CALL), End()])
    assert [d.index for d in out if isinstance(d, ToolCallDelta)] == [0, 1]


def test_argument_helpers() -> None:
    assert parse_json_arguments('```json\n{"a": [1, 2,],}\n```') == {"a": [1, 2]}
    assert parse_json_arguments("") == {}
    assert parse_json_arguments("[1]") is None
    assert coerce("42", {"type": ["integer", "null"]}) == 42
    assert coerce("null", {"type": ["integer", "null"]}) is None
    assert coerce("abc", {"type": "integer"}) == "abc"
    assert coerce("1e3", {"type": "number"}) == 1000.0
    assert coerce(" yes ", {"type": "boolean"}) is True
    assert coerce("x", {"enum": ["x", "y"]}) == "x"


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ("١٢", {"type": "integer"}, "١٢"),  # int() takes Arabic-Indic digits; JSON does not
        ("1_000", {"type": "integer"}, "1_000"),
        ("²", {"type": "number"}, "²"),
        ("nan", {"type": "number"}, "nan"),
        ("inf", {"type": "number"}, "inf"),
        ("1e400", {"type": "number"}, "1e400"),
        ("-7", {"type": "integer"}, -7),
        ("3.0", {"type": "integer"}, 3),
        ("42", {"type": "number"}, 42),
        ("4.5", {"type": "number"}, 4.5),
        ("9" * 30, {"type": "number"}, 1e30),  # as a float: orjson cannot write that integer
        ("9" * 30, {"type": "integer"}, "9" * 30),
        ("9" * 5000, {"type": "integer"}, "9" * 5000),  # past int()'s 4300 digits
        (str(2**64 - 1), {"type": "integer"}, 2**64 - 1),
        (str(2**64), {"type": "integer"}, str(2**64)),
    ],
)
def test_bot_written_numbers_are_plain_ascii_json_numbers(value: str, schema: dict[str, Any], expected: Any) -> None:
    got = coerce(value, schema)
    assert got == expected and type(got) is type(expected)
    orjson.dumps(got)


def test_a_call_too_deep_to_write_back_is_left_as_text() -> None:
    deep = '{"a":' * 300 + "1" + "}" * 300
    block = f'<tool_call>{{"name": "get_weather", "arguments": {deep}}}</tool_call>'
    text, calls = extract([block])
    assert calls == [] and text == block
    # streamed arguments stop at the nesting limit: no deeper text reaches the client
    streamed = f"<tool_call>\n<name>get_weather</name>\n<arguments>{deep}</arguments>\n</tool_call>"
    out = XmlToolExtractor(plan()).feed([TextDelta(streamed), End()])
    args = "".join(d.arguments for d in out if isinstance(d, ToolCallDelta))
    assert args == '{"a":' * MAX_NESTING and not any(isinstance(d, TextDelta) for d in out)
    xml = f'<invoke name="get_weather"><parameter name="extra">{deep}</parameter></invoke>'
    text, calls = extract([xml])  # the parameter stays the bot's text
    assert calls == [(0, "get_weather", {"extra": deep})]
    assert parse_json_arguments('{"a":' * 100 + "1" + "}" * 100) is not None


WRITE = ToolSpec(
    "write_to_file", "", {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
tricky_text = st.text(alphabet='ab"\\{}[],<>/ \n:', max_size=40)


def write_plan(choice: str = "auto") -> ToolPlan:
    return ToolPlan(
        (WRITE, READ),
        choice,
        "write_to_file" if choice == "named" else None,
        True,
        {"write_to_file": WRITE, "read_file": READ},
    )


def run(chunks: list[str], choice: str = "auto") -> list[Delta]:
    x = XmlToolExtractor(write_plan(choice))
    out: list[Delta] = []
    for c in chunks:
        out += x.feed([TextDelta(c)])
    return out + x.feed([End()])


def call_text(args: str, name: str = "write_to_file") -> str:
    return f"<tool_call>\n<name>{name}</name>\n<arguments>{args}</arguments>\n</tool_call>"


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), tricky_text, cuts)
def test_streamed_arguments_are_the_object_in_any_chunking(
    obj: dict[str, Any], content: str, points: list[int]
) -> None:
    obj = {**obj, "content": content}  # strings with quotes, escapes, braces and closing tags
    answer = "Writing.\n" + call_text(orjson.dumps(obj).decode()) + "\nignored"
    out = run(splits(answer, points))
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == "Writing.\n"
    assert assemble(out) == [(0, "write_to_file", obj)]


@settings(max_examples=25, deadline=None, database=None)
@given(st.lists(st.integers(min_value=0, max_value=400_000), max_size=40))
def test_a_large_call_parses_in_any_chunking(points: list[int]) -> None:
    content = "\n".join(f'line {i}: "quoted" \\ back {{brace}} </arguments>' for i in range(6000))
    obj = {"path": "big.txt", "content": content}
    answer = call_text(orjson.dumps(obj).decode())
    assert len(answer) > 300_000
    assert assemble(run(splits(answer, points))) == [(0, "write_to_file", obj)]
    form = (
        '<invoke name="write_to_file"><parameter name="path">big.txt</parameter>'
        f'<parameter name="content">{content.replace("<", "&lt;")}</parameter></invoke>'
    )
    assert assemble(run(splits(form, points))) == [(0, "write_to_file", obj)]


def test_arguments_stream_in_fragments_as_they_arrive() -> None:
    body = orjson.dumps({"path": "a.py", "content": "x = 1\n" * 50}).decode()
    answer = call_text(body)
    chunks = [answer[i : i + 20] for i in range(0, len(answer), 20)]
    x = XmlToolExtractor(write_plan())
    per_chunk = [x.feed([TextDelta(c)]) for c in chunks] + [x.feed([End()])]
    calls = [d for batch in per_chunk for d in batch if isinstance(d, ToolCallDelta)]
    first = calls[0]
    assert (first.index, first.name, first.arguments[:1]) == (0, "write_to_file", "{")
    assert all(d.index == 0 and d.id is None and d.name is None for d in calls[1:])
    assert len(calls) > len(body) // 20 - 5  # one fragment for (nearly) every event
    assert "".join(d.arguments for d in calls) == body


def test_a_trailing_comma_is_dropped_while_streaming() -> None:
    answer = call_text('{"path": "a", "content": [1, 2,\n ],\n}')
    for chunks in every_two_way_split(answer):
        assert assemble(run(chunks)) == [(0, "write_to_file", {"path": "a", "content": [1, 2]})], chunks


@pytest.mark.parametrize(
    "answer",
    [
        call_text('{"path": "a"}', name="launch_rockets"),  # unknown tool
        call_text("{not json"),  # not an object with keys
        call_text('```json\n{"path": "a",}\n```'),  # a fence: parsed whole, not streamed
    ],
)
def test_a_block_that_is_not_a_streamed_call_leaves_no_partial_call(answer: str) -> None:
    for chunks in every_two_way_split(answer):
        out = run(chunks)
        calls = [d for d in out if isinstance(d, ToolCallDelta)]
        # either one whole call (the fence) or none at all, never a started one
        assert len(calls) <= 1 and all(d.id for d in calls), chunks
        if not calls:
            assert "".join(d.text for d in out if isinstance(d, TextDelta)) == answer


@pytest.mark.parametrize("choice", ["required", "named"])
def test_text_before_a_required_call_is_held_back(choice: str) -> None:
    answer = "I will write it now.\n" + call_text('{"path": "a"}')
    out = run([answer[i : i + 5] for i in range(0, len(answer), 5)], choice)
    assert not any(isinstance(d, TextDelta) for d in out)
    assert assemble(out) == [(0, "write_to_file", {"path": "a"})]
    # no call after all: the text is shown at the end
    out = run(["Sorry, ", "I cannot."], choice)
    assert out == [TextDelta("Sorry, I cannot."), End()]
