"""The non-stream body for OpenAI clients: one ``chat.completion`` object."""

from __future__ import annotations

from typing import Any

from poe2openai.frontends.openai_chat.usage import usage_body
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.deltas import file_markdown
from poe2openai.pipeline.usage import Usage


def completion_body(completion_id: str, created: int, model: str, answer: Answer, usage: Usage) -> dict[str, Any]:
    """The ``chat.completion`` body of a whole answer."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text(file_markdown), "refusal": None}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning_text
    finish = answer.finish_reason
    if answer.tool_calls:
        if finish != "length":  # a cut answer says so, even in the middle of a tool call
            finish = "tool_calls"
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_text}}
            for c in answer.ordered_calls()
        ]
        if not message["content"]:
            message["content"] = None
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_body(usage),
    }
