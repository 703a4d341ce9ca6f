"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}`` with the status.

The error ``type`` follows the status as Anthropic's API sets it (400 ``invalid_request_error``,
401 ``authentication_error``, 402 ``billing_error``, 403 ``permission_error``, 404
``not_found_error``, 413 ``request_too_large``, 429 ``rate_limit_error``, 504
``timeout_error``, 503/529 ``overloaded_error``, other 5xx ``api_error``); Claude Code and the
SDKs decide on retries from the status and this type. A Poe account out of points (429
``insufficient_quota`` in OpenAI's terms) is Anthropic's 402 ``billing_error``, with the
``x-should-retry: false`` header that stops the SDKs from retrying.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from poe2openai.engine.http import error_json
from poe2openai.errors import ApiError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    found = ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def _status(err: ApiError) -> int:
    return 402 if err.code == "insufficient_quota" else err.status


def error_body(err: ApiError) -> dict[str, Any]:
    """The JSON body of an error (the field at fault, when known, is named in the message)."""
    message = err.message
    if err.param and err.param not in message:
        message = f"{err.param}: {message}"
    return {"type": "error", "error": {"type": error_type(_status(err)), "message": message}}


def error_response(err: ApiError) -> web.Response:
    """The error as a response, with its status and headers (``retry-after``, say)."""
    status = _status(err)
    if status != err.status:
        err = ApiError(status, err.message, type=err.type, param=err.param, code=err.code, headers=err.headers)
    return error_json(error_body(err), err)


def error_event(err: ApiError) -> bytes:
    """The error as an SSE ``error`` event, for a stream that already started."""
    return b"event: error\ndata: " + orjson.dumps(error_body(err)) + b"\n\n"
