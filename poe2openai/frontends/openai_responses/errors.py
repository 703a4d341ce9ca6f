"""Errors before a Responses stream starts: OpenAI's shape ``{"error": {message, type, param, code}}``
with the status. (Once a stream has started, a failure is a ``response.failed`` event: see
:mod:`openai_responses.stream`.)"""

from __future__ import annotations

from aiohttp import web

from poe2openai.engine.http import error_json
from poe2openai.errors import ApiError


def error_response(err: ApiError) -> web.Response:
    """The error as a response, with its status and headers (``retry-after``, say)."""
    return error_json(err.body(), err)
