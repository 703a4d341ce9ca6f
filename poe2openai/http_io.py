"""Small aiohttp helpers: the caller's key, bounded JSON bodies, error responses."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .errors import ApiError, bad_request, unauthorized


def api_key(request: web.Request) -> str:
    """The caller's Poe key: ``Authorization: Bearer KEY`` (or ``x-api-key``)."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    alt = request.headers.get("x-api-key", "").strip()
    if alt:
        return alt
    if auth:
        raise unauthorized("The Authorization header must be 'Bearer <your Poe API key>'")
    raise unauthorized("Missing API key: send your Poe API key as 'Authorization: Bearer <key>'")


def too_large(limit: int) -> ApiError:
    """The 413 for a body over ``MAX_REQUEST_SIZE``."""
    return ApiError(413, f"The request body is larger than the limit of {limit} bytes", code="payload_too_large")


async def read_json(request: web.Request, limit: int) -> Any:
    """Read and decode a JSON body, refusing it as soon as it passes ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object", None, "invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", None, "invalid_json") from None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(err: ApiError) -> web.Response:
    """An :class:`ApiError` as OpenAI's error body with its status and headers."""
    return json_response(err.body(), err.status, err.headers)
