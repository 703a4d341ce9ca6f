"""Neutral deltas: what every stage of the pipeline passes on, whatever the wire format.

The Poe stage turns bot events into these; the thinking split and the tool extractor
rewrite them; an encoder (OpenAI chunks, a non-stream aggregate, ...) renders them.
A stream of deltas always ends with exactly one :class:`End` or :class:`Failure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .errors import ApiError


@dataclass(slots=True)
class TextDelta:
    """Visible answer text."""

    text: str


@dataclass(slots=True)
class ReasoningDelta:
    """Reasoning ("thinking") text."""

    text: str


@dataclass(frozen=True, slots=True)
class ResetDelta:
    """The bot replaced its whole answer; the deltas that follow restate it from the start."""


@dataclass(slots=True)
class ToolCallDelta:
    """Part of a tool call: the first one for an ``index`` carries ``id`` and ``name``."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True)
class FileDelta:
    """An output file (image, audio, document) the bot produced."""

    url: str
    name: str
    content_type: str


@dataclass(slots=True)
class UsageDelta:
    """Token counts reported by the bot itself (native OpenAI-style bots only)."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class End:
    """The answer is complete. ``finish_reason`` as Poe gave it (``stop`` or ``length``)."""

    finish_reason: str = "stop"


@dataclass(slots=True)
class Failure:
    """The answer failed; ``error`` is what the client should be told."""

    error: ApiError


Delta: TypeAlias = TextDelta | ReasoningDelta | ResetDelta | ToolCallDelta | FileDelta | UsageDelta | End | Failure

RESET = ResetDelta()


def file_markdown(f: FileDelta) -> str:
    """A file as Markdown for text-only wire formats: an image, or a link."""
    label = f.name.replace("]", "\\]")
    bang = "!" if f.content_type.startswith("image/") else ""
    return f"{bang}[{label}]({f.url})"
