"""The last stage for streaming clients: deltas to OpenAI ``chat.completion.chunk`` frames.

Hot path: each frame is a pre-built byte prefix, one ``orjson.dumps`` of the new text and a
pre-built suffix; adjacent text (or reasoning) deltas of one batch share one chunk, and a
whole batch becomes one ``bytes`` for one socket write.

What a client sees:
- the first chunk carries ``delta.role = "assistant"``;
- answer text as ``delta.content``, reasoning as ``delta.reasoning_content``;
- tool calls as ``delta.tool_calls`` with ``index`` on every entry, ``id``, ``type`` and
  ``function.name`` on the first of each call, then ``function.arguments`` fragments;
- output files as Markdown in ``delta.content``;
- exactly one chunk with a ``finish_reason``, then a ``choices: []`` usage chunk only if
  ``stream_options.include_usage`` was set, then ``data: [DONE]``;
- a failure as one ``data: {"error": {...}}`` frame, then ``data: [DONE]``.

A ``replace_response`` cannot retract text a client already has. Policy: while the new
answer repeats what was sent, nothing is sent; where it goes beyond, only the new part is
sent; where it differs, a blank line and the whole new answer follow. The final text of a
non-stream request is always exactly the replacement.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from .answer import Answer
from .deltas import (
    Delta,
    End,
    Failure,
    FileDelta,
    ReasoningDelta,
    ResetDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
    file_markdown,
)
from .usage import usage_body

DONE_FRAME = b"data: [DONE]\n\n"


class _Replay:
    """After a reset: suppress text the client already has, per the module's policy."""

    __slots__ = ("matched", "old", "pos")

    def __init__(self, old: str) -> None:
        self.old = old
        self.pos = 0
        self.matched: list[str] = []

    def take(self, text: str) -> tuple[str, bool]:
        """Return (text to send, still replaying)."""
        old, pos = self.old, self.pos
        if pos >= len(old):
            return text, False
        if old.startswith(text, pos) and len(text) <= len(old) - pos:
            self.pos += len(text)
            self.matched.append(text)
            return "", True
        # how much of text still matches
        k = 0
        limit = min(len(text), len(old) - pos)
        while k < limit and text[k] == old[pos + k]:
            k += 1
        if pos + k == len(old):
            return text[k:], False  # the new answer extends the old one
        return "\n\n" + "".join(self.matched) + text, False


class ChunkEncoder:
    """Encodes batches of deltas as SSE frames for one streamed completion."""

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        *,
        include_usage: bool,
        prompt_tokens: Callable[[], int],
        count_tokens: Callable[[str], int],
    ) -> None:
        head = orjson.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        )[:-1]
        self._head = b"data: " + head
        self._delta_prefix = self._head + b',"choices":[{"index":0,"delta":'
        self._content_prefix = self._delta_prefix + b'{"content":'
        self._reasoning_prefix = self._delta_prefix + b'{"reasoning_content":'
        self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._include_usage = include_usage
        self._prompt_tokens = prompt_tokens
        self._count = count_tokens
        self.answer = Answer()
        self._started = False
        self._replay_content: _Replay | None = None
        self._replay_reasoning: _Replay | None = None
        self.finished = False
        self.usage: dict[str, object] | None = None  # set when the usage chunk was sent

    def start(self) -> bytes:
        """The role chunk; sent once, before anything else."""
        self._started = True
        return self._delta_prefix + b'{"role":"assistant","content":""' + self._suffix

    def _content(self, text: str, frames: list[bytes]) -> None:
        if self._replay_content is not None:
            text, replaying = self._replay_content.take(text)
            if not replaying:
                self._replay_content = None
        if text:
            frames.append(self._content_prefix + orjson.dumps(text) + self._suffix)

    def _reasoning(self, text: str, frames: list[bytes]) -> None:
        if self._replay_reasoning is not None:
            text, replaying = self._replay_reasoning.take(text)
            if not replaying:
                self._replay_reasoning = None
        if text:
            frames.append(self._reasoning_prefix + orjson.dumps(text) + self._suffix)

    def encode(self, batch: list[Delta]) -> bytes:
        """Frames for one batch (``b""`` when the batch shows nothing)."""
        frames: list[bytes] = [] if self._started else [self.start()]
        answer = self.answer
        pending_text: list[str] = []
        pending_reasoning: list[str] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                if pending_reasoning:
                    self._reasoning("".join(pending_reasoning), frames)
                    pending_reasoning.clear()
                pending_text.append(d.text)
                answer.content.append(d.text)
                continue
            if kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                if pending_text:
                    self._content("".join(pending_text), frames)
                    pending_text.clear()
                pending_reasoning.append(d.text)
                answer.reasoning.append(d.text)
                continue
            if pending_text:
                self._content("".join(pending_text), frames)
                pending_text.clear()
            if pending_reasoning:
                self._reasoning("".join(pending_reasoning), frames)
                pending_reasoning.clear()
            if kind is FileDelta:
                assert isinstance(d, FileDelta)
                text = ("\n\n" if answer.content else "") + file_markdown(d)
                answer.content.append(text)
                self._content(text, frames)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                answer.add_tool_delta(d)
                frames.append(self._tool_frame(d))
            elif kind is ResetDelta:
                self._replay_content = _Replay(answer.text)
                self._replay_reasoning = _Replay(answer.reasoning_text)
                answer.reset()
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                answer.usage = d
            elif kind is End:
                assert isinstance(d, End)
                answer.finish_reason = d.finish_reason
                frames.append(self.finish())
            elif kind is Failure:
                assert isinstance(d, Failure)
                frames.append(self.failure(d))
        if pending_text:
            self._content("".join(pending_text), frames)
        if pending_reasoning:
            self._reasoning("".join(pending_reasoning), frames)
        return b"".join(frames)

    def _tool_frame(self, d: ToolCallDelta) -> bytes:
        entry: dict[str, object] = {"index": d.index}
        if d.id is not None:
            entry["id"] = d.id
            entry["type"] = "function"
            entry["function"] = {"name": d.name or "", "arguments": d.arguments}
        else:
            entry["function"] = {"arguments": d.arguments}
        return self._delta_prefix + orjson.dumps({"tool_calls": [entry]})[:-1] + self._suffix

    def finish(self) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        self.finished = True
        reason = orjson.dumps(self.answer.final_reason)
        frames = [self._delta_prefix + b'{},"logprobs":null,"finish_reason":' + reason + b"}]}\n\n"]
        if self._include_usage:
            usage = self.usage = usage_body(self._prompt_tokens(), self.answer, self._count)
            frames.append(self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n")
        frames.append(DONE_FRAME)
        return b"".join(frames)

    def failure(self, f: Failure) -> bytes:
        """The error frame and ``[DONE]``."""
        self.finished = True
        return b"data: " + orjson.dumps(f.error.body()) + b"\n\n" + DONE_FRAME

    def keepalive(self) -> bytes:
        """An SSE comment; clients skip it, proxies see traffic."""
        return b": keep-alive\n\n"
