"""The response pipeline: parse → Poe deltas → thinking split → tool extract → encoder.

Every stage is a sans-IO object with ``feed(batch) -> batch``. One async generator drives
them: it reads the upstream body, and each network read becomes one batch that passes
through all stages at once, so the per-event cost is plain function calls and the encoder
can turn a whole batch into one socket write. A stream of batches always ends with one
:class:`End` or :class:`Failure`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiohttp

from .deltas import Delta, Failure
from .errors import upstream
from .poe_deltas import PoeToDeltas
from .poe_events import PoeEventDecoder

log = logging.getLogger("poe2openai.pipeline")


class Stage(Protocol):
    """A sans-IO pipeline stage."""

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Transform one batch of deltas (may hold some back, must pass End/Failure on)."""
        ...


def _through(batch: list[Delta], stages: Sequence[Stage]) -> list[Delta]:
    for stage in stages:
        if not batch:
            break
        batch = stage.feed(batch)
    return batch


async def run(chunks: AsyncIterator[bytes], bot: str, stages: Sequence[Stage]) -> AsyncIterator[list[Delta]]:
    """Drive the stages over the body of one Poe response."""
    decoder = PoeEventDecoder()
    poe = PoeToDeltas(bot)
    said = False
    try:
        async for chunk in chunks:
            events = decoder.feed(chunk)
            if not events:
                continue
            batch = poe.feed(events)
            said = said or bool(batch)
            batch = _through(batch, stages)
            if batch:
                yield batch
            if decoder.finished:
                return
    except TimeoutError:
        batch = _through([Failure(upstream("Poe stopped sending for too long", 504, "upstream_timeout"))], stages)
        yield batch
        return
    except aiohttp.ClientError as exc:
        # The connection was cut mid-body: the same as an end without ``done``.
        log.warning("Poe stream for %s cut: %s", bot, type(exc).__name__)
    tail = poe.feed(decoder.close())
    said = said or bool(tail)
    if not decoder.finished:
        tail += poe.eof(said)
    batch = _through(tail, stages)
    if batch:
        yield batch


def run_sync(chunks: Sequence[bytes], bot: str, stages: Sequence[Stage]) -> list[Delta]:
    """The same pipeline over a list of reads (for tests and the benchmark's checks)."""
    decoder = PoeEventDecoder()
    poe = PoeToDeltas(bot)
    out: list[Delta] = []
    said = False
    for chunk in chunks:
        batch = poe.feed(decoder.feed(chunk))
        said = said or bool(batch)
        out += _through(batch, stages)
        if decoder.finished:
            return out
    tail = poe.feed(decoder.close())
    said = said or bool(tail)
    if not decoder.finished:
        tail += poe.eof(said)
    out += _through(tail, stages)
    return out
