"""Command line: ``python -m poe2openai [--demo]`` (also installed as ``poe2openai``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from poe2openai import __version__
from poe2openai.settings import SettingsError, from_env, help_text


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="poe2openai",
        description="OpenAI-compatible gateway to every Poe bot. Clients send their Poe API key as the bearer token.",
        epilog="Environment variables:\n" + help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _cannot_listen(host: str, port: int, exc: OSError) -> int:
    print(f"poe2openai: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and settings, then serve."""
    parser = _parser()
    parser.add_argument("--demo", action="store_true", help="run against a built-in Poe simulator (no key needed)")
    parser.add_argument("--version", action="version", version=f"poe2openai {__version__}")
    args = parser.parse_args(argv)
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"poe2openai: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The logging HOWTO's "Optimization" settings: the format uses none of these, and
    # collecting them for every access line costs several microseconds per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if settings.workers > 1 and not args.demo:
        from poe2openai.server.workers import run_workers

        try:
            return run_workers(settings)
        except OSError as exc:
            return _cannot_listen(settings.host, settings.port, exc)
    from poe2openai.server.serve import serve

    try:
        asyncio.run(serve(settings, demo=args.demo))
    except OSError as exc:
        return _cannot_listen(settings.host, settings.port, exc)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
