"""The pipeline's source for Poe: the bytes of a ``/bot/{name}`` response to deltas (sans-IO).

SSE parsing and event decoding (:mod:`poe_events`), then events to deltas
(:mod:`poe_deltas`). A body that ends without ``done`` is a cut answer: a :class:`Failure`
after whatever was said (retryable while nothing reached the client).
"""

from __future__ import annotations

from poe2openai.pipeline.deltas import Delta
from poe2openai.poe.events import PoeEventDecoder
from poe2openai.poe.to_deltas import PoeToDeltas


class PoeSource:
    """One Poe answer's bytes in, deltas out."""

    __slots__ = ("_decoder", "_poe", "_said", "events")

    def __init__(self, bot: str) -> None:
        self._decoder = PoeEventDecoder()
        self._poe = PoeToDeltas(bot)
        self._said = False
        self.events = 0

    def feed(self, data: bytes) -> list[Delta]:
        """Consume one network read."""
        events = self._decoder.feed(data)
        if not events:
            return []
        self.events += len(events)
        batch = self._poe.feed(events)
        if batch:
            self._said = True
        return batch

    def close(self) -> list[Delta]:
        """The body ended: flush; without ``done`` the answer was cut."""
        decoder = self._decoder
        events = decoder.close()
        self.events += len(events)
        tail = self._poe.feed(events)
        self._said = self._said or bool(tail)
        if not decoder.finished:
            tail += self._poe.eof(self._said)
        return tail
