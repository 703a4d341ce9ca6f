"""max_tokens and stop: the same cut in every chunking, the right finish reason, linear cost."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poe2openai.errors import upstream
from poe2openai.pipeline.deltas import (
    RESET,
    Delta,
    End,
    Failure,
    FileDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from poe2openai.pipeline.driver import Stage
from poe2openai.pipeline.limits import MaxTokens, StopSequences
from poe2openai.pipeline.token_meter import CHUNK, HOLD, CompletionMeter
from poe2openai.pipeline.tokens import _encoding, count_tokens

from .chunking import cuts, splits
from .tokenizer_spy import Spy

ENC = _encoding()
Run = tuple[str, str]  # ("text" | "reasoning" | "name" | "args", text)

WORDS = [
    " the",
    " cat",
    "Hello",
    "world",
    "don't",
    ",",
    ".",
    "!",
    "，",
    "。",
    "你好",
    "世界",
    "12345",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "😀",
    "e\u0301",
    "/",
    '{"a":1}',
    "snake_case",
    "ALLCAPS",
    "unbelievable",
]
texts = st.lists(st.sampled_from(WORDS), max_size=30).map("".join)


def truncated(text: str, n: int) -> tuple[str, bool]:
    """The reference: the text of the first ``n`` tokens (a partial character left out)."""
    toks = ENC.encode_ordinary(text)
    if len(toks) <= n:
        return text, False
    return ENC.decode_bytes(toks[:n]).decode("utf-8", "ignore"), True


def deltas_of(runs: list[Run], points: list[int]) -> list[Delta]:
    """The runs as deltas, each text cut at ``points``; a name starts tool call 0."""
    out: list[Delta] = []
    for kind, text in runs:
        parts = splits(text, points)
        if kind == "name":
            out.append(ToolCallDelta(0, "call_1", text, ""))
        elif kind == "args":
            out += [ToolCallDelta(0, None, None, p) for p in parts]
        elif kind == "text":
            out += [TextDelta(p) for p in parts]
        else:
            out += [ReasoningDelta(p) for p in parts]
    return out


def run(stage: Stage, deltas: list[Delta], batch: int) -> list[Delta]:
    """Feed ``deltas`` in batches of ``batch`` (0: all in one); check the end."""
    size = batch or len(deltas) or 1
    out: list[Delta] = []
    for i in range(0, len(deltas), size):
        out += stage.feed(deltas[i : i + size])
    ends = [i for i, d in enumerate(out) if isinstance(d, (End, Failure))]
    assert ends == [len(out) - 1], out
    assert stage.feed([TextDelta("late"), End()]) == []
    return out


def runs_of(out: list[Delta]) -> tuple[list[Run], str]:
    """Adjacent deltas of one kind merged; and the finish reason."""
    runs: list[Run] = []
    for d in out:
        if isinstance(d, ToolCallDelta):
            if d.name is not None:
                runs.append(("name", d.name))
            if d.arguments:
                runs.append(("args", d.arguments))
        elif isinstance(d, (TextDelta, ReasoningDelta)):
            assert d.text, "no empty deltas"
            runs.append(("text" if isinstance(d, TextDelta) else "reasoning", d.text))
        else:
            continue
        if len(runs) > 1 and runs[-1][0] == runs[-2][0] and runs[-1][0] != "name":
            runs[-2:] = [(runs[-2][0], runs[-2][1] + runs[-1][1])]
    last = out[-1]
    assert isinstance(last, End)
    return runs, last.finish_reason


def limited(runs: list[Run], n: int) -> tuple[list[Run], str]:
    """The reference for MaxTokens: each run counted alone, the budget shared, in order."""
    kept: list[Run] = []
    for kind, text in runs:
        if kind == "name":
            if count_tokens(text) > n:
                return kept, "length"
            n -= count_tokens(text)
            kept.append((kind, text))
            continue
        part, cut = truncated(text, n)
        if part:
            kept.append((kind, part))
        if cut:
            return kept, "length"
        n -= count_tokens(text)
    return kept, "stop"


# --- MaxTokens ------------------------------------------------------------------------------


class Peeking(MaxTokens):
    """Reads the count after every batch, as an encoder may."""

    def feed(self, batch: list[Delta]) -> list[Delta]:
        out = super().feed(batch)
        assert self.completion_tokens >= 0
        return out


@settings(max_examples=500, deadline=None)
@given(texts, st.integers(0, 40), cuts, st.sampled_from([1, 0, 3]), st.booleans())
def test_max_tokens_cuts_at_the_limit_in_every_chunking(
    text: str, n: int, points: list[int], batch: int, peek: bool
) -> None:
    stage = (Peeking if peek else MaxTokens)(n)
    out = run(stage, [*deltas_of([("text", text)], points), End()], batch)
    got, reason = runs_of(out)
    want, cut = truncated(text, n)
    assert got == ([("text", want)] if want else [])
    assert reason == ("length" if cut else "stop")
    assert count_tokens(want) <= n
    assert stage.completion_tokens == count_tokens(want)


@settings(max_examples=400, deadline=None)
@given(texts, texts, texts, st.integers(0, 60), cuts, st.sampled_from([1, 0, 2]))
def test_max_tokens_counts_reasoning_and_tool_calls(
    reasoning: str, answer: str, arguments: str, n: int, points: list[int], batch: int
) -> None:
    runs: list[Run] = [("reasoning", reasoning), ("text", answer), ("name", "get_weather"), ("args", arguments)]
    stage = MaxTokens(n)
    out = run(stage, [*deltas_of(runs, points), End()], batch)
    got, reason = runs_of(out)
    want, want_reason = limited([r for r in runs if r[1]], n)
    assert (got, reason) == (want, want_reason)
    meter = CompletionMeter()
    meter.feed(out)
    assert stage.completion_tokens == meter.completion_tokens <= n
    assert stage.reasoning_tokens == meter.reasoning_tokens


def test_the_last_word_is_held_near_the_limit_then_cut_on_its_end() -> None:
    m = MaxTokens(count_tokens("Hello world"))
    assert m.feed([TextDelta("Hello wor")]) == [TextDelta("Hello")]
    assert m.feed([TextDelta("ld again")]) == [TextDelta(" world")]
    assert m.feed([UsageDelta(3, 4)]) == [UsageDelta(3, 4)]
    assert m.feed([End()]) == [End("length")]
    assert m.ended and m.completion_tokens == 2


def test_far_from_the_limit_deltas_pass_as_they_are() -> None:
    m = MaxTokens(1000)
    batch: list[Delta] = [
        ReasoningDelta("Thinking about it"),
        TextDelta("Here is a pic"),
        TextDelta("ture: "),
        FileDelta("https://x/y.png", "y.png", "image/png"),
        TextDelta("and more."),
    ]
    out = m.feed(batch)
    assert out == batch
    assert all(a is b for a, b in zip(out, batch, strict=True))
    assert m.feed([End()]) == [End()]


def test_a_bot_end_within_the_limit_keeps_its_reason() -> None:
    assert run(MaxTokens(50), [TextDelta("Short."), End("length")], 1)[-1] == End("length")
    assert run(MaxTokens(50), [TextDelta("Short."), End()], 1)[-1] == End()


def test_a_limit_of_zero_ends_at_the_first_text() -> None:
    assert MaxTokens(0).feed([ReasoningDelta("Hm, "), TextDelta("x")]) == [End("length")]
    assert MaxTokens(0).feed([UsageDelta(1, 1), End()]) == [UsageDelta(1, 1), End()]


def test_a_failure_passes_on_unless_the_limit_came_first() -> None:
    fail = Failure(upstream("Poe stopped", 502, "upstream_error"))
    assert MaxTokens(10).feed([TextDelta("Hello there"), fail]) == [TextDelta("Hello there"), fail]
    m = MaxTokens(1)
    assert m.feed([TextDelta("Hello there"), fail]) == [TextDelta("Hello"), End("length")]
    assert m.feed([End()]) == []


def test_a_name_that_does_not_fit_drops_the_call() -> None:
    m = MaxTokens(count_tokens("Sure.") + 1)
    out = m.feed([TextDelta("Sure."), ToolCallDelta(0, "call_1", "get_current_weather_forecast", '{"city":')])
    assert out == [TextDelta("Sure."), End("length")]


def test_reset_starts_the_answer_count_over() -> None:
    answer = "one two three four five six seven"
    n = count_tokens(answer) + 2
    m = MaxTokens(n)
    first = m.feed([TextDelta(answer), TextDelta(" eig")])
    assert "".join(d.text for d in first if isinstance(d, TextDelta)) == answer  # " eig" is held
    out = m.feed([RESET, TextDelta(answer), TextDelta(" eight")]) + m.feed([End()])
    assert out[0] == RESET and out[-1] == End()
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == answer + " eight"
    assert m.completion_tokens == count_tokens(answer + " eight") <= n


def megabyte() -> str:
    rnd = random.Random(5)
    words = [w for w in WORDS if w.strip()] + ["lorem", "ipsum", "dolor", "sit", "amet"]
    return "".join(rnd.choice(words) + rnd.choice([" ", " ", " ", "\n", ", "]) for _ in range(150_000))[: 1 << 20]


def chunked(text: str, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out, pos = [], 0
    while pos < len(text):
        step = rnd.choice([1, 5, 40, 300, 4000])
        out.append(text[pos : pos + step])
        pos += step
    return out


def test_max_tokens_tokenizes_a_megabyte_answer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy.install(monkeypatch)
    text = megabyte()
    m = MaxTokens(10**9)
    out: list[Delta] = []
    for c in chunked(text, 1):
        out += m.feed([TextDelta(c)])
    out += m.feed([End()])
    assert "".join(d.text for d in out if isinstance(d, TextDelta)) == text
    assert out[-1] == End()
    assert spy.chars == len(text)
    assert len(spy.sizes) <= len(text) // min(CHUNK, HOLD) + 1


def test_max_tokens_cuts_a_megabyte_answer_and_stops_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy.install(monkeypatch)
    text = megabyte()
    n = len(ENC.encode_ordinary(text)) // 2
    spy.sizes.clear()
    m = MaxTokens(n)
    out: list[Delta] = []
    for c in chunked(text, 2):
        out += m.feed([TextDelta(c)])
    sent = "".join(d.text for d in out if isinstance(d, TextDelta))
    assert sent == truncated(text, n)[0]
    assert out[-1] == End("length")
    # everything up to the cut once, then at most a few segments again to find the cut
    assert spy.chars <= len(sent) + 4000 + 8 * HOLD


# --- StopSequences --------------------------------------------------------------------------

STOP_WORDS = [*WORDS[:12], "STOP", "ST", "OP", "S", "T", "a", "b", "ab", "abc", "\n\n"]
stop_texts = st.lists(st.sampled_from(STOP_WORDS), max_size=30).map("".join)
stop_lists = st.lists(st.sampled_from(["STOP", "\n\n", "abc", "bab", "aab", "b", "TOPS", "。\n"]), max_size=4)


def stopped(text: str, stops: list[str]) -> tuple[str, bool]:
    """The reference: the text before the stop sequence complete first (the longer on a tie)."""
    found = [(i + len(s), i) for i, s in ((text.find(s), s) for s in stops) if i >= 0]
    return (text[: min(found)[1]], True) if found else (text, False)


def test_the_stop_sequence_complete_first_wins() -> None:
    for chunks in (["abc"], ["ab", "c"], ["a", "b", "c"]):
        stage = StopSequences(["abc", "b"])
        out = [d for c in chunks for d in stage.feed([TextDelta(c)])]
        assert out == [TextDelta("a"), End("stop", "b")], chunks
    assert StopSequences(["xb", "b", "axb"]).feed([TextDelta("1axb2")]) == [TextDelta("1"), End("stop", "axb")]


def check_held(stage: StopSequences, stops: list[str]) -> None:
    assert len(stage.held) < max(map(len, stops), default=1)


@settings(max_examples=800, deadline=None)
@given(stop_texts, stop_lists, cuts, st.sampled_from([1, 0, 3]))
def test_stop_cuts_before_the_first_stop_in_every_chunking(
    text: str, stops: list[str], points: list[int], batch: int
) -> None:
    stage = StopSequences(stops)
    deltas = [*deltas_of([("text", text)], points), End("length")]
    size = batch or len(deltas)
    out: list[Delta] = []
    for i in range(0, len(deltas), size):
        out += stage.feed(deltas[i : i + size])
        check_held(stage, stops)
    assert [i for i, d in enumerate(out) if isinstance(d, End)] == [len(out) - 1]
    got, reason = runs_of(out)
    want, cut = stopped(text, stops)
    assert got == ([("text", want)] if want else [])
    assert reason == ("stop" if cut else "length")
    assert not any(s in want for s in stops)
    end = out[-1]
    assert isinstance(end, End)
    if cut:  # the End names the stop sequence that ended the answer
        assert end.stop_sequence in stops and text[len(want) :].startswith(end.stop_sequence)
    else:
        assert end.stop_sequence is None


def test_reasoning_is_not_subject_to_stop_and_does_not_split_the_answer() -> None:
    stage = StopSequences(["STOP"])
    out = stage.feed([ReasoningDelta("I must not STOP"), ReasoningDelta(" ST"), TextDelta("OP and go")])
    assert out == [ReasoningDelta("I must not STOP"), ReasoningDelta(" ST"), TextDelta("OP and go")]
    stage = StopSequences(["STOP"])
    out = stage.feed([TextDelta("Now ST"), ReasoningDelta("thinking"), TextDelta("OP here")])
    assert out == [TextDelta("Now "), ReasoningDelta("thinking"), End("stop", "STOP")]


def test_tool_calls_pass_and_interrupt_the_answer() -> None:
    stage = StopSequences(["STOP"])
    call = ToolCallDelta(0, "call_1", "say", '{"word": "STOP"}')
    assert stage.feed([TextDelta("Calling ST"), call, TextDelta("OP")]) == [
        TextDelta("Calling "),
        TextDelta("ST"),
        call,
        TextDelta("OP"),
    ]
    assert stage.feed([End()]) == [End()]


def test_a_held_prefix_is_released_at_the_end_and_on_failure() -> None:
    stage = StopSequences(["</answer>"])
    assert stage.feed([TextDelta("All done </ans")]) == [TextDelta("All done ")]
    assert stage.held == "</ans"
    assert stage.feed([End()]) == [TextDelta("</ans"), End()]
    fail = Failure(upstream("Poe stopped", 502, "upstream_error"))
    stage = StopSequences(["</answer>"])
    assert stage.feed([TextDelta("x </"), fail]) == [TextDelta("x "), TextDelta("</"), fail]
    assert stage.feed([TextDelta("more")]) == []


def test_reset_drops_the_held_text() -> None:
    stage = StopSequences(["STOP"])
    assert stage.feed([TextDelta("draft ST"), RESET, TextDelta("OP final")]) == [
        TextDelta("draft "),
        RESET,
        TextDelta("OP final"),
    ]


def test_nothing_after_the_stop() -> None:
    stage = StopSequences(["\n\n"])
    assert stage.feed([TextDelta("line one\n"), TextDelta("\nline two"), UsageDelta(1, 2), End()]) == [
        TextDelta("line one"),
        End("stop", "\n\n"),
    ]
    assert stage.ended
    assert stage.feed([TextDelta("x"), End()]) == []


def test_stop_on_a_megabyte_answer_holds_little_and_scans_once() -> None:
    body = megabyte()
    text = body + "THE END" + body[:1000]
    stops = ["THE END", "\n\n\n\n\n"]
    for chunks in (chunked(text, 3), [text]):
        stage = StopSequences(stops)
        out: list[Delta] = []
        for c in chunks:
            out += stage.feed([TextDelta(c)])
            check_held(stage, stops)
        assert "".join(d.text for d in out if isinstance(d, TextDelta)) == body
        assert out[-1] == End("stop", "THE END")


# --- both -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(stop_texts, stop_lists, st.integers(0, 30), cuts)
def test_stop_then_max_tokens_the_first_cut_wins(text: str, stops: list[str], n: int, points: list[int]) -> None:
    stages: list[Stage] = [StopSequences(stops), MaxTokens(n)]
    out: list[Delta] = []
    for d in [*deltas_of([("text", text)], points), End()]:
        batch = [d]
        for s in stages:
            batch = s.feed(batch)
        out += batch
    got, reason = runs_of(out)
    before, _ = stopped(text, stops)
    want, cut = truncated(before, n)
    assert got == ([("text", want)] if want else [])
    assert reason == ("length" if cut else "stop")


@pytest.mark.parametrize("stops", [[], ["never"]])
def test_no_stop_passes_everything(stops: list[str]) -> None:
    batch: list[Delta] = [TextDelta("Hello"), TextDelta(" world"), End()]
    assert StopSequences(stops).feed(batch) == batch
