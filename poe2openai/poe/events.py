"""Typed Poe bot-protocol events, decoded from SSE events (sans-IO).

:class:`PoeEventDecoder` turns the bytes of a ``/bot/{name}`` response into the events of
the protocol's catalogue: ``meta``, ``text``, ``replace_response``, ``suggested_reply``,
``json``, ``file``, ``error`` and ``done``. Unknown events (``ping``, ``data``, future ones)
are skipped; events after ``done`` or ``error`` are ignored; events for a response ``index``
other than 0 are skipped (we serve one choice). Malformed data becomes an :class:`Error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from poe2openai.poe.sse import SSEEvent, SSEParser


@dataclass(slots=True)
class Meta:
    """Rendering hints; only meaningful as the first event."""

    data: dict[str, Any]


@dataclass(slots=True)
class Text:
    """Append ``text`` to the answer, or replace the whole answer when ``replace`` is set."""

    text: str
    replace: bool = False


@dataclass(slots=True)
class SuggestedReply:
    """A follow-up suggestion; never part of the answer."""

    text: str


@dataclass(slots=True)
class Json:
    """Structured data; in practice OpenAI ``chat.completion.chunk`` objects."""

    data: dict[str, Any]


@dataclass(slots=True)
class File:
    """An output attachment; inline ones are referenced in the text as ``![name][ref]``."""

    url: str
    content_type: str
    name: str
    inline_ref: str | None


@dataclass(slots=True)
class Error:
    """The response failed. ``allow_retry`` defaults to true, as in the protocol spec."""

    text: str
    allow_retry: bool = True
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The response is complete."""


PoeEvent: TypeAlias = Meta | Text | SuggestedReply | Json | File | Error | Done

_DONE = Done()


def _protocol_error(message: str) -> Error:
    return Error(f"Poe sent a malformed event: {message}", allow_retry=False, error_type="protocol_error")


def decode_event(sse: SSEEvent) -> PoeEvent | None:
    """One SSE event to one Poe event, ``None`` for events we skip."""
    name = sse.event
    if name not in _KNOWN:
        return None
    try:
        data = orjson.loads(sse.data) if sse.data else {}
    except orjson.JSONDecodeError:
        return _protocol_error(f"invalid JSON in {name!r}")
    if not isinstance(data, dict):
        return _protocol_error(f"{name!r} data is not an object")
    index = data.get("index")
    if type(index) is int and index != 0:
        return None
    if name == "text" or name == "replace_response":
        text = data.get("text")
        if not isinstance(text, str):
            return _protocol_error(f"{name!r} without a text string")
        return Text(text, name == "replace_response")
    if name == "done":
        return _DONE
    if name == "error":
        text = data.get("text")
        error_type = data.get("error_type")
        return Error(
            text if isinstance(text, str) and text else "Poe reported an error",
            data.get("allow_retry", True) is not False,
            error_type if isinstance(error_type, str) else None,
        )
    if name == "json":
        return Json(data)
    if name == "file":
        url, content_type, fname = data.get("url"), data.get("content_type"), data.get("name")
        if not isinstance(url, str) or not url:
            return _protocol_error("'file' without a url")
        ref = data.get("inline_ref")
        return File(
            url,
            content_type if isinstance(content_type, str) else "application/octet-stream",
            fname if isinstance(fname, str) and fname else "file",
            ref if isinstance(ref, str) and ref else None,
        )
    if name == "suggested_reply":
        text = data.get("text")
        return SuggestedReply(text) if isinstance(text, str) else None
    return Meta(data)  # "meta"


_KNOWN = frozenset(("text", "replace_response", "done", "error", "json", "file", "suggested_reply", "meta"))


class PoeEventDecoder:
    """Bytes of a bot response in, typed events out; nothing after ``done``/``error``."""

    __slots__ = ("_sse", "finished")

    def __init__(self) -> None:
        self._sse = SSEParser()
        self.finished = False  # a done or error event was seen

    def feed(self, chunk: bytes) -> list[PoeEvent]:
        """Consume one network read."""
        if self.finished:
            return []
        return self._decode(self._sse.feed(chunk))

    def close(self) -> list[PoeEvent]:
        """End of the body: flush an unterminated last event."""
        if self.finished:
            return []
        return self._decode(self._sse.close())

    def _decode(self, events: list[SSEEvent]) -> list[PoeEvent]:
        out: list[PoeEvent] = []
        for sse in events:
            ev = decode_event(sse)
            if ev is None:
                continue
            out.append(ev)
            if ev is _DONE or type(ev) is Error:
                self.finished = True
                break
        return out
