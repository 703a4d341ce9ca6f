"""The global rate limit towards Poe: one aiolimiter bucket spacing queries by RATE_LIMIT_MS.

Requests wait their turn; one whose wait would pass RATE_LIMIT_MAX_WAIT_MS is answered at
once with a 429 and ``retry-after``. A waiting request whose client goes away is cancelled,
and its place in the queue goes with it.
"""

from __future__ import annotations

import asyncio
import math

from aiolimiter import AsyncLimiter

from poe2openai.errors import ApiError


class RateLimiter:
    """Spaces upstream queries; ``interval_ms == 0`` turns it off."""

    def __init__(self, interval_ms: int, max_wait_ms: int) -> None:
        self.interval = interval_ms / 1000
        self.max_wait = max_wait_ms / 1000
        self._bucket = AsyncLimiter(1, self.interval) if interval_ms > 0 else None
        self.waiting = 0

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
