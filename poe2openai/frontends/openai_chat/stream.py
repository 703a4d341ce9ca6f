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

Resets (``replace_response``) are resolved before the encoder by the stream stage
:mod:`reset_replay`; usage is counted by the engine and handed to :meth:`ChunkEncoder.finish`.
"""

from __future__ import annotations

import orjson

from poe2openai.errors import ApiError
from poe2openai.frontends.openai_chat.errors import error_body
from poe2openai.frontends.openai_chat.usage import usage_body
from poe2openai.pipeline.deltas import Delta, End, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta, file_markdown
from poe2openai.pipeline.usage import Usage

DONE_FRAME = b"data: [DONE]\n\n"


class ChunkEncoder:
    """Encodes batches of deltas as SSE frames for one streamed completion."""

    __slots__ = (
        "_content_prefix",
        "_delta_prefix",
        "_head",
        "_reasoning_prefix",
        "_started",
        "_suffix",
        "_wrote_text",
        "finished",
        "tool_calls",
    )

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        head = orjson.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        )[:-1]
        self._head = b"data: " + head
        self._delta_prefix = self._head + b',"choices":[{"index":0,"delta":'
        self._content_prefix = self._delta_prefix + b'{"content":'
        self._reasoning_prefix = self._delta_prefix + b'{"reasoning_content":'
        self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._started = False
        self._wrote_text = False
        self.tool_calls = False  # a call was sent: the finish reason is tool_calls
        self.finished = False

    def start(self, prompt_tokens: int | None = None) -> bytes:
        """The role chunk; sent once, before anything else (usage comes at the end)."""
        self._started = True
        return self._delta_prefix + b'{"role":"assistant","content":""' + self._suffix

    def encode(self, batch: list[Delta]) -> bytes:
        """Frames for one batch (``b""`` when the batch shows nothing)."""
        frames: list[bytes] = [] if self._started else [self.start()]
        pending_text: list[str] = []
        pending_reasoning: list[str] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                if pending_reasoning:
                    frames.append(self._reasoning_prefix + orjson.dumps("".join(pending_reasoning)) + self._suffix)
                    pending_reasoning.clear()
                pending_text.append(d.text)
                continue
            if kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                if pending_text:
                    frames.append(self._content_prefix + orjson.dumps("".join(pending_text)) + self._suffix)
                    pending_text.clear()
                    self._wrote_text = True
                pending_reasoning.append(d.text)
                continue
            if pending_text:
                frames.append(self._content_prefix + orjson.dumps("".join(pending_text)) + self._suffix)
                pending_text.clear()
                self._wrote_text = True
            if pending_reasoning:
                frames.append(self._reasoning_prefix + orjson.dumps("".join(pending_reasoning)) + self._suffix)
                pending_reasoning.clear()
            if kind is FileDelta:
                assert isinstance(d, FileDelta)
                text = ("\n\n" if self._wrote_text else "") + file_markdown(d)
                frames.append(self._content_prefix + orjson.dumps(text) + self._suffix)
                self._wrote_text = True
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                self.tool_calls = True
                frames.append(self._tool_frame(d))
        if pending_text:
            frames.append(self._content_prefix + orjson.dumps("".join(pending_text)) + self._suffix)
            self._wrote_text = True
        if pending_reasoning:
            frames.append(self._reasoning_prefix + orjson.dumps("".join(pending_reasoning)) + self._suffix)
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

    def finish(self, end: End, usage: Usage | None) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        frames = [] if self._started else [self.start()]
        self.finished = True
        # a cut answer says so, even in the middle of a tool call
        cut = end.finish_reason == "length"
        reason = b'"tool_calls"' if self.tool_calls and not cut else orjson.dumps(end.finish_reason)
        frames.append(self._delta_prefix + b'{},"logprobs":null,"finish_reason":' + reason + b"}]}\n\n")
        if usage is not None:
            frames.append(self._head + b',"choices":[],"usage":' + orjson.dumps(usage_body(usage)) + b"}\n\n")
        frames.append(DONE_FRAME)
        return b"".join(frames)

    def failure(self, error: ApiError) -> bytes:
        """The error frame and ``[DONE]``."""
        self.finished = True
        return b"data: " + orjson.dumps(error_body(error)) + b"\n\n" + DONE_FRAME

    def keepalive(self) -> bytes:
        """An SSE comment; clients skip it, proxies see traffic."""
        return b": keep-alive\n\n"
