"""``python -m bench.soak`` (``make soak``): an adversarial load run, kept out of ``make test``.

The gateway runs as a subprocess (``python -m poe2openai``, pinned to core 1) against the Poe
simulator (:class:`poe2openai.simulator.Simulator`, in this process on its own thread and
event loop, core 0). Everything goes to loopback, bounded in count (``--requests``) and time
(``--seconds``). The mix: plain, tool and thinking chats, streamed and not; streams the
client cuts mid-answer and requests it abandons before the headers; Poe failing (HTTP 500,
a cut answer, an error event); malformed bodies (bad JSON, huge model names, a gzip bomb,
invalid gzip, an unknown Content-Encoding, wrong field types); bad and missing keys; and a
few slow or half-open connections on raw sockets (silent, trickling headers, a stalled
body, a half-closed request).

While it runs, a thread samples the gateway's RSS and open file descriptors (``/proc``) and
the simulator's open streams. At the end it checks, and exits 1 with a summary line if any
check fails:

- RSS after the run is at most ``--rss-growth-mb`` (default 30 MB) above RSS after warm-up
  (the warm-up runs the same mix, so allocator high-water marks are already reached). Why
  30 MB: the gateway settles near 95-100 MB (Python and the o200k vocabulary) and then grew
  4-6 MB in runs of 800 to 20,000 requests, 0.8 MB of it over the second half of 20,000
  (allocator and executor threads, not a trend); 30 MB is five times that noise, and a leak
  of 1.5 KiB per request (a small part of one request's state; an open stream holds ~44 KiB)
  passes it in a default run;
- open file descriptors are back to the post-warm-up count, and no socket to Poe remains
  once the gateway's idle keep-alive pool (15 s) has expired;
- the simulator has no stream open and never had more than ``--concurrency`` streams open;
- every response is well formed: a stream is ``data:`` frames of JSON ending ``[DONE]`` (an
  error frame, if any, is the last before ``[DONE]``); any other answer is JSON with the
  status the scenario expects, and 5xx only where the scenario provokes one (Poe failing);
- raw-socket connections are answered or closed by the gateway within its timeouts;
- the gateway wrote no ERROR/CRITICAL line and no traceback to its log (stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from poe2openai.server.serve import start_site
from poe2openai.simulator import DONE, Cut, HttpError, Simulator, Sleep, Step, error, text

from .procs import Proc, free_port, pin, python, raise_fd_limit

KEEPALIVE_S = 3.0  # the gateway's KEEPALIVE_TIMEOUT_SECONDS and REQUEST_BODY_TIMEOUT_SECONDS here
POOL_IDLE_S = 15.0  # aiohttp's client keep-alive: how long the gateway keeps an idle socket to Poe
SLOW_GRACE_S = 6.0  # how long past its timeout a slow connection may stay open
REQUEST_LIMIT_S = 30.0  # the longest any scenario's request may take: a hang is a failure
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


class Malformed(Exception):
    """A response that breaks the wire format or the scenario's expectation."""


# --- the simulated Poe ---------------------------------------------------------------------


def _long_answer(body: dict[str, Any]) -> list[Step]:
    steps: list[Step] = []
    for i in range(40):
        steps += [text(f"word{i} "), Sleep(0.01)]
    return [*steps, DONE]


def _behaviours() -> dict[str, Callable[[dict[str, Any]], list[Step]]]:
    return {
        "soak-long": _long_answer,  # ~0.4 s of text: long enough for the client to cut it
        "soak-late": lambda body: [Sleep(0.3), text("late"), DONE],  # abandoned before the headers
        "soak-fail": lambda body: [HttpError(500, {"error": {"message": "simulated outage"}})],
        "soak-cut": lambda body: [text("partial "), text("answer "), Cut()],
        "soak-error": lambda body: [text("some "), error("simulated failure mid-answer")],
    }


class SimThread:
    """The simulator on its own thread and event loop, so the load client cannot starve it."""

    def __init__(self) -> None:
        self.sim = Simulator()
        self.sim.behaviours.update(_behaviours())
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.runner, self.port = self._call(start_site(self.sim.app, "127.0.0.1", 0, grace=1.0))
        self.url = f"http://127.0.0.1:{self.port}"
        self.sim.base_url = self.url

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def forget_requests(self) -> None:
        """Drop the recorded bodies (a soak sends tens of thousands)."""
        self.loop.call_soon_threadsafe(self.sim.requests.clear)

    def stop(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# --- what the gateway holds ---------------------------------------------------------------


def _socket_ports() -> dict[str, tuple[int, int]]:
    """``socket:[inode]`` → (local port, remote port) for every TCP socket on this machine."""
    out: dict[str, tuple[int, int]] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            out[f"socket:[{f[9]}]"] = (int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16))
    return out


def fd_kinds(gateway: Proc, poe_port: int) -> Counter[str]:
    """The gateway's descriptors: ``poe`` (sockets to the simulator), ``client``, ``other``."""
    ports = _socket_ports()
    kinds: Counter[str] = Counter()
    for target in gateway.fd_targets():
        local, remote = ports.get(target, (0, 0))
        if remote == poe_port:
            kinds["poe"] += 1
        elif local == gateway.port and remote != 0:
            kinds["client"] += 1
        else:
            kinds["other"] += 1
    return kinds


@dataclass
class Samples:
    """The sampler's record: (seconds since start, RSS bytes, fds, simulator open streams)."""

    rows: list[tuple[float, int, int, int]] = field(default_factory=list)

    def peak(self, column: int) -> int:
        """The largest value of an integer column (1: RSS, 2: fds, 3: open streams)."""
        return int(max((r[column] for r in self.rows), default=0))

    def at(self, seconds: float) -> tuple[float, int, int, int]:
        """The first sample taken at or after ``seconds``."""
        return next((r for r in self.rows if r[0] >= seconds), self.rows[-1])


class Sampler:
    """Samples the gateway and the simulator every 0.25 s on a thread."""

    def __init__(self, gateway: Proc, sim: Simulator) -> None:
        self.gateway = gateway
        self.sim = sim
        self.samples = Samples()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                row = (
                    time.monotonic() - self.started,
                    self.gateway.rss_bytes(),
                    len(self.gateway.fd_targets()),
                    self.sim.open_streams,
                )
            except OSError:
                return  # the gateway exited: the checks report it
            self.samples.rows.append(row)
            self._stop.wait(0.25)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- checking answers ------------------------------------------------------------------------


def check_error_body(body: Any) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message": str, "type": str, ...}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str) or not isinstance(err.get("type"), str):
        raise Malformed(f"not an OpenAI error body: {str(body)[:200]}")
    if len(err["message"]) > 2000:
        raise Malformed(f"error message of {len(err['message'])} characters")
    return err


def parse_stream(raw: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The chunks of an SSE answer and its error frame, if any; :class:`Malformed` otherwise."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"stream is not UTF-8: {exc}") from None
    if not body.endswith("\n\n"):
        raise Malformed(f"stream does not end with a blank line: {body[-120:]!r}")
    datas = []
    for frame in body[:-2].split("\n\n"):
        lines = [line for line in frame.split("\n") if not line.startswith(":")]
        if not lines:
            continue  # a keep-alive comment
        if len(lines) != 1 or not lines[0].startswith("data: "):
            raise Malformed(f"not one data line: {frame[:120]!r}")
        datas.append(lines[0][6:])
    if not datas or datas[-1] != "[DONE]":
        raise Malformed(f"stream does not end with [DONE]: {body[-120:]!r}")
    if "[DONE]" in datas[:-1]:
        raise Malformed("[DONE] before the end of the stream")
    chunks = []
    for d in datas[:-1]:
        try:
            chunks.append(orjson.loads(d))
        except orjson.JSONDecodeError:
            raise Malformed(f"frame is not JSON: {d[:120]!r}") from None
    failure = None
    for i, c in enumerate(chunks):
        if isinstance(c, dict) and "error" in c:
            if i != len(chunks) - 1:
                raise Malformed("frames after the error frame")
            failure = check_error_body(c)
        elif not isinstance(c, dict) or c.get("object") != "chat.completion.chunk":
            raise Malformed(f"not a chat.completion.chunk: {str(c)[:120]}")
    return chunks, failure


def stream_text(chunks: list[dict[str, Any]], key: str) -> str:
    """The concatenated ``delta[key]`` of a stream's chunks."""
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            value = (choice.get("delta") or {}).get(key)
            if isinstance(value, str):
                out.append(value)
    return "".join(out)


def finish_reason(chunks: list[dict[str, Any]]) -> str | None:
    """The last ``finish_reason`` a stream gave."""
    found = None
    for c in chunks:
        for choice in c.get("choices") or []:
            found = choice.get("finish_reason") or found
    return found


# --- the scenarios ---------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every scenario needs."""

    url: str
    session: aiohttp.ClientSession
    rng: random.Random
    bomb: bytes


@dataclass
class Outcome:
    """A scenario's result: the status seen, or ``None`` when the client hung up on purpose."""

    status: int | None
    note: str = ""


Scenario = Callable[[Ctx], Awaitable[Outcome]]
HEADERS = {"Authorization": "Bearer soak-key", "Content-Type": "application/json"}


def chat_body(model: str, stream: bool, words: str = "hello soak", **extra: Any) -> dict[str, Any]:
    """A Chat Completions body."""
    return {"model": model, "messages": [{"role": "user", "content": words}], "stream": stream, **extra}


async def post(ctx: Ctx, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """POST to the chat endpoint; the status, content type and whole body."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with ctx.session.post(ctx.url, data=data, headers=headers or HEADERS) as resp:
        return resp.status, resp.content_type, await resp.read()


def json_of(status: int, ctype: str, raw: bytes, expected: set[int]) -> Any:
    """The JSON body of a response whose status must be in ``expected``."""
    if status not in expected:
        raise Malformed(f"status {status}, expected {sorted(expected)}: {raw[:200]!r}")
    if ctype != "application/json":
        raise Malformed(f"status {status} with content type {ctype!r}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Malformed(f"status {status} body is not JSON: {raw[:200]!r}") from None
    if status >= 400:
        check_error_body(data)
    return data


def expect_error(expected: set[int]) -> Callable[[int, str, bytes], Outcome]:
    def check(status: int, ctype: str, raw: bytes) -> Outcome:
        json_of(status, ctype, raw, expected)
        return Outcome(status)

    return check


async def completion(ctx: Ctx, model: str, want: str, **extra: Any) -> Outcome:
    """A non-streamed chat that must succeed with ``want`` (content, tool_calls, reasoning)."""
    status, ctype, raw = await post(ctx, chat_body(model, False, **extra))
    data = json_of(status, ctype, raw, {200})
    if not isinstance(data, dict) or data.get("object") != "chat.completion":
        raise Malformed(f"not a chat.completion: {raw[:200]!r}")
    message = data["choices"][0]["message"]
    if want == "tool_calls":
        calls = message.get("tool_calls") or []
        if not calls or calls[0]["function"]["name"] != "get_weather":
            raise Malformed(f"no tool call: {raw[:300]!r}")
        orjson.loads(calls[0]["function"]["arguments"])
    elif not message.get(want):
        raise Malformed(f"no {want}: {raw[:300]!r}")
    return Outcome(status)


async def streamed(ctx: Ctx, model: str, want: str, **extra: Any) -> Outcome:
    """A streamed chat that must succeed with ``want`` in its deltas."""
    status, ctype, raw = await post(ctx, chat_body(model, True, **extra))
    if status != 200:
        raise Malformed(f"stream answered {status}: {raw[:200]!r}")
    if ctype != "text/event-stream":
        raise Malformed(f"stream with content type {ctype!r}")
    chunks, failure = parse_stream(raw)
    if failure is not None:
        raise Malformed(f"stream failed: {failure}")
    if want == "tool_calls":
        if finish_reason(chunks) != "tool_calls":
            raise Malformed(f"finish_reason {finish_reason(chunks)!r}, expected tool_calls")
    elif not stream_text(chunks, want):
        raise Malformed(f"no {want} in the stream")
    elif finish_reason(chunks) != "stop":
        raise Malformed(f"finish_reason {finish_reason(chunks)!r}")
    if extra.get("stream_options") and not any(c.get("usage") for c in chunks):
        raise Malformed("include_usage set, no usage chunk")
    return Outcome(status)


async def failing_upstream(ctx: Ctx, model: str, stream: bool, expected: set[int], frame_ok: bool) -> Outcome:
    """Poe fails: an error response, or (a stream that started) an error frame and ``[DONE]``."""
    status, ctype, raw = await post(ctx, chat_body(model, stream))
    if status == 200 and stream and frame_ok:
        _chunks, failure = parse_stream(raw)
        if failure is None:
            raise Malformed("a failing answer streamed without an error frame")
        return Outcome(200, "error frame")
    json_of(status, ctype, raw, expected)
    return Outcome(status)


async def cut_mid_stream(ctx: Ctx) -> Outcome:
    """The client reads the first content chunk of a long answer, then drops the connection."""
    data = orjson.dumps(chat_body("soak-long", True))
    async with ctx.session.post(ctx.url, data=data, headers=HEADERS) as resp:
        if resp.status != 200:
            raise Malformed(f"stream answered {resp.status}")
        seen = b""
        async for chunk in resp.content.iter_any():
            seen += chunk
            if b'"content"' in seen and ctx.rng.random() < 0.5:
                break
            if len(seen) > 2000:
                break
        resp.close()
    return Outcome(None, "cut by the client")


async def abandon_early(ctx: Ctx) -> Outcome:
    """The client gives up before the answer's headers (Poe answers after 0.3 s)."""
    stream = ctx.rng.random() < 0.5
    try:
        async with asyncio.timeout(0.05 + ctx.rng.random() * 0.2):
            await post(ctx, chat_body("soak-late", stream))
    except TimeoutError:
        return Outcome(None, "abandoned")
    raise Malformed("soak-late answered before the client gave up")


async def raw_body(ctx: Ctx, body: bytes, headers: dict[str, str], expected: set[int]) -> Outcome:
    status, ctype, raw = await post(ctx, body, {**HEADERS, **headers})
    return expect_error(expected)(status, ctype, raw)


async def gzipped_chat(ctx: Ctx) -> Outcome:
    """A valid gzip body: answered normally."""
    body = gzip.compress(orjson.dumps(chat_body("gpt-4o-mini", False)))
    status, ctype, raw = await post(ctx, body, {**HEADERS, "Content-Encoding": "gzip"})
    json_of(status, ctype, raw, {200})
    return Outcome(status)


async def big_message(ctx: Ctx) -> Outcome:
    """A 200 KB message, streamed back by the echo bot."""
    return await streamed(ctx, "gpt-4o-mini", "content", words="lorem ipsum " * 17000)


def scenarios(bomb: bytes) -> dict[str, tuple[int, Scenario]]:
    """Name → (weight, scenario)."""
    usage = {"stream_options": {"include_usage": True}}
    return {
        "chat": (12, lambda c: completion(c, "gpt-4o-mini", "content")),
        "stream": (12, lambda c: streamed(c, "gpt-4o-mini", "content")),
        "stream+usage": (4, lambda c: streamed(c, "gpt-4o-mini", "content", **usage)),
        "tools": (5, lambda c: completion(c, "gpt-4o-mini", "tool_calls", tools=TOOLS)),
        "tools stream": (7, lambda c: streamed(c, "gpt-4o-mini", "tool_calls", tools=TOOLS)),
        "thinking": (4, lambda c: completion(c, "deepseek-r1", "reasoning_content")),
        "thinking stream": (7, lambda c: streamed(c, "deepseek-r1", "reasoning_content")),
        "client cut mid-stream": (8, cut_mid_stream),
        "client gave up early": (3, abandon_early),
        "poe 500": (2, lambda c: failing_upstream(c, "soak-fail", c.rng.random() < 0.5, {502}, False)),
        "poe cut": (2, lambda c: failing_upstream(c, "soak-cut", c.rng.random() < 0.5, {502}, True)),
        "poe error event": (2, lambda c: failing_upstream(c, "soak-error", c.rng.random() < 0.5, {502}, True)),
        "bad json": (3, lambda c: raw_body(c, b'{"model": "gpt-4o-mini", "messages": [', {}, {400})),
        "empty body": (1, lambda c: raw_body(c, b"", {}, {400})),
        "not an object": (1, lambda c: raw_body(c, b"[1, 2, 3]", {}, {400})),
        "wrong field type": (
            2,
            lambda c: raw_body(c, orjson.dumps({"model": "gpt-4o-mini", "messages": "hi"}), {}, {400}),
        ),
        "huge model name": (2, lambda c: raw_body(c, orjson.dumps(chat_body("m" * 300_000, True)), {}, {400})),
        "unknown model": (1, lambda c: raw_body(c, orjson.dumps(chat_body("no-such-bot", False)), {}, {404})),
        "gzip bomb": (2, lambda c: raw_body(c, c.bomb, {"Content-Encoding": "gzip"}, {413})),
        "invalid gzip": (2, lambda c: raw_body(c, b"this is not gzip", {"Content-Encoding": "gzip"}, {400})),
        "bad content-encoding": (2, lambda c: raw_body(c, b"{}", {"Content-Encoding": "x-rot13"}, {415})),
        "gzip chat": (1, gzipped_chat),
        "big message": (1, big_message),
        "bad key": (
            3,
            lambda c: raw_body(
                c,
                orjson.dumps(chat_body("gpt-4o-mini", c.rng.random() < 0.5)),
                {"Authorization": "Bearer bad-key"},
                {401},
            ),
        ),
        "no key": (
            1,
            lambda c: raw_body(c, orjson.dumps(chat_body("gpt-4o-mini", True)), {"Authorization": ""}, {401}),
        ),
    }


# --- slow and half-open connections on raw sockets ------------------------------------------


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the gateway sends until it closes; :class:`Malformed` if it does not in time."""
    got = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        raise Malformed(f"the gateway kept the connection open for {seconds:g} s (got {got[:80]!r})") from None
    except ConnectionResetError:
        pass
    return got


async def slow_connection(port: int, kind: str) -> Outcome:
    """One slow client: ``silent``, ``trickle`` (headers a byte at a time), ``stalled body``,
    ``half-closed`` (the request sent, then the write side shut)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    limit = KEEPALIVE_S + SLOW_GRACE_S
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer soak-key\r\n"
    try:
        if kind == "silent":
            got = await _closed_within(reader, limit)
            if got:
                raise Malformed(f"an answer to a silent connection: {got[:80]!r}")
            return Outcome(None, "closed")
        if kind == "trickle":

            async def trickle() -> None:
                for byte in head.encode():
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.25)

            feeder = asyncio.ensure_future(trickle())
            try:
                got = await _closed_within(reader, limit)
            finally:
                feeder.cancel()
            return Outcome(_status_of(got) if got else None, "closed")
        body = orjson.dumps(chat_body("gpt-4o-mini", True))
        if kind == "stalled body":
            writer.write(f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            writer.write(body[:10])
            got = await _closed_within(reader, limit)
            if _status_of(got) != 408:
                raise Malformed(f"a stalled body answered {got[:80]!r}, expected 408")
            return Outcome(408)
        writer.write(f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.write_eof()
        got = await _closed_within(reader, limit)
        if got:  # aiohttp may treat the half-close as a disconnect: then nothing comes back
            if _status_of(got) != 200 or b"data: [DONE]" not in got:
                raise Malformed(f"a half-closed request answered {got[:120]!r}")
            return Outcome(200)
        return Outcome(None, "closed")
    finally:
        writer.close()


def _status_of(raw: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw)
    return int(m.group(1)) if m else None


SLOW_KINDS = ("silent", "trickle", "stalled body", "half-closed")


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes per scenario."""

    count: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problem_count: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0

    def add(self, name: str, outcome: Outcome | None, problem: str | None) -> None:
        self.count[name] += 1
        if problem is not None:
            self.problem_count[name] += 1
            if len(self.problems[name]) < 3:
                self.problems[name].append(problem[:300])
            return
        assert outcome is not None
        self.statuses[name][str(outcome.status) if outcome.status is not None else outcome.note] += 1


async def _run_one(name: str, scenario: Awaitable[Outcome], tally: Tally) -> None:
    try:
        outcome = await scenario
    except Malformed as exc:
        tally.add(name, None, str(exc))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        tally.add(name, None, f"{type(exc).__name__}: {exc}")
    else:
        tally.add(name, outcome, None)


async def load(
    gateway_url: str,
    port: int,
    requests: int,
    concurrency: int,
    deadline: float,
    seed: int,
    bomb: bytes,
    slow: int,
    tally: Tally,
) -> float:
    """``requests`` scenarios drawn from the mix, ``concurrency`` at once, plus ``slow`` raw
    connections spread over the run; stops at ``deadline`` (monotonic). Returns the wall time."""
    rng = random.Random(seed)
    mix = scenarios(bomb)
    names = list(mix)
    weights = [mix[n][0] for n in names]
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_LIMIT_S)
    ) as session:
        ctx = Ctx(f"{gateway_url}/v1/chat/completions", session, rng, bomb)
        issued = 0
        slow_every = min(requests // slow, 100) if slow else 0  # early enough to run in a short run
        background: set[asyncio.Task[None]] = set()

        async def worker() -> None:
            nonlocal issued
            while issued < requests:
                issued += 1
                if slow_every and issued % slow_every == 0 and issued // slow_every <= slow:
                    kind = SLOW_KINDS[(issued // slow_every) % len(SLOW_KINDS)]
                    task = asyncio.ensure_future(_run_one(f"slow: {kind}", slow_connection(port, kind), tally))
                    background.add(task)
                    task.add_done_callback(background.discard)
                name = rng.choices(names, weights)[0]
                await _run_one(name, mix[name][1](ctx), tally)

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        _done, pending = await asyncio.wait(workers, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        tally.unfinished += len(pending)
        if background:
            await asyncio.wait(background, timeout=KEEPALIVE_S + SLOW_GRACE_S + 2)
    return time.monotonic() - started


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.25)
    return check()


def log_findings(log: Path) -> tuple[list[str], list[str]]:
    """ERROR/CRITICAL lines and tracebacks; WARNING lines (both sampled from the gateway's log)."""
    bad, warnings = [], []
    for line in log.read_text(errors="replace").splitlines():
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
            bad.append(line)
        elif " WARNING " in line:
            warnings.append(line)
    return bad, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests in the mix (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once (default 32)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=900,
        help="hard deadline for the load (default 900); start-up and the final checks add at most about 40 s",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s run: 600 requests, at most 15 s of load")
    parser.add_argument("--rss-growth-mb", type=float, default=30.0, help="allowed RSS growth after warm-up (MB)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the request mix")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.seconds = min(args.requests, 600), min(args.seconds, 15)
    raise_fd_limit()
    pin(0)
    run_started = time.monotonic()
    hard_deadline = run_started + args.seconds
    bomb = gzip.compress(b"\0" * (16 << 20), 9)  # 16 MiB of zeros in ~16 KB: a ratio of 1000
    work = Path(tempfile.mkdtemp(prefix="poe2openai-soak-"))
    os.environ["BENCH_LOG_DIR"] = str(work)  # where Proc writes the gateway's stdout and stderr
    sim = SimThread()
    port = free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "POE_BASE_URL": sim.url,
        "POE_FILE_UPLOAD_URL": f"{sim.url}/file_upload",
        "RATE_LIMIT_MS": "0",
        "CONFIG_DIR": str(work),
        "LOG_LEVEL": "info",
        "ADMIN_PASSWORD": "soak-not-the-default",
        "KEEPALIVE_TIMEOUT_SECONDS": str(KEEPALIVE_S),
        "REQUEST_BODY_TIMEOUT_SECONDS": str(KEEPALIVE_S),
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    gateway = Proc("gateway", [python(), "-m", "poe2openai"], port, 1, env, ready_path="/healthz")
    log = work / "bench-gateway.log"
    failures: list[str] = []
    tally = Tally()
    warm_tally = Tally()
    figures: dict[str, Any] = {}
    try:
        warm = max(200, args.requests // 10)
        warm_deadline = min(hard_deadline, time.monotonic() + args.seconds / 4)
        asyncio.run(load(gateway.url, port, warm, args.concurrency, warm_deadline, args.seed + 1, bomb, 0, warm_tally))
        sim.forget_requests()
        # client sockets close at once; sockets to Poe idle in the pool for up to 15 s
        _wait_for(lambda: fd_kinds(gateway, sim.port)["client"] == 0, 5)
        base_fds = fd_kinds(gateway, sim.port)
        base_rss = gateway.rss_bytes()
        base_cpu = gateway.cpu_seconds()
        slow = min(40, max(4, args.requests // 500))
        with Sampler(gateway, sim.sim) as sampler:
            wall = asyncio.run(
                load(gateway.url, port, args.requests, args.concurrency, hard_deadline, args.seed, bomb, slow, tally)
            )
            sim.forget_requests()
            _wait_for(lambda: sim.sim.open_streams == 0, 10)
            closed = _wait_for(
                lambda: (
                    fd_kinds(gateway, sim.port)["poe"] == 0
                    and fd_kinds(gateway, sim.port)["other"] <= base_fds["other"]
                    and fd_kinds(gateway, sim.port)["client"] == 0
                ),
                POOL_IDLE_S + 10,
            )
        end_fds = fd_kinds(gateway, sim.port)
        end_rss = gateway.rss_bytes()
        cpu = gateway.cpu_seconds() - base_cpu
        samples = sampler.samples
        slow_done = sum(n for name, n in tally.count.items() if name.startswith("slow: "))
        done = sum(tally.count.values()) - slow_done
        figures = {
            "requests": done,
            "slow": slow_done,
            "cpu_ms_per_request": cpu / done * 1000 if done else 0.0,
            "wall_s": wall,
            "rss_mb": (base_rss / 2**20, samples.peak(1) / 2**20, end_rss / 2**20),
            "rss_mid_mb": samples.at(wall / 2)[1] / 2**20,
            "fds": (sum(base_fds.values()), samples.peak(2), sum(end_fds.values())),
            "sim_streams": (samples.peak(3), sim.sim.open_streams, sim.sim.cancelled_streams),
        }
        growth = (end_rss - base_rss) / 2**20
        if gateway.popen.poll() is not None:
            failures.append(f"the gateway exited with {gateway.popen.returncode}")
        if growth > args.rss_growth_mb:
            failures.append(f"RSS grew {growth:.1f} MB after warm-up (bound {args.rss_growth_mb:g} MB)")
        if not closed:
            failures.append(f"file descriptors not back to baseline: {dict(base_fds)} then {dict(end_fds)}")
        if sim.sim.open_streams:
            failures.append(f"{sim.sim.open_streams} Poe streams still open at the simulator")
        if samples.peak(3) > args.concurrency:
            failures.append(f"{samples.peak(3)} Poe streams open at once for {args.concurrency} clients")
    except OSError as exc:  # its /proc entry vanished: the gateway died
        failures.append(f"the gateway exited (status {gateway.popen.poll()}): {exc}")
    finally:
        gateway.stop()
        sim.stop()
    for t, label in ((warm_tally, "warm-up"), (tally, "run")):
        for name, n in t.problem_count.items():
            failures.append(f"{label}: {n} bad answers to '{name}': {t.problems[name][0]}")
    bad, warnings = log_findings(log)
    if bad:
        failures.append(f"{len(bad)} ERROR lines or tracebacks in the gateway's log, first: {bad[0][:200]}")
    print(report(args, tally, figures, warnings))
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        print(f"soak FAILED: {len(failures)} check(s); the gateway's log is in {log}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - run_started
    print(
        f"soak PASSED: {figures['requests']} requests in {figures['wall_s']:.1f} s ({took:.0f} s in all), "
        f"RSS {figures['rss_mb'][0]:.1f} → {figures['rss_mb'][2]:.1f} MB, fds back to baseline, "
        "no Poe stream left open, every answer well formed, no error in the log"
    )
    return 0


def report(args: argparse.Namespace, tally: Tally, figures: dict[str, Any], warnings: list[str]) -> str:
    """The human summary: the mix and the figures."""
    lines = [f"{'scenario':<24} {'sent':>6}  outcomes"]
    for name in sorted(tally.count, key=lambda n: -tally.count[n]):
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses[name].items()))
        bad = f", BAD: {tally.problem_count[name]}" if tally.problem_count[name] else ""
        lines.append(f"{name:<24} {tally.count[name]:>6}  {outcomes}{bad}")
    if figures:
        rss, fds, sim = figures["rss_mb"], figures["fds"], figures["sim_streams"]
        rate = figures["requests"] / figures["wall_s"] if figures["wall_s"] else 0
        lines += [
            "",
            f"requests: {figures['requests']} of {args.requests} and {figures['slow']} slow connections "
            f"in {figures['wall_s']:.1f} s "
            f"({rate:.0f}/s) at concurrency {args.concurrency}"
            + (f"; {tally.unfinished} in flight cut at the --seconds deadline" if tally.unfinished else ""),
            f"gateway RSS MB: after warm-up {rss[0]:.1f}, peak {rss[1]:.1f}, end {rss[2]:.1f} "
            f"(growth {rss[2] - rss[0]:+.1f}, bound {args.rss_growth_mb:g}; second half of the run "
            f"{rss[2] - figures['rss_mid_mb']:+.1f})",
            f"gateway CPU: {figures['cpu_ms_per_request']:.2f} ms per request",
            f"gateway fds: after warm-up {fds[0]}, peak {fds[1]}, end {fds[2]}",
            f"simulator streams: peak open {sim[0]}, open at the end {sim[1]}, cancelled by the gateway {sim[2]}",
        ]
    lines.append(f"gateway log warnings: {len(warnings)}" + (f", first: {warnings[0][:160]}" if warnings else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
