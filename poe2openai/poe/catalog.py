"""Poe's model list: fetched, cached for a few minutes, served in OpenAI's shape.

One fetch at a time (concurrent callers share it). When Poe cannot be reached the last good
list is served; with none, a 502.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from poe2openai.errors import ApiError, upstream
from poe2openai.poe.client import PoeClient

log = logging.getLogger("poe2openai.models")

CACHE_SECONDS = 300.0
CREATED_MAX = 10**11  # seconds: year 5138; larger "created" values are nonsense


@dataclass(frozen=True, slots=True)
class Price:
    """A bot's published price in US dollars (Poe's ``pricing``: per token, per request)."""

    prompt: float = 0.0
    completion: float = 0.0
    request: float = 0.0

    def usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What one request with these counts costs."""
        return self.prompt * prompt_tokens + self.completion * completion_tokens + self.request


def _price(raw: Any) -> Price | None:
    """Poe's ``pricing`` object (decimal strings or null); None when it gives no usable price."""
    if not isinstance(raw, dict):
        return None
    values: dict[str, float] = {}
    for name in ("prompt", "completion", "request"):
        v = raw.get(name)
        if isinstance(v, bool) or v is None:
            continue
        try:
            f = float(v) if isinstance(v, int | float | str) else -1.0
        except ValueError:
            continue
        if 0.0 <= f < 1e6:  # finite, not negative: nonsense is left out
            values[name] = f
    return Price(**values) if values else None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One Poe model, as we use it."""

    id: str
    created: int  # seconds
    owned_by: str
    display_name: str
    parameters: tuple[dict[str, Any], ...] = field(default=())
    supports_tools: bool = False
    pricing: Price | None = None

    def as_openai(self, public_id: str | None = None) -> dict[str, Any]:
        """The OpenAI ``model`` object (``name`` is read by Open WebUI and others)."""
        return {
            "id": public_id or self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "name": self.display_name,
        }


def _model_info(raw: dict[str, Any]) -> ModelInfo:
    created = raw.get("created")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        # Poe writes milliseconds; anything past year 2286 in seconds is surely ms.
        created_s = int(created / 1000) if created > 10_000_000_000 else int(created)
        if not 0 <= created_s <= CREATED_MAX:  # nonsense: not relayed (orjson cannot write huge ints)
            created_s = 0
    else:
        created_s = 0
    meta = raw.get("metadata")
    display = meta.get("display_name") if isinstance(meta, dict) else None
    params = raw.get("parameters")
    owned = raw.get("owned_by")
    features = raw.get("supported_features")
    return ModelInfo(
        id=raw["id"],
        created=created_s,
        owned_by=owned if isinstance(owned, str) and owned else "poe",
        display_name=display if isinstance(display, str) and display else raw["id"],
        parameters=tuple(p for p in params if isinstance(p, dict)) if isinstance(params, list) else (),
        supports_tools=isinstance(features, list) and "tools" in features,
        pricing=_price(raw.get("pricing")),
    )


class ModelCatalog:
    """The cached model list and a case-insensitive index of it."""

    def __init__(self, poe: PoeClient, clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS):
        self._poe = poe
        self._clock = clock
        self._ttl = ttl
        self._models: list[ModelInfo] | None = None
        self._index: dict[str, ModelInfo] = {}
        self._fetched_at = float("-inf")
        self._inflight: asyncio.Future[list[ModelInfo]] | None = None

    def lookup(self, name: str) -> ModelInfo | None:
        """The model called ``name`` (any case), from the cached list only."""
        return self._index.get(name.lower())

    async def models(self, refresh: bool = False) -> list[ModelInfo]:
        """The list: cached while fresh; on failure the stale one; with none, raise."""
        if not refresh and self._models is not None and self._clock() - self._fetched_at < self._ttl:
            return self._models
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
        inflight = self._inflight
        try:
            return await asyncio.shield(inflight)
        except ApiError:
            if self._models is not None:
                return self._models
            raise

    async def _fetch(self) -> list[ModelInfo]:
        try:
            raw = await self._poe.list_models()
            models = [_model_info(m) for m in raw]
            if not models:
                raise upstream("Poe's model list is empty")
            self._models = models
            self._index = {m.id.lower(): m for m in models}
            self._fetched_at = self._clock()
            return models
        except ApiError as exc:
            log.warning("model list fetch failed: %s", exc.message)
            raise
        finally:
            self._inflight = None
