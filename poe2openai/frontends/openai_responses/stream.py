"""The last stage for streaming clients: deltas to Responses server-sent events.

Every event has an ``event:`` line and a ``sequence_number``. What a client sees:

- ``response.created`` and ``response.in_progress`` first (the response with no output);
- per output item, ``response.output_item.added`` … ``response.output_item.done`` with the full
  item (Codex reads tool calls from the latter):
  - reasoning: ``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta``
    (with ``summary_index``), ``….done``, ``response.reasoning_summary_part.done``;
  - a message: ``response.content_part.added``, ``response.output_text.delta``, ``….done``,
    ``response.content_part.done``;
  - a function call: ``response.function_call_arguments.delta`` / ``.done``;
  - a free-form tool's call: ``response.custom_tool_call_input.delta`` / ``.done``;
- at the end exactly one of ``response.completed`` (with the full response and usage),
  ``response.incomplete`` (``max_output_tokens`` reached) or ``response.failed`` (with an
  ``error`` whose ``code`` Codex understands); a stream never ends without one of them.

Adjacent text (or reasoning) deltas of one batch share one delta event, and a whole batch
becomes one ``bytes`` for one socket write. Resets are resolved before the encoder by the
stream stage :mod:`reset_replay`; usage is counted by the engine and handed to :meth:`finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from poe2openai.conversation import ToolPlan
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_responses.ids import item_id
from poe2openai.frontends.openai_responses.response import (
    CallShape,
    ResponseMeta,
    call_item,
    call_shape,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
)
from poe2openai.frontends.openai_responses.tools import Tools
from poe2openai.pipeline.deltas import Delta, End, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta, file_markdown
from poe2openai.pipeline.usage import Usage

_TEXT, _REASONING = "message", "reasoning"


@dataclass(slots=True)
class _Open:
    """An output item being streamed."""

    kind: str  # message | reasoning | call
    index: int  # output_index
    id: str
    parts: list[str] = field(default_factory=list)
    call_id: str = ""
    shape: CallShape | None = None


class ResponsesEncoder:
    """Encodes batches of deltas as Responses events for one streamed response."""

    def __init__(
        self,
        meta: ResponseMeta,
        tools: Tools,
        plan: ToolPlan,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.meta = meta
        self.tools = tools
        self.plan = plan
        self.on_done = on_done
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # finished items, by output_index
        self._current: _Open | None = None  # the open message or reasoning item
        self._calls: dict[int, _Open] = {}  # open tool calls, by the deltas' index
        self._started = False
        self._wrote_text = False
        self.finished = False

    # --- frames -------------------------------------------------------------------------

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = orjson.dumps({"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    def start(self, prompt_tokens: int | None = None) -> bytes:
        """``response.created`` and ``response.in_progress``; sent once, before anything else."""
        self._started = True
        snapshot = response_object(self.meta, "in_progress", [])
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def keepalive(self) -> bytes:
        """An SSE comment; clients skip it, proxies see traffic."""
        return b": keep-alive\n\n"

    # --- items --------------------------------------------------------------------------

    def _open(self, kind: str, prefix: str, frames: list[bytes]) -> _Open:
        item = _Open(kind, len(self.output), item_id(prefix))
        self.output.append({})  # its place; the finished item replaces it
        if kind == _TEXT:
            added = message_item(item.id, None, "in_progress")
            frames.append(self._event("response.output_item.added", {"output_index": item.index, "item": added}))
            frames.append(
                self._event(
                    "response.content_part.added",
                    {"item_id": item.id, "output_index": item.index, "content_index": 0, "part": output_text_part("")},
                )
            )
        else:
            added = reasoning_item(item.id, "", "in_progress")
            frames.append(self._event("response.output_item.added", {"output_index": item.index, "item": added}))
            frames.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    {
                        "item_id": item.id,
                        "output_index": item.index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    },
                )
            )
        return item

    def _close_current(self, frames: list[bytes], status: str = "completed") -> None:
        item = self._current
        if item is None:
            return
        self._current = None
        text = "".join(item.parts)
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == _TEXT:
            done_text = {**where, "content_index": 0, "text": text, "logprobs": []}
            frames.append(self._event("response.output_text.done", done_text))
            frames.append(
                self._event("response.content_part.done", {**where, "content_index": 0, "part": output_text_part(text)})
            )
            done = message_item(item.id, text, status)
        else:
            done_text = {**where, "summary_index": 0, "text": text}
            frames.append(self._event("response.reasoning_summary_text.done", done_text))
            frames.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    {**where, "summary_index": 0, "part": {"type": "summary_text", "text": text}},
                )
            )
            done = reasoning_item(item.id, text, status)
        self.output[item.index] = done
        frames.append(self._event("response.output_item.done", {"output_index": item.index, "item": done}))

    def _close_calls(self, frames: list[bytes], status: str = "completed") -> None:
        for index in sorted(self._calls):
            item = self._calls[index]
            assert item.shape is not None
            payload = "".join(item.parts)
            where = {"item_id": item.id, "output_index": item.index}
            if item.shape.custom:
                frames.append(self._event("response.custom_tool_call_input.done", {**where, "input": payload}))
            else:
                frames.append(self._event("response.function_call_arguments.done", {**where, "arguments": payload}))
            done = call_item(item.shape, item.id, item.call_id, payload, status)
            self.output[item.index] = done
            frames.append(self._event("response.output_item.done", {"output_index": item.index, "item": done}))
        self._calls.clear()

    def _text(self, kind: str, text: str, frames: list[bytes]) -> None:
        item = self._current
        if item is None or item.kind != kind:
            self._close_current(frames)
            item = self._current = self._open(kind, "msg" if kind == _TEXT else "rs", frames)
        item.parts.append(text)
        where = {"item_id": item.id, "output_index": item.index}
        if kind == _TEXT:
            self._wrote_text = True
            frames.append(
                self._event("response.output_text.delta", {**where, "content_index": 0, "delta": text, "logprobs": []})
            )
        else:
            delta = {**where, "summary_index": 0, "delta": text}
            frames.append(self._event("response.reasoning_summary_text.delta", delta))

    def _tool(self, d: ToolCallDelta, frames: list[bytes]) -> None:
        item = self._calls.get(d.index)
        if item is None:
            if d.id is None:
                return  # a continuation of a call never opened: nothing to attach it to
            self._close_current(frames)
            shape = call_shape(d.name or "", self.tools, self.plan)
            item = _Open("call", len(self.output), item_id("ctc" if shape.custom else "fc"), call_id=d.id, shape=shape)
            self.output.append({})
            self._calls[d.index] = item
            added = call_item(shape, item.id, item.call_id, "", "in_progress")
            frames.append(self._event("response.output_item.added", {"output_index": item.index, "item": added}))
        if not d.arguments:
            return
        item.parts.append(d.arguments)
        assert item.shape is not None
        custom = item.shape.custom
        kind = "response.custom_tool_call_input.delta" if custom else "response.function_call_arguments.delta"
        frames.append(self._event(kind, {"item_id": item.id, "output_index": item.index, "delta": d.arguments}))

    # --- the protocol -------------------------------------------------------------------

    def encode(self, batch: list[Delta]) -> bytes:
        """Events for one batch (the opening events included, if not yet sent)."""
        frames: list[bytes] = [] if self._started else [self.start()]
        pending: list[str] = []
        pending_kind = ""
        for d in batch:
            kind = type(d)
            if kind is TextDelta or kind is ReasoningDelta:
                assert isinstance(d, (TextDelta, ReasoningDelta))
                this = _TEXT if kind is TextDelta else _REASONING
                if pending and pending_kind != this:
                    self._text(pending_kind, "".join(pending), frames)
                    pending.clear()
                if d.text:
                    pending.append(d.text)
                    pending_kind = this
                continue
            if pending:
                self._text(pending_kind, "".join(pending), frames)
                pending.clear()
            if kind is FileDelta:
                assert isinstance(d, FileDelta)
                md = file_markdown(d)
                if md:
                    self._text(_TEXT, ("\n\n" if self._wrote_text else "") + md, frames)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                self._tool(d, frames)
        if pending:
            self._text(pending_kind, "".join(pending), frames)
        return b"".join(frames)

    def finish(self, end: End, usage: Usage | None) -> bytes:
        """Every open item done, then ``response.completed`` (``response.incomplete`` when cut)."""
        frames: list[bytes] = [] if self._started else [self.start()]
        self.finished = True
        status = "incomplete" if end.finish_reason == "length" else "completed"
        self._close_current(frames, status)
        self._close_calls(frames)
        response = response_object(self.meta, status, self.output, usage)
        frames.append(self._event(f"response.{status}", {"response": response}))
        if self.on_done is not None:
            self.on_done(response)
        return b"".join(frames)

    def failure(self, error: ApiError) -> bytes:
        """Open items closed as incomplete, then ``response.failed`` with the error."""
        frames: list[bytes] = [] if self._started else [self.start()]
        self.finished = True
        self._close_current(frames, "incomplete")
        self._close_calls(frames, "incomplete")
        response = response_object(self.meta, "failed", self.output, None, error)
        frames.append(self._event("response.failed", {"response": response}))
        return b"".join(frames)
