"""The thinking split: same reasoning and answer for every chunking of the same text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poe2openai.pipeline.deltas import RESET, Delta, End, ReasoningDelta, TextDelta
from poe2openai.pipeline.thinking import ThinkingSplitter

from .chunking import cuts, every_two_way_split, splits


def split(chunks: list[str], per_batch: bool = True) -> tuple[str, str]:
    s = ThinkingSplitter()
    out: list[Delta] = []
    if per_batch:
        for c in chunks:
            out += s.feed([TextDelta(c)])
        out += s.feed([End()])
    else:
        out = s.feed([*(TextDelta(c) for c in chunks), End()])
    assert isinstance(out[-1], End)
    reasoning = "".join(d.text for d in out if isinstance(d, ReasoningDelta))
    content = "".join(d.text for d in out if isinstance(d, TextDelta))
    assert all(d.text for d in out if isinstance(d, (TextDelta, ReasoningDelta))), "no empty deltas"
    return reasoning, content


CASES = [
    # (whole text, reasoning, content)
    ("*Thinking...*\n\n> step one\n> step two\n\nThe answer is 4.", "step one\nstep two", "The answer is 4."),
    (
        "*Thinking...*\n\n> **Checking the arithmetic**\n> \n> 17 × 19 = 17 × 20 − 17 = 323.\n> \n\n17 × 19 = **323**.",
        "**Checking the arithmetic**\n\n17 × 19 = 17 × 20 − 17 = 323.",
        "17 × 19 = **323**.",
    ),
    (
        "*Thinking...*\n\n> **Weighing the evidence**\n> \n> The gap cannot be MTM noise.\n\n"
        "My verdict:\n\n> **Not a full pass yet.**\n",
        "**Weighing the evidence**\n\nThe gap cannot be MTM noise.",
        "My verdict:\n\n> **Not a full pass yet.**\n",
    ),
    (
        "Thinking...\n\n> The user wants a haiku about rain.\n> Five-seven-five.\n\nSoft rain on tin roofs"
        "\nwhispers the night into sleep\ndawn wakes washed and new",
        "The user wants a haiku about rain.\nFive-seven-five.",
        "Soft rain on tin roofs\nwhispers the night into sleep\ndawn wakes washed and new",
    ),
    (
        "<think>\nThe user greets me. Reply briefly.\n</think>\n\nHello! How can I help?",
        "The user greets me. Reply briefly.",
        "Hello! How can I help?",
    ),
    ("*Thinking...*\n> last line no newline", "last line no newline", ""),
    ("Hello. Thinking... about it\n> x\n\nDone", "", "Hello. Thinking... about it\n> x\n\nDone"),
    ("Intro text\n*Thinking...*\n> r1\n\nFinal", "", "Intro text\n*Thinking...*\n> r1\n\nFinal"),
    ("*Thinking...*\n> a\n>\n> b\n\n> quoted answer\nreal answer", "a\n\nb\n\nquoted answer", "real answer"),
    ("*Thinking...*\nNo quotes follow.", "", "*Thinking...*\nNo quotes follow."),
    ("  **THINKING…**  \n>tight\n>lines\nanswer", "tight\nlines", "answer"),
    ("The capital of Nepal is Kathmandu.", "", "The capital of Nepal is Kathmandu."),
    ("Thin ice.", "", "Thin ice."),
    ("", "", ""),
    ("<think>unterminated thought", "unterminated thought", ""),
    ("> a quote first\nthen text", "", "> a quote first\nthen text"),
    ("*Thinking...*\n> a\n> ", "a", ""),
    ("*Thinking...*\n> a\n   ", "a", ""),
    ("*Thinking...*\n\n>", "", "*Thinking...*\n\n>"),
]


@pytest.mark.parametrize(("text", "reasoning", "content"), CASES)
def test_every_two_way_split(text: str, reasoning: str, content: str) -> None:
    for chunks in every_two_way_split(text):
        assert split(chunks) == (reasoning, content), chunks
        assert split(chunks, per_batch=False) == (reasoning, content), chunks


@settings(max_examples=300)
@given(st.sampled_from(CASES), cuts)
def test_any_chunking_of_known_answers(case: tuple[str, str, str], points: list[int]) -> None:
    text, reasoning, content = case
    assert split(splits(text, points)) == (reasoning, content)


pieces = st.sampled_from(
    [
        "*Thinking...*",
        "Thinking...",
        "<think>",
        "</think>",
        "\n",
        "\n\n",
        ">",
        "> ",
        " ",
        "a",
        "Answer",
        "**b**",
        "…",
        "<",
        "*",
        "\r",
    ]
)


@settings(max_examples=500)
@given(st.lists(pieces, max_size=25), cuts)
def test_any_text_any_chunking_same_result(parts: list[str], points: list[int]) -> None:
    text = "".join(parts)
    assert split(splits(text, points)) == split([text])


def test_quote_line_streams_before_its_newline() -> None:
    s = ThinkingSplitter()
    assert s.feed([TextDelta("*Thinking...*\n\n> ")]) == []
    assert s.feed([TextDelta("Checking")]) == [ReasoningDelta("Checking")]
    assert s.feed([TextDelta(" more")]) == [ReasoningDelta(" more")]
    assert s.feed([TextDelta("\n\nAns")]) == [TextDelta("Ans")]
    assert s.feed([TextDelta("wer")]) == [TextDelta("wer")]


def test_plain_answers_are_not_held_back() -> None:
    s = ThinkingSplitter()
    assert s.feed([TextDelta("Hello")]) == [TextDelta("Hello")]
    assert s.feed([TextDelta(" world")]) == [TextDelta(" world")]


def test_replace_response_starts_the_split_over() -> None:
    s = ThinkingSplitter()
    out = s.feed([TextDelta("plain draft"), RESET, TextDelta("*Thinking...*\n> r\n\nfinal"), End()])
    assert out == [TextDelta("plain draft"), RESET, ReasoningDelta("r"), TextDelta("final"), End()]
