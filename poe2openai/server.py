"""Running the gateway: listen, serve until SIGINT/SIGTERM, shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .app import create_app
from .settings import Settings
from .simulator import Simulator

log = logging.getLogger("poe2openai")


async def start_site(app: web.Application, host: str, port: int, grace: float = 30.0) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (port 0: any free port); return the runner and port."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return runner, int(address[1])
    return runner, port


async def start_simulator(host: str = "127.0.0.1", port: int = 0) -> tuple[Simulator, web.AppRunner, str]:
    """A Poe simulator on loopback; returns it, its runner and its base URL."""
    sim = Simulator(word_delay=0.05)
    runner, port = await start_site(sim.app, host, port, grace=1.0)
    sim.base_url = f"http://{host}:{port}"
    return sim, runner, sim.base_url


def _demo_banner(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{host}:{port}/v1"
    login = "admin / 123456" if settings.uses_default_password else "your ADMIN_USERNAME and ADMIN_PASSWORD"
    return f"""
poe2openai demo: the gateway is talking to a built-in Poe simulator (no Poe key needed).

  Gateway:  {base}
  Models:   curl {base}/models

  Chat (streaming):
    curl {base}/chat/completions -H "Authorization: Bearer demo-key" \\
      -H "Content-Type: application/json" \\
      -d '{{"model": "gpt-4o-mini", "stream": true, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  Reasoning split into reasoning_content:  use "model": "deepseek-r1"
  Tool calls: send any OpenAI "tools"; the simulated bots call the first one.
  Admin page: http://{host}:{port}/admin  ({login})

  Python:
    from openai import OpenAI
    client = OpenAI(base_url="{base}", api_key="demo-key")
    print(client.chat.completions.create(model="gpt-4o-mini",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)

Press Ctrl+C to stop.
"""


async def serve(settings: Settings, demo: bool = False) -> None:
    """Serve until a stop signal arrives."""
    runners: list[web.AppRunner] = []
    if demo:
        _, sim_runner, sim_url = await start_simulator()
        runners.append(sim_runner)
        settings = settings.replace(poe_base_url=sim_url, poe_file_upload_url=f"{sim_url}/file_upload")
    app = create_app(settings)
    runner, port = await start_site(app, settings.host, settings.port, settings.shutdown_grace_seconds)
    runners.insert(0, runner)
    if settings.uses_default_password:
        log.warning("ADMIN_PASSWORD is the default '123456': set your own before exposing /admin")
    log.info("poe2openai listening on http://%s:%d (Poe: %s)", settings.host, port, settings.poe_base_url)
    if demo:
        print(_demo_banner(settings, port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    await stop.wait()
    log.info("shutting down: waiting up to %gs for open streams", settings.shutdown_grace_seconds)
    for r in runners:
        await r.cleanup()
    log.info("stopped")
