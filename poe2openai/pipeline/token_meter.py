"""Completion tokens counted while the answer streams in, at linear cost (sans-IO).

A :class:`TokenMeter` counts one text that arrives in pieces, tokenizing each character once.
It cuts the text only at token boundaries (:data:`tokens.BOUNDARY`: a space after a
non-space, the first character of a line, punctuation after a letter or digit), where the
tokens on either side are those of the whole text, so it holds back only the tail after the
last one. Complete text is tokenized with tiktoken's ``encode_ordinary`` once :data:`CHUNK`
characters of it have come (one call per chunk, not per delta) and added to a running total.
A stretch of :data:`HOLD` characters without a boundary is cut there anyway, so what is held
back, and every piece tiktoken sees, stays small however the text looks.

The total for a text is the same for every chunking of it. It equals ``count_tokens`` of the
whole text, except that each forced cut (only in a stretch of more than :data:`HOLD`
characters with no boundary: base64, a long run of one character) may change the count by
about one token.

A :class:`CompletionMeter` counts a whole answer from its deltas, as the ``usage`` object
needs it: the answer, the reasoning, and the name and arguments of each tool call, each a
separate text. A run of deltas of one kind is one text: when another kind arrives (or a
file, or the end), the run is counted to its end, so a kind that comes back later starts a
new text.
"""

from __future__ import annotations

from poe2openai.pipeline import tokens
from poe2openai.pipeline.deltas import Delta, ReasoningDelta, ResetDelta, TextDelta, ToolCallDelta, UsageDelta

HOLD = 1024
"""The longest stretch without a token boundary that is held back whole; a longer one is cut."""
CHUNK = 1024
"""Complete text is tokenized once this many characters of it have come (fewer calls)."""

_BACKOFF_TRIES = 4


def _utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8: no text has more tokens than this."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _segment_ends(s: str, start: int, lo: int) -> tuple[list[int], list[int]]:
    """Where segments of ``s`` end after ``start``, the end of the last one; and the forced ends.

    A segment ends at a token boundary, or :data:`HOLD` characters after the previous end
    when there is none in between (a forced end); what follows the last end is the tail,
    shorter than :data:`HOLD`. ``s[start + 1:lo]`` is known to hold no boundary: only
    ``s[lo - 1:]`` is scanned.
    """
    ends: list[int] = []
    forced: list[int] = []
    n = len(s)
    last = tokens.LAST_BOUNDARY.match
    while n - start > HOLD:
        m = last(s, lo, start + HOLD + 1)
        if m:
            start = m.end() - 1
        else:
            start += HOLD
            forced.append(start)
        ends.append(start)
        lo = start + 1
    m = last(s, lo, n)
    if m:
        ends.append(m.end() - 1)
    return ends, forced


class TokenMeter:
    """Counts the o200k tokens of one text fed in pieces; see the module."""

    __slots__ = ("_decode", "_encode", "_lo", "_parts", "_size", "_total", "_unsafe")

    def __init__(self) -> None:
        enc = tokens._encoding()
        self._encode = enc.encode_ordinary
        self._decode = enc.decode_bytes
        self._total = 0
        # The text not tokenized yet, in pieces: it starts where the counted text ends (on a
        # boundary or a forced end), and its positions 1 .. _lo - 1 are known not to be
        # boundaries (so no character is scanned twice).
        self._parts: list[str] = []
        self._size = 0
        self._lo = 1
        self._unsafe = 0  # feed_within: characters at its end not released yet

    @property
    def total(self) -> int:
        """Tokens counted so far: text is tokenized in chunks, so this lags behind."""
        return self._total

    @property
    def pending(self) -> int:
        """Characters not tokenized yet: at most ``max(CHUNK, HOLD)`` between two feeds."""
        return self._size

    def count(self) -> int:
        """The total if the text ended now (what is pending is counted, and still held)."""
        self._settle()
        s = self._text()
        return self._total + len(self._encode(s)) if s else self._total

    def feed(self, text: str) -> None:
        """Count the next piece of the text."""
        if text:
            self._parts.append(text)
            self._size += len(text)
            if self._size >= CHUNK:
                self._settle()

    def flush(self) -> int:
        """The text is complete: count what is pending; return the total."""
        self._settle()
        s = self._text()
        if s:
            self._total += len(self._encode(s))
        self._keep("", 0)
        self._unsafe = 0
        return self._total

    def reset(self) -> None:
        """Start over with a new text."""
        self._total = 0
        self._keep("", 0)
        self._unsafe = 0

    def _text(self) -> str:
        """The pending text, joined."""
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        s = "".join(parts)
        self._parts = [s] if s else []
        return s

    def _keep(self, s: str, start: int) -> None:
        """``s[:start]`` has been counted: the rest (no boundary in it) stays pending."""
        rest = s[start:] if start else s
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._lo = max(1, len(rest))

    def _settle(self) -> None:
        """Count the pending text up to its last segment end."""
        s = self._text()
        ends, forced = _segment_ends(s, 0, self._lo)
        if not ends:
            self._lo = max(1, len(s))
            return
        encode = self._encode
        total = self._total
        done = 0
        for f in forced:  # a forced end is never inside one call
            total += len(encode(s[done:f]))
            done = f
        last = ends[-1]
        if last > done:
            total += len(encode(s[done:last]))
        self._total = total
        self._keep(s, last)

    # --- with a limit ---------------------------------------------------------------------

    def feed_within(self, text: str, limit: int) -> tuple[str, bool]:
        """Count the next piece while the total may reach at most ``limit`` tokens.

        Returns ``(release, over)``. ``release`` is the text now known to fit: earlier text
        that was held back, then all or part of ``text``. Text is released at once while
        its UTF-8 length still fits in what is left (no tokenization could need more);
        near the limit the tail after the last boundary is held until it is complete, so
        the cut is the same for every chunking. ``over``: the limit is reached; ``release``
        ends where the first ``limit`` tokens of the text end (the rest is dropped, the
        total is at most ``limit``) and the meter is done with this text.
        """
        unsafe = self._unsafe
        if not unsafe and self._total + 4 * (self._size + len(text)) <= limit:
            self.feed(text)
            return text, False
        first = self._size - unsafe
        self._parts.append(text)
        self._size += len(text)
        s = self._text()
        if not unsafe and self._total + _utf8_len(s) <= limit:
            if self._size >= CHUNK:
                self._settle()
            return text, False
        return self._take(s, first, limit, False)

    def flush_within(self, limit: int) -> tuple[str, bool]:
        """The text is complete: as :meth:`feed_within` for what is pending."""
        s = self._text()
        if not s:
            return "", False
        return self._take(s, self._size - self._unsafe, limit, True)

    def _take(self, s: str, first: int, limit: int, final: bool) -> tuple[str, bool]:
        """Count the pending text ``s`` segment by segment, within ``limit``."""
        ends, _ = _segment_ends(s, 0, self._lo)
        n = len(s)
        if final and (not ends or ends[-1] < n):
            ends.append(n)
        encode = self._encode
        total = self._total
        start = 0
        for end in ends:
            c = len(encode(s[start:end]))
            if total + c > limit:
                return self._cut(s, start, end, first, total, limit), True
            total += c
            start = end
        self._total = total
        self._keep(s, start)
        # no tokenization of the tail can need more tokens than it has UTF-8 bytes
        fits = final or total + 4 * (n - start) <= limit or total + _utf8_len(s[start:]) <= limit
        safe = n if fits else max(start, first)
        self._unsafe = n - safe
        return s[first:safe], False

    def _cut(self, s: str, start: int, end: int, first: int, total: int, limit: int) -> str:
        """Segment ``s[start:end]`` (``total`` tokens before it) does not fit: end the text in it.

        Text already released stays released: it fitted by its UTF-8 length, so the total
        stays within ``limit`` in any case.
        """
        keep, counted = self._fit(s[start:end], limit - total)
        cut = start + keep
        if cut < first:
            cut = first
            counted = len(self._encode(s[start:cut]))
        self._total = total + counted
        self._keep("", 0)
        self._unsafe = 0
        return s[first:cut]

    def _fit(self, seg: str, budget: int) -> tuple[int, int]:
        """How many characters of ``seg`` its first ``budget`` tokens cover, and their count.

        The characters of the first ``budget`` tokens of ``seg`` (a token may end inside a
        character: that character is left out) re-counted alone are ``budget`` tokens or
        fewer in practice; if not, one token fewer is tried, a few times, then nothing.
        """
        if budget <= 0:
            return 0, 0
        encode = self._encode
        toks = encode(seg)
        for n in range(budget, max(0, budget - _BACKOFF_TRIES), -1):
            keep = len(self._decode(toks[:n]).decode("utf-8", "ignore"))
            counted = len(encode(seg[:keep]))
            if counted <= budget:
                return keep, counted
        return 0, 0


_ANSWER = -1  # stream keys; a tool call's arguments are keyed by its index (0 or more)
_REASONING = -2


class CompletionMeter:
    """Counts an answer's completion and reasoning tokens from its deltas; a pass-through stage.

    Put it last before the encoder and read :attr:`completion_tokens` and
    :attr:`reasoning_tokens` when the :class:`End` has gone through. A :class:`ResetDelta`
    starts the answer and reasoning over (the replacement is the answer); tool calls already
    made still count.
    """

    __slots__ = ("_answer", "_key", "_live", "_reasoning", "_tools", "reported")

    def __init__(self) -> None:
        self.reported: UsageDelta | None = None  # what a native bot said it used
        self._live = TokenMeter()  # the text of the current run
        self._key: int | None = None  # whose run it is
        self._answer = 0  # tokens of runs already counted to their end
        self._reasoning = 0
        self._tools = 0

    @property
    def completion_tokens(self) -> int:
        """Answer, reasoning, tool-call names and arguments, as counted so far."""
        live = self._live.count() if self._key is not None else 0
        return self._answer + self._reasoning + self._tools + live

    @property
    def reasoning_tokens(self) -> int:
        """The reasoning part of :attr:`completion_tokens`."""
        return self._reasoning + (self._live.count() if self._key == _REASONING else 0)

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Count one batch; return it unchanged."""
        for d in batch:
            kind = type(d)
            if kind is TextDelta or kind is ReasoningDelta:
                assert isinstance(d, (TextDelta, ReasoningDelta))
                key = _ANSWER if kind is TextDelta else _REASONING
                if key != self._key:
                    self._close()
                    self._key = key
                self._live.feed(d.text)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                if d.name is not None or d.id is not None or d.index != self._key:
                    self._close()
                    self._key = d.index
                if d.name:
                    self._tools += tokens.count_tokens(d.name)
                self._live.feed(d.arguments)
            elif kind is ResetDelta:
                if self._key is not None and self._key < 0:
                    self._live.reset()
                    self._key = None
                else:
                    self._close()
                self._answer = self._reasoning = 0
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                self.reported = d
            else:  # a file or the end ends the run
                self._close()
        return batch

    def _close(self) -> None:
        """Count the current run to its end."""
        key = self._key
        if key is None:
            return
        n = self._live.flush()
        self._live.reset()
        self._key = None
        if key == _ANSWER:
            self._answer += n
        elif key == _REASONING:
            self._reasoning += n
        else:
            self._tools += n
