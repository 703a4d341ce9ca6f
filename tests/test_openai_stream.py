"""The OpenAI chunk encoder: chunk shape, coalescing, usage, errors; the stream reset policy."""

from __future__ import annotations

from typing import Any

from poe2openai.errors import ApiError
from poe2openai.frontends.openai_chat.stream import ChunkEncoder
from poe2openai.pipeline.deltas import RESET, Delta, End, Failure, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta
from poe2openai.pipeline.driver import through
from poe2openai.pipeline.reset_replay import ResetReplay
from poe2openai.pipeline.usage import Usage

from .sse_frames import data_frames as frames


def run(batches: list[list[Delta]], usage: Usage | None = None) -> list[Any]:
    """Encode batches as the engine does: through the stream stages, End and Failure apart."""
    enc = ChunkEncoder("chatcmpl-1", 123, "m")
    replay = ResetReplay()
    out: list[bytes] = []
    for batch in batches:
        batch = through(batch, [replay])
        if not batch:
            continue
        last = batch[-1]
        if isinstance(last, End):
            out.append(enc.encode(batch[:-1]) + enc.finish(last, usage))
        elif isinstance(last, Failure):
            out.append(enc.encode(batch[:-1]) + enc.failure(last.error))
        else:
            out.append(enc.encode(batch))
    return frames(b"".join(out))


def deltas_of(fr: list[Any], key: str) -> str:
    return "".join(f["choices"][0]["delta"].get(key, "") for f in fr if isinstance(f, dict) and f.get("choices"))


def test_shape_role_first_one_finish_then_done() -> None:
    fr = run([[TextDelta("Hel")], [TextDelta("lo")], [End()]])
    assert fr[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    for f in fr[:-1]:
        assert f["id"] == "chatcmpl-1" and f["object"] == "chat.completion.chunk" and f["created"] == 123
        assert f["model"] == "m" and f["choices"][0]["index"] == 0
    assert [f["choices"][0]["finish_reason"] for f in fr[:-1]] == [None, None, None, "stop"]
    assert fr[-1] == "[DONE]"
    assert deltas_of(fr, "content") == "Hello"


def test_batch_coalesces_adjacent_text() -> None:
    fr = run([[TextDelta("a"), TextDelta("b"), ReasoningDelta("r"), ReasoningDelta("s"), TextDelta("c"), End()]])
    contents = [f["choices"][0]["delta"] for f in fr[1:-2]]
    assert contents == [{"content": "ab"}, {"reasoning_content": "rs"}, {"content": "c"}]


def test_usage_chunk_only_when_asked() -> None:
    assert all("usage" not in f for f in run([[TextDelta("one two"), End()]]) if isinstance(f, dict))
    fr = run([[TextDelta("one two"), End()]], usage=Usage(7, 2))
    assert fr[-2]["choices"] == [] and fr[-2]["usage"]["completion_tokens"] == 2
    assert fr[-2]["usage"]["prompt_tokens"] == 7 and fr[-2]["usage"]["total_tokens"] == 9


def test_failure_after_output_is_an_error_frame_then_done() -> None:
    fr = run([[TextDelta("partial")], [Failure(ApiError(502, "boom", type="api_error", code="upstream_error"))]])
    assert fr[-2] == {"error": {"message": "boom", "type": "api_error", "param": None, "code": "upstream_error"}}
    assert fr[-1] == "[DONE]"


def test_tool_call_deltas_have_index_and_id_on_first() -> None:
    fr = run(
        [
            [
                ToolCallDelta(0, "call_a", "f", ""),
                ToolCallDelta(0, None, None, '{"x":'),
                ToolCallDelta(0, None, None, "1}"),
                End(),
            ]
        ]
    )
    calls = [f["choices"][0]["delta"]["tool_calls"][0] for f in fr[1:-2]]
    assert calls[0] == {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert calls[1] == {"index": 0, "function": {"arguments": '{"x":'}}
    assert fr[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_replace_that_extends_sends_only_the_new_part() -> None:
    fr = run([[TextDelta("Final ")], [RESET, TextDelta("Final answer.")], [End()]])
    assert deltas_of(fr, "content") == "Final answer."


def test_replace_that_repeats_in_pieces_sends_nothing_twice() -> None:
    fr = run([[TextDelta("abc def")], [RESET, TextDelta("abc")], [TextDelta(" def")], [TextDelta("!")], [End()]])
    assert deltas_of(fr, "content") == "abc def!"


def test_replace_that_differs_follows_a_blank_line() -> None:
    fr = run([[TextDelta("Generating (1s)")], [RESET, TextDelta("Generating (2s)")], [End()]])
    assert deltas_of(fr, "content") == "Generating (1s)\n\nGenerating (2s)"


def test_files_as_markdown() -> None:
    fr = run(
        [
            [
                TextDelta("Here"),
                FileDelta("https://c/a.png", "a.png", "image/png"),
                FileDelta("https://c/r.csv", "r.csv", "text/csv"),
                End(),
            ]
        ]
    )
    assert deltas_of(fr, "content") == "Here\n\n![a.png](https://c/a.png)\n\n[r.csv](https://c/r.csv)"


def test_replace_after_a_long_answer_restates_in_full_with_bounded_memory() -> None:
    replay = ResetReplay(keep=10)
    out = replay.feed([TextDelta("0123456789"), TextDelta("abc")])
    assert out == [TextDelta("0123456789"), TextDelta("abc")]
    assert replay._text.parts is None  # past the bound nothing more is kept
    assert replay.feed([RESET, TextDelta("new"), TextDelta(" answer")]) == [TextDelta("\n\nnew"), TextDelta(" answer")]
    assert replay.feed([RESET, TextDelta("new answer!")]) == [TextDelta("!")]  # short again: compared
