"""The non-stream body for Anthropic clients: one ``message`` object, and what the stream shares
with it (the stop reason, usage)."""

from __future__ import annotations

from typing import Any

import orjson

from poe2openai.frontends.anthropic.ids import signature_of
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.deltas import file_markdown
from poe2openai.pipeline.usage import Usage


def stop_reason(finish_reason: str, stop_sequence: str | None, tool_use: bool) -> str:
    """``max_tokens`` when the limit cut the answer, ``tool_use`` when it called tools,
    ``stop_sequence`` when one of the client's ended it, else ``end_turn``."""
    if finish_reason == "length":
        return "max_tokens"
    if tool_use:
        return "tool_use"
    if stop_sequence is not None:
        return "stop_sequence"
    return "end_turn"


def usage_body(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """Usage in Anthropic's shape (nothing is cached: the cache counts are 0)."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the ``input`` object (``{}`` when they are not an object)."""
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_body(message_id: str, model: str, answer: Answer, usage: Usage, omit_thinking: bool) -> dict[str, Any]:
    """The ``message`` of a whole answer: thinking, text, then tool calls."""
    content: list[dict[str, Any]] = []
    thinking = answer.reasoning_text
    if thinking:
        shown = "" if omit_thinking else thinking
        content.append({"type": "thinking", "thinking": shown, "signature": signature_of(thinking)})
    text = answer.text(file_markdown)
    if text:
        content.append({"type": "text", "text": text})
    calls = answer.ordered_calls()
    for c in calls:
        content.append({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c.arguments_text)})
    stop = stop_reason(answer.finish_reason, answer.stop_sequence, bool(calls))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": answer.stop_sequence if stop == "stop_sequence" else None,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens),
    }
