"""Token usage of one completion, in no wire format.

The counts come from the stage that counted the answer as it passed (the ``max_tokens`` stage,
or a :class:`~poe2openai.pipeline.token_meter.CompletionMeter`), so nothing recounts or keeps
the answer for it. Usage a native bot reports itself wins over our count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from poe2openai.pipeline.deltas import UsageDelta


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


class Counted(Protocol):
    """A stage that counted the answer's tokens."""

    reported: UsageDelta | None

    @property
    def completion_tokens(self) -> int:
        """Answer, reasoning and tool calls."""
        ...

    @property
    def reasoning_tokens(self) -> int:
        """The reasoning part."""
        ...


def usage_of(counted: Counted, prompt_tokens: int) -> Usage:
    """The usage of an answer, given its prompt's count."""
    if counted.reported is not None:
        return Usage(counted.reported.prompt_tokens, counted.reported.completion_tokens)
    return Usage(prompt_tokens, counted.completion_tokens, counted.reasoning_tokens)
