"""Running it for real: rate limit, body limit, CORS, logs, graceful shutdown, Docker and systemd."""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict

from poe2openai.settings import Settings
from poe2openai.simulator import DONE, Simulator, Sleep, text

from .conftest import Running, user

ROOT = Path(__file__).resolve().parent.parent
KEY = {"Authorization": "Bearer pk-SECRET-never-logged"}


async def chat(http: aiohttp.ClientSession, gw: Running, model: str = "gpt-4o-mini", **extra: Any) -> Any:
    async with http.post(
        gw.url + "/v1/chat/completions", headers=KEY, json={"model": model, "messages": user("x"), **extra}
    ) as r:
        return r.status, CIMultiDict(r.headers), await r.json()


async def test_requests_are_spaced(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(rate_limit_ms=200))
    results = await asyncio.gather(*(chat(http, gw) for _ in range(4)))
    assert [r[0] for r in results] == [200] * 4
    arrivals = sorted(r.at for r in sim.requests)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(g >= 0.1 for g in gaps), gaps  # a generous lower bound: slowness cannot break it


async def test_queue_longer_than_the_bound_is_a_429(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(rate_limit_ms=60_000, rate_limit_max_wait_ms=90_000))
    assert (await chat(http, gw))[0] == 200  # takes the bucket's only place
    waiting = asyncio.ensure_future(chat(http, gw))  # queued: one interval, within the bound
    while gw.gateway.limiter.waiting == 0:
        await asyncio.sleep(0.01)
    status, headers, body = await chat(http, gw)  # two intervals: over the bound
    assert status == 429 and body["error"]["code"] == "gateway_rate_limited"
    assert int(headers["retry-after"]) >= 60
    waiting.cancel()  # the client gives up: its place in the queue goes too
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    for _ in range(200):
        if gw.gateway.limiter.waiting == 0:
            break
        await asyncio.sleep(0.01)
    assert gw.gateway.limiter.waiting == 0
    assert len(sim.requests) == 1


async def test_rate_limit_zero_disables(gw: Running, http: aiohttp.ClientSession) -> None:
    assert gw.gateway.limiter.interval == 0
    assert [r[0] for r in await asyncio.gather(*(chat(http, gw) for _ in range(20)))] == [200] * 20


async def raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return data


async def test_oversized_body_is_413_before_it_is_read(
    start_gateway: Callable[[Settings], Any], settings: Settings
) -> None:
    gw = await start_gateway(settings.replace(max_request_size=1000))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    )
    reply = await raw_request(gw.url, head, b'{"model": ')  # 10 GB announced, a few bytes sent
    assert reply.startswith(b"HTTP/1.1 413") and b'"code":"payload_too_large"' in reply
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"a" * 800
    body = (b"%x\r\n" % len(piece) + piece + b"\r\n") * 3
    reply = await raw_request(gw.url, chunked, body)
    assert reply.startswith(b"HTTP/1.1 413")


async def test_cors_preflight_and_response(gw: Running, http: aiohttp.ClientSession) -> None:
    headers = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os, x-stainless-retry-count",
    }
    async with http.options(gw.url + "/v1/chat/completions", headers=headers) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        allowed = r.headers["Access-Control-Allow-Headers"]
        assert "x-stainless-os" in allowed and "x-stainless-retry-count" in allowed and "authorization" in allowed
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "Access-Control-Allow-Credentials" not in r.headers
    async with http.get(gw.url + "/v1/models", headers={"Origin": "http://localhost:3000"}) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    async with http.post(
        gw.url + "/v1/chat/completions",
        headers={**KEY, "Origin": "http://localhost:3000"},
        json={"model": "gpt-4o-mini", "messages": user("x"), "stream": True},
    ) as r:
        assert (
            r.headers["Access-Control-Allow-Origin"] == "*"
            and "x-request-id" in r.headers["Access-Control-Expose-Headers"]
        )
        await r.read()
    async with http.options(gw.url + "/admin/api/config", headers=headers) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_cors_allow_list(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(cors_allow_origins=("https://chat.example",)))
    pre = {"Access-Control-Request-Method": "POST"}
    async with http.options(gw.url + "/v1/chat/completions", headers={**pre, "Origin": "https://chat.example"}) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://chat.example"
    async with http.options(gw.url + "/v1/chat/completions", headers={**pre, "Origin": "https://evil.example"}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers


async def test_one_log_line_per_request_without_secrets(
    gw: Running, sim: Simulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, _ = await chat(http, gw, model="gpt-4o-mini")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{16}", headers["X-Request-Id"])
    async with http.post(
        gw.url + "/v1/chat/completions",
        headers={**KEY, "X-Request-Id": "trace-42"},
        json={"model": "deepseek-r1", "messages": user("x"), "stream": True},
    ) as r:
        assert r.headers["X-Request-Id"] == "trace-42"
        await r.read()
    async with http.get(gw.url + "/admin", headers={"Authorization": aiohttp.encode_basic_auth("admin", "123456")}):
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "poe2openai.access"]
    assert len(lines) == 3
    assert re.search(r"POST /v1/chat/completions 200 model=gpt-4o-mini ttft_ms=\S+ tokens=\d+\+\d+ total_ms=", lines[0])
    assert lines[1].startswith("trace-42 POST /v1/chat/completions 200 model=deepseek-r1 ttft_ms=")
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "pk-SECRET" not in everything and "123456" not in everything


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start_process(sim: Simulator, grace: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "POE_BASE_URL": sim.base_url,
        "SHUTDOWN_GRACE_SECONDS": grace,
        "RATE_LIMIT_MS": "0",
        "CONFIG_DIR": "/nonexistent",
    }
    proc = subprocess.Popen([sys.executable, "-m", "poe2openai"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("the gateway did not start")


async def stream_with_sigterm(proc: subprocess.Popen[bytes], url: str) -> bytes:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url + "/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "slow-bot", "messages": user("x"), "stream": True},
        ) as r,
    ):
        first = await r.content.readline()
        assert first.startswith(b"data: ")
        proc.send_signal(signal.SIGTERM)
        return first + await r.read()


async def test_sigterm_lets_open_streams_finish(sim: Simulator) -> None:
    steps = [s for i in range(10) for s in (text(f"part{i} "), Sleep(0.1))] + [DONE]
    sim.script("slow-bot", steps)
    proc, url = await start_process(sim, "10")
    raw = await stream_with_sigterm(proc, url)
    assert b"part9" in raw and raw.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"stop"' in raw
    assert await asyncio.to_thread(proc.wait, 20) == 0
    assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


async def test_sigterm_cancels_streams_cleanly_after_the_grace(sim: Simulator) -> None:
    steps = [s for i in range(100) for s in (text(f"part{i} "), Sleep(0.1))] + [DONE]
    sim.script("slow-bot", steps)
    proc, url = await start_process(sim, "0.5")
    raw = await stream_with_sigterm(proc, url)
    assert b"shutting down" in raw and raw.endswith(b"data: [DONE]\n\n")
    assert await asyncio.to_thread(proc.wait, 20) == 0
    for _ in range(100):
        if sim.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert sim.open_streams == 0 and sim.cancelled_streams == 1  # the Poe request was dropped too


def test_docker_and_systemd_start_the_same_entry_point() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"]
    assert re.search(r"^\s*poe2openai = poe2openai\.__main__:main$", scripts, re.M)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["poe2openai"\]$', dockerfile, re.M)
    assert re.search(r"^USER poe2openai$", dockerfile, re.M) and "EXPOSE 8080" in dockerfile
    assert "CONFIG_DIR=/data" in dockerfile and 'VOLUME ["/data"]' in dockerfile
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "contrib" / "poe2openai.service")
    service = unit["Service"]
    assert Path(service["ExecStart"]).name == "poe2openai"
    assert service["User"] == "poe2openai" and service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/") and service["NoNewPrivileges"] == "yes"


async def test_docker_healthcheck_command_works(gw: Running) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r'CMD \["python", "-c", "(.*)"\]', dockerfile)
    assert cmd is not None
    port = gw.url.rsplit(":", 1)[1]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", cmd.group(1)],
        env={**os.environ, "PORT": port},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", cmd.group(1)],
        env={**os.environ, "PORT": str(free_port())},
        capture_output=True,
        timeout=30,
    )
    assert bad.returncode != 0


async def test_sdk_sees_request_id_and_chat_still_works_with_limiter(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("x"))
    assert raw.headers["x-request-id"]
