"""The aiohttp application: routes, middlewares, start-up and shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from poe2openai.admin.api import setup_admin
from poe2openai.admin.metrics import setup_metrics
from poe2openai.admin.traffic import setup_traffic
from poe2openai.attachments.cache import UploadCache
from poe2openai.attachments.uploader import SharedUploads, Uploaded, Uploader
from poe2openai.attachments.url_guard import new_fetch_session
from poe2openai.engine.gateway import GATEWAY, Gateway
from poe2openai.engine.http import error_renderer, json_response
from poe2openai.engine.models_yaml import ConfigStore
from poe2openai.engine.rate_limit import RateLimiter
from poe2openai.engine.request_info import INFO, RequestInfo, info
from poe2openai.engine.shared import Shared
from poe2openai.errors import ApiError
from poe2openai.frontends.anthropic import routes as anthropic
from poe2openai.frontends.openai_chat import routes as openai_chat
from poe2openai.frontends.openai_chat.models import healthz
from poe2openai.frontends.openai_completions import routes as openai_completions
from poe2openai.frontends.openai_responses import routes as openai_responses
from poe2openai.ids import request_id
from poe2openai.pipeline.tokens import warm_up
from poe2openai.poe.catalog import ModelCatalog
from poe2openai.poe.client import PoeClient, new_session
from poe2openai.server.cors import add_cors_headers, cors_middleware
from poe2openai.settings import Settings
from poe2openai.team.access import Team

log = logging.getLogger("poe2openai")
access = logging.getLogger("poe2openai.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error in the shape of the route's dialect; never a traceback to the client."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_renderer(request)(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"No route for {request.method} {request.path}"
        kind = "invalid_request_error" if exc.status < 500 else "api_error"
        err = ApiError(exc.status, message, type=kind, code=_HTTP_ERROR_CODES.get(exc.status))
        resp = error_renderer(request)(err)
        if exc.status == 405 and "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        sent = info(request).sent
        if sent is not None:
            # headers already went out: a second status line would corrupt the connection
            return sent
        return error_renderer(request)(
            ApiError(500, "Internal error in the gateway", type="api_error", code="internal_error")
        )


@web.middleware
async def log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id header and one log line per request."""
    rid = request.headers.get("X-Request-Id", "")[:64] or request_id()
    facts = request[INFO] = RequestInfo(rid)
    started = facts.started
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        if not resp.prepared:  # a whole answer: its headers go out after this
            facts.overhead_ms = facts.overhead_now()
        return resp
    finally:
        if request.path != "/healthz":
            total = (time.perf_counter() - started) * 1000
            _record(request, status, facts, total)
            extra = ""
            if facts.model is not None:
                extra += f" model={facts.model}"
            if facts.ttft_ms is not None:
                extra += f" ttft_ms={facts.ttft_ms:.1f}"
            usage = facts.usage
            if usage is not None:
                extra += f" tokens={usage.prompt_tokens}+{usage.completion_tokens}"
            tail = f" overhead_ms={facts.overhead_ms:.1f}" if facts.dialect and facts.overhead_ms is not None else ""
            access.info("%s %s %s %d%s total_ms=%.1f%s", rid, request.method, request.path, status, extra, total, tail)


def _record(request: web.Request, status: int, facts: RequestInfo, total_ms: float) -> None:
    gw = request.app.get(GATEWAY)
    if gw is None:
        return
    route = request.match_info.route.resource
    pattern = route.canonical if route is not None else "unmatched"
    gw.metrics.request_done(pattern, status, facts, total_ms / 1000)


_PREFETCH = web.AppKey("prefetch", asyncio.Task[None])


async def _prefetch(catalog: ModelCatalog) -> None:
    try:
        await catalog.models()
    except ApiError:
        pass  # logged by the catalogue; /v1/models will try again


def _share(settings: Settings, config: ConfigStore, cache: UploadCache[Uploaded]) -> Shared | None:
    """With REDIS_URL: the pace, the attachment map and models.yaml shared through Redis."""
    if not settings.redis_url:
        return None
    shared = Shared(settings.redis_url)
    cache.remote = SharedUploads(shared.map("uploads"))
    config.on_save = shared.config_saved
    shared.watch_config(config.adopt, first=not config.path.exists())
    return shared


def create_app(settings: Settings) -> web.Application:
    """The gateway application for ``settings``."""
    app = web.Application(
        middlewares=[log_middleware, cors_middleware(settings.cors_allow_origins), errors_middleware],
        client_max_size=settings.max_request_size,
    )

    async def start(app: web.Application) -> None:
        session = new_session()
        poe = PoeClient(session, settings.poe_base_url)
        catalog = ModelCatalog(poe, ttl=settings.models_cache_seconds)
        config = ConfigStore(settings.config_dir, log.warning)
        cache: UploadCache[Uploaded] = UploadCache(
            int(settings.url_cache_size_mb * 1024 * 1024), settings.url_cache_ttl_seconds
        )
        shared = _share(settings, config, cache)
        limiter = RateLimiter(settings.rate_limit_ms, settings.rate_limit_max_wait_ms, shared)
        fetcher = new_fetch_session(guarded=not settings.allow_private_urls)
        uploader = Uploader(
            session,
            fetcher,
            settings.poe_file_upload_url,
            cache,
            settings.max_request_size,
            guarded=not settings.allow_private_urls,
        )
        gw = Gateway(
            settings=settings,
            session=session,
            poe=poe,
            catalog=catalog,
            config=config,
            limiter=limiter,
            uploader=uploader,
            team=await asyncio.to_thread(Team.open, settings),
            shared=shared,
        )
        if shared is not None:  # team mode across processes: rpm windows and pool key health
            gw.team.shared_rpm = shared.admit_rpm
            gw.team.publish_health = shared.publish_health
            shared.watch_health(gw.team.adopt_health)
        gw.team.start(session)
        app[GATEWAY] = gw
        if shared is not None:
            shared.publish_traffic(gw.metrics.traffic.export)
        if gw.metrics.traffic_folder is not None:
            gw.metrics.traffic_folder.start()
        cache.stats = gw.metrics
        warm_up()
        # Fetch the model list in the background so names resolve from the first request.
        app[_PREFETCH] = asyncio.ensure_future(_prefetch(catalog))

    async def drain(app: web.Application) -> None:
        await app[GATEWAY].drain(settings.shutdown_grace_seconds)

    async def stop(app: web.Application) -> None:
        app[_PREFETCH].cancel()
        await app[GATEWAY].session.close()
        await app[GATEWAY].uploader.fetch_session.close()
        await app[GATEWAY].team.close()
        shared = app[GATEWAY].shared
        if shared is not None:
            await shared.close()
        folder = app[GATEWAY].metrics.traffic_folder
        if folder is not None:
            await folder.close()

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        # the headers every response carries, streams included, set in one place
        facts = info(request)
        facts.sent = response
        response.headers["X-Request-Id"] = facts.request_id
        # the gateway's own time up to these headers (for a stream: before its body)
        if facts.overhead_ms is None:
            facts.overhead_ms = facts.overhead_now()
        response.headers["X-Gateway-Overhead-Ms"] = f"{facts.overhead_ms:.2f}"
        add_cors_headers(request, response, settings.cors_allow_origins)

    app.on_response_prepare.append(on_prepare)
    app.on_startup.append(start)
    app.on_shutdown.append(drain)
    app.on_cleanup.append(stop)
    openai_chat.setup(app)
    anthropic.setup(app)
    openai_responses.setup(app)
    openai_completions.setup(app)
    app.router.add_get("/healthz", healthz)
    setup_admin(app)
    setup_metrics(app)
    setup_traffic(app)
    app.router.add_get("/", _index)
    return app


async def _index(request: web.Request) -> web.Response:
    return json_response({"service": "poe2openai", "endpoints": ["/v1/models", "/v1/chat/completions", "/healthz"]})
