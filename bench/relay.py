"""The floor for any Python proxy: a bare aiohttp relay that copies each upstream read as it is.

``POST /bot/{name}`` is forwarded to the upstream and its body bytes are written back
unchanged (no parsing), the way the benchmarking notes measured the floor.
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

UP = web.AppKey("up", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UP] + request.path
    async with request.app[SESSION].post(url, data=body, headers={"Content-Type": "application/json"}) as up:
        resp = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UP] = upstream

    async def start(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/bot/{name}", relay)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        backlog=4096,
        handler_cancellation=True,
    )
