"""Placeholder incremental token counter (replaced by the real one)."""

from __future__ import annotations

from poe2openai.pipeline.tokens import count_tokens

BLOCK = 16 * 1024


class TokenMeter:
    """Counts tokens of text fed piece by piece, in blocks cut at white space."""

    __slots__ = ("_count", "_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._count = 0

    def feed(self, text: str) -> None:
        """Add text."""
        self._parts.append(text)
        self._size += len(text)
        if self._size >= BLOCK:
            block = "".join(self._parts)
            cut = max(block.rfind(" "), block.rfind("\n"))
            if cut <= 0:
                cut = len(block)
            self._count += count_tokens(block[:cut])
            rest = block[cut:]
            self._parts = [rest] if rest else []
            self._size = len(rest)

    def total(self) -> int:
        """Tokens so far (the held tail counted, not consumed)."""
        return self._count + (count_tokens("".join(self._parts)) if self._parts else 0)
