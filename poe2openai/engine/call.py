"""The call engine: one completion asked of a Poe bot, for any API dialect.

A dialect's front end parses its request into a :class:`CallRequest` and renders what the
engine produces (:class:`Frontend`); everything else is here, the same for every dialect:

- the model name (public names, ``:high``/``:thinking-N`` suffixes) and the bot's parameters;
- attachments uploaded before anything reaches Poe;
- the caller's access (:mod:`poe2openai.team`: issued keys, the pool of Poe keys, the next
  key when Poe fails one), the rate limit (per pool key in team mode), and one retry, only
  while nothing reached the client (a transport failure, a Poe 5xx, a retryable error event,
  a cut answer);
- the pipeline: Poe's bytes → deltas → thinking split → tool extraction → stop sequences →
  ``max_tokens``; a limit reached closes the Poe request at once;
- streams: headers and the dialect's opening frame after a few seconds of silence, whatever
  the wait (rate limit, uploads, Poe's headers, the first event), then keep-alives whenever
  the stream is idle; a failure once the stream has started ends as one error frame and the
  dialect's end marker; HTTP/1.0 clients get the stream without chunked encoding;
- deadlines: Poe must send an event every ``POE_IDLE_TIMEOUT_SECONDS`` and finish within
  ``REQUEST_TIMEOUT_SECONDS``;
- server shutdown and client disconnects (the Poe request is closed either way);
- prompt and completion tokens (counted only for requests Poe accepted, at bounded cost),
  time to first token and usage for the request log line; :func:`count_prompt` counts a
  request's prompt the same way without calling Poe (for token-counting endpoints).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from poe2openai.attachments.uploader import attachment_slots
from poe2openai.conversation import CallRequest
from poe2openai.engine.gateway import GATEWAY, Gateway, Target
from poe2openai.engine.http import json_response
from poe2openai.engine.request_info import RequestInfo, info
from poe2openai.errors import ApiError, upstream
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.deltas import Delta, End, Failure, ResetDelta, UsageDelta
from poe2openai.pipeline.driver import Pipeline, Stage
from poe2openai.pipeline.json_output import JsonOutput
from poe2openai.pipeline.limits import MaxTokens, StopSequences
from poe2openai.pipeline.reset_replay import ResetReplay
from poe2openai.pipeline.thinking import ThinkingSplitter
from poe2openai.pipeline.token_meter import CompletionMeter
from poe2openai.pipeline.tokens import ATTACHMENT_TOKENS, count_messages
from poe2openai.pipeline.usage import Counted, Usage, usage_of
from poe2openai.poe.bot_parameters import apply_suffix, as_flags, bot_parameters, split_suffix
from poe2openai.poe.query import QueryOptions, build_query, correction, encode, poe_message
from poe2openai.poe.source import PoeSource
from poe2openai.team.access import Access
from poe2openai.team.ledger import Entry, estimate
from poe2openai.tools.prompt import render_messages
from poe2openai.tools.xml_extract import XmlToolExtractor

log = logging.getLogger("poe2openai.engine")

SHUTTING_DOWN = ApiError(503, "The gateway is shutting down; retry shortly", type="api_error", code="shutting_down")
INTERNAL = ApiError(500, "Internal error in the gateway", type="api_error", code="internal_error")
RETRY_DELAY = 0.3
BIG_TEXT = 16_000  # characters; counting more than this (a few ms) moves off the event loop
HEADERS_AFTER = 5.0  # seconds without output before a stream commits to 200 and keeps alive
KEEPALIVE_EVERY = 15.0


class StreamEncoder(Protocol):
    """A dialect's stream rendering of one answer."""

    def start(self, prompt_tokens: int | None = None) -> bytes:
        """The opening frame(s); sent once, before anything else. ``prompt_tokens`` is the
        prompt's count for a front end with ``usage_at_start`` once Poe accepted the query;
        ``None`` when the stream opens earlier (a slow start) or the front end does not ask."""
        ...

    def encode(self, batch: list[Delta]) -> bytes:
        """Frames for deltas (never End or Failure); includes :meth:`start` if not yet sent."""
        ...

    def finish(self, end: End, usage: Usage | None) -> bytes:
        """The closing frames and the end marker (``usage`` when the client asked for it)."""
        ...

    def failure(self, error: ApiError) -> bytes:
        """One error frame and the end marker."""
        ...

    def keepalive(self) -> bytes:
        """Bytes a client ignores and a proxy counts as traffic."""
        ...


class Frontend(Protocol):
    """One API dialect, as the engine sees it."""

    dialect: str
    stream_headers: dict[str, str]
    usage_at_start: bool  # the opening frame carries the prompt's token count

    def stream_encoder(self, req: CallRequest) -> StreamEncoder:
        """A fresh encoder for one streamed answer."""
        ...

    def aggregate(self, req: CallRequest, answer: Answer, usage: Usage) -> Any:
        """The non-stream response body."""
        ...

    def error_response(self, error: ApiError) -> web.Response:
        """The dialect's error response."""
        ...


def _only_failure(batch: list[Delta]) -> Failure | None:
    """The failure of a batch that says nothing else (so nothing would be shown)."""
    last = batch[-1]
    if type(last) is Failure and all(type(d) in (ResetDelta, UsageDelta) for d in batch[:-1]):
        assert isinstance(last, Failure)
        return last
    return None


@dataclass(slots=True)
class RenderedQuery:
    """A request's Poe query, and what its prompt tokens are counted from."""

    body: dict[str, Any]
    texts: list[str]  # the prompt's texts, tool instructions or definitions included
    attachments: int  # how many files go with it

    def prompt_tokens(self, counted: int) -> int:
        """The prompt's tokens, given the count of :attr:`texts`."""
        return counted + ATTACHMENT_TOKENS * self.attachments


def query_options(gw: Gateway, req: CallRequest) -> tuple[Target, QueryOptions]:
    """The bot a request goes to and its query options (bot parameters validated: a 400 here
    comes before any work reaches Poe). The model name's reasoning suffix is applied to
    ``req.reasoning``."""
    name, suffix = req.model, None
    canonical = gw.canonical(name)
    if canonical is None:
        name, suffix = split_suffix(name)
        if suffix is not None:
            canonical = gw.canonical(name)
    target = gw.target(name, canonical)
    apply_suffix(req.reasoning, suffix)
    params = bot_parameters(req.reasoning, target.model.parameters if target.model is not None else None)
    opts = QueryOptions(system_as_user=target.system_as_user)
    if target.reasoning_flags:
        opts.flags = as_flags(params)
    else:
        opts.parameters = params
    return target, opts


def render_query(req: CallRequest, target: Target, opts: QueryOptions) -> RenderedQuery:
    """The query exactly as Poe gets it: system prompt, tool instructions (or native tool
    definitions), the history with earlier tool calls and results, reasoning options."""
    plan = req.tools
    native = plan.active and target.native_tools()
    has_history = any(m.role == "tool" or m.tool_calls for m in req.messages)
    rendered = None
    if plan.active or has_history:
        rendered = render_messages(req.messages, plan, opts.attachments, instruct=not native)
    body = build_query(req, opts, rendered)
    texts = [m["content"] for m in body["query"]]
    if native:
        body["tools"] = [t.as_openai() for t in plan.tools]
        texts.append(encode(body["tools"]).decode())
    return RenderedQuery(body, texts, sum(len(files) for files in opts.attachments.values()))


async def count_prompt(gw: Gateway, req: CallRequest) -> int:
    """The prompt tokens ``req`` would cost, counted on the query rendered exactly as a call
    renders it, without uploading anything or calling Poe (for token-counting endpoints).

    Each attachment counts :data:`ATTACHMENT_TOKENS`, as in a call's usage, so the two agree.
    A long prompt is counted in a worker thread; repeated long texts come from a cache.
    """
    target, opts = query_options(gw, req)
    opts.attachments = attachment_slots(req.messages)
    query = render_query(req, target, opts)
    if sum(map(len, query.texts)) > BIG_TEXT:
        counted = await asyncio.to_thread(count_messages, query.texts)
    else:
        counted = count_messages(query.texts)
    return query.prompt_tokens(counted)


class Upstream:
    """An open Poe answer: its response and the pipeline reading it, under deadlines."""

    def __init__(self, resp: aiohttp.ClientResponse, pipeline: Pipeline, idle: float, deadline: float) -> None:
        self.resp = resp
        self.pipeline = pipeline
        self.idle = idle
        self.deadline = deadline  # loop time
        self.timed_out: ApiError | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._seen = 0
        self._ended = False
        self._last_event = loop.time()
        self._watch = loop.call_at(min(self._last_event + idle, deadline), self._check)

    def _check(self) -> None:
        now = self._loop.time()
        events = self.pipeline.events
        if events != self._seen:
            self._seen = events
            self._last_event = now
        if now >= self.deadline:
            self.timed_out = upstream("The request passed the gateway's deadline", 504, "request_timeout")
        elif now >= self._last_event + self.idle:
            self.timed_out = upstream(f"Poe sent nothing for {self.idle:g} s", 504, "upstream_timeout")
        else:
            self._watch = self._loop.call_at(min(self._last_event + self.idle, self.deadline), self._check)
            return
        self.resp.close()  # the read in progress ends; the loop below reports the timeout

    async def next_batch(self) -> list[Delta] | None:
        """The next batch of deltas; ``None`` once the answer ended (its last batch ends with
        End or Failure). A plain method rather than an async generator: a generator left
        suspended after End is closed by the loop's finalizer, a wake-up and a task per request.
        """
        if self._ended:
            return None
        pipeline = self.pipeline
        content = self.resp.content
        try:
            while True:
                data = await content.readany()
                if not data or self.timed_out is not None:
                    break
                batch = pipeline.feed(data)
                if batch:
                    if pipeline.finished:
                        self._ended = True
                    return batch
        except (TimeoutError, aiohttp.ClientError) as exc:
            if self.timed_out is None:
                log.warning("Poe stream cut: %s", type(exc).__name__)
        self._ended = True
        batch = pipeline.fail(self.timed_out) if self.timed_out is not None else pipeline.close()
        return batch or None

    def close(self) -> None:
        """Stop reading and drop the connection (Poe stops working on it)."""
        self._watch.cancel()
        self.resp.close()


class _Stream(web.StreamResponse):
    """A streamed response whose status line and headers go out with its first bytes, in one
    write (as aiohttp does for a whole response), rather than in a write of their own."""

    _send_headers_immediately = False


class _StreamOut:
    """The client side of a stream: commit, writes, and keep-alives on a timer."""

    def __init__(self, request: web.Request, encoder: StreamEncoder, headers: dict[str, str]) -> None:
        self.request = request
        self.encoder = encoder
        self.response = _Stream(headers=headers)
        if request.version >= (1, 1):
            self.response.enable_chunked_encoding()
        # HTTP/1.0: no chunked encoding; aiohttp then ends the body by closing the connection
        self._loop = asyncio.get_running_loop()
        self.last_write = self._loop.time()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(HEADERS_AFTER, self._tick)
        self.started = False  # the opening frame went out
        self.gone = False  # the client went away

    @property
    def prepared(self) -> bool:
        """Whether the status line and headers went out."""
        return self.response.prepared

    def _tick(self) -> None:
        self._timer = None
        if self.gone:
            return
        now = self._loop.time()
        if self._task is None:
            if not self.response.prepared:
                self._task = self._spawn(self._commit())
            elif now - self.last_write >= KEEPALIVE_EVERY - 0.001:
                self._task = self._spawn(self._send(self.encoder.keepalive()))
        wait = max(0.05, self.last_write + KEEPALIVE_EVERY - now)
        self._timer = self._loop.call_later(wait, self._tick)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            self.gone = True

    async def _commit(self) -> None:
        await self.response.prepare(self.request)
        if not self.started:  # the answer may have begun meanwhile, with its own opening
            self.started = True
            await self._send(self.encoder.start())

    async def _send(self, data: bytes) -> None:
        await self.response.write(data)
        self.last_write = self._loop.time()

    async def _settle(self) -> None:
        """Let a keep-alive frame in progress finish before another write."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})

    async def write(self, data: bytes) -> None:
        """Send frames, committing to 200 first if needed."""
        await self._settle()
        if self.gone:
            raise ConnectionResetError("the client went away")
        if not self.response.prepared:
            await self.response.prepare(self.request)
            # From now on the timer watches for idle gaps. The commit timer does, if it fires
            # first (it then finds the stream prepared): one timer per stream, as a rule.
            timer = self._timer
            if timer is not None and timer.when() > self._loop.time() + KEEPALIVE_EVERY:
                timer.cancel()
                self._timer = self._loop.call_later(KEEPALIVE_EVERY, self._tick)
        await self.response.write(data)
        self.last_write = self._loop.time()

    def close(self) -> None:
        """No more keep-alives."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()


class Call:
    """One request in flight, from its validated form to its last byte."""

    def __init__(
        self,
        gw: Gateway,
        request: web.Request,
        req: CallRequest,
        frontend: Frontend,
        key: str,
        access: Access | None = None,
    ) -> None:
        self.gw = gw
        self.request = request
        self.facts = info(request)  # the request's log line and metrics facts
        self.req = req
        self.frontend = frontend
        self.key = key  # the Poe key of the current attempt
        self.access = access if access is not None else Access(None, own_key=key)
        self.started = time.perf_counter()
        self.wall_started = time.time()
        settings = gw.settings
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + settings.request_timeout_seconds
        self.idle = settings.poe_idle_timeout_seconds
        self.retries_left = 1
        self.stopping = False
        self.upstream: Upstream | None = None
        self.target: Target | None = None
        self.query = b""
        self._prompt_texts: list[str] = []
        self._attachments = 0
        self._prompt_tokens: int | None = None
        self._counting: asyncio.Future[int] | None = None
        self._counted: Counted | None = None
        self._body: dict[str, Any] = {}
        self._output: JsonOutput | None = None  # the structured-output stage of the current attempt
        self.reasks_left = 1  # a whole answer that is not the JSON asked for is asked again once

    # --- preparing the query ------------------------------------------------------------

    async def prepare(self) -> None:
        """Resolve the model, upload attachments and build the query (ApiError on bad input)."""
        gw = self.gw
        target, opts = query_options(gw, self.req)
        self.target = target
        # everything is validated; only now does any work reach Poe
        facts = self.facts
        facts.wait_begin()
        try:
            while True:
                try:
                    opts.attachments = await gw.uploader.prepare(self.req.messages, self.key)
                    break
                except ApiError as exc:  # a pool key Poe rejects at upload: the next key uploads
                    if self.stopping or not gw.team.failed(self.access, exc):
                        raise
                    self.key = self.access.poe_key(gw.team.pool, gw.team.clock())
        finally:
            facts.wait_end()
        query = render_query(self.req, target, opts)
        self._body = query.body  # kept: a re-ask adds turns to it
        self._prompt_texts = query.texts
        self._attachments = query.attachments
        self.query = encode(query.body)

    def stages(self) -> list[Stage]:
        """The pipeline stages after the Poe source."""
        req = self.req
        stages: list[Stage] = [ThinkingSplitter()]
        if req.tools.active:
            stages.append(XmlToolExtractor(req.tools))
        if req.output.structured:
            self._output = JsonOutput(req.output)
            stages.append(self._output)
        if req.stop:
            stages.append(StopSequences(req.stop))
        counted: Counted | None = None
        if req.max_tokens is not None:
            counted = MaxTokens(req.max_tokens)
            stages.append(counted)
        if req.stream:
            stages.append(ResetReplay())
        if counted is None and (not req.stream or req.stream_usage or self.access.client is not None):
            counted = CompletionMeter()  # an issued key's requests are accounted for
            stages.append(counted)
        self._counted = counted  # counts the answer as it passes, for usage
        return stages

    # --- token counting -----------------------------------------------------------------

    def _count_prompt_soon(self) -> None:
        """Poe accepted the query: count a large prompt in a thread while it answers."""
        wanted = not self.req.stream or self.req.stream_usage
        if wanted and self._counting is None and sum(map(len, self._prompt_texts)) > BIG_TEXT:
            self._counting = asyncio.ensure_future(asyncio.to_thread(count_messages, self._prompt_texts))

    async def prompt_tokens(self) -> int:
        """Tokens of what was sent to the bot (tool instructions included, each attachment
        :data:`ATTACHMENT_TOKENS`)."""
        if self._prompt_tokens is None:
            if self._counting is not None:
                counted = await self._counting
            else:
                counted = count_messages(self._prompt_texts)
            self._prompt_tokens = counted + ATTACHMENT_TOKENS * self._attachments
        return self._prompt_tokens

    def _forget_count(self) -> None:
        if self._counting is not None and not self._counting.done():
            self._counting.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _usage(self) -> Usage:
        counted = self._counted
        assert counted is not None
        usage = usage_of(counted, await self.prompt_tokens() if counted.reported is None else 0)
        self.facts.usage = usage
        return usage

    # --- talking to Poe -----------------------------------------------------------------

    def stop(self) -> None:
        """Server shutdown: drop the upstream answer; the client is told why."""
        self.stopping = True
        if self.upstream is not None:
            self.upstream.resp.close()

    async def _open(self) -> Upstream:
        if self.stopping:
            raise SHUTTING_DOWN
        assert self.target is not None
        loop = asyncio.get_running_loop()
        bot = self.target.bot
        facts = self.facts
        facts.wait_begin()
        try:
            async with asyncio.timeout_at(min(self.deadline, loop.time() + self.idle)):
                await self._turn(facts)
                resp = await self.gw.poe.query(bot, self.query, self.key)
        except TimeoutError:
            if loop.time() >= self.deadline:
                raise upstream("The request passed the gateway's deadline", 504, "request_timeout") from None
            raise upstream(f"Poe did not answer within {self.idle:g} s", 504, "upstream_timeout") from None
        finally:
            facts.wait_end()
        facts.bot = bot
        self._count_prompt_soon()
        self.upstream = Upstream(resp, Pipeline(PoeSource(bot), self.stages()), self.idle, self.deadline)
        return self.upstream

    async def _turn(self, facts: RequestInfo) -> None:
        """Wait for the rate limiter, counted in the metrics."""
        limiter = self.gw.limiter_for(self.access)
        since = time.perf_counter()
        if limiter.off:  # never waits: nobody could see it in the queue
            facts.queue_s = (facts.queue_s or 0.0) + time.perf_counter() - since
            return
        queued = self.gw.metrics.queued
        queued.inc()
        try:
            await limiter.acquire()
        finally:
            queued.dec()
            facts.queue_s = (facts.queue_s or 0.0) + time.perf_counter() - since

    def _may_retry(self, exc: ApiError) -> bool:
        """Spend the one retry this request has, if the failure allows it. A pool key's own
        failure (rejected, out of points, rate-limited) moves on to the next healthy key."""
        team = self.gw.team
        if not self.stopping and team.failed(self.access, exc):
            self.key = self.access.poe_key(team.pool, team.clock())
            log.info("trying the next Poe key after: %s", exc.message)
            return True
        if exc.retryable and self.retries_left > 0 and not self.stopping:
            self.retries_left -= 1
            assert self.target is not None
            log.info("retrying %s after: %s", self.target.bot, exc.message)
            return True
        return False

    async def _open_with_retry(self) -> Upstream:
        while True:
            try:
                return await self._open()
            except ApiError as exc:
                if not self._may_retry(exc):
                    raise
                await asyncio.sleep(RETRY_DELAY)

    def _first_output(self) -> None:
        self.facts.ttft_ms = (time.perf_counter() - self.started) * 1000

    # --- non-streaming ------------------------------------------------------------------

    async def respond(self) -> web.StreamResponse:
        """The whole answer as one response (or the dialect's error)."""
        try:
            await self.prepare()
            answer = await self._collect()
            usage = await self._usage()
            return json_response(self.frontend.aggregate(self.req, answer, usage))
        except ApiError as exc:
            self.facts.failed(exc.code, exc.status)
            return self.frontend.error_response(exc)

    async def _collect(self) -> Answer:
        limit = self.gw.settings.max_response_size
        while True:
            up = await self._open_with_retry()
            answer = Answer()
            first = True
            facts = self.facts
            try:
                while True:
                    facts.wait_begin()  # not the stream's hot path: a clock read per batch, no more
                    batch = await up.next_batch()
                    facts.wait_end()
                    if batch is None:
                        break
                    if first:
                        self._first_output()
                        first = False
                    answer.feed(batch)
                    if answer.size > limit:
                        raise upstream(
                            f"The answer is longer than the gateway's limit of {limit} characters for "
                            "answers that are not streamed; ask with stream: true",
                            502,
                            "answer_too_large",
                        )
            finally:
                facts.wait_end()
                up.close()
            if self.stopping:
                raise SHUTTING_DOWN
            if self._reask():
                continue
            if answer.error is not None:
                if self._may_retry(answer.error):
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                raise answer.error
            return answer

    def _reask(self) -> bool:
        """A whole answer that is not the JSON asked for: ask again once, quoting the problem.

        The bot sees its answer and the correction as the next turn; nothing reached the
        client yet. Bot parameters of the last user message are kept on the new one.
        """
        out = self._output
        if out is None or out.problem is None or self.reasks_left <= 0:
            return False
        self.reasks_left -= 1
        log.info("re-asking %s: %s", self.target.bot if self.target else "?", out.problem)
        query: list[dict[str, Any]] = self._body["query"]
        last_user = next((m for m in reversed(query) if m["role"] == "user"), None)
        fix = poe_message("user", correction(out.problem))
        if last_user is not None and "parameters" in last_user:
            fix["parameters"] = last_user["parameters"]
        query += [poe_message("bot", out.json_text or "(no JSON)"), fix]
        self._prompt_texts += [query[-2]["content"], query[-1]["content"]]
        self._forget_count()
        self._counting = None
        self._prompt_tokens = None
        self.query = encode(self._body)
        return True

    # --- streaming ----------------------------------------------------------------------

    async def stream(self) -> web.StreamResponse:
        """Relay the answer as the dialect's stream."""
        encoder = self.frontend.stream_encoder(self.req)
        out = _StreamOut(self.request, encoder, self.frontend.stream_headers)
        try:
            await self.prepare()
            await self._relay(out, encoder)
        except ApiError as exc:
            self.facts.failed(exc.code, exc.status)
            if not out.prepared:
                out.close()
                return self.frontend.error_response(exc)
            await self._end_with(out, encoder.failure(exc))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            log.info("client went away during %s", self.facts.request_id)
            return out.response
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error in a %s stream", self.frontend.dialect)
            self.facts.failed(INTERNAL.code, INTERNAL.status)
            if not out.prepared:
                out.close()
                return self.frontend.error_response(INTERNAL)
            await self._end_with(out, encoder.failure(INTERNAL))
        finally:
            out.close()
        return out.response

    async def _end_with(self, out: _StreamOut, frames: bytes) -> None:
        try:
            await out.write(frames)
            await out.response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass

    async def _relay(self, out: _StreamOut, encoder: StreamEncoder) -> None:
        while True:
            up = await self._open_with_retry()
            try:
                facts = self.facts
                facts.wait_begin()
                try:
                    first = await up.next_batch()
                finally:
                    facts.wait_end()
                failure = _only_failure(first) if first is not None else None
                if failure is not None:  # nothing but an error: the client has nothing yet
                    if self._may_retry(failure.error):
                        await asyncio.sleep(RETRY_DELAY)
                        continue
                    if not out.prepared:
                        raise failure.error
                self._first_output()
                head = await self._opening(out, encoder)
                batch = first
                while batch is not None:
                    if self.stopping:
                        raise SHUTTING_DOWN
                    last = batch[-1]
                    kind = type(last)
                    if kind is End:
                        assert isinstance(last, End)
                        usage = await self._stream_usage()
                        await out.write(head + encoder.encode(batch[:-1]) + encoder.finish(last, usage))
                        await out.response.write_eof()
                        return
                    if kind is Failure:
                        assert isinstance(last, Failure)
                        facts.failed(last.error.code, last.error.status)
                        await out.write(head + encoder.encode(batch[:-1]) + encoder.failure(last.error))
                        await out.response.write_eof()
                        return
                    data = head + encoder.encode(batch)
                    head = b""
                    if data:
                        await out.write(data)
                    batch = await up.next_batch()
                raise upstream("The answer ended unexpectedly")  # pipelines always end; kept as a promise
            finally:
                up.close()

    async def _opening(self, out: _StreamOut, encoder: StreamEncoder) -> bytes:
        """The opening frame, unless a slow start already sent it; with the prompt's count
        when the front end wants it there (Poe accepted the query: counting is due anyway)."""
        if out.started:
            return b""
        prompt = await self.prompt_tokens() if self.frontend.usage_at_start else None
        if out.started:
            return b""
        out.started = True
        return encoder.start(prompt)

    async def _stream_usage(self) -> Usage | None:
        return await self._usage() if self.req.stream_usage else None

    async def ledger_entry(self) -> Entry | None:
        """The request for the usage ledger: made with an issued key and sent to Poe."""
        access, target = self.access, self.target
        facts = info(self.request)
        if access.client is None or access.lease is None or target is None or facts.bot is None:
            return None
        counted = self._counted
        if counted is not None and counted.reported is not None:
            prompt, completion = counted.reported.prompt_tokens, counted.reported.completion_tokens
        else:
            prompt = await self.prompt_tokens()
            completion = counted.completion_tokens if counted is not None else 0
        model = self.gw.catalog.lookup(target.bot)
        return Entry(
            ts=self.wall_started,
            done=time.time(),
            client_key=access.client.id,
            pool_key=access.lease.id,
            model=self.req.model[:256],
            bot=target.bot.lower(),
            status=facts.error_status or 200,
            prompt_tokens=prompt,
            completion_tokens=completion,
            points=estimate(model.pricing if model else None, prompt, completion, self.gw.settings.points_per_usd),
        )

    def finish(self) -> None:
        """The request is over."""
        self._forget_count()
        if self.upstream is not None:
            self.upstream.close()


async def serve(request: web.Request, req: CallRequest, frontend: Frontend, key: str) -> web.StreamResponse:
    """Answer one validated request with ``frontend``'s wire format."""
    gw = request.app[GATEWAY]
    facts = info(request)
    facts.model = req.model
    facts.dialect = frontend.dialect
    facts.stream = req.stream
    team = gw.team
    try:
        access = team.authorize(key, req.model)  # the caller's credential → who, and which Poe key
        await team.admit(access)  # its requests-per-minute cap
        poe_key = access.poe_key(team.pool, team.clock())
    except ApiError as exc:
        return frontend.error_response(exc)
    call = Call(gw, request, req, frontend, poe_key, access)
    gw.calls.add(call)
    try:
        if req.stream:
            gw.metrics.stream_opened()
            try:
                return await call.stream()
            finally:
                gw.metrics.stream_closed()
        return await call.respond()
    finally:
        gw.calls.discard(call)
        if access.client is not None:
            team.account(call.ledger_entry())
        call.finish()
