"""What the answer says so far: text, reasoning, tool calls, files, usage, finish.

Shared by the encoders. Keeps the pieces as lists (appending is O(1) per delta; the text
is joined once, at the end), so no per-chunk work grows with the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .deltas import ToolCallDelta, UsageDelta


@dataclass(slots=True)
class ToolCall:
    """One tool call, assembled from its deltas."""

    id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    def as_openai(self) -> dict[str, object]:
        """The OpenAI ``tool_calls`` entry."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


@dataclass(slots=True)
class Answer:
    """The accumulated answer of one completion."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, ToolCall] = field(default_factory=dict)
    usage: UsageDelta | None = None
    finish_reason: str = "stop"

    def reset(self) -> None:
        """The bot replaced its answer (tool calls already made stay made)."""
        self.content.clear()
        self.reasoning.clear()

    def add_tool_delta(self, d: ToolCallDelta) -> None:
        """Record one tool-call delta."""
        call = self.tool_calls.get(d.index)
        if call is None:
            call = self.tool_calls[d.index] = ToolCall(d.id or "", d.name or "")
        if d.arguments:
            call.arguments.append(d.arguments)

    @property
    def text(self) -> str:
        """The visible answer."""
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        """The reasoning."""
        return "".join(self.reasoning)

    @property
    def final_reason(self) -> str:
        """``tool_calls`` when calls were made, else what Poe said."""
        return "tool_calls" if self.tool_calls else self.finish_reason

    def completion_text(self) -> str:
        """Everything the bot generated, for counting completion tokens."""
        parts = [self.text, self.reasoning_text]
        for call in self.tool_calls.values():
            parts.append(call.name)
            parts.extend(call.arguments)
        return "\n".join(p for p in parts if p)
