"""The response pipeline: a source (Poe's bytes to deltas), then stages, then an encoder.

Every part is a sans-IO object. :class:`Pipeline` is the one driver, used by the call
engine and by the tests alike: ``feed(bytes)`` for each network read and ``close()`` at the
end of the body give batches of neutral deltas; each read becomes one batch that passes
through all stages at once, so the per-event cost is plain function calls and an encoder can
turn a whole batch into one socket write. Whatever happens, the batches of one answer end
with exactly one :class:`End` or :class:`Failure`, after which the pipeline is
:attr:`~Pipeline.finished` and says nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from poe2openai.errors import ApiError
from poe2openai.pipeline.deltas import Delta, End, Failure


class Stage(Protocol):
    """A sans-IO pipeline stage."""

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Transform one batch of deltas (may hold some back, must pass End/Failure on)."""
        ...


class Source(Protocol):
    """The first stage: bytes of an upstream body in, deltas out."""

    @property
    def events(self) -> int:
        """How many upstream events were decoded so far (for idle deadlines)."""
        ...

    def feed(self, data: bytes) -> list[Delta]:
        """Consume one network read."""
        ...

    def close(self) -> list[Delta]:
        """The body ended (cleanly or not): flush, and end with End or Failure."""
        ...


def through(batch: list[Delta], stages: Sequence[Stage]) -> list[Delta]:
    """Pass one batch through ``stages`` in order."""
    for stage in stages:
        if not batch:
            break
        batch = stage.feed(batch)
    return batch


class Pipeline:
    """One answer's source and stages, driven read by read."""

    __slots__ = ("_source", "_stages", "finished")

    def __init__(self, source: Source, stages: Sequence[Stage]) -> None:
        self._source = source
        self._stages = tuple(stages)
        self.finished = False  # an End or Failure went out

    @property
    def events(self) -> int:
        """Upstream events decoded so far."""
        return self._source.events

    def _out(self, batch: list[Delta]) -> list[Delta]:
        if batch:
            batch = through(batch, self._stages)
            if batch and type(batch[-1]) in (End, Failure):
                self.finished = True
        return batch

    def feed(self, data: bytes) -> list[Delta]:
        """One network read in; the deltas it completes out (often none)."""
        if self.finished:
            return []
        return self._out(self._source.feed(data))

    def close(self) -> list[Delta]:
        """The body ended: the remaining deltas, ending with End or Failure."""
        if self.finished:
            return []
        return self._out(self._source.close())

    def fail(self, error: ApiError) -> list[Delta]:
        """End the answer with ``error`` (a deadline passed, the gateway is stopping)."""
        if self.finished:
            return []
        return self._out([Failure(error)])


def run_all(pipeline: Pipeline, reads: Iterable[bytes]) -> list[Delta]:
    """Drive ``pipeline`` over a whole body given as reads; all the deltas, in order."""
    out: list[Delta] = []
    for data in reads:
        out += pipeline.feed(data)
        if pipeline.finished:
            return out
    out += pipeline.close()
    return out
