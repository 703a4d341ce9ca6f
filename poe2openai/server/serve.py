"""Running the gateway: listen, serve until SIGINT/SIGTERM, shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import re
import signal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from poe2openai.server.app import create_app
from poe2openai.settings import Settings
from poe2openai.simulator import Simulator

log = logging.getLogger("poe2openai")

_MALFORMED_DETAIL = 200  # characters of aiohttp's description of a malformed request kept in the log
_STATUS_PREFIX = re.compile(r"^\d{3}, message:\s*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


class MalformedRequestFilter(logging.Filter):
    """One short line instead of a traceback for each malformed request.

    aiohttp logs every request it cannot parse (bad request line, bad header, bad chunk, a line
    too long, a body it cannot decode) with ``logger.exception``: anyone could fill the log with
    tracebacks. The record is rewritten at INFO (DEBUG stays DEBUG), without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records about malformed requests; let everything else through unchanged."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg = "malformed request from %s: %s" if remote is not None else "malformed request: %s"
        record.args = (remote, _describe(exc)) if remote is not None else (_describe(exc),)
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    text = _UNPRINTABLE.sub("?", " ".join(_STATUS_PREFIX.sub("", str(text)).split()).replace(" ^", ""))
    return text if len(text) <= _MALFORMED_DETAIL else text[:_MALFORMED_DETAIL] + "…"


# The connection-level logger handed to aiohttp in place of ``aiohttp.server``.
http_log = logging.getLogger("poe2openai.http")
http_log.addFilter(MalformedRequestFilter())


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit (every connection holds one)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Unlimited: Linux caps the limit at fs.nr_open and macOS at kern.maxfilesperproc; try round numbers.
    wanted = [1 << 20, 1 << 16, 10240] if hard == resource.RLIM_INFINITY else [hard]
    for target in wanted:
        if soft != resource.RLIM_INFINITY and soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.info("open files: raised the soft limit from %d to %d", soft, target)
        return
    log.info("open files: the limit is %s", "unlimited" if soft == resource.RLIM_INFINITY else soft)


def new_runner(app: web.Application, grace: float = 30.0, settings: Settings | None = None) -> web.AppRunner:
    """The runner for ``app``: our connection timeouts and logs (also under gunicorn).

    ``settings`` gives the connection timeouts (the defaults when omitted).
    """
    limits = settings or Settings()
    return web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=grace,
        logger=http_log,
        # Started when a connection opens (aiohttp 3.14.5+) and after each answer, and not reset
        # by incoming bytes: it closes idle connections and those whose request headers trickle in.
        keepalive_timeout=limits.keepalive_timeout_seconds,
        # How long a body the handler did not read is drained after the answer (aiohttp: 10 s).
        lingering_time=min(10.0, limits.request_body_timeout_seconds),
    )


async def start_site(
    app: web.Application, host: str, port: int, grace: float = 30.0, settings: Settings | None = None
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (port 0: any free port); return the runner and port.

    ``settings`` gives the connection timeouts (the defaults when omitted).
    """
    runner = new_runner(app, grace, settings)
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

  Other APIs on the same port: Anthropic Messages (ANTHROPIC_BASE_URL=http://{host}:{port}
  for Claude Code), OpenAI Responses ({base}/responses, Codex CLI) and {base}/completions.
  Coding agents: "model": "agent-bot" follows any client's tools and writes files.

  Python:
    from openai import OpenAI
    client = OpenAI(base_url="{base}", api_key="demo-key")
    print(client.chat.completions.create(model="gpt-4o-mini",
          messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)

Press Ctrl+C to stop.
"""


async def serve(settings: Settings, demo: bool = False) -> None:
    """Serve until a stop signal arrives."""
    raise_open_file_limit()
    runners: list[web.AppRunner] = []
    if demo:
        _, sim_runner, sim_url = await start_simulator()
        runners.append(sim_runner)
        settings = settings.replace(poe_base_url=sim_url, poe_file_upload_url=f"{sim_url}/file_upload")
    app = create_app(settings)
    runner, port = await start_site(app, settings.host, settings.port, settings.shutdown_grace_seconds, settings)
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
