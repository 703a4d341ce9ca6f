"""The gateway's shared state: settings, the Poe client, the model catalogue, the limiter."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from .model_catalog import ModelCatalog, ModelInfo
from .poe_client import PoeClient
from .settings import Settings


@dataclass(frozen=True, slots=True)
class Target:
    """Where a requested model name goes."""

    bot: str  # the Poe bot name
    model: ModelInfo | None  # its catalogue entry, when Poe lists it
    system_as_user: bool = False
    tool_mode: str = "xml"  # xml | native | auto

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
    extras: dict[str, object] = field(default_factory=dict)

    def resolve(self, requested: str) -> Target:
        """Map a client's model name to a Poe bot (case-insensitive)."""
        info = self.catalog.lookup(requested)
        return Target(bot=info.id if info else requested, model=info)


GATEWAY = web.AppKey("gateway", Gateway)
