"""``GET /metrics``: the Prometheus text format, for the admin credentials or ``METRICS_TOKEN``.

A scraper sends ``Authorization: Bearer <METRICS_TOKEN>`` (when the token is set) or the
admin user's basic auth. Anything else is a 401; the metrics name models and error rates,
which are not for everyone.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from poe2openai.admin.api import _credentials_ok
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.metrics import CONTENT_TYPE
from poe2openai.errors import ApiError
from poe2openai.settings import Settings


def _allowed(header: str, settings: Settings) -> bool:
    token = settings.metrics_token
    scheme, _, value = header.partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    return _credentials_ok(header, settings)


async def metrics(request: web.Request) -> web.Response:
    """The metrics of every worker process."""
    gw = request.app[GATEWAY]
    if not _allowed(request.headers.get("Authorization", ""), gw.settings):
        scheme = "Bearer" if gw.settings.metrics_token else 'Basic realm="poe2openai admin", charset="UTF-8"'
        raise ApiError(
            401,
            "Metrics need METRICS_TOKEN as a bearer token or the admin credentials",
            type="authentication_error",
            code="metrics_auth_required",
            headers={"WWW-Authenticate": scheme},
        )
    body = gw.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def setup_metrics(app: web.Application) -> None:
    """Add ``/metrics``."""
    app.router.add_get("/metrics", metrics)
