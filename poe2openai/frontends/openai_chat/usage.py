"""The OpenAI ``usage`` object of a completion."""

from __future__ import annotations

from typing import Any

from poe2openai.pipeline.usage import Usage


def usage_body(usage: Usage) -> dict[str, Any]:
    """Usage in Chat Completions' shape."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }
