"""Per-request facts gathered for the request log line and the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from poe2openai.pipeline.usage import Usage


@dataclass(slots=True)
class RequestInfo:
    """What the log line and the metrics report about one request."""

    request_id: str
    model: str | None = None
    ttft_ms: float | None = None
    usage: Usage | None = None
    sent: web.StreamResponse | None = None  # the response whose headers went out
    started: float = field(default_factory=time.perf_counter)
    dialect: str | None = None  # set by the engine for completions
    stream: bool = False
    bot: str | None = None  # the Poe bot, once Poe accepted the query
    error: str | None = None  # the code of the error the request ended with
    error_status: int = 0
    queue_s: float | None = None  # time waited for the rate limit
    overhead_ms: float | None = None  # the gateway's own time, up to the headers
    waited: float = 0.0  # seconds spent waiting for Poe (rate limit, uploads, Poe's answer)
    wait_since: float | None = None  # a wait in progress started then

    def wait_begin(self) -> None:
        """A wait for Poe starts (its time is not the gateway's overhead)."""
        self.wait_since = time.perf_counter()

    def wait_end(self) -> None:
        """The wait for Poe is over."""
        since = self.wait_since
        if since is not None:
            self.waited += time.perf_counter() - since
            self.wait_since = None

    def overhead_now(self) -> float:
        """Milliseconds spent in the gateway so far, waits for Poe excluded."""
        now = time.perf_counter()
        waited = self.waited + (now - self.wait_since if self.wait_since is not None else 0.0)
        return max(0.0, (now - self.started - waited) * 1000)

    def failed(self, code: str | None, status: int) -> None:
        """The request ends with an error."""
        self.error = code or "error"
        self.error_status = status


INFO = web.RequestKey("info", RequestInfo)


def info(request: web.Request) -> RequestInfo:
    """The request's info (created by the log middleware; a fresh one otherwise)."""
    found = request.get(INFO)
    if found is None:
        found = request[INFO] = RequestInfo(request_id="-")
    return found
