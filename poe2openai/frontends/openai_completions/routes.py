"""``POST /v1/completions`` on the engine: the parser (:mod:`request`), the chunk encoder
(:mod:`stream`), the ``text_completion`` body and OpenAI's error shape."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from poe2openai.conversation import CallRequest
from poe2openai.engine.call import serve
from poe2openai.engine.gateway import GATEWAY
from poe2openai.engine.http import api_key, error_json, read_json, register_error_renderer
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_completions.request import parse
from poe2openai.frontends.openai_completions.stream import CompletionEncoder, usage_body
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.deltas import file_markdown
from poe2openai.pipeline.usage import Usage

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def error_response(err: ApiError) -> web.Response:
    """OpenAI's error shape with the error's status and headers."""
    return error_json(err.body(), err)


class OpenAICompletions:
    """The Completions dialect for one request."""

    def __init__(self, echo: str) -> None:
        self.dialect = "openai-completions"
        self.stream_headers = SSE_HEADERS
        self.usage_at_start = False  # usage comes with the last event
        self.id = "cmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.echo = echo

    def stream_encoder(self, req: CallRequest) -> CompletionEncoder:
        """Chunks for one streamed completion."""
        return CompletionEncoder(self.id, self.created, req.model, self.echo)

    def aggregate(self, req: CallRequest, answer: Answer, usage: Usage) -> Any:
        """The ``text_completion`` body."""
        finish = answer.finish_reason if answer.finish_reason in ("stop", "length") else "stop"
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": req.model,
            "choices": [
                {"text": self.echo + answer.text(file_markdown), "index": 0, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage_body(usage),
        }

    def error_response(self, error: ApiError) -> web.Response:
        """OpenAI's error shape."""
        return error_response(error)


async def completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/completions``."""
    gw = request.app[GATEWAY]
    key = api_key(request)
    parsed = parse(await read_json(request, gw.settings.max_request_size))
    return await serve(request, parsed.call, OpenAICompletions(parsed.prompt if parsed.echo else ""), key)


def setup(app: web.Application) -> None:
    """The route (also without the ``/v1`` prefix) and its error renderer."""
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/completions", completions)
    register_error_renderer(app, ("/v1/completions", "/completions"), error_response)
