"""The XML tool-call extractor: the same calls and text for every chunking."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from poe2openai.conversation import ToolPlan, ToolSpec
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
    calls = [(d.index, d.name or "", orjson.loads(d.arguments)) for d in out if isinstance(d, ToolCallDelta)]
    assert all(
        isinstance(d, ToolCallDelta) and d.id and d.id.startswith("call_") for d in out if isinstance(d, ToolCallDelta)
    )
    return text, calls


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
    block = f"<tool_call>\n<name>get_weather</name>\n<arguments>{deep}</arguments>\n</tool_call>"
    text, calls = extract([block])
    assert calls == [] and text == block
    xml = f'<invoke name="get_weather"><parameter name="extra">{deep}</parameter></invoke>'
    text, calls = extract([xml])  # the parameter stays the bot's text
    assert calls == [(0, "get_weather", {"extra": deep})]
    assert parse_json_arguments('{"a":' * 100 + "1" + "}" * 100) is not None
