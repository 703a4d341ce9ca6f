"""Per-request facts gathered for the request log line."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from poe2openai.pipeline.usage import Usage


@dataclass(slots=True)
class RequestInfo:
    """What the log line reports about one request."""

    request_id: str
    model: str | None = None
    ttft_ms: float | None = None
    usage: Usage | None = None
    sent: web.StreamResponse | None = None  # the response whose headers went out


INFO = web.RequestKey("info", RequestInfo)


def info(request: web.Request) -> RequestInfo:
    """The request's info (created by the log middleware; a fresh one otherwise)."""
    found = request.get(INFO)
    if found is None:
        found = request[INFO] = RequestInfo(request_id="-")
    return found
