"""Deltas to ``text_completion`` chunks (``data: {...}`` frames, then ``data: [DONE]``).

Answer text (and output files, as Markdown) goes out as ``choices[0].text``; the bot's
reasoning is not part of a completion. The last chunk carries the ``finish_reason``; a
``choices: []`` usage chunk follows when ``stream_options.include_usage`` was set; a failure
is one ``data: {"error": {...}}`` frame, then ``[DONE]``.
"""

from __future__ import annotations

import orjson

from poe2openai.errors import ApiError
from poe2openai.pipeline.deltas import Delta, End, FileDelta, TextDelta, file_markdown
from poe2openai.pipeline.usage import Usage

DONE_FRAME = b"data: [DONE]\n\n"


def usage_body(usage: Usage) -> dict[str, int]:
    """Usage in the Completions shape."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class CompletionEncoder:
    """Encodes batches of deltas as SSE frames for one streamed completion."""

    def __init__(self, completion_id: str, created: int, model: str, echo: str = "") -> None:
        head = orjson.dumps({"id": completion_id, "object": "text_completion", "created": created, "model": model})
        self._head = b"data: " + head[:-1]
        self._choice = self._head + b',"choices":[{"index":0,"logprobs":null,"finish_reason":null,"text":'
        self._echo = echo
        self._started = False
        self._wrote = False

    def _text(self, text: str) -> bytes:
        self._wrote = True
        return self._choice + orjson.dumps(text) + b"}]}\n\n"

    def start(self, prompt_tokens: int | None = None) -> bytes:
        """The echoed prompt, if asked for (else nothing: a completion has no opening frame)."""
        self._started = True
        return self._text(self._echo) if self._echo else b""

    def encode(self, batch: list[Delta]) -> bytes:
        """Frames for one batch (``b""`` when the batch shows nothing)."""
        frames = [] if self._started else [self.start()]
        text: list[str] = []
        for d in batch:
            if type(d) is TextDelta:
                assert isinstance(d, TextDelta)
                text.append(d.text)
            elif type(d) is FileDelta:
                assert isinstance(d, FileDelta)
                md = file_markdown(d)
                if md:
                    text.append(("\n\n" if self._wrote or text else "") + md)
        joined = "".join(text)
        if joined:
            frames.append(self._text(joined))
        return b"".join(frames)

    def finish(self, end: End, usage: Usage | None) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        frames = [] if self._started else [self.start()]
        reason = orjson.dumps(end.finish_reason if end.finish_reason in ("stop", "length") else "stop")
        last = b',"choices":[{"index":0,"logprobs":null,"finish_reason":' + reason + b',"text":""}]}\n\n'
        frames.append(self._head + last)
        if usage is not None:
            frames.append(self._head + b',"choices":[],"usage":' + orjson.dumps(usage_body(usage)) + b"}\n\n")
        frames.append(DONE_FRAME)
        return b"".join(frames)

    def failure(self, error: ApiError) -> bytes:
        """The error frame and ``[DONE]``."""
        return b"data: " + orjson.dumps(error.body()) + b"\n\n" + DONE_FRAME

    def keepalive(self) -> bytes:
        """An SSE comment; clients skip it, proxies see traffic."""
        return b": keep-alive\n\n"
