"""``/admin``: the operator's page and its JSON API, behind HTTP basic auth.

- ``GET /admin``: the page (aiohttp-jinja2; its assets under ``/static/``, no CDN; relative
  links, so it works behind a path prefix).
- ``GET /admin/api/state``: the configuration, Poe's full model list, banners.
- ``PUT /admin/api/config``: validate and save ``models.yaml``; a 400 names the bad entry.
- ``POST /admin/api/refresh``: fetch Poe's model list now.
- ``GET``/``POST /api/admin/config``: the original's paths, kept for scripts.

State-changing requests must be JSON (a cross-site form cannot send that without a CORS
preflight, which admin routes never grant) and, when the browser says where they come from
(``Origin``, ``Sec-Fetch-Site``), come from this same site.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from . import __version__
from .errors import ApiError
from .gateway import GATEWAY, Gateway
from .http_io import json_response, read_json
from .models_yaml import ConfigError, as_plain
from .settings import Settings

ADMIN_PREFIXES = ("/admin", "/api/admin")
_REALM = 'Basic realm="poe2openai admin", charset="UTF-8"'


def static_dir() -> Path:
    """The folder of the page's assets: the checkout's ``static/``, or the installed copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "static", Path(sys.prefix) / "share" / "poe2openai" / "static"):
        if (candidate / "admin.js").is_file():
            return candidate
    return here.parent / "static"


def _credentials_ok(header: str, settings: Settings) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # compare both, always, in constant time
    user_ok = hmac.compare_digest(user.encode(), settings.admin_username.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.admin_password.encode())
    return user_ok and password_ok


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == request.host.lower()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler) -> Handler:
    """Basic auth for an admin route, and the same-origin check for its writes."""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        return await _guard(request, handler)

    return guard


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[GATEWAY].settings
    if not _credentials_ok(request.headers.get("Authorization", ""), settings):
        err = ApiError(401, "Admin login required", type="authentication_error", code="admin_auth_required")
        return json_response(err.body(), 401, {"WWW-Authenticate": _REALM})
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    if writes and (request.content_type != "application/json" or not _same_origin(request)):
        err = ApiError(403, "Cross-site or non-JSON request refused", type="permission_error", code="csrf")
        return json_response(err.body(), 403)
    resp: web.StreamResponse = await handler(request)
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    return resp


def _public_config(gw: Gateway) -> dict[str, Any]:
    plain = as_plain(gw.config.config)
    token = plain.pop("api_token", None)
    plain["api_token_set"] = token is not None
    return plain


async def _poe_models(gw: Gateway, refresh: bool = False) -> tuple[list[dict[str, Any]], str | None]:
    try:
        models = await gw.catalog.models(refresh=refresh)
    except ApiError as exc:
        return [], exc.message
    return [
        {"id": m.id, "name": m.display_name, "owned_by": m.owned_by, "created": m.created, "tools": m.supports_tools}
        for m in models
    ], None


@aiohttp_jinja2.template("admin.html")
async def admin_page(request: web.Request) -> dict[str, Any]:
    """The page."""
    gw = request.app[GATEWAY]
    return {"version": __version__, "default_password": gw.settings.uses_default_password}


async def admin_slash(request: web.Request) -> web.Response:
    """``/admin/`` → ``/admin`` (relative, so a path prefix survives)."""
    raise web.HTTPFound("../admin")


async def state(request: web.Request) -> web.Response:
    """Everything the page shows."""
    gw = request.app[GATEWAY]
    gw.config.reload()  # the page shows the file as it is now
    models, models_error = await _poe_models(gw)
    return json_response(
        {
            "config": _public_config(gw),
            "config_error": gw.config.error,
            "config_path": str(gw.config.path),
            "default_password": gw.settings.uses_default_password,
            "poe_models": models,
            "models_error": models_error,
            "version": __version__,
        }
    )


async def _save(request: web.Request) -> dict[str, Any]:
    gw = request.app[GATEWAY]
    body = await read_json(request, 16 << 20)
    if not isinstance(body, dict):
        raise ApiError(400, "The configuration must be a JSON object", code="invalid_config")
    body = dict(body)
    body.pop("api_token_set", None)
    if "api_token" not in body and gw.config.config.api_token is not None:
        body["api_token"] = gw.config.config.api_token  # the page never sees it; keep it
    try:
        await gw.config.save(body)
    except ConfigError as exc:
        raise ApiError(400, str(exc), param=exc.field, code="invalid_config") from None
    except OSError as exc:
        raise ApiError(
            500, f"Could not write {gw.config.path}: {exc.strerror}", type="api_error", code="config_write_failed"
        ) from None
    return _public_config(gw)


async def save_config(request: web.Request) -> web.Response:
    """Validate and save."""
    return json_response({"status": "success", "config": await _save(request)})


async def refresh(request: web.Request) -> web.Response:
    """Fetch Poe's model list now."""
    models, error = await _poe_models(request.app[GATEWAY], refresh=True)
    if error is not None:
        raise ApiError(502, error, type="api_error", code="upstream_error")
    return json_response({"poe_models": models})


async def legacy_get(request: web.Request) -> web.Response:
    """The original's ``GET /api/admin/config``."""
    return json_response(_public_config(request.app[GATEWAY]))


async def legacy_save(request: web.Request) -> web.Response:
    """The original's ``POST /api/admin/config``."""
    await _save(request)
    return json_response({"status": "success"})


def setup_admin(app: web.Application) -> None:
    """Add the admin routes, the page template and the static assets."""
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("poe2openai", "templates"), autoescape=True)
    app.router.add_get("/admin", guarded(admin_page))
    app.router.add_get("/admin/", guarded(admin_slash))
    app.router.add_get("/admin/api/state", guarded(state))
    app.router.add_put("/admin/api/config", guarded(save_config))
    app.router.add_post("/admin/api/config", guarded(save_config))
    app.router.add_post("/admin/api/refresh", guarded(refresh))
    app.router.add_get("/api/admin/config", guarded(legacy_get))
    app.router.add_post("/api/admin/config", guarded(legacy_save))
    app.router.add_static("/static/", static_dir(), append_version=False)
