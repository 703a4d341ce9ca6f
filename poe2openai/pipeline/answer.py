"""A whole answer, accumulated for a non-streamed response (any dialect).

Keeps the pieces as lists (appending is O(1) per delta; the text is joined once, at the end),
so no per-chunk work grows with the answer. :attr:`Answer.size` counts what is held, so the
engine can refuse an answer larger than its limit before memory runs away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from poe2openai.errors import ApiError
from poe2openai.pipeline.deltas import (
    Delta,
    End,
    Failure,
    FileDelta,
    ReasoningDelta,
    ResetDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)


@dataclass(slots=True)
class ToolCall:
    """One tool call, assembled from its deltas."""

    id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    @property
    def arguments_text(self) -> str:
        """The arguments as one JSON text."""
        return "".join(self.arguments)


@dataclass(slots=True)
class Answer:
    """The accumulated answer of one completion."""

    content: list[str | FileDelta] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, ToolCall] = field(default_factory=dict)
    files: list[FileDelta] = field(default_factory=list)
    usage: UsageDelta | None = None
    finish_reason: str = "stop"
    stop_sequence: str | None = None  # the stop sequence that ended the answer
    error: ApiError | None = None
    done: bool = False
    size: int = 0  # characters held

    def feed(self, batch: list[Delta]) -> None:
        """Take one batch of deltas."""
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                self.content.append(d.text)
                self.size += len(d.text)
            elif kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                self.reasoning.append(d.text)
                self.size += len(d.text)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                self._tool_delta(d)
                self.size += len(d.arguments)
            elif kind is FileDelta:
                assert isinstance(d, FileDelta)
                self.files.append(d)
                self.content.append(d)  # its place in the text, for dialects that inline files
            elif kind is ResetDelta:
                self.reset()
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                self.usage = d
            elif kind is End:
                assert isinstance(d, End)
                self.finish_reason = d.finish_reason
                self.stop_sequence = d.stop_sequence
                self.done = True
            elif kind is Failure:
                assert isinstance(d, Failure)
                self.error = d.error
                self.done = True

    def reset(self) -> None:
        """The bot replaced its answer (tool calls already made stay made)."""
        self.content.clear()
        self.reasoning.clear()
        self.files.clear()
        self.size = sum(len(a) for c in self.tool_calls.values() for a in c.arguments)

    def _tool_delta(self, d: ToolCallDelta) -> None:
        call = self.tool_calls.get(d.index)
        if call is None:
            call = self.tool_calls[d.index] = ToolCall(d.id or "", d.name or "")
        if d.arguments:
            call.arguments.append(d.arguments)

    def text(self, render: Callable[[FileDelta], str] | None = None) -> str:
        """The visible answer; with ``render``, each output file rendered in its place."""
        if not self.files:
            return "".join(self.content)  # type: ignore[arg-type]  # only text without files
        parts: list[str] = []
        for p in self.content:
            if type(p) is str:
                parts.append(p)
            elif render is not None:
                assert isinstance(p, FileDelta)
                parts.append(("\n\n" if parts else "") + render(p))
        return "".join(parts)

    @property
    def reasoning_text(self) -> str:
        """The reasoning."""
        return "".join(self.reasoning)

    def ordered_calls(self) -> list[ToolCall]:
        """The tool calls in index order."""
        return [c for _, c in sorted(self.tool_calls.items())]
