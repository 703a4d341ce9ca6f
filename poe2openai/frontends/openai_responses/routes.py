"""The Responses routes: ``POST /v1/responses`` on the engine, and ``GET`` / ``DELETE
/v1/responses/{id}`` for kept responses.

The dialect is only its wire format: the parser (:mod:`request`, :mod:`tools`), the stream
encoder (:mod:`stream`), the non-stream body (:mod:`response`), the error renderer
(:mod:`errors`) and the response store (:mod:`store`). Everything else is the engine's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from poe2openai.conversation import CallRequest
from poe2openai.engine.call import serve
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import api_key, json_response, read_json, register_error_renderer
from poe2openai.errors import ApiError, not_found, shown
from poe2openai.frontends.openai_responses.errors import error_response
from poe2openai.frontends.openai_responses.ids import response_id
from poe2openai.frontends.openai_responses.request import ResponsesBody, conversation, parse_body
from poe2openai.frontends.openai_responses.response import ResponseMeta, aggregate
from poe2openai.frontends.openai_responses.store import ResponseStore, SharedResponses, owner_of
from poe2openai.frontends.openai_responses.stream import ResponsesEncoder
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.usage import Usage

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
MB = 1024 * 1024


@dataclass
class _StoreHolder:
    """The app's response store, made from the settings on first use."""

    store: SharedResponses | None = None


STORE = web.AppKey("responses_store", _StoreHolder)


def response_store(app: web.Application) -> SharedResponses:
    """The gateway's response store (shared through Redis when there is one)."""
    holder = app[STORE]
    if holder.store is None:
        gw = app[GATEWAY]
        settings = gw.settings
        local = ResponseStore(int(settings.response_store_size_mb * MB), settings.response_store_ttl_seconds)
        holder.store = SharedResponses(local, gw.shared.map("responses") if gw.shared is not None else None)
    return holder.store


class OpenAIResponses:
    """The Responses dialect for one request: its id, the echoed request, where it is kept."""

    def __init__(self, parsed: ResponsesBody, store: SharedResponses, owner: str) -> None:
        self.dialect = "openai-responses"
        self.stream_headers = SSE_HEADERS
        self.usage_at_start = False  # usage comes with the last event
        self.parsed = parsed
        self.store = store
        self.owner = owner
        self.meta = ResponseMeta(response_id(), parsed.model, parsed.echo)
        self.shared_write: asyncio.Task[None] | None = None  # the copy for other gateways

    def _keep(self, response: dict[str, Any]) -> None:
        if self.parsed.store:
            self.shared_write = self.store.put(
                self.owner, response, self.parsed.items, self.parsed.previous_response_id
            )

    def stream_encoder(self, req: CallRequest) -> ResponsesEncoder:
        """Events for one streamed response."""
        return ResponsesEncoder(self.meta, self.parsed.tools, req.tools, self._keep)

    def aggregate(self, req: CallRequest, answer: Answer, usage: Usage) -> Any:
        """The ``response`` body."""
        body = aggregate(self.meta, self.parsed.tools, req.tools, answer, usage)
        self._keep(body)
        return body

    def error_response(self, error: ApiError) -> web.Response:
        """OpenAI's error shape."""
        return error_response(error)


def previous_not_found(rid: str) -> ApiError:
    """The 404 for a ``previous_response_id`` the store does not hold for this key."""
    return ApiError(
        404,
        f"Previous response with id {shown(rid)} not found (unknown, expired, stored with store: false, "
        "or made with another key)",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def create_response(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses``."""
    gw = request.app[GATEWAY]
    key = api_key(request)
    parsed = parse_body(await read_json(request, gw.settings.max_request_size))
    store = response_store(request.app)
    owner = owner_of(key)
    history: list[Any] = []
    if parsed.previous_response_id is not None:
        found = await store.history(owner, parsed.previous_response_id)
        if found is None:
            raise previous_not_found(parsed.previous_response_id)
        history = found
    req = conversation(parsed, history)
    frontend = OpenAIResponses(parsed, store, owner)
    answer = await serve(request, req, frontend, key)
    if frontend.shared_write is not None:
        # a whole answer leaves only once other gateways can continue it (a stream's last
        # event is out already; its write is a single SET, done long before a next turn)
        await asyncio.shield(frontend.shared_write)
    return answer


def _not_found(rid: str) -> ApiError:
    return not_found(f"No response with id {shown(rid)} is kept for this key", "response_not_found")


async def get_response(request: web.Request) -> web.Response:
    """``GET /v1/responses/{id}``: a kept response."""
    rid = request.match_info["id"]
    entry = await response_store(request.app).get(owner_of(api_key(request)), rid)
    if entry is None:
        raise _not_found(rid)
    return json_response(entry.response)


async def delete_response(request: web.Request) -> web.Response:
    """``DELETE /v1/responses/{id}``: forget a kept response."""
    rid = request.match_info["id"]
    if not await response_store(request.app).delete(owner_of(api_key(request)), rid):
        raise _not_found(rid)
    return json_response({"id": rid, "object": "response", "deleted": True})


def setup(app: web.Application) -> None:
    """The dialect's routes (also without the ``/v1`` prefix) and its error renderer."""
    app[STORE] = _StoreHolder()
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", create_response)
        app.router.add_get(f"{prefix}/responses/{{id}}", get_response)
        app.router.add_delete(f"{prefix}/responses/{{id}}", delete_response)
    register_error_renderer(app, ("/v1/responses", "/responses"), error_response)
