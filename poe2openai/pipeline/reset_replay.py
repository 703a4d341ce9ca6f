"""Stream stage: a ``replace_response`` made into text a client can append (sans-IO).

A streaming client cannot take back text it already has. When the bot replaces its answer
(:class:`ResetDelta`), the restated answer is compared with what was sent: while it repeats
it, nothing is sent; where it goes beyond, only the new part is sent; where it differs, a
blank line and the whole new answer follow. Answer text and reasoning are compared apart.

Memory is bounded: the stage remembers at most ``keep`` characters of each. A reset after a
longer answer cannot be compared, so the new answer follows a blank line in full. The
non-stream aggregate needs none of this: it simply keeps the replacement.
"""

from __future__ import annotations

from poe2openai.pipeline.deltas import Delta, ReasoningDelta, ResetDelta, TextDelta

KEEP = 1 << 20  # characters remembered per kind for comparing a replacement


class _Replay:
    """After a reset: suppress text the client already has."""

    __slots__ = ("matched", "old", "pos")

    def __init__(self, old: str | None) -> None:
        self.old = old
        self.pos = 0
        self.matched: list[str] = []

    def take(self, text: str) -> tuple[str, bool]:
        """Return (text to send, still replaying)."""
        old, pos = self.old, self.pos
        if old is None:  # too long to compare: restate in full
            return "\n\n" + text, False
        if pos >= len(old):
            return text, False
        if old.startswith(text, pos) and len(text) <= len(old) - pos:
            self.pos += len(text)
            self.matched.append(text)
            return "", True
        k = 0
        limit = min(len(text), len(old) - pos)
        while k < limit and text[k] == old[pos + k]:
            k += 1
        if pos + k == len(old):
            return text[k:], False  # the new answer extends the old one
        return "\n\n" + "".join(self.matched) + text, False


class _Sent:
    """The logical text of one kind so far, up to a bound."""

    __slots__ = ("keep", "parts", "size")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.parts: list[str] | None = []
        self.size = 0

    def add(self, text: str) -> None:
        parts = self.parts
        if parts is not None:
            self.size += len(text)
            if self.size > self.keep:
                self.parts = None
            else:
                parts.append(text)

    def extend(self, texts: list[str]) -> None:
        """:meth:`add` for several texts at once (the same outcome, one call)."""
        parts = self.parts
        if parts is not None:
            self.size += sum(map(len, texts))
            if self.size > self.keep:
                self.parts = None
            else:
                parts += texts

    def take_snapshot(self) -> str | None:
        """What was said (``None``: too long to remember), and start over."""
        parts = self.parts
        old = "".join(parts) if parts is not None else None
        self.parts, self.size = [], 0
        return old


class ResetReplay:
    """Turns resets into appended text for streaming encoders; nothing else changes."""

    __slots__ = ("_reasoning", "_replay_reasoning", "_replay_text", "_text")

    def __init__(self, keep: int = KEEP) -> None:
        self._text = _Sent(keep)
        self._reasoning = _Sent(keep)
        self._replay_text: _Replay | None = None
        self._replay_reasoning: _Replay | None = None

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Pass the batch on with resets resolved."""
        if self._replay_text is None and self._replay_reasoning is None:
            # the usual case, no reset to resolve: only remember what goes out
            texts: list[str] = []
            reasoning: list[str] = []
            for d in batch:
                if isinstance(d, TextDelta):
                    texts.append(d.text)
                elif isinstance(d, ReasoningDelta):
                    reasoning.append(d.text)
                elif isinstance(d, ResetDelta):
                    return self._resolve(batch)  # nothing remembered yet: all of it the long way
            if texts:
                self._text.extend(texts)
            if reasoning:
                self._reasoning.extend(reasoning)
            return batch
        return self._resolve(batch)

    def _resolve(self, batch: list[Delta]) -> list[Delta]:
        out: list[Delta] | None = None
        for i, d in enumerate(batch):
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                self._text.add(d.text)
                replay = self._replay_text
                if replay is not None:
                    text, going = replay.take(d.text)
                    if not going:
                        self._replay_text = None
                    if out is None:
                        out = batch[:i]
                    if text:
                        out.append(TextDelta(text))
                    continue
            elif kind is ReasoningDelta:
                assert isinstance(d, ReasoningDelta)
                self._reasoning.add(d.text)
                replay = self._replay_reasoning
                if replay is not None:
                    text, going = replay.take(d.text)
                    if not going:
                        self._replay_reasoning = None
                    if out is None:
                        out = batch[:i]
                    if text:
                        out.append(ReasoningDelta(text))
                    continue
            elif kind is ResetDelta:
                self._replay_text = _Replay(self._text.take_snapshot())
                self._replay_reasoning = _Replay(self._reasoning.take_snapshot())
                if out is None:
                    out = batch[:i]
                continue
            if out is not None:
                out.append(d)
        return batch if out is None else out
