"""Token usage of one answer, counted as it streams (sans-IO).

:class:`UsageMeter` is a pass-through stage at the end of a pipeline: it counts completion
tokens (answer text, reasoning, tool-call names and arguments) without keeping the answer,
so its memory stays bounded however long the answer runs. Usage a native bot reports itself
wins over our count. Text the bot replaced (``replace_response``) was generated too, so it
stays counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from poe2openai.pipeline.deltas import Delta, ReasoningDelta, TextDelta, ToolCallDelta, UsageDelta
from poe2openai.pipeline.token_meter import TokenMeter


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion, in no wire format."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


class UsageMeter:
    """Counts what passes; changes nothing."""

    __slots__ = ("_answer", "_reasoning", "reported")

    def __init__(self) -> None:
        self._answer = TokenMeter()
        self._reasoning = TokenMeter()
        self.reported: UsageDelta | None = None

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Count one batch and pass it on unchanged."""
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                self._answer.feed(d.text)
            elif kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                self._reasoning.feed(d.text)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                if d.name:
                    self._answer.feed(d.name + "\n")
                if d.arguments:
                    self._answer.feed(d.arguments)
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                self.reported = d
        return batch

    def usage(self, prompt_tokens: int) -> Usage:
        """The usage so far, given the prompt's count."""
        if self.reported is not None:
            return Usage(self.reported.prompt_tokens, self.reported.completion_tokens)
        reasoning = self._reasoning.total()
        return Usage(prompt_tokens, self._answer.total() + reasoning, reasoning)
