"""The global rate limit towards Poe: one aiolimiter bucket spacing queries by RATE_LIMIT_MS.

Requests wait their turn; one whose wait would pass RATE_LIMIT_MAX_WAIT_MS is answered at
once with a 429 and ``retry-after``. A waiting request whose client goes away is cancelled,
and its place in the queue goes with it.

With Redis (:mod:`poe2openai.engine.shared`) the slots come from one schedule in Redis shared
by every process, so the gap holds in total; a waiting request that goes away leaves its
reserved slot unused. When Redis is away the process paces with its own bucket.
"""

from __future__ import annotations

import asyncio
import math

from aiolimiter import AsyncLimiter

from poe2openai.engine.shared import Shared
from poe2openai.errors import ApiError


class RateLimiter:
    """Spaces upstream queries; ``interval_ms == 0`` turns it off."""

    BUCKET = "poe"  # one pace for every key, as the local bucket; a pool key has its own name

    def __init__(self, interval_ms: int, max_wait_ms: int, shared: Shared | None = None, bucket: str = BUCKET) -> None:
        self.bucket = bucket
        self.interval = interval_ms / 1000
        self.max_wait = max_wait_ms / 1000
        self._bucket = AsyncLimiter(1, self.interval) if interval_ms > 0 else None
        self.waiting = 0
        self.shared = shared

    @property
    def off(self) -> bool:
        """Whether :meth:`acquire` returns at once, always (``RATE_LIMIT_MS=0``)."""
        return self._bucket is None

    def _too_long(self, expected: float) -> ApiError:
        seconds = max(1, math.ceil(expected))
        return ApiError(
            429,
            f"The gateway is pacing requests to Poe and the queue is {seconds}s long; retry later",
            type="rate_limit_error",
            code="gateway_rate_limited",
            headers={"retry-after": str(seconds)},
        )

    async def acquire(self) -> None:
        """Wait for this request's turn, or raise a 429 when the wait would be too long."""
        bucket = self._bucket
        if bucket is None:
            return
        if self.shared is not None and await self._shared_turn(self.shared):
            return
        if self.waiting == 0 and bucket.has_capacity():
            await bucket.acquire()
            return
        expected = (self.waiting + 1) * self.interval
        if expected > self.max_wait:
            raise self._too_long(expected)
        self.waiting += 1
        try:
            async with asyncio.timeout(self.max_wait + self.interval):
                await bucket.acquire()
        except TimeoutError:
            raise self._too_long(expected) from None
        finally:
            self.waiting -= 1

    async def _shared_turn(self, shared: Shared) -> bool:
        """Wait for a slot of the shared schedule; False when Redis is not there."""
        wait = await shared.reserve(self.bucket, self.interval, self.max_wait)
        if wait is None:
            return False
        if wait < 0:
            raise self._too_long(-wait)
        if wait > 0:
            self.waiting += 1
            try:
                await asyncio.sleep(wait)
            finally:
                self.waiting -= 1
        return True
