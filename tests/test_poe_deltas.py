"""Poe events to deltas: replace, files and inline refs, json chunks, errors, truncation."""

from __future__ import annotations

import orjson
from hypothesis import given

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
    file_markdown,
    markdown_url,
)
from poe2openai.pipeline.driver import Pipeline, Stage, run_all
from poe2openai.poe import events as pe
from poe2openai.poe.source import PoeSource
from poe2openai.poe.to_deltas import PoeToDeltas
from poe2openai.simulator import DONE, Event, error, replace, text

from .chunking import cuts, splits


def run_sync(reads: list[bytes], bot: str, stages: list[Stage]) -> list[Delta]:
    """The production driver over a whole body."""
    return run_all(Pipeline(PoeSource(bot), stages), reads)


def sse(*events: Event) -> bytes:
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
    assert isinstance(out[1], Failure) and out[1].error.status == 402
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


def _file(url: str, name: str = "a.png", ref: str | None = None, kind: str = "image/png") -> Event:
    return Event("file", {"url": url, "content_type": kind, "name": name, "inline_ref": ref})


def test_only_http_file_urls_are_relayed() -> None:
    body = sse(
        _file("javascript:alert(document.cookie)"),
        _file("data:text/html,<script>alert(1)</script>", "b.html", kind="text/html"),
        _file("JavaScript:alert(1)", ref="abc12345"),
        _file(" https://cdn/lead.png"),  # not an http URL as written
        _file("https://[::1/broken.png"),
        _file("https:///no-host.png"),
        text("![a.png][abc12345]"),
        _file("HTTPS://cdn/ok.png", "ok.png"),
        DONE,
    )
    out = run_sync([body], "b", [])
    assert out == [TextDelta("![a.png][abc12345]"), FileDelta("HTTPS://cdn/ok.png", "ok.png", "image/png"), End()]


def test_inline_ref_urls_are_escaped_for_markdown() -> None:
    body = sse(_file("https://cdn/a b)(c<d>\"e'\\f%g%20.png", ref="abcdefgh"), text("![x][abcdefgh]"), DONE)
    assert contents(run_sync([body], "b", [])) == "![x](https://cdn/a%20b%29%28c%3Cd%3E%22e%27%5Cf%25g%20.png)"


def test_odd_inline_refs_are_plain_files() -> None:
    for ref in ("a](javascript:x)", "x" * 65):
        out = run_sync([sse(_file("https://cdn/a.png", ref=ref), text(f"[{ref}]"), DONE)], "b", [])
        assert out == [FileDelta("https://cdn/a.png", "a.png", "image/png"), TextDelta(f"[{ref}]"), End()]


def test_file_markdown_escapes_names_and_urls() -> None:
    assert file_markdown(FileDelta("https://cdn/x).png", "a]b[c\nd<e>`f\\", "image/png")) == (
        "![a\\]b\\[c d\\<e\\>\\`f\\\\](https://cdn/x%29.png)"
    )
    assert file_markdown(FileDelta("https://cdn/r.csv", "r.csv", "text/csv")) == "[r.csv](https://cdn/r.csv)"
    assert file_markdown(FileDelta("javascript:alert(1)", "a.png", "image/png")) == ""
    assert file_markdown(FileDelta("https://cdn/a.png", "z" * 1000, "image/png")).count("z") == 200
    assert markdown_url("https://cdn/ünï.png?q=1&r=[2]#frag") == "https://cdn/%C3%BCn%C3%AF.png?q=1&r=[2]#frag"
    assert markdown_url("data:image/png;base64,AAAA") is None


def test_bot_usage_only_as_sane_whole_numbers() -> None:
    stage = PoeToDeltas("b")
    good = [pe.Json({"usage": {"prompt_tokens": 3, "completion_tokens": 10**9}})]
    assert stage.feed(good) == [UsageDelta(3, 10**9)]
    for p, c in ((2**64 - 1, 1), (-5, 3), (True, 3), (3, 10**9 + 1), (3.0, 4), ("3", 4), (None, 4)):
        assert stage.feed([pe.Json({"usage": {"prompt_tokens": p, "completion_tokens": c}})]) == []


def test_tool_call_indexes_are_ours() -> None:
    def chunk(call: dict[str, object]) -> pe.Json:
        return pe.Json({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})

    stage = PoeToDeltas("b")
    out = stage.feed(
        [
            chunk({"index": -3, "id": 7, "function": {"name": "f", "arguments": "{"}}),
            chunk({"index": 2**64 - 1, "id": "i" * 257, "function": {"name": "g", "arguments": ""}}),
            chunk({"index": -3, "function": {"arguments": "}"}}),
            chunk({"index": True, "id": "call_ok", "function": {"name": "h", "arguments": ""}}),
            chunk({"index": 2**64 - 1, "function": {"arguments": "{}"}}),
        ]
    )
    assert [(d.index, d.name, d.arguments) for d in out if isinstance(d, ToolCallDelta)] == [
        (0, "f", "{"),
        (1, "g", ""),
        (0, None, "}"),
        (2, "h", ""),
        (1, None, "{}"),
    ]
    ids = [d.id for d in out if isinstance(d, ToolCallDelta) and d.id]
    assert ids[2] == "call_ok" and all(i.startswith("call_") and len(i) < 100 for i in ids)
