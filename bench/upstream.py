"""The benchmark's upstream: a fast fake Poe (``/bot/{name}``) and an OpenAI-format twin
(``/v1/chat/completions``) sending the same answer.

The scenario is encoded in the model name, ``<kind>.n<events>.s<bytes>.d<delay ms>``, e.g.
``plain.n200.s100.d0``, optionally ending in ``.p<ms>``: a pause after the first event, so the
first token travels while the upstream is idle (a real bot's first token comes well before the
rest of its answer; without it the upstream's burst competes for its core with whatever
reads the first token). Kinds: ``plain``; ``thinking`` (a quarter of the events are a
``*Thinking...*`` block); ``tools`` (the answer ends in an XML tool call). Every event's text
differs (LiteLLM aborts streams that repeat), the first carries ``tok0`` (the first-token
marker) and the stream ends with ``done``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time

import orjson
from aiohttp import web

_NAME = re.compile(r"(plain|thinking|tools)\.n(\d+)\.s(\d+)\.d(\d+)(?:\.p(\d+))?(\.b)?")
TOOL_CALL = '\n\n<tool_call>\n<name>get_weather</name>\n<arguments>{"city": "Paris"}</arguments>\n</tool_call>'


def pieces(kind: str, n: int, size: int) -> list[str]:
    """The texts of the answer's events."""
    out = []
    for i in range(n):
        word = f"tok{i} "
        out.append((word * (size // len(word) + 1))[:size])
    if kind == "thinking":  # the first quarter is a thinking block of quote lines
        k = max(2, n // 4)
        out[0] = "*Thinking...*\n\n> " + out[0]
        for i in range(1, k - 1):
            if i % 8 == 0:
                out[i] += "\n> "
        out[k - 1] += "\n\n"
    if kind == "tools":
        out[-1] = out[-1] + TOOL_CALL
    return out


def scenario(name: str) -> tuple[str, int, int, float, float, bool]:
    """Kind, events, bytes per event, the delay between events, the pause after the first (s),
    and whether the answer goes out in one write (``.b``: the upstream's cost per event is then
    next to nothing, so what is measured is the process under test)."""
    m = _NAME.fullmatch(name.lower().removeprefix("openai/"))
    if m is None:
        raise web.HTTPNotFound(text=f"unknown scenario {name}")
    pause = int(m.group(5)) / 1000 if m.group(5) else 0.0
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)) / 1000, pause, bool(m.group(6))


async def _stream(
    request: web.Request, frames: list[bytes], delay: float, pause: float, burst: bool = False
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    if burst:
        frames = [b"".join(frames)]
    try:
        for i, frame in enumerate(frames):
            await resp.write(frame)
            if i == 0 and pause:
                await asyncio.sleep(pause)
            elif delay:
                await asyncio.sleep(delay)
            elif i % 16 == 15:
                await asyncio.sleep(0)
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def bot(request: web.Request) -> web.StreamResponse:
    kind, n, size, delay, pause, burst = scenario(request.match_info["name"])
    await request.read()
    frames = [b"event: text\ndata: " + orjson.dumps({"text": t}) + b"\n\n" for t in pieces(kind, n, size)]
    frames.append(b"event: done\ndata: {}\n\n")
    return await _stream(request, frames, delay, pause, burst)


async def openai_chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    kind, n, size, delay, pause, burst = scenario(body["model"])
    head = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }
    frames = []
    for t in pieces(kind, n, size):
        chunk = {**head, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        frames.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    end = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    frames += [b"data: " + orjson.dumps(end) + b"\n\n", b"data: [DONE]\n\n"]
    return await _stream(request, frames, delay, pause, burst)


async def models(request: web.Request) -> web.Response:
    return web.json_response(
        {"object": "list", "data": [{"id": "plain.n1.s1.d0", "object": "model", "created": 0, "owned_by": "bench"}]}
    )


def make_app() -> web.Application:
    app = web.Application(client_max_size=1 << 24)
    app.router.add_post("/bot/{name}", bot)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_get("/v1/models", models)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        backlog=4096,
        handle_signals=True,
    )
    os._exit(0)
