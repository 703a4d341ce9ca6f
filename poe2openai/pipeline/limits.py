"""``max_tokens`` and ``stop``: two pipeline stages that end an answer early (sans-IO).

Both work on neutral deltas, pass :class:`Failure` on, release what they hold at the end,
and after the :class:`End` (or :class:`Failure`) they emit, emit nothing more for any batch:
the driver closes the Poe request as soon as it sees the :class:`End`. The output does not
depend on how the deltas are chunked or batched.

Place them after the thinking split and the tool extractor (so reasoning and tool calls are
already told apart), :class:`StopSequences` first, so that :class:`MaxTokens` counts only
what the client gets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from poe2openai.pipeline.deltas import (
    Delta,
    End,
    Failure,
    ReasoningDelta,
    ResetDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from poe2openai.pipeline.token_meter import TokenMeter
from poe2openai.pipeline.tokens import count_tokens

_ANSWER = -1  # stream keys; a tool call's arguments are keyed by its index (0 or more)
_REASONING = -2


class MaxTokens:
    """Cuts the answer after ``limit`` completion tokens and ends it with ``End("length")``.

    Completion tokens are counted as :class:`~poe2openai.token_meter.CompletionMeter` counts
    them: the answer, the reasoning (OpenAI counts reasoning tokens of reasoning models
    against ``max_completion_tokens``) and each tool call's name and arguments. The delta
    that crosses the limit is cut where the first tokens that fit end (the text sent has at
    most ``limit`` tokens), everything after is dropped and ``End("length")`` follows. A bot
    that ends within the limit keeps its own :class:`End`.

    Text passes at once while it surely fits; within a few tokens of the limit the last
    unfinished word (at most ``HOLD`` characters) is held until it is complete, so the cut
    falls in the same place in every chunking. A :class:`Failure` passes on, unless the text
    before it already reached the limit (then it is ``End("length")``).

    A :class:`ResetDelta` (the bot replaced its answer) starts the count of the answer and
    reasoning over, as the replacement is the answer (a streaming client may then have been
    sent more than ``limit`` tokens in all); tool calls already made still count. The counts
    are readable as :attr:`completion_tokens` and :attr:`reasoning_tokens`.
    """

    __slots__ = ("_answer", "_ended", "_key", "_limit", "_live", "_reasoning", "_tools", "reported")

    def __init__(self, limit: int) -> None:
        self.reported: UsageDelta | None = None  # what a native bot said it used
        self._limit = limit
        self._live = TokenMeter()  # the text of the current run
        self._key: int | None = None  # whose run it is
        self._answer = 0  # tokens of runs counted to their end
        self._reasoning = 0
        self._tools = 0
        self._ended = False

    @property
    def ended(self) -> bool:
        """An :class:`End` or :class:`Failure` has been emitted."""
        return self._ended

    @property
    def completion_tokens(self) -> int:
        """Completion tokens of what was emitted: final once the end has been emitted.

        Before that, text held back near the limit is counted too.
        """
        live = self._live.count() if self._key is not None else 0
        return self._answer + self._reasoning + self._tools + live

    @property
    def reasoning_tokens(self) -> int:
        """The reasoning part of :attr:`completion_tokens`."""
        return self._reasoning + (self._live.count() if self._key == _REASONING else 0)

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Count one batch; cut it and end the answer when the limit is reached."""
        if self._ended:
            return []
        out: list[Delta] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta or kind is ReasoningDelta:
                assert isinstance(d, (TextDelta, ReasoningDelta))
                if not self._run(_ANSWER if kind is TextDelta else _REASONING, d, d.text, out):
                    break
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                if not self._tool(d, out):
                    break
            elif kind is ResetDelta:
                if self._key is not None and self._key < 0:
                    self._live.reset()  # held text of the replaced answer goes with it
                    self._key = None
                elif not self._close(out):
                    break
                self._answer = self._reasoning = 0
                out.append(d)
            elif kind is UsageDelta:
                assert isinstance(d, UsageDelta)
                self.reported = d
                out.append(d)
            else:  # a file, End or Failure
                if not self._close(out):
                    break
                out.append(d)
                if kind is End or kind is Failure:
                    self._ended = True
                    break
        return out

    def _used(self) -> int:
        return self._answer + self._reasoning + self._tools

    def _run(self, key: int, d: Delta, text: str, out: list[Delta]) -> bool:
        """Text of run ``key``; False once the answer has ended."""
        if key != self._key:
            if not self._close(out):
                return False
            self._key = key
        release, over = self._live.feed_within(text, self._limit - self._used())
        if release:
            out.append(d if release == text else _delta(key, release))
        if over:
            self._end(out)
            return False
        return True

    def _tool(self, d: ToolCallDelta, out: list[Delta]) -> bool:
        if d.name is None and d.id is None and d.index == self._key:
            return self._run(d.index, d, d.arguments, out)
        if not self._close(out):
            return False
        name = count_tokens(d.name) if d.name else 0
        if self._used() + name > self._limit:
            self._end(out)  # not even the name fits: no call at all
            return False
        self._tools += name
        self._key = d.index
        release, over = self._live.feed_within(d.arguments, self._limit - self._used())
        out.append(d if release == d.arguments else ToolCallDelta(d.index, d.id, d.name, release))
        if over:
            self._end(out)
            return False
        return True

    def _close(self, out: list[Delta]) -> bool:
        """Count the current run to its end (its held text is released if it fits)."""
        key = self._key
        if key is None:
            return True
        release, over = self._live.flush_within(self._limit - self._used())
        if release:
            out.append(_delta(key, release))
        n = self._live.total
        if key == _ANSWER:
            self._answer += n
        elif key == _REASONING:
            self._reasoning += n
        else:
            self._tools += n
        self._live.reset()
        self._key = None
        if over:
            self._end(out)
            return False
        return True

    def _end(self, out: list[Delta]) -> None:
        out.append(End("length"))
        self._ended = True


def _delta(key: int, text: str) -> Delta:
    if key == _ANSWER:
        return TextDelta(text)
    if key == _REASONING:
        return ReasoningDelta(text)
    return ToolCallDelta(key, None, None, text)


class StopSequences:
    """Ends the answer right before the first of ``stops`` that occurs in it: ``End("stop", that_stop)``.

    The first is the one complete first (of two that end at the same character, the longer),
    as it would be when the text is generated.

    Stop sequences apply to the answer text only, as a continuous text across deltas and
    batches: not to reasoning (it passes through, and the answer's text on either side of it
    is still one text), nor inside tool calls. A tool call or a file interrupts the answer,
    so a stop sequence cannot span one. The stop sequence itself is never sent.

    Only a possible beginning of a stop sequence is held back (fewer characters than the
    longest one), and released as soon as it cannot be one, or at the end. Each batch costs
    a ``str.find`` per stop sequence over the held text and the new text only. A
    :class:`ResetDelta` drops the held text (it was the replaced answer's) and starts over.
    """

    __slots__ = ("_back", "_ended", "_held", "_starts", "_stops")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(dict.fromkeys(s for s in stops if s))
        self._back = max(map(len, self._stops), default=1) - 1  # the most ever held
        # where a held beginning could start: one search instead of one per stop sequence
        self._starts = re.compile("[" + "".join(re.escape(s[0]) for s in self._stops) + "]" if self._stops else "$^")
        self._held = ""
        self._ended = False

    @property
    def ended(self) -> bool:
        """An :class:`End` or :class:`Failure` has been emitted."""
        return self._ended

    @property
    def held(self) -> str:
        """Answer text held back: a possible beginning of a stop sequence."""
        return self._held

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Pass one batch on, up to a stop sequence."""
        if self._ended:
            return []
        out: list[Delta] = []
        i, n = 0, len(batch)
        while i < n:
            d = batch[i]
            kind = type(d)
            if kind is TextDelta:
                j = i + 1
                while j < n and type(batch[j]) is TextDelta:
                    j += 1
                if self._text(batch[i:j], out):
                    break
                i = j
                continue
            if kind is ReasoningDelta or kind is UsageDelta:
                out.append(d)
            elif kind is ResetDelta:
                self._held = ""
                out.append(d)
            else:  # a tool call, a file, End or Failure
                if self._held:
                    out.append(TextDelta(self._held))
                    self._held = ""
                out.append(d)
                if kind is End or kind is Failure:
                    self._ended = True
                    break
            i += 1
        return out

    def _text(self, run: list[Delta], out: list[Delta]) -> bool:
        """Adjacent text deltas; True when a stop sequence ended the answer."""
        held = self._held
        texts = [d.text for d in run if isinstance(d, TextDelta)]
        text = texts[0] if len(texts) == 1 else "".join(texts)
        s = held + text if held else text
        # the stop sequence complete first wins (the longer one if two end together), as
        # when the text is generated: so the cut is the same whatever the chunking
        cut = end = -1
        for stop in self._stops:
            k = s.find(stop) if end < 0 else s.find(stop, 0, end)
            if k >= 0 and (end < 0 or k + len(stop) < end or k < cut):
                cut, end = k, k + len(stop)
        if cut >= 0:
            if cut:
                out.append(TextDelta(s[:cut]))
            out.append(End("stop", s[cut:end]))
            self._held = ""
            self._ended = True
            return True
        keep = self._partial(s)
        if keep:
            self._held = s[-keep:]
            if len(s) > keep:
                out.append(TextDelta(s[:-keep]))
        else:
            self._held = ""
            if held:
                out.append(TextDelta(s))
            else:
                out += run  # the common case: the deltas as they came
        return False

    def _partial(self, s: str) -> int:
        """Length of the longest end of ``s`` that begins some stop sequence (not all of it)."""
        n = len(s)
        if self._starts.search(s, n - self._back if n > self._back else 0) is None:
            return 0
        best = 0
        for stop in self._stops:
            most = min(len(stop) - 1, n)
            if most <= best:
                continue
            first = stop[0]
            p = s.find(first, n - most)
            while p >= 0 and n - p > best:
                if stop.startswith(s[p:]):
                    best = n - p
                    break
                p = s.find(first, p + 1)
        return best
