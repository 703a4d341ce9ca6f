"""The OpenAI ``usage`` object of a completion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .answer import Answer


def usage_body(prompt_tokens: int, answer: Answer, count: Callable[[str], int]) -> dict[str, Any]:
    """Usage counted once, at the end; a native bot's own counts win when it sent them."""
    if answer.usage is not None:
        prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
        reasoning = 0
    else:
        prompt = prompt_tokens
        completion = count(answer.completion_text())
        reasoning = count(answer.reasoning_text) if answer.reasoning else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
