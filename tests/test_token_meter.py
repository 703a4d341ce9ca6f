"""The streaming token meter: the count of the whole text, in every chunking, at linear cost."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poe2openai.pipeline.deltas import (
    RESET,
    Delta,
    End,
    FileDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from poe2openai.pipeline.token_meter import CHUNK, HOLD, CompletionMeter, TokenMeter
from poe2openai.pipeline.tokens import count_tokens

from .chunking import cuts, every_two_way_split, splits
from .tokenizer_spy import Spy

# pieces of prose, code, CJK and odd characters, for texts with every kind of token boundary
PIECES = [
    " the",
    " cat",
    "Hello",
    "world",
    "don't",
    " it’s",
    "'s",
    ",",
    ".",
    "!",
    "?",
    "，",
    "。",
    "你好",
    "世界",
    "12345",
    "3.14",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "    return x",
    "😀",
    "é",
    "e\u0301",
    "/",
    "//",
    "\u00a0",
    "\u3000",
    '{"a":1}',
    "<tag>",
    "snake_case",
    "ALLCAPS",
    "camelCase",
]
pieces = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def metered(chunks: list[str]) -> TokenMeter:
    m = TokenMeter()
    for c in chunks:
        m.feed(c)
        assert m.pending <= max(CHUNK, HOLD)
    return m


@settings(max_examples=500, deadline=None)
@given(pieces, cuts)
def test_any_chunking_counts_as_the_whole(text: str, points: list[int]) -> None:
    m = metered(splits(text, points))
    assert m.count() == count_tokens(text)
    assert m.flush() == count_tokens(text)
    assert m.total == count_tokens(text) and m.pending == 0


@pytest.mark.parametrize(
    "text", ["Hello world, it's me.", "你好，世界。\n再见！", "def f(x):\n    return x.y", "a  b\n\n c"]
)
def test_every_two_way_split(text: str) -> None:
    for chunks in every_two_way_split(text):
        assert metered(chunks).flush() == count_tokens(text), chunks


def long_runs(seed: int) -> str:
    """Text with stretches of several HOLDs without a space or line break (base64-like, CJK)."""
    rnd = random.Random(seed)
    b64 = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3 * HOLD))
    cjk = "".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(2 * HOLD + 7))
    return f"Here is the data: {b64} and the poem {cjk} end."


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3), cuts)
def test_forced_cuts_are_the_same_in_every_chunking(seed: int, points: list[int]) -> None:
    text = long_runs(seed)
    whole = metered([text]).flush()
    assert metered(splits(text, points)).flush() == whole
    # each forced cut may change the count by about a token
    assert abs(whole - count_tokens(text)) <= 2 * (len(text) // HOLD)


def test_a_long_run_is_counted_char_by_char_with_little_pending() -> None:
    text = long_runs(9)
    assert metered(list(text)).flush() == metered([text]).flush()


def test_count_does_not_disturb_the_stream() -> None:
    m = TokenMeter()
    text = "One two three, four five six. Seven"
    for i in range(0, len(text), 4):
        m.feed(text[i : i + 4])
        assert m.count() == count_tokens(text[: i + 4])
    assert m.flush() == count_tokens(text)
    m.reset()
    assert m.total == 0
    m.feed("again")
    assert m.flush() == count_tokens("again")


def megabyte() -> str:
    rnd = random.Random(1)
    words = [p for p in PIECES if p.strip()] + ["lorem", "ipsum", "dolor", "sit", "amet"]
    return "".join(rnd.choice(words) + rnd.choice([" ", " ", " ", "\n", ", "]) for _ in range(150_000))[: 1 << 20]


def test_each_character_is_tokenized_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy.install(monkeypatch)
    text = megabyte()
    rnd = random.Random(2)
    m = TokenMeter()
    pos = 0
    while pos < len(text):
        step = rnd.choice([1, 3, 17, 200, 5000])
        m.feed(text[pos : pos + step])
        pos += step
    total = m.flush()
    assert spy.chars == len(text)
    assert len(spy.sizes) <= len(text) // min(CHUNK, HOLD) + 1  # in chunks, not per delta
    whole = TokenMeter()
    whole.feed(text)
    assert whole.flush() == total == spy.real.encode_ordinary(text).__len__()


# --- the completion meter -------------------------------------------------------------------


def completion(deltas: list[Delta], points: list[int]) -> tuple[int, int]:
    """Feed the deltas with their texts cut at ``points``, one batch per delta."""
    m = CompletionMeter()
    for d in deltas:
        if isinstance(d, (TextDelta, ReasoningDelta)) and d.text:
            for piece in splits(d.text, points):
                assert m.feed([type(d)(piece)]) == [type(d)(piece)]
        elif isinstance(d, ToolCallDelta) and d.arguments:
            for i, piece in enumerate(splits(d.arguments, points)):
                head = i == 0
                m.feed([ToolCallDelta(d.index, d.id if head else None, d.name if head else None, piece)])
        else:
            m.feed([d])
    return m.completion_tokens, m.reasoning_tokens


@settings(max_examples=300, deadline=None)
@given(pieces, pieces, pieces, cuts)
def test_completion_meter_counts_every_kind(reasoning: str, answer: str, arguments: str, points: list[int]) -> None:
    deltas: list[Delta] = [
        ReasoningDelta(reasoning),
        TextDelta(answer),
        UsageDelta(1, 2),
        ToolCallDelta(0, "call_1", "get_weather", arguments),
        FileDelta("https://x/y.png", "y.png", "image/png"),
        End(),
    ]
    want = count_tokens(reasoning) + count_tokens(answer) + count_tokens("get_weather") + count_tokens(arguments)
    assert completion(deltas, points) == (want, count_tokens(reasoning))


def test_completion_meter_reset_keeps_only_the_replacement_and_the_calls() -> None:
    deltas: list[Delta] = [
        ReasoningDelta("first thoughts"),
        TextDelta("a first draft of the answer"),
        ToolCallDelta(0, "call_1", "read_file", '{"path": "a.txt"}'),
        TextDelta("more draft"),
        RESET,
        ReasoningDelta("new thoughts"),
        TextDelta("the final answer"),
        End(),
    ]
    call = count_tokens("read_file") + count_tokens('{"path": "a.txt"}')
    want = count_tokens("new thoughts") + count_tokens("the final answer") + call
    assert completion(deltas, [3, 7]) == (want, count_tokens("new thoughts"))


def test_a_kind_that_comes_back_is_a_new_text() -> None:
    deltas: list[Delta] = [TextDelta("Hello"), ReasoningDelta("hm"), TextDelta("world"), End()]
    want = count_tokens("Hello") + count_tokens("hm") + count_tokens("world")
    assert completion(deltas, []) == (want, count_tokens("hm"))
