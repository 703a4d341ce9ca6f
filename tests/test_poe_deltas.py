"""Poe events to deltas: replace, files and inline refs, json chunks, errors, truncation."""

from __future__ import annotations

from hypothesis import given

from poe2openai import poe_events as pe
from poe2openai.deltas import RESET, Delta, End, Failure, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta
from poe2openai.pipeline import Pipeline, Stage, run_all
from poe2openai.poe_deltas import PoeToDeltas
from poe2openai.poe_source import PoeSource
from poe2openai.simulator import DONE, Event, error, replace, text

from .chunking import cuts, splits


def run_sync(reads: list[bytes], bot: str, stages: list[Stage]) -> list[Delta]:
    """The production driver over a whole body."""
    return run_all(Pipeline(PoeSource(bot), stages), reads)


def sse(*events: Event) -> bytes:
    import orjson

    return b"".join(b"event: " + e.name.encode() + b"\ndata: " + orjson.dumps(e.data) + b"\n\n" for e in events)


def contents(deltas: list) -> str:  # type: ignore[type-arg]
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


def test_replace_emits_reset_then_text() -> None:
    out = run_sync([sse(text("draft answer"), replace("Final "), text("answer."), DONE)], "b", [])
    assert out == [TextDelta("draft answer"), RESET, TextDelta("Final "), TextDelta("answer."), End()]


FILE = Event(
    "file", {"url": "https://cdn/img.png", "content_type": "image/png", "name": "fox.png", "inline_ref": "aB3dE9xZ"}
)


def test_inline_ref_resolved_even_when_split() -> None:
    body = sse(FILE, text("Here: ![fox.png][aB3"), text("dE9xZ] done"), DONE)
    out = run_sync([body], "b", [])
    assert contents(out) == "Here: ![fox.png](https://cdn/img.png) done"
    assert not any(isinstance(d, FileDelta) for d in out)


@given(cuts)
def test_inline_ref_any_byte_chunking(points: list[int]) -> None:
    body = sse(FILE, replace("![fox.png][aB3dE9xZ]"), DONE)
    out = run_sync(splits(body, points), "b", [])
    assert contents(out) == "![fox.png](https://cdn/img.png)"


def test_unreferenced_and_plain_files_are_not_lost() -> None:
    csv = Event("file", {"url": "https://cdn/r.csv", "content_type": "text/csv", "name": "r.csv", "inline_ref": None})
    out = run_sync([sse(text("Here is your CSV."), csv, FILE, text(" [not a ref]"), DONE)], "b", [])
    assert out == [
        TextDelta("Here is your CSV."),
        FileDelta("https://cdn/r.csv", "r.csv", "text/csv"),
        TextDelta(" [not a ref]"),
        FileDelta("https://cdn/img.png", "fox.png", "image/png"),
        End(),
    ]


def test_json_chunks_give_content_reasoning_and_tool_calls() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi", "reasoning_content": "hmm"}, "finish_reason": None}]}
    call = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
                    ]
                },
                "finish_reason": None,
            }
        ]
    }
    frag = {
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                "finish_reason": None,
            }
        ]
    }
    length = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    out = run_sync(
        [sse(Event("json", chunk), Event("json", call), Event("json", frag), Event("json", length), DONE)], "b", []
    )
    assert out == [
        ReasoningDelta("hmm"),
        TextDelta("hi"),
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, None, None, "{}"),
        End("length"),
    ]


def test_error_event_becomes_failure_with_status() -> None:
    out = run_sync([sse(text("partial "), error("You do not have enough points to message this bot."))], "b", [])
    assert out[0] == TextDelta("partial ")
    assert isinstance(out[1], Failure) and out[1].error.status == 429
    assert out[1].error.code == "insufficient_quota"


def test_stream_without_done_is_cut_after_the_text_or_fails_when_empty() -> None:
    out = run_sync([sse(text("some"), text(" response."))], "b", [])
    assert out[:-1] == [TextDelta("some"), TextDelta(" response.")]
    assert isinstance(out[-1], Failure) and out[-1].error.code == "upstream_cut" and out[-1].error.retryable
    out = run_sync([b""], "b", [])
    assert len(out) == 1 and isinstance(out[0], Failure) and out[0].error.retryable


def test_empty_texts_are_dropped() -> None:
    assert run_sync([sse(text(""), text(""), DONE)], "b", []) == [End()]


def test_feed_directly() -> None:
    stage = PoeToDeltas("bot")
    assert stage.feed([pe.Meta({}), pe.SuggestedReply("x"), pe.Text("a")]) == [TextDelta("a")]
