"""``POST /v1/chat/completions``: the OpenAI Chat Completions front end on the call engine.

Its parts: the request parser (:mod:`chat_request`, :mod:`tools`, :mod:`bot_parameters`),
the stream encoder (:mod:`openai_stream`), the aggregate (:mod:`openai_response`) and the
error renderer (:mod:`openai_errors`). Everything else is the engine's.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from poe2openai.conversation import CallRequest
from poe2openai.engine.call import serve
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import api_key, read_json, register_error_renderer
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_chat.errors import error_response
from poe2openai.frontends.openai_chat.ids import completion_id
from poe2openai.frontends.openai_chat.models import get_model, list_models
from poe2openai.frontends.openai_chat.output import output_format
from poe2openai.frontends.openai_chat.reasoning import read_request
from poe2openai.frontends.openai_chat.request import parse_chat_request
from poe2openai.frontends.openai_chat.response import completion_body
from poe2openai.frontends.openai_chat.stream import ChunkEncoder
from poe2openai.frontends.openai_chat.tools import tool_plan
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.usage import Usage

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class OpenAIChat:
    """The Chat Completions dialect for one request (its id and creation time)."""

    def __init__(self) -> None:
        self.dialect = "openai-chat"
        self.stream_headers = SSE_HEADERS
        self.usage_at_start = False  # usage comes in its own chunk at the end
        self.id = completion_id()
        self.created = int(time.time())

    def stream_encoder(self, req: CallRequest) -> ChunkEncoder:
        """Chunks for one streamed answer."""
        return ChunkEncoder(self.id, self.created, req.model)

    def aggregate(self, req: CallRequest, answer: Answer, usage: Usage) -> Any:
        """The ``chat.completion`` body."""
        return completion_body(self.id, self.created, req.model, answer, usage)

    def error_response(self, error: ApiError) -> web.Response:
        """OpenAI's error shape."""
        return error_response(error)


def parse(body: Any) -> CallRequest:
    """A Chat Completions body as the engine's request (400s name the field)."""
    chat = parse_chat_request(body)
    return CallRequest(
        model=chat.model,
        messages=chat.messages,
        stream=chat.stream,
        tools=tool_plan(chat),
        reasoning=read_request(chat.raw),
        temperature=chat.temperature,
        stop=chat.stop,
        logit_bias=chat.logit_bias,
        max_tokens=chat.max_tokens,
        stream_usage=chat.include_usage,
        output=output_format(chat.raw),
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """The Chat Completions endpoint."""
    gw = request.app[GATEWAY]
    key = api_key(request)
    req = parse(await read_json(request, gw.settings.max_request_size))
    return await serve(request, req, OpenAIChat(), key)


def setup(app: web.Application) -> None:
    """The dialect's routes (also without the ``/v1`` prefix, as the original serves them)."""
    for prefix in ("/v1", ""):
        app.router.add_get(f"{prefix}/models", list_models)
        app.router.add_get(f"{prefix}/models/{{model:.+}}", get_model)
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
    register_error_renderer(app, ("/v1/chat/", "/chat/", "/v1/models", "/models"), error_response)
