"""Neutral deltas: what every stage of the pipeline passes on, whatever the wire format.

The Poe stage turns bot events into these; the thinking split and the tool extractor
rewrite them; an encoder (OpenAI chunks, a non-stream aggregate, ...) renders them.
A stream of deltas always ends with exactly one :class:`End` or :class:`Failure`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import quote, urlsplit

from poe2openai.errors import ApiError


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
    """The answer is complete. ``finish_reason``: ``stop`` or ``length``; ``stop_sequence``: the
    client's stop sequence that ended it, when one did (``finish_reason`` is then ``stop``)."""

    finish_reason: str = "stop"
    stop_sequence: str | None = None


@dataclass(slots=True)
class Failure:
    """The answer failed; ``error`` is what the client should be told."""

    error: ApiError


Delta: TypeAlias = TextDelta | ReasoningDelta | ResetDelta | ToolCallDelta | FileDelta | UsageDelta | End | Failure

RESET = ResetDelta()


# Kept as they are in a Markdown link destination: RFC 3986's unreserved and reserved
# characters except ( ) ' (they end the link or a naive HTML attribute), and % of escapes.
_URL_SAFE = "-._~:/?#[]@!$&*+,;=%"
_HTTP = re.compile(r"https?://", re.IGNORECASE)
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL_SPECIAL = re.compile(r"([\\\[\]<>`])")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")  # line breaks and other control characters
LABEL_MAX = 200


def markdown_url(url: str) -> str | None:
    """``url`` escaped for a Markdown link destination, or ``None`` unless it is an http(s) URL
    with a host (``javascript:``, ``data:`` and the like are never relayed)."""
    if not _HTTP.match(url):
        return None
    try:
        if not urlsplit(url).hostname:
            return None
    except ValueError:
        return None
    return quote(_LONE_PERCENT.sub("%25", url), safe=_URL_SAFE, errors="replace")


def markdown_label(name: str) -> str:
    """A file name as link text: one line, at most :data:`LABEL_MAX` characters, Markdown escaped."""
    return _LABEL_SPECIAL.sub(r"\\\1", _CONTROLS.sub(" ", name[:LABEL_MAX]))


def file_markdown(f: FileDelta) -> str:
    """A file as Markdown for text-only wire formats: an image, or a link (empty for a URL
    :func:`markdown_url` refuses)."""
    url = markdown_url(f.url)
    if url is None:
        return ""
    bang = "!" if f.content_type.startswith("image/") else ""
    return f"{bang}[{markdown_label(f.name)}]({url})"
