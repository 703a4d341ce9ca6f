"""The last hour of traffic, per minute and per model, for the admin page's Traffic view.

One bucket per minute holds, per model, the requests, the errors and a histogram of times to
first token (fixed bounds, so buckets of several processes add up and p50/p95 come from the
merged counts), and the most streams open at once. Recorded once per request.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

MINUTES = 60
# upper bounds of the time-to-first-token bins, in seconds; the last bin is open-ended
TTFT_BOUNDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)


@dataclass
class _ModelMinute:
    requests: int = 0
    errors: int = 0
    ttft: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BOUNDS) + 1))


@dataclass
class _Minute:
    models: dict[str, _ModelMinute] = field(default_factory=dict)
    open_streams: int = 0


class Traffic:
    """A ring of minute buckets; the clock (seconds) is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._minutes: dict[int, _Minute] = {}
        self.open_streams = 0

    def _current(self) -> _Minute:
        minute = int(self.clock() // 60)
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = _Minute(open_streams=self.open_streams)
            for old in [m for m in self._minutes if m <= minute - MINUTES]:
                del self._minutes[old]
        return bucket

    def request(self, model: str, ttft: float | None, error: bool) -> None:
        """One finished completion."""
        entry = self._current().models.setdefault(model, _ModelMinute())
        entry.requests += 1
        if error:
            entry.errors += 1
        if ttft is not None:
            entry.ttft[bisect.bisect_left(TTFT_BOUNDS, ttft)] += 1

    def streams(self, delta: int) -> None:
        """A stream opened (+1) or closed (-1)."""
        self.open_streams += delta
        bucket = self._current()
        bucket.open_streams = max(bucket.open_streams, self.open_streams)

    def export(self) -> dict[str, Any]:
        """The raw buckets (mergeable with other processes' by :func:`merge`)."""
        self._current()
        return {
            str(minute): {
                "open": b.open_streams,
                "models": {name: [m.requests, m.errors, m.ttft] for name, m in b.models.items()},
            }
            for minute, b in self._minutes.items()
        }


def _percentile(counts: list[int], q: float) -> float | None:
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return TTFT_BOUNDS[i] if i < len(TTFT_BOUNDS) else TTFT_BOUNDS[-1] * 2
    return None  # pragma: no cover - the loop always reaches the rank


def merge(exports: Iterable[dict[str, Any]], now: float) -> dict[str, Any]:
    """The Traffic view's series for the hour up to ``now``: per model and ``*`` for all."""
    end = int(now // 60)
    minutes = list(range(end - MINUTES + 1, end + 1))
    index = {m: i for i, m in enumerate(minutes)}
    requests: dict[str, list[int]] = {}
    errors: dict[str, list[int]] = {}
    ttft: dict[str, list[list[int]]] = {}
    open_streams = [0] * MINUTES
    bins = len(TTFT_BOUNDS) + 1
    for export in exports:
        for key, bucket in export.items():
            i = index.get(int(key))
            if i is None:
                continue
            open_streams[i] += int(bucket["open"])
            for name, (n, e, hist) in bucket["models"].items():
                for label in (name, "*"):
                    requests.setdefault(label, [0] * MINUTES)[i] += n
                    errors.setdefault(label, [0] * MINUTES)[i] += e
                    row = ttft.setdefault(label, [[0] * bins for _ in range(MINUTES)])[i]
                    for b, c in enumerate(hist[:bins]):
                        row[b] += c
    models = {
        label: {
            "requests": requests[label],
            "errors": errors[label],
            "p50": [_percentile(h, 0.5) for h in ttft[label]],
            "p95": [_percentile(h, 0.95) for h in ttft[label]],
        }
        for label in requests
    }
    return {"minutes": [m * 60 for m in minutes], "open_streams": open_streams, "models": models}


class FolderShare:
    """The workers of one host without Redis: each writes its last hour to a file in a shared
    folder (the metrics' multiprocess folder) every few seconds; any worker reads them all."""

    def __init__(self, folder: str, export: Callable[[], dict[str, Any]]) -> None:
        self.folder = Path(folder)
        self.export = export
        self.own = self.folder / f"traffic-{os.getpid()}.json"
        self._task: asyncio.Task[None] | None = None

    def start(self, every: float = 2.0) -> None:
        """Keep this worker's file fresh."""
        self._task = asyncio.ensure_future(self._loop(every))

    async def _loop(self, every: float) -> None:
        while True:
            await self.write()
            await asyncio.sleep(every)

    async def write(self) -> None:
        """Write this worker's buckets now."""
        data = orjson.dumps(self.export())
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        temp = self.own.with_suffix(".tmp")
        try:
            temp.write_bytes(data)
            os.replace(temp, self.own)
        except OSError:
            pass

    async def all(self) -> list[dict[str, Any]]:
        """The buckets of every live worker."""
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in self.folder.glob("traffic-*.json"):
            try:
                pid = int(path.stem.split("-", 1)[1])
                os.kill(pid, 0)  # a worker that died leaves its file; its minutes are not shown
                out.append(orjson.loads(path.read_bytes()))
            except (ValueError, OSError, orjson.JSONDecodeError):
                continue
        return out

    async def close(self) -> None:
        """Stop writing and remove this worker's file."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.own.unlink(missing_ok=True)
