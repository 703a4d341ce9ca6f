"""The gateway's shared state: settings, the Poe client, the model catalogue, the limiter."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web

from poe2openai.attachments.uploader import Uploader
from poe2openai.engine.metrics import Metrics
from poe2openai.engine.model_names import spellings
from poe2openai.engine.models_yaml import ConfigStore
from poe2openai.engine.rate_limit import RateLimiter
from poe2openai.engine.shared import Shared
from poe2openai.errors import not_found
from poe2openai.poe.catalog import ModelCatalog, ModelInfo
from poe2openai.poe.client import PoeClient
from poe2openai.settings import Settings
from poe2openai.team.access import Access, Team


class Stoppable(Protocol):
    """A request that can be asked to end early (server shutdown)."""

    def stop(self) -> None:
        """End soon, telling the client why."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where a requested model name goes."""

    bot: str  # the Poe bot name
    model: ModelInfo | None  # its catalogue entry, when Poe lists it
    system_as_user: bool = False
    tool_mode: str = "xml"  # xml | native | auto
    reasoning_flags: bool = False  # send reasoning options as --flags in the prompt, not as parameters

    def native_tools(self) -> bool:
        """Whether tools go to Poe natively rather than as an XML prompt."""
        if self.tool_mode == "native":
            return True
        return self.tool_mode == "auto" and self.model is not None and self.model.supports_tools


@dataclass
class Gateway:
    """Everything a handler needs, built once at start-up."""

    settings: Settings
    session: aiohttp.ClientSession
    poe: PoeClient
    catalog: ModelCatalog
    config: ConfigStore
    limiter: RateLimiter
    uploader: Uploader
    team: Team
    calls: set[Stoppable] = field(default_factory=set)  # chats in flight, for a graceful shutdown
    metrics: Metrics = field(default_factory=Metrics)
    shared: Shared | None = None  # Redis, with REDIS_URL
    key_limiters: dict[str, RateLimiter] = field(default_factory=dict)  # per pool key, by its id

    def limiter_for(self, access: Access) -> RateLimiter:
        """The pacing of the attempt's Poe key: its own for a pool key (Poe counts per key;
        shared through Redis under its id like the global one), else the global one."""
        key = access.lease
        if key is None:
            return self.limiter
        limiter = self.key_limiters.get(key.id)
        if limiter is None:
            s = self.settings
            limiter = RateLimiter(s.rate_limit_ms, s.rate_limit_max_wait_ms, self.shared, f"poe:{key.id}")
            self.key_limiters[key.id] = limiter
        return limiter

    async def drain(self, grace: float) -> None:
        """Let chats in flight finish for up to ``grace`` seconds, then stop the rest cleanly."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.calls and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for call in list(self.calls):
            call.stop()
        deadline = loop.time() + 2.0
        while self.calls and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def _names_a_model(self, name: str) -> bool:
        cfg = self.config.config
        low = name.lower()
        return (
            cfg.by_public_name(name) is not None
            or self.catalog.lookup(name) is not None
            or any(c.id.lower() == low for c in cfg.custom_models)
        )

    def canonical(self, name: str) -> str | None:
        """The spelling of ``name`` that names a known model (a public name, a listed model, a
        custom model): the name as sent, else a vendor's dated or hyphenated form of it
        (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4.5``, see :mod:`model_names`)."""
        if self._names_a_model(name):  # the usual case: no other spelling to work out
            return name
        return next((s for s in spellings(name)[1:] if self._names_a_model(s)), None)

    def knows(self, name: str) -> bool:
        """Whether ``name`` (or another spelling of it) is a public name, a listed model, or a
        custom model."""
        return self.canonical(name) is not None

    def resolve(self, requested: str) -> Target:
        """Map a client's model name to a Poe bot: a public name from models.yaml, else the
        name itself (any case), each also in another vendor's spelling (:meth:`canonical`).
        A name the gateway does not know goes to Poe as it is. A model hidden in models.yaml
        is refused."""
        return self.target(requested, self.canonical(requested))

    def target(self, requested: str, canonical: str | None) -> Target:
        """:meth:`resolve` for a caller that already looked up ``canonical(requested)``."""
        cfg = self.config.config
        name = canonical or requested
        bot = cfg.by_public_name(name) or name
        info = self.catalog.lookup(bot)
        if info is not None:
            bot = info.id
        rule = cfg.rule(bot)
        if rule is not None and rule.enable is False and cfg.rules_on:
            raise not_found(f"The model '{requested}' is not available on this gateway", "model_not_found")
        if rule is None:
            return Target(bot=bot, model=info)
        return Target(
            bot=bot,
            model=info,
            system_as_user=bool(rule.system_as_user),
            tool_mode=rule.tool_mode or "xml",
            reasoning_flags=bool(rule.reasoning_flags),
        )

    async def models_for(self, token: str | None) -> list[dict[str, object]]:
        """``/v1/models`` for a caller (``token``: its bearer token, if it sent one)."""
        return self.team.visible(token, await self.public_models())

    async def public_models(self) -> list[dict[str, object]]:
        """``/v1/models``: Poe's list with the models.yaml rules applied."""
        cfg = self.config.config
        models = await self.catalog.models()
        if not cfg.rules_on:
            return [m.as_openai() for m in models]
        out: list[dict[str, object]] = []
        seen: set[str] = set()
        for m in models:
            rule = cfg.rule(m.id)
            if rule is not None and rule.enable is False:
                continue
            public = rule.mapping if rule is not None and rule.mapping else m.id
            if public.lower() not in seen:
                seen.add(public.lower())
                out.append(m.as_openai(public))
        for c in cfg.custom_models:
            rule = cfg.rule(c.id)
            if (rule is not None and rule.enable is False) or c.id.lower() in seen:
                continue
            seen.add(c.id.lower())
            out.append(
                {
                    "id": c.id,
                    "object": "model",
                    "created": c.created or 0,
                    "owned_by": c.owned_by or "poe",
                    "name": c.id,
                }
            )
        return out


GATEWAY = web.AppKey("gateway", Gateway)
