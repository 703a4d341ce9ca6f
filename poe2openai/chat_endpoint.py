"""``POST /v1/chat/completions``: validate, ask Poe, stream or aggregate the answer.

Retries once, only while nothing has reached the client: a transport failure, a Poe 5xx,
or a retryable ``error`` event before any output. A streamed request whose bot is slow to
start gets its headers after a few seconds and then SSE comments as keep-alives. A client
that goes away cancels the handler, which closes the upstream connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from . import pipeline
from .bot_parameters import as_flags, bot_parameters, read_request, split_suffix
from .chat_request import ChatRequest, parse_chat_request
from .cors import cors_headers
from .deltas import Delta, End, Failure, ResetDelta, UsageDelta
from .errors import ApiError
from .gateway import GATEWAY, Gateway, Target
from .http_io import api_key, error_response, json_response, read_json
from .ids import completion_id
from .openai_response import ResponseBuilder
from .openai_stream import ChunkEncoder
from .pipeline import Stage
from .poe_query import QueryOptions, build_query, encode
from .request_info import info
from .thinking import ThinkingSplitter
from .tokens import count_messages, count_tokens
from .tool_prompt import render_messages
from .tools import ToolPlan, tool_plan
from .xml_tool_extract import XmlToolExtractor

log = logging.getLogger("poe2openai.chat")

SHUTTING_DOWN = ApiError(503, "The gateway is shutting down; retry shortly", type="api_error", code="shutting_down")
RETRY_DELAY = 0.3
BIG_PROMPT = 16_000  # characters; counting more than this (a few ms) moves off the event loop
HEADERS_AFTER = 5.0  # seconds without output before a stream commits to 200 and keeps alive
KEEPALIVE_EVERY = 15.0

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class Answer:
    """An open upstream answer: its response, its batches, and the first batch if read."""

    def __init__(self, resp: aiohttp.ClientResponse, batches: AsyncIterator[list[Delta]]) -> None:
        self.resp = resp
        self.batches = batches

    async def close(self) -> None:
        """Stop reading and drop the upstream connection."""
        self.resp.close()
        aclose = getattr(self.batches, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # the generator may be mid-await after a cancellation
                pass


def _only_failure(batch: list[Delta]) -> Failure | None:
    """The failure of a batch that says nothing else (so nothing was shown yet)."""
    last = batch[-1]
    if type(last) is Failure and all(type(d) in (ResetDelta, UsageDelta) for d in batch[:-1]):
        assert isinstance(last, Failure)
        return last
    return None


async def _next(batches: AsyncIterator[list[Delta]]) -> list[Delta] | None:
    try:
        return await batches.__anext__()
    except StopAsyncIteration:
        return None


class ChatCall:
    """One chat completion request in flight."""

    def __init__(
        self,
        gw: Gateway,
        request: web.Request,
        req: ChatRequest,
        key: str,
        target: Target,
        opts: QueryOptions,
        plan: ToolPlan,
    ) -> None:
        self.gw = gw
        self.opts = opts
        self.request = request
        self.req = req
        self.key = key
        self.target = target
        self.id = completion_id()
        self.created = int(time.time())
        self.started = time.perf_counter()
        self.retries_left = 1
        self.stopping = False
        self.answer: Answer | None = None
        self.plan = plan
        self._prompt_texts: list[str] = []
        self.query = encode(self._query())
        self._prompt_tokens: int | None = None
        self._counting: asyncio.Future[int] | None = None
        self.last_write = 0.0  # loop time of the last frame sent (streams)

    def _query(self) -> dict[str, Any]:
        req, plan, target, opts = self.req, self.plan, self.target, self.opts
        native = plan.active and target.native_tools()
        has_history = any(m.role == "tool" or m.tool_calls for m in req.messages)
        rendered = None
        if plan.active or has_history:
            rendered = render_messages(req, plan, opts.attachments, instruct=not native)
        body = build_query(req, opts, rendered)
        self._prompt_texts = [m["content"] for m in body["query"]]
        if native:
            body["tools"] = [t.as_openai() for t in plan.tools]
            self._prompt_texts.append(encode(body["tools"]).decode())
        return body

    def stages(self) -> list[Stage]:
        """The pipeline stages after the Poe stage."""
        if self.plan.active:
            return [ThinkingSplitter(), XmlToolExtractor(self.plan)]
        return [ThinkingSplitter()]

    def count_prompt_in_background(self) -> None:
        """Count a large prompt in a thread while Poe answers (only when usage will be reported)."""
        wanted = not self.req.stream or self.req.include_usage
        if wanted and self._counting is None and sum(map(len, self._prompt_texts)) > BIG_PROMPT:
            self._counting = asyncio.ensure_future(asyncio.to_thread(count_messages, self._prompt_texts))

    async def prompt_counted(self) -> None:
        """Wait for the background count, if one runs."""
        if self._counting is not None and self._prompt_tokens is None:
            self._prompt_tokens = await self._counting

    def forget_count(self) -> None:
        """The request is over: a count still running is not needed (the thread finishes alone)."""
        if self._counting is not None and not self._counting.done():
            self._counting.add_done_callback(lambda f: f.cancelled() or f.exception())

    def prompt_tokens(self) -> int:
        """Tokens of what was sent to the bot (tool instructions included)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = count_messages(self._prompt_texts)
        return self._prompt_tokens

    def stop(self) -> None:
        """Server shutdown: drop the upstream answer; the client is told why."""
        self.stopping = True
        if self.answer is not None:
            self.answer.resp.close()

    async def open(self) -> Answer:
        """Send the query (in its turn); raise an ApiError if Poe refuses it."""
        if self.stopping:
            raise SHUTTING_DOWN
        await self.gw.limiter.acquire()
        resp = await self.gw.poe.query(self.target.bot, self.query, self.key)
        self.answer = Answer(resp, pipeline.run(resp.content.iter_any(), self.target.bot, self.stages()))
        return self.answer

    def note_first_output(self) -> None:
        """Record time to first token for the request log."""
        info(self.request).ttft_ms = (time.perf_counter() - self.started) * 1000

    # --- non-streaming ------------------------------------------------------------------

    async def respond(self) -> web.Response:
        """Collect the whole answer and return one ``chat.completion``."""
        while True:
            answer = await self._open_with_retry()
            try:
                builder = ResponseBuilder()
                first = await _next(answer.batches)
                if first is not None:
                    failure = _only_failure(first)
                    if failure is not None and self._may_retry(failure.error):
                        await asyncio.sleep(RETRY_DELAY)
                        continue
                    self.note_first_output()
                    builder.feed(first)
                    async for batch in answer.batches:
                        builder.feed(batch)
            finally:
                await answer.close()
            if self.stopping:
                raise SHUTTING_DOWN
            await self.prompt_counted()
            body = builder.result(self.id, self.created, self.req.model, self.prompt_tokens(), count_tokens)
            info(self.request).usage = body["usage"]
            return json_response(body)

    def _may_retry(self, exc: ApiError) -> bool:
        """Spend the one retry this request has, if the failure allows it."""
        if exc.retryable and self.retries_left > 0:
            self.retries_left -= 1
            log.info("retrying %s after: %s", self.target.bot, exc.message)
            return True
        return False

    async def _open_with_retry(self) -> Answer:
        while True:
            try:
                return await self.open()
            except ApiError as exc:
                if not self._may_retry(exc):
                    raise
                await asyncio.sleep(RETRY_DELAY)

    # --- streaming ----------------------------------------------------------------------

    async def stream(self) -> web.StreamResponse:
        """Relay the answer as OpenAI chunks."""
        encoder = ChunkEncoder(
            self.id,
            self.created,
            self.req.model,
            include_usage=self.req.include_usage,
            prompt_tokens=self.prompt_tokens,
            count_tokens=count_tokens,
        )
        headers = {**SSE_HEADERS, "X-Request-Id": info(self.request).request_id}
        headers.update(cors_headers(self.request, self.gw.settings.cors_allow_origins))
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        while True:
            answer = await self._open_with_retry()
            try:
                first = await self._first_batch(answer, response, encoder)
                if first is not None and not response.prepared:
                    failure = _only_failure(first)
                    if failure is not None:
                        if self._may_retry(failure.error):
                            await asyncio.sleep(RETRY_DELAY)
                            continue
                        raise failure.error
                if not response.prepared:
                    await response.prepare(self.request)
                self.note_first_output()
                if first is not None and not self.stopping:
                    if type(first[-1]) is End:
                        await self.prompt_counted()
                    await response.write(encoder.encode(first))
                clock = asyncio.get_running_loop().time
                self.last_write = clock()
                keeper = asyncio.ensure_future(self._idle_keeper(response, encoder))
                try:
                    async for batch in answer.batches:
                        if self.stopping:
                            break
                        if type(batch[-1]) is End:  # the usage chunk is next: have the count ready
                            await self.prompt_counted()
                        data = encoder.encode(batch)
                        if data:
                            await response.write(data)
                            self.last_write = clock()
                finally:
                    keeper.cancel()
                    await asyncio.wait({keeper})
                if self.stopping and not encoder.finished:
                    await response.write(encoder.failure(Failure(SHUTTING_DOWN)))
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                log.info("client went away during %s", self.id)
                return response
            finally:
                await answer.close()
            if not encoder.finished:  # cannot happen: the pipeline always ends; keep the promise anyway
                await response.write(encoder.failure(Failure(ApiError(502, "The answer ended unexpectedly"))))
            self._record_usage(encoder)
            await response.write_eof()
            return response

    def _record_usage(self, encoder: ChunkEncoder) -> None:
        if encoder.usage is not None:
            info(self.request).usage = encoder.usage

    async def _first_batch(
        self, answer: Answer, response: web.StreamResponse, encoder: ChunkEncoder
    ) -> list[Delta] | None:
        """Wait for the first batch; past HEADERS_AFTER, commit to 200 and send keep-alives.

        The common case costs one timer: the keep-alive writer is only started for slow bots.
        """
        keeper: asyncio.Task[None] | None = None

        def start_keeper() -> None:
            nonlocal keeper
            keeper = asyncio.ensure_future(self._keep_alive(response, encoder))

        timer = asyncio.get_running_loop().call_later(HEADERS_AFTER, start_keeper)
        try:
            return await _next(answer.batches)
        finally:
            timer.cancel()
            if keeper is not None:
                keeper.cancel()
                await asyncio.wait({keeper})  # let a frame in progress finish before we write

    async def _idle_keeper(self, response: web.StreamResponse, encoder: ChunkEncoder) -> None:
        """After the first token: a keep-alive comment whenever nothing was sent for a while,
        so a bot pausing mid-answer does not trip a proxy's idle timeout."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.last_write + KEEPALIVE_EVERY - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await asyncio.shield(response.write(encoder.keepalive()))
            self.last_write = loop.time()

    async def _keep_alive(self, response: web.StreamResponse, encoder: ChunkEncoder) -> None:
        # shielded writes: a cancellation between frames, never inside one
        if not response.prepared:
            await asyncio.shield(self._commit(response, encoder))
        while True:
            await asyncio.shield(response.write(encoder.keepalive()))
            await asyncio.sleep(KEEPALIVE_EVERY)

    async def _commit(self, response: web.StreamResponse, encoder: ChunkEncoder) -> None:
        await response.prepare(self.request)
        await response.write(encoder.start())


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """The Chat Completions endpoint."""
    gw = request.app[GATEWAY]
    key = api_key(request)
    body = await read_json(request, gw.settings.max_request_size)
    req = parse_chat_request(body)
    plan = tool_plan(req)
    info(request).model = req.model
    name, suffix = (req.model, None) if gw.knows(req.model) else split_suffix(req.model)
    target = gw.resolve(name)
    wanted = read_request(req.raw, suffix)
    params = bot_parameters(wanted, target.model.parameters if target.model is not None else None)
    opts = QueryOptions(system_as_user=target.system_as_user)
    # everything is validated above; only now does any work reach Poe
    opts.attachments = await gw.uploader.prepare(req.messages, key)
    if target.reasoning_flags:
        opts.flags = as_flags(params)
    else:
        opts.parameters = params
    call = ChatCall(gw, request, req, key, target, opts, plan)
    call.count_prompt_in_background()
    gw.calls.add(call)
    try:
        if req.stream:
            return await call.stream()
        return await call.respond()
    except ApiError as exc:
        return error_response(exc)
    finally:
        gw.calls.discard(call)
        call.forget_count()
