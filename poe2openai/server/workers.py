"""Several worker processes on one port: gunicorn with aiohttp's ``GunicornWebWorker``.

``WORKERS=N`` (N > 1) makes ``poe2openai`` start a gunicorn master that binds the port, forks
N single-process aiohttp workers and restarts one that dies. Each worker is exactly today's
gateway (same runner, timeouts, request log and graceful drain). On SIGTERM the master passes
SIGTERM to every worker; each stops accepting, lets open streams finish for
``SHUTDOWN_GRACE_SECONDS`` and exits; the master waits a little longer than that.

Settings are parsed (and refused, exit 2) before anything starts; the open-file limit is raised
in the master, so every worker inherits it. Metrics: ``PROMETHEUS_MULTIPROC_DIR`` is set before
``prometheus_client`` is first imported, so ``/metrics`` in any worker sums all of them.

Running gunicorn yourself also works:
``gunicorn 'poe2openai.server.workers:gunicorn_app' -k aiohttp.GunicornWebWorker -w 2 -b :8080``
(settings from the environment; set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder for metrics
that sum the workers).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from poe2openai.settings import Settings, from_env

log = logging.getLogger("poe2openai")

MARGIN = 5.0  # seconds the master waits after a worker's grace before killing it


def prepare_multiprocess_metrics() -> Callable[[], None]:
    """Point prometheus_client at a fresh folder shared by the workers; return the clean-up.

    Must run before ``prometheus_client`` is imported (it picks its value store at import).
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # values of an earlier run would be summed in
            stale.unlink()
        return lambda: None
    made = tempfile.mkdtemp(prefix="poe2openai-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return lambda: shutil.rmtree(made, ignore_errors=True)


def _factory(settings: Settings) -> Callable[[], Awaitable[Any]]:
    async def make() -> Any:
        from poe2openai.server.app import create_app
        from poe2openai.server.serve import new_runner

        log.info("worker %d serving", os.getpid())
        return new_runner(create_app(settings), settings.shutdown_grace_seconds, settings)

    return make


async def gunicorn_app() -> Any:
    """The entry point for a gunicorn you start yourself (settings from the environment)."""
    return await _factory(from_env())()


def _bind(settings: Settings) -> str:
    host = settings.host
    return f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"


def check_port(settings: Settings) -> None:
    """Raise OSError now when the port cannot be bound (gunicorn would retry for seconds)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((settings.host, settings.port))


def run_workers(settings: Settings) -> int:
    """Serve with ``settings.workers`` processes until SIGTERM or SIGINT; the exit status.

    OSError when the port cannot be bound."""
    check_port(settings)
    cleanup = prepare_multiprocess_metrics()
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
    from prometheus_client import multiprocess

    from poe2openai.server.serve import raise_open_file_limit

    def child_exit(server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call] # its live gauges (open streams) leave the sum

    options: dict[str, Any] = {
        "bind": _bind(settings),
        "workers": settings.workers,
        "worker_class": "aiohttp.GunicornWebWorker",
        "graceful_timeout": math.ceil(settings.shutdown_grace_seconds + MARGIN),
        "timeout": 30,
        "accesslog": None,  # the gateway writes its own request log line
        "errorlog": "-",
        "loglevel": settings.log_level,
        "proc_name": "poe2openai",
        "child_exit": child_exit,
        "control_socket_disable": True,  # gunicorn 24+: one fixed path in $HOME, shared by every instance
    }
    factory = _factory(settings)

    class Master(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return factory

    logging.logProcesses = True  # gunicorn's log format shows the pid; so does ours from here on
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    raise_open_file_limit()
    if settings.uses_default_password:
        log.warning("ADMIN_PASSWORD is the default '123456': set your own before exposing /admin")
    log.info("poe2openai: %d workers on %s (Poe: %s)", settings.workers, options["bind"], settings.poe_base_url)
    try:
        Master().run()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        cleanup()
    return 0
