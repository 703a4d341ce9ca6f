"""Small aiohttp helpers: the caller's key, bounded JSON bodies, error responses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import ContentEncodingError

from poe2openai.engine.gateway import GATEWAY
from poe2openai.errors import ApiError, bad_request, unauthorized
from poe2openai.settings import Settings

# Longest error message sent to a client; a message quoting a client's value is cut there.
# A compressed body may always inflate this far; past it, MAX_COMPRESSION_RATIO applies.
RATIO_FREE_BYTES = 1 << 20
_DECODED_ENCODINGS = frozenset({"gzip", "deflate", "br", "zstd"})  # what aiohttp's parser decodes


def clip(value: str, limit: int = 200) -> str:
    """``value`` cut to ``limit`` characters, for quoting a client's input in a message."""
    return value if len(value) <= limit else value[:limit] + "…"


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


def optional_api_key(request: web.Request) -> str | None:
    """The caller's key when it sent one (``/v1/models`` works without one in pass-through)."""
    if "Authorization" in request.headers or "x-api-key" in request.headers:
        return api_key(request)
    return None


def too_large(limit: int) -> ApiError:
    """The 413 for a body over ``MAX_REQUEST_SIZE``."""
    return ApiError(413, f"The request body is larger than the limit of {limit} bytes", code="payload_too_large")


def _settings(request: web.Request) -> Settings:
    gw = request.config_dict.get(GATEWAY)
    return gw.settings if gw is not None else Settings()


async def read_json(request: web.Request, limit: int) -> Any:
    """Read and decode a JSON body, refusing it as soon as it passes ``limit`` bytes.

    The limit counts the decoded bytes of a compressed body (aiohttp inflates it as it streams),
    and such a body may not inflate more than ``MAX_COMPRESSION_RATIO`` times. The whole body
    must arrive within ``REQUEST_BODY_TIMEOUT_SECONDS``, or the answer is a 408.
    """
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding in ("", "identity"):
        encoding = ""
    elif encoding not in _DECODED_ENCODINGS:
        raise ApiError(
            415,
            f"Content-Encoding {clip(encoding)!r} is not supported; send the body as is, or with gzip or deflate",
            code="unsupported_content_encoding",
        )
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    settings: Settings | None = None
    try:
        if request.content.is_eof() and not encoding:  # the usual case: the whole body is in already
            raw = await _read_body(request, limit, encoding, 0.0)
        else:
            settings = _settings(request)
            async with asyncio.timeout(settings.request_body_timeout_seconds):
                raw = await _read_body(request, limit, encoding, settings.max_compression_ratio)
    except TimeoutError:
        assert settings is not None
        raise ApiError(
            408,
            f"The request body did not arrive within {settings.request_body_timeout_seconds:g} seconds",
            code="request_timeout",
        ) from None
    except web.RequestPayloadError as exc:
        if encoding and isinstance(exc.__cause__, ContentEncodingError):
            message = f"The request body is not valid {encoding} data (Content-Encoding: {encoding})"
            raise bad_request(message, None, "invalid_content_encoding") from None
        raise bad_request("The request body is malformed", None, "invalid_body") from None
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object", None, "invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {clip(str(exc))}", None, "invalid_json") from None


async def _read_body(request: web.Request, limit: int, encoding: str, ratio: float) -> bytearray:
    raw = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > limit:
            raise too_large(limit)
        if encoding and len(raw) > RATIO_FREE_BYTES and len(raw) > ratio * request.content.total_raw_bytes:
            raise ApiError(
                413,
                f"The request body (Content-Encoding: {encoding}) inflates more than {ratio:g} times",
                code="payload_too_large",
            )
    return raw


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


# Errors after which the connection cannot carry another request: aiohttp's parser gave up on
# the body (it drops the connection after the answer, so the answer must say so).
_CLOSING_CODES = frozenset({"invalid_content_encoding", "invalid_body"})
RETRY_AFTER_DEFAULT = 20  # seconds, for a 429 whose source gave no hint


def error_json(body: Any, err: ApiError) -> web.Response:
    """A dialect's error ``body`` with the status and headers of ``err``.

    After a 408 or 413 the rest of the request body is not read, and after a body aiohttp could
    not decode the connection is unusable: the answer says ``Connection: close``, and it closes.
    Every 429 carries ``retry-after`` (a default estimate when its source gave none).
    """
    headers = err.headers
    if err.status == 429 and not any(k.lower() == "retry-after" for k in headers):
        headers = {**headers, "retry-after": str(RETRY_AFTER_DEFAULT)}
    resp = json_response(body, err.status, headers)
    if err.status in (408, 413) or err.code in _CLOSING_CODES:
        resp.force_close()
    return resp


def error_response(err: ApiError) -> web.Response:
    """An :class:`ApiError` in the gateway's own (OpenAI) shape, for routes of no dialect."""
    return error_json(err.body(), err)


ErrorRenderer = Callable[[ApiError], web.Response]
RequestTest = Callable[[web.Request], bool]
ERROR_RENDERERS = web.AppKey("error_renderers", list[tuple[tuple[str, ...], ErrorRenderer, RequestTest | None]])


def register_error_renderer(
    app: web.Application, paths: tuple[str, ...], render: ErrorRenderer, when: RequestTest | None = None
) -> None:
    """Errors on routes under ``paths`` (prefixes) are rendered by ``render``: a dialect's shape
    also for failures before its handler runs (no route, wrong method, body too large).

    With ``when``, only for the requests it accepts, and ahead of renderers without a test:
    for a route two dialects share, told apart by a header (``GET /v1/models`` with
    ``anthropic-version``)."""
    app.setdefault(ERROR_RENDERERS, []).append((paths, render, when))


def error_renderer(request: web.Request) -> ErrorRenderer:
    """The renderer for this request's path: the dialect's, else the gateway's own shape."""
    entries = request.app.get(ERROR_RENDERERS, ())
    for paths, render, when in entries:
        if when is not None and request.path.startswith(paths) and when(request):
            return render
    for paths, render, when in entries:
        if when is None and request.path.startswith(paths):
            return render
    return error_response


ModelListRenderer = Callable[[web.Request, list[dict[str, Any]]], web.Response]
ModelRenderer = Callable[[dict[str, Any]], web.Response]
MODEL_LIST_SHAPES = web.AppKey("model_list_shapes", list[tuple[RequestTest, ModelListRenderer, ModelRenderer]])


def register_model_list_shape(
    app: web.Application, when: RequestTest, render_list: ModelListRenderer, render_one: ModelRenderer
) -> None:
    """``GET /v1/models`` (and ``/v1/models/{id}``) answer in a dialect's own shape for the
    requests ``when`` accepts (say, those carrying the dialect's version header); the others
    get the default shape. The renderers get the gateway's public models (OpenAI-shaped
    entries: ``id``, ``created``, ``owned_by``, ``name``)."""
    app.setdefault(MODEL_LIST_SHAPES, []).append((when, render_list, render_one))


def model_list_shape(request: web.Request) -> tuple[ModelListRenderer, ModelRenderer] | None:
    """The renderers a dialect registered for this request, if any."""
    for when, render_list, render_one in request.app.get(MODEL_LIST_SHAPES, ()):
        if when(request):
            return render_list, render_one
    return None
