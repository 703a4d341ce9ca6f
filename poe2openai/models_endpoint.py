"""``GET /v1/models``: Poe's model list in OpenAI's shape."""

from __future__ import annotations

from aiohttp import web

from .gateway import GATEWAY
from .http_io import json_response


async def list_models(request: web.Request) -> web.Response:
    """The models clients may use."""
    gw = request.app[GATEWAY]
    return json_response({"object": "list", "data": await gw.public_models()})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return json_response({"status": "ok"})
