"""``/admin``: the operator's page and its JSON API, behind HTTP basic auth.

- ``GET /admin``: the page (aiohttp-jinja2; its assets under ``/static/``, no CDN; relative
  links, so it works behind a path prefix).
- ``GET /admin/api/state``: the configuration, Poe's full model list, banners.
- ``PUT /admin/api/config``: validate and save ``models.yaml``; a 400 names the bad entry.
- ``POST /admin/api/refresh``: fetch Poe's model list now.
- ``GET``/``POST /api/admin/config``: the original's paths, kept for scripts.
- ``GET``/``POST /admin/api/keys``, ``PATCH``/``DELETE /admin/api/keys/{id}``: client keys
  (the token only in the answer to the ``POST``); ``POST /admin/api/pool``,
  ``DELETE /admin/api/pool/{id}``, ``POST /admin/api/pool/{id}/enable``: the pool's Poe keys
  (never shown back).
- ``GET /admin/api/usage?days=N``, ``POST /admin/api/usage/sync``: the usage ledger per day,
  and a sync with Poe's points history now.

Every admin route first checks ``Host`` (DNS rebinding: a page on a name the attacker
controls, re-pointed at this gateway, is same-origin with it, so ``Origin`` proves nothing).
Allowed: ``localhost``, any IP address (a browser sends an address as ``Host`` only when it
connected to that address itself), ``HOST`` when it is a name, and ``ADMIN_ALLOWED_HOSTS``.
Then come the login throttle (:class:`LoginThrottle`) and basic auth.

State-changing requests must be JSON (a cross-site form cannot send that without a CORS
preflight, which admin routes never grant) and, when the browser says where they come from
(``Origin``, ``Sec-Fetch-Site``), come from this same site.

Every admin response carries a Content-Security-Policy: the page runs only its own script and
style files (nothing inline) and may not be framed; the JSON answers allow nothing at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import ipaddress
import math
import re
import sqlite3
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from poe2openai import __version__
from poe2openai.engine.gateway import GATEWAY, Gateway
from poe2openai.engine.http import error_response, json_response, read_json
from poe2openai.engine.models_yaml import CONFIG_LABEL, ConfigError, as_plain
from poe2openai.errors import ApiError
from poe2openai.settings import Settings, normalize_host
from poe2openai.team.keys import ClientKey, read_fields

ADMIN_PREFIXES = ("/admin", "/api/admin")
_REALM = 'Basic realm="poe2openai admin", charset="UTF-8"'
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(slots=True)
class _Failures:
    count: int = 0
    until: float = 0.0  # refused before this time
    last: float = 0.0  # time of the latest failure


class LoginThrottle:
    """Failed admin logins per client: after ``free`` failures in a row each further failure
    refuses the client for a delay that doubles, from ``base`` up to ``cap`` seconds. A good
    login forgets the client. At most ``max_clients`` are remembered (the one that failed
    longest ago goes first) and a client with no failure for ``forget`` seconds starts afresh.

    Sans-IO: the caller passes the client's address; time comes from ``clock``.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free: int = 5,
        base: float = 1.0,
        cap: float = 300.0,
        max_clients: int = 4096,
        forget: float = 86400.0,
    ) -> None:
        self._clock = clock
        self.free, self.base, self.cap, self.max_clients, self.forget = free, base, cap, max_clients, forget
        self._clients: OrderedDict[str, _Failures] = OrderedDict()  # oldest failure first

    def __len__(self) -> int:
        return len(self._clients)

    @staticmethod
    def key(address: str | None) -> str:
        """The bucket of an address: itself for IPv4, its /64 for IPv6 (one host owns a /64)."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return address or ""
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.IPv6Network((ip, 64), strict=False))
        return str(ip)

    def retry_after(self, address: str | None) -> float | None:
        """Seconds ``address`` must still wait, or None when it may try now."""
        entry = self._clients.get(self.key(address))
        if entry is None:
            return None
        wait = entry.until - self._clock()
        return wait if wait > 0 else None

    def failed(self, address: str | None) -> None:
        """Count a wrong login."""
        now = self._clock()
        while self._clients:
            oldest = next(iter(self._clients.values()))
            if now - oldest.last < self.forget:
                break
            self._clients.popitem(last=False)
        key = self.key(address)
        entry = self._clients.pop(key, None) or _Failures()
        entry.count += 1
        entry.last = now
        if entry.count >= self.free:
            entry.until = now + min(self.cap, self.base * 2.0 ** min(entry.count - self.free, 60))
        self._clients[key] = entry
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

    def succeeded(self, address: str | None) -> None:
        """A good login: forget the address's failures."""
        self._clients.pop(self.key(address), None)


ADMIN_THROTTLE = web.AppKey("admin_throttle", LoginThrottle)
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:@/\\\[\]]+)(?::[0-9]{1,5})?")  # name or [v6], then a port


def static_dir() -> Path:
    """The folder of the page's assets: the checkout's ``static/``, or the installed copy."""
    here = Path(__file__).resolve().parent.parent
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


def host_allowed(host_header: str | None, settings: Settings) -> bool:
    """Whether the admin routes answer to this ``Host`` header (see the module docstring)."""
    match = _HOST_HEADER.fullmatch(host_header or "")
    if match is None:
        return False
    name = normalize_host(match.group(1))
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name in settings.admin_allowed_hosts:
        return True
    listening = normalize_host(settings.host)
    return listening not in ("", "0.0.0.0", "::") and name == listening


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
    try:
        resp = await _checked(request, handler)
    except ApiError as exc:
        resp = error_response(exc)
    for name, value in _SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    is_page = resp.content_type == "text/html"
    resp.headers.setdefault("Content-Security-Policy", PAGE_CSP if is_page else API_CSP)
    return resp


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[GATEWAY].settings
    host = request.headers.get("Host")
    if not host_allowed(host, settings):
        raise ApiError(
            403,
            f"The admin page does not answer to the host name {host!r}; add it to ADMIN_ALLOWED_HOSTS",
            type="permission_error",
            code="admin_host_not_allowed",
        )
    throttle = request.app[ADMIN_THROTTLE]
    wait = throttle.retry_after(request.remote)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            f"Too many wrong admin logins from this address; try again in {seconds} s",
            type="rate_limit_error",
            code="admin_login_throttled",
            headers={"Retry-After": str(seconds)},
        )
    authorization = request.headers.get("Authorization")
    if not _credentials_ok(authorization or "", settings):
        if authorization is not None:  # a browser's first request, before the challenge, has none
            throttle.failed(request.remote)
        raise ApiError(
            401,
            "Admin login required",
            type="authentication_error",
            code="admin_auth_required",
            headers={"WWW-Authenticate": _REALM},
        )
    throttle.succeeded(request.remote)
    writes = request.method not in ("GET", "HEAD", "OPTIONS")
    if writes and (request.content_type != "application/json" or not _same_origin(request)):
        raise ApiError(403, "Cross-site or non-JSON request refused", type="permission_error", code="csrf")
    return await handler(request)


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
    await gw.config.refresh()  # the page shows the file as it is now
    models, models_error = await _poe_models(gw)
    return json_response(
        {
            "config": _public_config(gw),
            "config_error": gw.config.error,
            "config_file": CONFIG_LABEL,
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
            500, f"Could not write {CONFIG_LABEL}: {exc.strerror}", type="api_error", code="config_write_failed"
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


def _team(request: web.Request) -> Gateway:
    """The gateway, its team records re-read when another worker process changed them (each
    process holds its own copy; the page may reach any of them)."""
    gw = request.app[GATEWAY]
    gw.team.refresh()
    return gw


def _status(key: ClientKey, wall: float) -> str:
    if key.revoked is not None:
        return "revoked"
    if key.expires is not None and wall >= key.expires:
        return "expired"
    return "active"


async def _keys_view(gw: Gateway) -> dict[str, Any]:
    team = gw.team
    now = team.clock()
    wall = time.time()
    usage = await asyncio.to_thread(team.ledger.key_usage, wall, team.ledger.unflushed())
    spend = (await asyncio.to_thread(team.ledger.report, 7, wall))["pool"]
    empty = {"requests": 0, "tokens": 0, "points": 0, "estimated_points": 0}
    clients = []
    for k in team.clients.all():
        periods = usage.get(k.id, {})
        clients.append(
            {
                **k.public(),
                "status": _status(k, wall),
                "usage": {"day": periods.get("day", empty), "month": periods.get("month", empty)},
            }
        )
    pool = []
    for p in team.pool.keys:
        s = spend.get(p.id, {})
        pool.append(
            {
                **p.public(now),
                "balance_checked": team.balance_checked.get(p.id),
                "spend_7d": sum(s.get("points", [])),
                "spend_by_bot_7d": dict(sorted(s.get("by_bot", {}).items(), key=lambda kv: -kv[1])),
            }
        )
    return {
        "team_mode": team.team_mode,
        "client_keys": clients,
        "pool_keys": pool,
        "history_synced": team.history_synced,
    }


def _write_failed(exc: Exception) -> ApiError:
    return ApiError(500, f"Could not write the key store: {exc}", type="api_error", code="store_write_failed")


async def list_keys(request: web.Request) -> web.Response:
    """Client keys with their use against budget, and pool keys with health, balance and
    spend (no secret of either)."""
    return json_response(await _keys_view(_team(request)))


async def create_key(request: web.Request) -> web.Response:
    """Issue a client key; the answer is the only place its token appears."""
    gw = _team(request)
    fields = read_fields(await read_json(request, 1 << 16), partial=False)
    try:
        key, token = await gw.team.clients.create(fields)
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response({"key": key.public(), "token": token}, status=201)


async def edit_key(request: web.Request) -> web.Response:
    """Change a client key's label, expiry, models or cap."""
    gw = _team(request)
    key_id = request.match_info["id"]
    gw.team.clients.get(key_id)
    fields = read_fields(await read_json(request, 1 << 16), partial=True)
    try:
        key = await gw.team.clients.edit(key_id, fields)
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response({"key": key.public()})


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a client key."""
    gw = _team(request)
    try:
        key = await gw.team.clients.revoke(request.match_info["id"])
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response({"key": key.public()})


async def add_pool_key(request: web.Request) -> web.Response:
    """Hold another Poe key: ``{"key": "...", "label": "..."}``."""
    gw = _team(request)
    body = await read_json(request, 1 << 16)
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object", code="invalid_key_field")
    secret, label = body.get("key"), body.get("label", "")
    if not isinstance(secret, str) or not secret.strip() or not secret.strip().isprintable() or len(secret) > 500:
        raise ApiError(400, "key must be a Poe API key", param="key", code="invalid_key_field")
    if not isinstance(label, str) or len(label) > 200:
        raise ApiError(400, "label must be a string of at most 200 characters", param="label", code="invalid_key_field")
    try:
        key = await gw.team.add_pool_key(secret.strip(), label.strip() or "added on /admin")
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response({"pool_key": key.public(gw.team.clock())}, status=201)


async def remove_pool_key(request: web.Request) -> web.Response:
    """Stop using a Poe key added on ``/admin``."""
    gw = _team(request)
    try:
        await gw.team.remove_pool_key(request.match_info["id"])
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response(await _keys_view(gw))


async def enable_pool_key(request: web.Request) -> web.Response:
    """Use a key Poe rejected again."""
    gw = _team(request)
    try:
        key = await gw.team.enable_pool_key(request.match_info["id"])
    except (OSError, sqlite3.Error) as exc:
        raise _write_failed(exc) from None
    return json_response({"pool_key": key.public(gw.team.clock())})


async def usage(request: web.Request) -> web.Response:
    """``?days=N`` (1 to 400, default 30): requests, tokens and points per day, in total, per
    client key, per model, and each pool key's spend per bot as Poe reports it."""
    gw = _team(request)
    raw = request.query.get("days", "30")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 400:
        raise ApiError(400, "days must be a whole number from 1 to 400", param="days", code="invalid_days")
    await gw.team.ledger.flush()
    body = await asyncio.to_thread(gw.team.ledger.report, int(raw), time.time())
    team = gw.team
    body["labels"] = {
        **{k.id: k.label for k in team.clients.all()},
        **{k.id: k.label for k in team.pool.keys},
    }
    body["history_synced"] = team.history_synced
    body["points_per_usd"] = gw.settings.points_per_usd
    return json_response(body)


async def sync_usage(request: web.Request) -> web.Response:
    """Read the pool keys' points history and balances now."""
    gw = _team(request)
    matched = await gw.team.sync_usage(gw.session)
    return json_response({"matched": matched, "history_synced": gw.team.history_synced})


def setup_admin(app: web.Application) -> None:
    """Add the admin routes, the page template and the static assets."""
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("poe2openai.admin", "templates"), autoescape=True)
    app[ADMIN_THROTTLE] = LoginThrottle()
    app.router.add_get("/admin", guarded(admin_page))
    app.router.add_get("/admin/", guarded(admin_slash))
    app.router.add_get("/admin/api/state", guarded(state))
    app.router.add_put("/admin/api/config", guarded(save_config))
    app.router.add_post("/admin/api/config", guarded(save_config))
    app.router.add_post("/admin/api/refresh", guarded(refresh))
    app.router.add_get("/admin/api/keys", guarded(list_keys))
    app.router.add_post("/admin/api/keys", guarded(create_key))
    app.router.add_patch("/admin/api/keys/{id}", guarded(edit_key))
    app.router.add_delete("/admin/api/keys/{id}", guarded(revoke_key))
    app.router.add_post("/admin/api/pool", guarded(add_pool_key))
    app.router.add_delete("/admin/api/pool/{id}", guarded(remove_pool_key))
    app.router.add_post("/admin/api/pool/{id}/enable", guarded(enable_pool_key))
    app.router.add_get("/admin/api/usage", guarded(usage))
    app.router.add_post("/admin/api/usage/sync", guarded(sync_usage))
    app.router.add_get("/api/admin/config", guarded(legacy_get))
    app.router.add_post("/api/admin/config", guarded(legacy_save))
    app.router.add_static("/static/", static_dir(), append_version=False)
