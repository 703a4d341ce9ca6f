"""The load client: many concurrent streams over plain aiohttp, reading every byte.

It does not parse chunks (the ``openai`` SDK's parsing cost would hide the gateway's): time
to first token is when the first-token marker ``tok0`` arrives, and a stream counts as
complete when its end marker arrives.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

FIRST = b"tok0"


@dataclass
class Result:
    """One load run."""

    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    wall: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    done: int | None = None  # streams completed, when no per-stream times were taken (h2load)

    @property
    def ok(self) -> int:
        """Streams completed."""
        return self.done if self.done is not None else len(self.total)

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            values = sorted(values)
            return values[min(len(values) - 1, int(q * len(values)))] * 1000

        return {
            "requests": self.ok + self.errors,
            "errors": self.errors,
            "ttft_p50_ms": pct(self.ttft, 0.5),
            "ttft_p99_ms": pct(self.ttft, 0.99),
            "total_p50_ms": pct(self.total, 0.5),
            "wall_s": self.wall,
            "error_samples": self.error_samples[:3],
        }


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], end: bytes, result: Result
) -> None:
    started = time.perf_counter()
    ttft = None
    tail = b""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
            async for chunk in resp.content.iter_any():
                result.bytes += len(chunk)
                if ttft is None and FIRST in tail[-8:] + chunk:
                    ttft = time.perf_counter() - started
                tail = tail[-64:] + chunk if len(chunk) < 64 else chunk
        if end not in tail:
            raise RuntimeError(f"stream ended early: {tail[-120:]!r}")
    except Exception as exc:  # counted, sampled, and reported
        result.errors += 1
        if len(result.error_samples) < 3:
            result.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
        return
    result.ttft.append(ttft if ttft is not None else time.perf_counter() - started)
    result.total.append(time.perf_counter() - started)


async def run(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    end: bytes,
    concurrency: int,
    requests: int,
    deadline: float = 180.0,
) -> Result:
    """``requests`` streams, ``concurrency`` at a time; what is unfinished at ``deadline`` s is an error."""
    result = Result()
    raw = orjson.dumps(body)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sem = asyncio.Semaphore(concurrency)

        async def guarded() -> None:
            async with sem:
                await one(session, url, raw, headers, end, result)

        started = time.perf_counter()
        tasks = [asyncio.ensure_future(guarded()) for _ in range(requests)]
        _, pending = await asyncio.wait(tasks, timeout=deadline)
        for t in pending:
            t.cancel()
        result.errors += len(pending)
        if pending and len(result.error_samples) < 3:
            result.error_samples.append(f"{len(pending)} streams unfinished after {deadline:.0f} s")
        result.wall = time.perf_counter() - started
    return result


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


H2LOAD = shutil.which("h2load")
_FINISHED = re.compile(rb"finished in ([0-9.]+)(ms|s),")
_REQUESTS = re.compile(rb"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored")


def run_h2load(url: str, body: dict[str, Any], headers: dict[str, str], concurrency: int, requests: int) -> Result:
    """The same streams driven by nghttp2's ``h2load`` over HTTP/1.1: a load client in C, whose
    cost per chunk is far below the process under test's (it reads whole answers without
    looking into them, so no time to first token)."""
    assert H2LOAD is not None
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(orjson.dumps(body))
        f.flush()
        argv = [H2LOAD, "--h1", "-c", str(concurrency), "-n", str(requests), "-d", f.name]
        argv += ["-H", "Content-Type: application/json"]
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        # on any core: h2load's threads are its own to place (the bench itself may be pinned)
        out = subprocess.run(
            [*argv, url],
            capture_output=True,
            timeout=600,
            check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, range(os.cpu_count() or 1)),
        ).stdout
    result = Result()
    finished, counts = _FINISHED.search(out), _REQUESTS.search(out)
    if finished is None or counts is None:
        result.errors = requests
        result.error_samples.append(out[-300:].decode(errors="replace"))
        return result
    result.wall = float(finished.group(1)) / (1000 if finished.group(2) == b"ms" else 1)
    result.done = int(counts.group(1))
    result.errors = int(counts.group(2)) + int(counts.group(3))
    return result
