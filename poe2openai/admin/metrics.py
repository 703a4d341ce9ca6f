"""``GET /metrics``: the Prometheus text format, for the admin login or ``METRICS_TOKEN``.

A scraper sends ``Authorization: Bearer <METRICS_TOKEN>`` (when the token is set) or the
admin user's basic auth, which goes through the admin guard (Host allow-list, login
throttle). Wrong tokens count in the same throttle, so neither is a way to guess the other.
"""

from __future__ import annotations

import hmac
import math

from aiohttp import web

from poe2openai.admin.api import ADMIN_THROTTLE, guarded
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.metrics import CONTENT_TYPE
from poe2openai.errors import ApiError


async def _exposition(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    gw.metrics.pool.keys = await gw.team.pool_metrics()
    body = gw.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


_with_admin_login = guarded(_exposition)


async def metrics(request: web.Request) -> web.StreamResponse:
    """The metrics of every worker process."""
    token = request.app[GATEWAY].settings.metrics_token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return await _with_admin_login(request)
    throttle = request.app[ADMIN_THROTTLE]
    wait = throttle.retry_after(request.remote)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            f"Too many wrong logins from this address; try again in {seconds} s",
            type="rate_limit_error",
            code="admin_login_throttled",
            headers={"Retry-After": str(seconds)},
        )
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        throttle.failed(request.remote)
        raise ApiError(
            401,
            "Wrong METRICS_TOKEN",
            type="authentication_error",
            code="metrics_auth_required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    throttle.succeeded(request.remote)
    return await _exposition(request)


def setup_metrics(app: web.Application) -> None:
    """Add ``/metrics``."""
    app.router.add_get("/metrics", metrics)
