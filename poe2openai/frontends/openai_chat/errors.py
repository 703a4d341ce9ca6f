"""Errors in OpenAI's shape: ``{"error": {message, type, param, code}}`` with the status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from poe2openai.engine.http import error_json
from poe2openai.errors import ApiError


def error_body(err: ApiError) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def error_response(err: ApiError) -> web.Response:
    """The error as a response, with its status and headers (``retry-after``, say)."""
    return error_json(error_body(err), err)
