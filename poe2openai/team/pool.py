"""The pool of Poe keys the gateway holds: round robin over the healthy ones.

Sans-IO: :class:`Pool` is told what Poe answered (:meth:`Pool.report`) and what time it is;
the balance checks that bring an out-of-points key back are :class:`BalanceChecker`'s.

- a key Poe rejects (401) is disabled until the operator re-enables it on ``/admin``;
- a key out of points is skipped until a balance check finds points on it again;
- a key Poe rate-limits cools down for Poe's ``retry-after``/``x-ratelimit-reset-requests``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from poe2openai.errors import ApiError

log = logging.getLogger("poe2openai.pool")


@dataclass(slots=True)
class PoolKey:
    """One Poe key of the pool; :attr:`secret` never leaves the gateway except to Poe."""

    id: str
    label: str
    secret: str
    source: str  # "env" (POE_API_KEYS) or "admin"
    disabled: str | None = None  # why, when Poe rejected it
    out_of_points: bool = False
    cool_until: float = 0.0  # monotonic time
    balance: int | None = None

    def usable(self, now: float) -> bool:
        """Whether a request may go out with this key now."""
        return self.disabled is None and not self.out_of_points and now >= self.cool_until

    def public(self, now: float) -> dict[str, Any]:
        """What the admin page sees (never the key)."""
        if self.disabled is not None:
            health = "disabled"
        elif self.out_of_points:
            health = "out_of_points"
        elif now < self.cool_until:
            health = "cooling_down"
        else:
            health = "healthy"
        return {
            "id": self.id,
            "label": self.label,
            "source": self.source,
            "health": health,
            "disabled_reason": self.disabled,
            "cooling_seconds": max(0.0, round(self.cool_until - now, 1)),
            "balance": self.balance,
        }


def key_id(secret: str) -> str:
    """A stable id for a Poe key that reveals nothing of it."""
    return "pk_" + hashlib.sha256(secret.encode()).hexdigest()[:12]


class Pool:
    """The Poe keys, in the order requests take them."""

    def __init__(self, keys: Iterable[PoolKey] = ()) -> None:
        self.keys: list[PoolKey] = []
        self._next = 0
        for k in keys:
            self.add(k)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def add(self, key: PoolKey) -> None:
        """Add a key (a key already held is not added twice)."""
        if all(k.id != key.id for k in self.keys):
            self.keys.append(key)

    def remove(self, key_id: str) -> PoolKey | None:
        """Drop a key; the key dropped."""
        for i, k in enumerate(self.keys):
            if k.id == key_id:
                del self.keys[i]
                return k
        return None

    def get(self, key_id: str) -> PoolKey | None:
        """A key by id."""
        return next((k for k in self.keys if k.id == key_id), None)

    def pick(self, now: float, exclude: frozenset[str] = frozenset()) -> PoolKey | None:
        """The next usable key after the last one handed out, or None."""
        n = len(self.keys)
        for i in range(n):
            k = self.keys[(self._next + i) % n]
            if k.id not in exclude and k.usable(now):
                self._next = (self._next + i + 1) % n
                return k
        return None

    def has_usable(self, now: float, exclude: frozenset[str] = frozenset()) -> bool:
        """Whether :meth:`pick` would find a key."""
        return any(k.id not in exclude and k.usable(now) for k in self.keys)

    def report(self, key: PoolKey, error: ApiError, now: float) -> bool:
        """Poe failed a request made with ``key``; whether the failure was the key's own."""
        code = error.code
        if code == "invalid_api_key":
            key.disabled = "Poe rejected the key (401)"
            log.warning("pool key %s (%s) disabled: Poe rejected it", key.id, key.label)
        elif code == "insufficient_quota":
            key.out_of_points = True
            log.warning("pool key %s (%s) is out of points", key.id, key.label)
        elif code == "rate_limit_exceeded":
            wait = float(error.headers.get("retry-after", "20"))
            key.cool_until = max(key.cool_until, now + wait)
            log.info("pool key %s (%s) rate-limited for %g s", key.id, key.label, wait)
        else:
            return False
        return True

    def unavailable(self, now: float) -> ApiError:
        """The answer when no key can take a request."""
        if self.keys and all(k.disabled is not None for k in self.keys):
            return ApiError(
                503, "Every Poe key of this gateway was rejected by Poe", type="api_error", code="no_poe_key"
            )
        if self.keys and all(k.disabled is not None or k.out_of_points for k in self.keys):
            return ApiError(
                402,
                "Every Poe key of this gateway is out of points",
                type="insufficient_quota",
                code="insufficient_quota",
                headers={"x-should-retry": "false"},
            )
        return ApiError(
            429,
            "Every Poe key of this gateway is busy; retry shortly",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": str(max(1, math.ceil(self._soonest(now) - now)))},
        )

    def _soonest(self, now: float) -> float:
        cooling = [k.cool_until for k in self.keys if k.disabled is None and not k.out_of_points]
        return min(cooling, default=now + 20)
