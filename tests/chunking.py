"""Helpers to feed the same input in many chunkings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import AnyStr

from hypothesis import strategies as st


def splits(data: AnyStr, cuts: list[int]) -> list[AnyStr]:
    """``data`` (text or bytes) cut at the given positions, without empty pieces."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return [s for s in out if s]


def every_two_way_split(data: str) -> Iterator[list[str]]:
    """Every split of ``data`` into two pieces, plus one character at a time."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield list(data)


cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)
