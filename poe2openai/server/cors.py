"""CORS for the API routes, so browser clients (Open WebUI, playgrounds) can call the gateway.

Default: any origin, no credentials (clients send a bearer key, not cookies). With
``CORS_ALLOW_ORIGINS`` set, only those origins. Preflights are answered before routing and
auth, allowing the headers the browser asks for (the OpenAI SDKs send ``x-stainless-*``).
The admin routes never answer cross-origin requests.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from poe2openai.admin.api import ADMIN_PREFIXES

ALLOW_METHODS = "GET, POST, OPTIONS"
BASE_HEADERS = "authorization, content-type, accept, x-api-key, x-request-id, openai-organization, openai-project"
EXPOSE = "x-request-id, x-gateway-overhead-ms, retry-after, x-should-retry"
_FORBIDDEN_HEADERS = {"cookie", "set-cookie", "host"}


def _allowed(origin: str, allow: tuple[str, ...]) -> str | None:
    if "*" in allow:
        return "*"
    return origin if origin.rstrip("/") in allow else None


def cors_middleware(allow: tuple[str, ...]) -> Any:
    """The middleware answering preflights for an origin allow-list (``("*",)``: any origin)."""

    @web.middleware
    async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or request.path.startswith(ADMIN_PREFIXES):
            resp: web.StreamResponse = await handler(request)
            return resp
        allowed = _allowed(origin, allow)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if allowed is None:
                return web.Response(status=403, text="origin not allowed")
            asked = request.headers.get("Access-Control-Request-Headers", "")
            extra = [h.strip().lower() for h in asked.split(",") if h.strip()]
            headers = ", ".join([BASE_HEADERS, *(h for h in extra if h not in _FORBIDDEN_HEADERS)])
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": allowed,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": headers,
                    "Access-Control-Max-Age": "3600",
                    "Vary": "Origin",
                },
            )
        resp = await handler(request)
        return resp

    return cors


def add_cors_headers(request: web.Request, response: web.StreamResponse, allow: tuple[str, ...]) -> None:
    """Add the CORS headers to any API response as it is prepared (streams included)."""
    origin = request.headers.get("Origin")
    if origin is None or request.path.startswith(ADMIN_PREFIXES):
        return
    allowed = _allowed(origin, allow)
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSE
        response.headers["Vary"] = "Origin"
