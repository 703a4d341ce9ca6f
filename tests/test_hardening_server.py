"""The server's edges under hostile clients: slow and idle connections, open-file limit,
malformed requests in the log, compressed bodies, echoed values."""

from __future__ import annotations

import asyncio
import configparser
import gzip
import logging
import os
import re
import socket
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from poe2openai.engine.http import error_response
from poe2openai.errors import ApiError
from poe2openai.settings import VARIABLES, Settings, SettingsError, from_env

from .conftest import Running, user

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 0.5  # the short timeouts of these tests; every wait below allows ten times as much
KEY = b"Authorization: Bearer test-key\r\n"


async def connect(gw: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (or ten timeouts pass)."""
    data = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 10 * TIMEOUT)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


async def raw_exchange(gw: Running, data: bytes) -> bytes:
    reader, writer = await connect(gw)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def post(body: bytes, *headers: bytes) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: application/json\r\n"
    head += b"".join(h + b"\r\n" for h in headers)
    return head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body


def status_and_body(reply: bytes) -> tuple[int, Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body) if body.startswith(b"{") else body


@pytest.fixture
def short(settings: Settings) -> Settings:
    return settings.replace(keepalive_timeout_seconds=TIMEOUT, request_body_timeout_seconds=TIMEOUT)


# 1. Slow and idle connections


async def test_half_sent_headers_are_dropped(start_gateway: Callable[[Settings], Any], short: Settings) -> None:
    gw = await start_gateway(short)
    reader, writer = await connect(gw)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
    await writer.drain()
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_silent_connection_is_dropped(start_gateway: Callable[[Settings], Any], short: Settings) -> None:
    gw = await start_gateway(short)
    reader, writer = await connect(gw)
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_idle_keepalive_connection_is_closed(start_gateway: Callable[[Settings], Any], short: Settings) -> None:
    gw = await start_gateway(short)
    reader, writer = await connect(gw)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
    await reader.readexactly(length)
    assert await read_until_closed(reader) == b""  # idle after its answer: closed
    writer.close()


async def test_trickled_body_gets_408_and_is_closed(start_gateway: Callable[[Settings], Any], short: Settings) -> None:
    gw = await start_gateway(short)
    reader, writer = await connect(gw)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": user("hello")})
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + KEY
    writer.write(head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    await writer.drain()

    async def trickle() -> None:
        for byte in body[:-1]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(TIMEOUT / 5)

    sender = asyncio.ensure_future(trickle())
    try:
        reply = await read_until_closed(reader)
    finally:
        sender.cancel()
        writer.close()
    status, answer = status_and_body(reply)
    assert status == 408 and answer["error"]["code"] == "request_timeout"
    assert b"Connection: close" in reply.partition(b"\r\n\r\n")[0]


async def test_body_in_time_is_served_with_the_deadline_on(
    start_gateway: Callable[[Settings], Any], short: Settings
) -> None:
    gw = await start_gateway(short.replace(request_body_timeout_seconds=30))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": user("hello")})
    status, answer = status_and_body(await raw_exchange(gw, post(body)))
    assert status == 200 and answer["object"] == "chat.completion"


# 2. Open-file limit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prlimit is Linux only")
async def test_startup_raises_the_soft_open_file_limit(tmp_path: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard open-file limit is already 256 or less")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update(HOST="127.0.0.1", PORT=str(port), CONFIG_DIR=str(tmp_path), LOG_LEVEL="info")
    lowered = (
        "import os, resource, sys; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
        "os.execv(sys.executable, [sys.executable, '-m', 'poe2openai', '--demo'])"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        lowered,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        while not any("listening on" in line for line in lines):
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, "the gateway exited: " + "".join(lines)
            lines.append(line.decode())
        soft_now, hard_now = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
    finally:
        proc.terminate()
        await proc.wait()
    assert soft_now > 256 and (soft_now == hard_now or hard_now == resource.RLIM_INFINITY)
    limit_lines = [line for line in lines if "open files" in line]
    assert len(limit_lines) == 1 and f"256 to {soft_now}" in limit_lines[0]


def test_systemd_unit_and_readme_raise_the_open_file_limit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "contrib" / "poe2openai.service")
    assert int(unit["Service"]["LimitNOFILE"]) >= 65536
    assert "--ulimit nofile=" in (ROOT / "README.md").read_text()


# 3. Malformed requests in the log

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\x01b\r\n\r\n",
]


async def test_malformed_requests_log_one_short_line_each(gw: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for request in MALFORMED:
        reply = await raw_exchange(gw, request)
        assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400")
    assert "Traceback" not in caplog.text
    mine = [r for r in caplog.records if r.name.startswith(("aiohttp", "poe2openai"))]
    assert all(r.exc_info is None and r.levelno < logging.WARNING for r in mine)
    bad = [r.getMessage() for r in mine if r.name == "poe2openai.http"]
    assert len(bad) == len(MALFORMED)
    assert all(len(m) < 300 and "\n" not in m and "\r" not in m and "\x01" not in m for m in bad)
    assert all(m.startswith("malformed request from 127.0.0.1: ") for m in bad)


# 4. Compressed request bodies

GOOD = {"model": "gpt-4o-mini", "messages": user("hello")}


async def test_valid_gzip_body_works(gw: Running) -> None:
    status, answer = status_and_body(
        await raw_exchange(gw, post(gzip.compress(orjson.dumps(GOOD)), b"Content-Encoding: gzip"))
    )
    assert status == 200 and answer["choices"][0]["message"]["content"]
    deflated = zlib.compress(orjson.dumps(GOOD))
    status, answer = status_and_body(await raw_exchange(gw, post(deflated, b"Content-Encoding: deflate")))
    assert status == 200


async def test_body_that_is_not_gzip_is_400_naming_content_encoding(
    gw: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, answer = status_and_body(await raw_exchange(gw, post(orjson.dumps(GOOD), b"Content-Encoding: gzip")))
    assert status == 400 and answer["error"]["code"] == "invalid_content_encoding"
    assert "Content-Encoding" in answer["error"]["message"] and "gzip" in answer["error"]["message"]
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_body_that_is_not_gzip_closes_the_keepalive_connection(gw: Running) -> None:
    # Found by `make soak`: the 400 came without "Connection: close", then the server dropped the
    # connection, so a keep-alive client's next request on it failed with a reset.
    reader, writer = await connect(gw)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + KEY + b"Content-Type: application/json\r\n"
    writer.write(head + b"Content-Encoding: gzip\r\nContent-Length: 16\r\n\r\nthis is not gzip")
    await writer.drain()
    reply = await read_until_closed(reader)
    writer.close()
    status, answer = status_and_body(reply)
    assert status == 400 and answer["error"]["code"] == "invalid_content_encoding"
    assert b"Connection: close" in reply.partition(b"\r\n\r\n")[0]


async def test_keepalive_client_survives_a_body_that_is_not_gzip(gw: Running) -> None:
    connector = aiohttp.TCPConnector(limit=1)  # one connection: the second request reuses it if it may
    async with aiohttp.ClientSession(connector=connector) as session:
        url, auth = f"{gw.url}/v1/chat/completions", {"Authorization": "Bearer test-key"}
        async with session.post(url, data=b"not gzip", headers={**auth, "Content-Encoding": "gzip"}) as resp:
            assert resp.status == 400
            await resp.read()
        async with session.post(url, json=GOOD, headers=auth) as resp:
            assert resp.status == 200 and (await resp.json())["choices"][0]["message"]["content"]


async def test_unsupported_content_encoding_is_415(gw: Running) -> None:
    status, answer = status_and_body(await raw_exchange(gw, post(orjson.dumps(GOOD), b"Content-Encoding: compress")))
    assert status == 415 and "compress" in answer["error"]["message"]
    long_name = b"x" * 5000
    status, answer = status_and_body(
        await raw_exchange(gw, post(orjson.dumps(GOOD), b"Content-Encoding: " + long_name))
    )
    assert status == 415 and len(answer["error"]["message"]) < 500
    status, _ = status_and_body(await raw_exchange(gw, post(orjson.dumps(GOOD), b"Content-Encoding: identity")))
    assert status == 200


def gzip_bomb(decoded: int) -> bytes:
    """``decoded`` zero bytes, gzip-compressed without holding them in memory."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    piece = bytes(1 << 20)
    out = [z.compress(piece) for _ in range(decoded >> 20)]
    return b"".join([*out, z.flush()])


async def test_gzip_bomb_is_413_and_the_gateway_keeps_answering(gw: Running, http: aiohttp.ClientSession) -> None:
    bomb = gzip_bomb(64 << 20)  # ~64 KiB on the wire; the default MAX_REQUEST_SIZE (1 GiB) would allow it
    assert len(bomb) < 100_000
    status, answer = status_and_body(await raw_exchange(gw, post(bomb, b"Content-Encoding: gzip")))
    assert status == 413 and answer["error"]["code"] == "payload_too_large"
    assert "Content-Encoding" in answer["error"]["message"]
    async with http.get(gw.url + "/healthz") as r:
        assert r.status == 200


async def test_request_size_limit_counts_decoded_bytes(
    start_gateway: Callable[[Settings], Any], settings: Settings
) -> None:
    gw = await start_gateway(settings.replace(max_request_size=50_000))
    big = orjson.dumps({**GOOD, "user": os.urandom(40_000).hex()})  # 80 KB decoded, compresses only ~2x
    packed = gzip.compress(big)
    assert len(packed) < 50_000 < len(big)
    status, answer = status_and_body(await raw_exchange(gw, post(packed, b"Content-Encoding: gzip")))
    assert status == 413 and answer["error"]["code"] == "payload_too_large"


# 5. Echoed values


def test_error_messages_are_clipped() -> None:
    resp = error_response(ApiError(400, "messages[0].role must be one of user (got '" + "x" * 5_000_000 + "')"))
    assert resp.body is not None and len(resp.body) < 2000  # type: ignore[arg-type]
    message = orjson.loads(resp.body)["error"]["message"]  # type: ignore[arg-type]
    assert message.startswith("messages[0].role must be one of user (got 'xxx") and "characters cut" in message


async def test_404_does_not_echo_a_long_path(gw: Running) -> None:
    reply = await raw_exchange(gw, b"GET /" + b"p" * 8000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, answer = status_and_body(reply)
    assert status == 404 and len(answer["error"]["message"]) < 1100


# Settings


def test_new_settings_parse_and_are_documented() -> None:
    s = from_env(
        {"KEEPALIVE_TIMEOUT_SECONDS": "5", "REQUEST_BODY_TIMEOUT_SECONDS": "120", "MAX_COMPRESSION_RATIO": "20"}
    )
    assert (s.keepalive_timeout_seconds, s.request_body_timeout_seconds, s.max_compression_ratio) == (5, 120, 20)
    d = from_env({})
    assert (d.keepalive_timeout_seconds, d.request_body_timeout_seconds, d.max_compression_ratio) == (20, 60, 100)
    for bad in (
        {"KEEPALIVE_TIMEOUT_SECONDS": "0"},
        {"REQUEST_BODY_TIMEOUT_SECONDS": "x"},
        {"MAX_COMPRESSION_RATIO": "0"},
    ):
        with pytest.raises(SettingsError) as info:
            from_env(bad)
        assert str(info.value).startswith(next(iter(bad)) + "=")
    readme = (ROOT / "README.md").read_text()
    for name in ("KEEPALIVE_TIMEOUT_SECONDS", "REQUEST_BODY_TIMEOUT_SECONDS", "MAX_COMPRESSION_RATIO"):
        assert f"| `{name}` |" in readme and name in {v.name for v in VARIABLES}
