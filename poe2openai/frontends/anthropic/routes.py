"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API on
the call engine.

Its parts: the request parser (:mod:`request`, :mod:`tools`, :mod:`reasoning`), the stream
encoder (:mod:`stream`), the aggregate (:mod:`response`), the error renderer (:mod:`errors`)
and the model list shape (:mod:`models`). Thinking split, tool extraction, uploads, limits,
the rate limit and usage are the engine's. The key comes as ``x-api-key`` or
``Authorization: Bearer``; ``anthropic-version`` and ``anthropic-beta`` are accepted whatever
they say; a query string (Claude Code sends ``?beta=true``) changes nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from poe2openai.conversation import CallRequest
from poe2openai.engine.call import count_prompt, serve
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import (
    api_key,
    json_response,
    read_json,
    register_error_renderer,
    register_model_list_shape,
)
from poe2openai.engine.request_info import info
from poe2openai.errors import ApiError
from poe2openai.frontends.anthropic.errors import error_response
from poe2openai.frontends.anthropic.ids import message_id
from poe2openai.frontends.anthropic.models import list_response, one_response, wants_anthropic
from poe2openai.frontends.anthropic.request import MessagesRequest, parse_messages_request
from poe2openai.frontends.anthropic.response import message_body
from poe2openai.frontends.anthropic.stream import MessageEncoder
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.usage import Usage

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class AnthropicMessages:
    """The Messages dialect for one request (its message id and display options)."""

    def __init__(self, parsed: MessagesRequest) -> None:
        self.dialect = "anthropic"
        self.stream_headers = SSE_HEADERS
        self.usage_at_start = True  # message_start carries the prompt's tokens
        self.id = message_id()
        self.omit_thinking = parsed.omit_thinking

    def stream_encoder(self, req: CallRequest) -> MessageEncoder:
        """Events for one streamed message."""
        return MessageEncoder(self.id, req.model, self.omit_thinking)

    def aggregate(self, req: CallRequest, answer: Answer, usage: Usage) -> Any:
        """The ``message`` body."""
        return message_body(self.id, req.model, answer, usage, self.omit_thinking)

    def error_response(self, error: ApiError) -> web.Response:
        """Anthropic's error shape."""
        return error_response(error)


async def messages(request: web.Request) -> web.StreamResponse:
    """The Messages endpoint."""
    gw = request.app[GATEWAY]
    key = api_key(request)
    parsed = parse_messages_request(await read_json(request, gw.settings.max_request_size))
    return await serve(request, parsed.call, AnthropicMessages(parsed), key)


async def count_tokens(request: web.Request) -> web.Response:
    """The prompt's tokens, counted on the query a call would send (nothing reaches Poe)."""
    gw = request.app[GATEWAY]
    api_key(request)  # required as for messages; Poe checks keys, and nothing is sent to it here
    parsed = parse_messages_request(await read_json(request, gw.settings.max_request_size), counting=True)
    info(request).model = parsed.call.model
    return json_response({"input_tokens": await count_prompt(gw, parsed.call)})


def setup(app: web.Application) -> None:
    """The dialect's routes, its error renderer, and its shape of the model list."""
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    register_error_renderer(app, ("/v1/messages",), error_response)
    register_error_renderer(app, ("/v1/models", "/models"), error_response, when=wants_anthropic)
    register_model_list_shape(app, wants_anthropic, list_response, one_response)
