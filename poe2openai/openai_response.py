"""The last stage for non-streaming clients: deltas to one ``chat.completion`` object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from .errors import ApiError
from .usage import usage_body


class ResponseBuilder:
    """Accumulates deltas; :meth:`result` gives the response body or raises the failure."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.error: ApiError | None = None
        self.done = False

    def feed(self, batch: list[Delta]) -> None:
        """Take one batch of deltas."""
        answer = self.answer
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                answer.content.append(d.text)
            elif kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                answer.reasoning.append(d.text)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                answer.add_tool_delta(d)
            elif kind is FileDelta:
                assert isinstance(d, FileDelta)
                answer.content.append(("\n\n" if answer.content else "") + file_markdown(d))
            elif kind is ResetDelta:
                answer.reset()
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                answer.usage = d
            elif kind is End:
                assert isinstance(d, End)
                answer.finish_reason = d.finish_reason
                self.done = True
            elif kind is Failure:
                assert isinstance(d, Failure)
                self.error = d.error
                self.done = True

    def result(
        self, completion_id: str, created: int, model: str, prompt_tokens: int, count: Callable[[str], int]
    ) -> dict[str, Any]:
        """The ``chat.completion`` body."""
        if self.error is not None:
            raise self.error
        answer = self.answer
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.reasoning:
            message["reasoning_content"] = answer.reasoning_text
        if answer.tool_calls:
            message["tool_calls"] = [c.as_openai() for _, c in sorted(answer.tool_calls.items())]
            if not message["content"]:
                message["content"] = None
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.final_reason}],
            "usage": usage_body(prompt_tokens, answer, count),
        }
