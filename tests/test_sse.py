"""The SSE parser and Poe event decoder, fed in every chunking."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from poe2openai.poe import events as pe
from poe2openai.poe.sse import SSEEvent, SSEParser

from .chunking import cuts, splits


def parse_all(chunks: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    for c in chunks:
        out += p.feed(c)
    return out + p.close()


STREAM = (
    b": ping - 2025-06-01 12:00:15\r\n\r\n"
    b'event: meta\r\ndata: {"content_type": "text/markdown"}\r\n\r\n'
    b'event: text\ndata: {"text": "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c"}\n\n'
    b'event: text\rdata: {"text": "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8c\x8d"}\r\r'
    b'id: 7\nretry: 100\nevent: json\ndata: {"a":\ndata: 1}\n\n'
    b"event: done\ndata: {}\n\n"
)
EXPECTED = [
    SSEEvent("meta", b'{"content_type": "text/markdown"}'),
    SSEEvent("text", '{"text": "你好，"}'.encode()),
    SSEEvent("text", '{"text": "世界 🌍"}'.encode()),
    SSEEvent("json", b'{"a":\n1}'),
    SSEEvent("done", b"{}"),
]


def test_mixed_line_ends_comments_multiline_data() -> None:
    assert parse_all([STREAM]) == EXPECTED


def test_every_two_way_split_and_byte_by_byte() -> None:
    for i in range(len(STREAM) + 1):
        assert parse_all([STREAM[:i], STREAM[i:]]) == EXPECTED, i
    assert parse_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(cuts)
def test_any_chunking_gives_the_same_events(points: list[int]) -> None:
    assert parse_all(splits(STREAM, points)) == EXPECTED


@given(st.lists(st.text(min_size=0, max_size=40), max_size=8), cuts, st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_generated_streams_round_trip(payloads: list[str], points: list[int], nl: bytes) -> None:
    body = b"".join(b"event: text" + nl + b"data: " + orjson.dumps({"text": t}) + nl + nl for t in payloads)
    events = parse_all(splits(body, points))
    assert [orjson.loads(e.data)["text"] for e in events] == payloads


def test_line_far_longer_than_64k_in_small_reads() -> None:
    big = "x" * 300_000 + "é"
    body = b"event: replace_response\ndata: " + orjson.dumps({"text": big}) + b"\n\n"
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    events = parse_all(chunks)
    assert len(events) == 1 and orjson.loads(events[0].data)["text"] == big


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    p = SSEParser()
    assert p.feed(b"event: done\ndata: {}") == []
    assert p.close() == [SSEEvent("done", b"{}")]


def decode(body: bytes) -> list[pe.PoeEvent]:
    d = pe.PoeEventDecoder()
    return d.feed(body) + d.close()


def test_decoder_types_every_event() -> None:
    body = (
        b'event: meta\ndata: {"linkify": true}\n\n'
        b'event: text\ndata: {"text": "a"}\n\n'
        b'event: replace_response\ndata: {"text": "b"}\n\n'
        b'event: suggested_reply\ndata: {"text": "c?"}\n\n'
        b'event: json\ndata: {"choices": []}\n\n'
        b'event: file\ndata: {"url": "https://x/y.png", "content_type": "image/png", '
        b'"name": "y.png", "inline_ref": "r1"}\n\n'
        b"event: ping\ndata: {}\n\n"
        b'event: data\ndata: {"metadata": "m"}\n\n'
        b'event: text\ndata: {"text": "other", "index": 1}\n\n'
        b"event: done\ndata: {}\n\n"
        b'event: text\ndata: {"text": "after done"}\n\n'
    )
    assert decode(body) == [
        pe.Meta({"linkify": True}),
        pe.Text("a"),
        pe.Text("b", replace=True),
        pe.SuggestedReply("c?"),
        pe.Json({"choices": []}),
        pe.File("https://x/y.png", "image/png", "y.png", "r1"),
        pe.Done(),
    ]


def test_decoder_errors() -> None:
    assert decode(
        b'event: error\ndata: {"text": "boom", "error_type": "insufficient_fund", "allow_retry": false}\n\n'
        b'event: text\ndata: {"text": "ignored"}\n\n'
    ) == [pe.Error("boom", False, "insufficient_fund")]
    # allow_retry defaults to true, as the protocol says
    assert decode(b'event: error\ndata: {"text": "x"}\n\n') == [pe.Error("x", True, None)]
    bad_json = decode(b"event: text\ndata: {nope\n\n")
    assert isinstance(bad_json[0], pe.Error) and bad_json[0].error_type == "protocol_error"
    not_object = decode(b"event: text\ndata: [1]\n\n")
    assert isinstance(not_object[0], pe.Error) and not not_object[0].allow_retry
    no_text = decode(b'event: text\ndata: {"txt": "a"}\n\n')
    assert isinstance(no_text[0], pe.Error)
