"""Stage 2: split a bot's leading "thinking" block out of its answer (sans-IO).

Poe reasoning bots write their thoughts into the answer text in one of two shapes::

    *Thinking...*                      <think>
                                       The user greets me.
    > **Checking the arithmetic**      </think>
    > 17 × 19 = 323.
                                       Hello!
    17 × 19 = **323**.

Only a block at the very start of the answer counts (after leading white space): a header
line (``*Thinking...*``, ``Thinking...``, ``**Thinking...**``, ``_Thinking..._``, any case,
``...`` or ``…``) followed by ``>`` quote lines, or a ``<think>…</think>`` element. The
quote lines, without their ``>`` and one space, become reasoning joined by newlines (blank
and empty-quote lines inside are kept as paragraph breaks, those at the edges dropped);
the first non-blank line that is not a quote ends the block and the answer starts there,
so an answer may itself contain blockquotes. A header not followed by a quote line is left
in the answer unchanged.

Output does not depend on how the text is chunked: the concatenated reasoning and the
concatenated answer are the same for every split of the same text. Text is held back only
while it is undecided: a possible header, a line whose first character has not arrived, a
quote marker waiting for its first visible character, or a possible ``</think>``.
A :class:`ResetDelta` (``replace_response``) starts the split over.
"""

from __future__ import annotations

import re

from poe2openai.pipeline.deltas import RESET, Delta, End, Failure, ReasoningDelta, ResetDelta, TextDelta

_HEADER = re.compile(r"[*_]{0,2}\s*thinking\s*(?:\.{3}|…)?\s*[*_]{0,2}", re.IGNORECASE)
_HEADER_TAIL = re.compile(r"(?:\.{0,3}|…)\s*[*_]{0,2}\s*")
_OPEN_TAG = "<think>"
_CLOSE_TAG = "</think>"

# states
_START, _QUOTES, _TAG, _AFTER_TAG, _PASS = range(5)


def _could_be_header(s: str) -> bool:
    """Whether ``s`` (no newline, leading space stripped) may still grow into a header."""
    rest = s.lstrip("*_").lstrip()
    if len(s) - len(s.lstrip("*_")) > 2:
        return False
    low = rest.lower()
    if len(low) <= 8:
        return "thinking".startswith(low)
    return low.startswith("thinking") and _HEADER_TAIL.fullmatch(low[8:]) is not None


class ThinkingSplitter:
    """Moves a leading thinking block from text deltas to reasoning deltas."""

    __slots__ = ("_any", "_blanks", "_held", "_line", "_quote_emitted", "_raw", "_seen_quote", "_state")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._state = _START
        self._raw = ""  # all text since the start, until a quote line confirms the block
        self._seen_quote = False
        self._line = ""  # the current unfinished line (quote mode)
        self._quote_emitted = -1  # chars of the current quote line's content sent; -1: undecided
        self._blanks = 0  # empty lines waiting between two reasoning lines
        self._any = False  # some reasoning was sent
        self._held = ""  # <think> mode: a possible partial close tag or trailing white space

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Split one batch of deltas."""
        out: list[Delta] = []
        for d in batch:
            if type(d) is TextDelta:
                if self._state == _PASS:
                    out.append(d)
                else:
                    self._text(d.text, out)
            elif type(d) is ResetDelta:
                self._reset()
                out.append(RESET)
            else:
                if type(d) is End or type(d) is Failure:
                    self._flush(out)
                out.append(d)
        return out

    # --- dispatch -------------------------------------------------------------------------

    def _text(self, text: str, out: list[Delta]) -> None:
        state = self._state
        if state == _START:
            self._start(text, out)
        elif state == _QUOTES:
            self._quotes(text, out)
        elif state == _TAG:
            self._tag(text, out)
        elif state == _AFTER_TAG:
            text = text.lstrip()
            if text:
                self._state = _PASS
                out.append(TextDelta(text))

    def _give_up(self, out: list[Delta]) -> None:
        """Not a thinking block after all: everything so far is answer."""
        self._state = _PASS
        if self._raw:
            out.append(TextDelta(self._raw))
        self._raw = ""

    def _start(self, text: str, out: list[Delta]) -> None:
        self._raw += text
        s = self._raw.lstrip()
        if not s:
            return
        if s.startswith(_OPEN_TAG):
            self._state = _TAG
            self._raw = ""
            self._tag(s[len(_OPEN_TAG) :], out)
            return
        if _OPEN_TAG.startswith(s):
            return
        nl = s.find("\n")
        if nl < 0:
            if not _could_be_header(s):
                self._give_up(out)
            return
        if _HEADER.fullmatch(s[:nl].strip()) is None:
            self._give_up(out)
            return
        self._state = _QUOTES
        raw = self._raw
        self._raw = raw[: len(raw) - len(s) + nl + 1]  # up to and including the header line
        self._quotes(s[nl + 1 :], out)

    # --- quote lines ----------------------------------------------------------------------

    def _reasoning_line_start(self, out: list[Delta], content: str) -> None:
        prefix = "\n" * (1 + self._blanks) if self._any else ""
        self._blanks = 0
        self._any = True
        if not self._seen_quote:
            self._seen_quote = True
            self._raw = ""
        out.append(ReasoningDelta(prefix + content))

    def _quotes(self, text: str, out: list[Delta]) -> None:
        if not self._seen_quote:
            self._raw += text
        pos = 0
        n = len(text)
        while pos < n and self._state == _QUOTES:
            nl = text.find("\n", pos)
            piece = text[pos:] if nl < 0 else text[pos:nl]
            if self._quote_emitted >= 0:
                # inside a quote line whose content is already streaming
                if piece:
                    out.append(ReasoningDelta(piece))
                if nl < 0:
                    return
                self._quote_emitted = -1
                pos = nl + 1
                continue
            line = self._line + piece
            stripped = line.lstrip(" \t")
            if nl < 0:
                self._line = line
                if not stripped:
                    return
                if stripped[0] != ">":
                    self._end_block(line, "", out)
                    return
                content = stripped[2:] if stripped[1:2] == " " else stripped[1:]
                if content.strip():
                    self._line = ""
                    self._quote_emitted = len(content)
                    self._reasoning_line_start(out, content)
                return
            self._line = ""
            pos = nl + 1
            if not stripped:
                self._blanks += 1
            elif stripped[0] == ">":
                content = stripped[2:] if stripped[1:2] == " " else stripped[1:]
                if content.strip():
                    self._reasoning_line_start(out, content)
                else:
                    self._blanks += 1
            else:
                self._end_block(line, text[nl:], out)
                return

    def _end_block(self, line: str, rest: str, out: list[Delta]) -> None:
        """A non-quote line ends the block; it and the rest are the answer."""
        if not self._seen_quote:
            self._give_up(out)
            return
        self._state = _PASS
        self._line = ""
        out.append(TextDelta(line + rest))

    # --- <think> tags ---------------------------------------------------------------------

    def _tag(self, text: str, out: list[Delta]) -> None:
        s = self._held + text
        self._held = ""
        end = s.find(_CLOSE_TAG)
        if end >= 0:
            self._emit_tag_reasoning(s[:end].rstrip(), out)
            self._state = _AFTER_TAG
            self._text(s[end + len(_CLOSE_TAG) :], out)
            return
        # hold back a possible partial close tag, then trailing white space
        keep = 0
        for k in range(min(len(_CLOSE_TAG) - 1, len(s)), 0, -1):
            if _CLOSE_TAG.startswith(s[-k:]):
                keep = k
                break
        body = s[: len(s) - keep]
        trimmed = body.rstrip()
        self._held = body[len(trimmed) :] + s[len(s) - keep :]
        self._emit_tag_reasoning(trimmed, out)

    def _emit_tag_reasoning(self, text: str, out: list[Delta]) -> None:
        if not self._any:
            text = text.lstrip()
        if text:
            self._any = True
            out.append(ReasoningDelta(text))

    # --- end of answer --------------------------------------------------------------------

    def _flush(self, out: list[Delta]) -> None:
        state = self._state
        if state == _START:
            self._give_up(out)
        elif state == _QUOTES:
            if not self._seen_quote:
                self._give_up(out)
            # else: an undecided last line can only be white space or an empty ">": nothing to say
            self._line = ""
        elif state == _TAG:
            if self._held.strip():
                self._emit_tag_reasoning(self._held.rstrip(), out)
            self._held = ""
        self._state = _PASS
