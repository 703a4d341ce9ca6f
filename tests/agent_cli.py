"""Running real coding-agent CLIs (Cline, Continue, …) against the gateway, sealed off from the world.

The CLIs are npm packages pinned in ``.ci/agents/package.json`` and installed into
``.ci/agents/node_modules`` (ignored by git, kept between runs): ``python3 tests/agent_cli.py install``
(what ``make agents`` and so ``make test`` run) installs them only when a pinned version is missing.
The ``node`` package there provides a Node new enough for Cline; its ``.bin`` comes first on PATH.

Each run (:func:`run_cli`) gets a fresh ``HOME`` and working directory, a hard timeout (its whole
process group is killed), telemetry and auto-update switched off by environment, captured output,
and no network but the gateway: the CLI runs in a new network namespace (``unshare --net``) where
the only thing listening is a small bridge (``python3 tests/agent_cli.py bridge``) that carries
each connection over a Unix socket to the test's recorder, which passes it on to the gateway and
keeps a copy of every byte (:class:`Wire`, parsed into :class:`Exchange` objects). Where network
namespaces are not available the bridge runs beside the CLI on loopback instead, with every proxy
variable pointing at a closed port, and a warning says so.

Another CLI (Claude Code, Codex, …) is one more pinned entry in that package.json; a test asks
:func:`unavailable` whether it can run, opens a :func:`sandbox`, and calls :func:`run_cli` with
the sandbox's ``base_url`` in the CLI's configuration; ``run.wire.chats("/messages")`` (or
``"/responses"``) gives what crossed the wire.

This file is also a script (stdlib only, so ``make agents`` can use it before any venv exists):
``install``, ``check`` (exit 1 and say what is missing), and ``bridge`` (used by :func:`run_cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENTS_DIR = ROOT / ".ci" / "agents"
BIN_DIR = AGENTS_DIR / "node_modules" / ".bin"
INSIDE_PORT = 8080  # where the bridge listens inside the namespace
RUN_TIMEOUT = 90.0  # seconds; the whole process group is killed after that
INSTALL_TIMEOUT = 900  # seconds for one npm install

# Switches every CLI here understands or ignores: no telemetry, no update checks, no colour, no TTY.
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
    "CI": "true",
    "TERM": "dumb",
}


# --- the pinned packages -------------------------------------------------------------------


def pins() -> dict[str, str]:
    """The pinned npm packages and their exact versions (from ``.ci/agents/package.json``)."""
    data = json.loads((AGENTS_DIR / "package.json").read_text())
    deps = data.get("dependencies", {})
    return {str(k): str(v) for k, v in deps.items()}


def installed_version(package: str) -> str | None:
    """The version of ``package`` in ``.ci/agents/node_modules``, or ``None``."""
    path = AGENTS_DIR / "node_modules" / package / "package.json"
    try:
        return str(json.loads(path.read_text()).get("version"))
    except (OSError, ValueError):
        return None


def missing() -> list[str]:
    """Pinned packages that are not installed at their pinned version (``name@version``)."""
    return [f"{name}@{version}" for name, version in pins().items() if installed_version(name) != version]


def unavailable(package: str, command: str) -> str | None:
    """Why the CLI ``command`` from ``package`` cannot run here, or ``None`` when it can."""
    wrong = [m for m in missing() if m.startswith((f"{package}@", "node@"))]
    if wrong:
        return f"{', '.join(wrong)} not installed in {AGENTS_DIR} (run `make agents`; npm registry unreachable?)"
    if not (BIN_DIR / command).exists():
        return f"{BIN_DIR / command} is missing (reinstall: rm -rf {AGENTS_DIR / 'node_modules'}; make agents)"
    return None


def install() -> int:
    """Install what is missing; on failure say why (the agent tests then skip with that reason)."""
    todo = missing()
    if not todo:
        print(f"agent CLIs: {', '.join(f'{k}@{v}' for k, v in pins().items())} already in {AGENTS_DIR}")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("agent CLIs: npm not found; install Node.js and npm (the agent tests will be skipped)", file=sys.stderr)
        return 1
    print(f"agent CLIs: installing {', '.join(todo)} into {AGENTS_DIR}", flush=True)
    cmd = [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"]
    try:
        done = subprocess.run(cmd, cwd=AGENTS_DIR, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print(f"agent CLIs: npm install took over {INSTALL_TIMEOUT} s and was stopped", file=sys.stderr)
        return 1
    still = missing()
    if done.returncode != 0 or still:
        print(
            f"agent CLIs: npm install failed (exit {done.returncode}); missing: {', '.join(still) or 'none'}"
            " (the agent tests will be skipped)",
            file=sys.stderr,
        )
        return 1
    return 0


# --- the network seal ----------------------------------------------------------------------


_namespace_ok: bool | None = None


def unshare_command() -> list[str] | None:
    """The ``unshare`` prefix giving a process a network of its own, or ``None`` if unavailable."""
    global _namespace_ok
    exe = shutil.which("unshare")
    if exe is None:
        return None
    cmd = [exe, "--net"] if os.geteuid() == 0 else [exe, "--net", "--map-root-user"]
    if _namespace_ok is None:
        try:
            probe = subprocess.run([*cmd, "true"], capture_output=True, timeout=10, check=False)
            _namespace_ok = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _namespace_ok = False
    return cmd if _namespace_ok else None


def loopback_up() -> None:
    """Bring ``lo`` up (a new network namespace starts with it down)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, copy: bytearray | None = None) -> None:
    try:
        while data := await reader.read(1 << 16):
            if copy is not None:
                copy += data
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _bridge(socket_path: str, port: int, command: list[str], in_namespace: bool) -> int:
    """Listen on loopback ``port``, carry each connection to ``socket_path``; run ``command``."""
    if in_namespace:
        loopback_up()

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the command has ended: connections still open are simply dropped
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_server(carry, "127.0.0.1", port)
    async with server:
        proc = await asyncio.create_subprocess_exec(*command)
        return await proc.wait()


# --- the recorder (test side) --------------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP request and its response, as they crossed the wire."""

    method: str
    path: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def json(self) -> object:
        """The request body as JSON (``None`` if it is not JSON)."""
        try:
            return json.loads(self.request_body)
        except ValueError:
            return None

    def events(self) -> list[object]:
        """The response's SSE ``data:`` payloads, JSON-decoded where they are JSON."""
        out: list[object] = []
        for line in self.response_body.decode("utf-8", "replace").splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                try:
                    out.append(json.loads(data))
                except ValueError:
                    out.append(data)
        return out


def _headers(block: bytes) -> tuple[str, dict[str, str]]:
    lines = block.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _body(data: bytes, at: int, headers: Mapping[str, str], *, response: bool) -> tuple[bytes, int]:
    """The message body starting at ``at`` (Content-Length, chunked, or to the end) and where it ends."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            eol = data.find(b"\r\n", at)
            if eol < 0:
                return bytes(body), len(data)
            size = int(data[at:eol].split(b";")[0] or b"0", 16)
            at = eol + 2
            if size == 0:
                end = data.find(b"\r\n", at)  # no trailers from these peers
                return bytes(body), (end + 2 if end >= 0 else len(data))
            body += data[at : at + size]
            at += size + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        return data[at : at + n], at + n
    if response:
        return data[at:], len(data)
    return b"", at


def parse_exchanges(client: bytes, server: bytes) -> list[Exchange]:
    """The HTTP/1.1 exchanges of one connection from the bytes each side sent."""
    out: list[Exchange] = []
    at = 0
    while at < len(client):
        end = client.find(b"\r\n\r\n", at)
        if end < 0:
            break
        start, headers = _headers(client[at:end])
        body, at = _body(client, end + 4, headers, response=False)
        method, _, rest = start.partition(" ")
        out.append(Exchange(method, rest.rsplit(" ", 1)[0], headers, body))
    at = 0
    for ex in out:
        end = server.find(b"\r\n\r\n", at)
        if end < 0:
            break
        start, headers = _headers(server[at:end])
        ex.status = int(start.split(" ")[1]) if start.count(" ") >= 1 else 0
        ex.response_headers = headers
        if ex.method == "HEAD" or ex.status in (204, 304):
            ex.response_body, at = b"", end + 4
        else:
            ex.response_body, at = _body(server, end + 4, headers, response=True)
    return out


@dataclass
class Wire:
    """Every connection the CLI made to the gateway, byte for byte."""

    connections: list[tuple[bytearray, bytearray]] = field(default_factory=list)

    def exchanges(self) -> list[Exchange]:
        """All requests and responses, connection by connection."""
        return [ex for client, server in self.connections for ex in parse_exchanges(bytes(client), bytes(server))]

    def chats(self, path: str = "/chat/completions") -> list[Exchange]:
        """The exchanges whose path ends with ``path`` (query ignored)."""
        return [ex for ex in self.exchanges() if ex.path.split("?", 1)[0].endswith(path)]

    def describe(self, limit: int = 4000) -> str:
        """A short dump for assertion messages."""
        parts = []
        for ex in self.exchanges():
            body = ex.response_body[:600].decode("utf-8", "replace")
            parts.append(f"{ex.method} {ex.path} -> {ex.status}\n{body}")
        text = "\n---\n".join(parts)
        return text if len(text) <= limit else text[:limit] + "…"


@contextlib.asynccontextmanager
async def recorder(gateway_url: str, socket_path: str) -> AsyncIterator[Wire]:
    """A Unix-socket server that forwards to ``gateway_url`` and records both directions."""
    m = re.match(r"https?://([^:/]+):(\d+)", gateway_url)
    assert m, gateway_url
    host, port = m.group(1), int(m.group(2))
    wire = Wire()
    tasks: set[asyncio.Task[None]] = set()

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        client, server = bytearray(), bytearray()
        wire.connections.append((client, server))
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer, client), _pump(up_reader, writer, server))
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_unix_server(carry, socket_path)
    try:
        yield wire
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --- running a CLI -------------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


@dataclass
class Run:
    """What one CLI run did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    wire: Wire
    home: Path
    cwd: Path

    @property
    def output(self) -> str:
        """stdout and stderr together, without terminal escape codes."""
        return _ANSI.sub("", self.stdout + "\n" + self.stderr)

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}{' (timed out)' if self.timed_out else ''}\n"
            f"--- output ---\n{self.output[-4000:]}\n--- wire ---\n{self.wire.describe()}"
        )


@dataclass
class Sandbox:
    """A fresh HOME and working directory, and the loopback URL the CLI must use for the gateway."""

    root: Path
    home: Path
    cwd: Path
    base_url: str  # e.g. http://127.0.0.1:8080 (no /v1)
    socket_path: str
    namespace: list[str] | None
    port: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    """Temporary directories for one CLI session (removed afterwards)."""
    root = Path(tempfile.mkdtemp(prefix="agent-"))
    home, cwd = root / "home", root / "work"
    home.mkdir()
    cwd.mkdir()
    namespace = unshare_command()
    port = INSIDE_PORT if namespace else _free_port()
    try:
        yield Sandbox(root, home, cwd, f"http://127.0.0.1:{port}", str(root / "gateway.sock"), namespace, port)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cli_env(box: Sandbox, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI: nothing of ours but PATH basics, a fresh HOME, quiet switches."""
    path = os.pathsep.join([str(BIN_DIR), os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {
        "PATH": path,
        "HOME": str(box.home),
        "XDG_CONFIG_HOME": str(box.home / ".config"),
        "XDG_DATA_HOME": str(box.home / ".local" / "share"),
        "XDG_CACHE_HOME": str(box.home / ".cache"),
        "XDG_STATE_HOME": str(box.home / ".local" / "state"),
        "TMPDIR": str(box.root),
        "LANG": "C.UTF-8",
        "USER": "agent",
        **QUIET_ENV,
    }
    if box.namespace is None:
        dead = "http://127.0.0.1:9"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env[name] = dead
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["NODE_USE_ENV_PROXY"] = "1"
    env.update(extra or {})
    return env


async def run_cli(
    box: Sandbox,
    gateway_url: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run ``argv`` in ``box`` against the gateway at ``gateway_url``; never longer than ``timeout``."""
    if box.namespace is None:
        warnings.warn(
            "network namespaces unavailable: the agent CLI runs on the host network, proxies pointed at a closed port",
            stacklevel=2,
        )
    bridge = [sys.executable, str(Path(__file__).resolve()), "bridge", *(["--namespace"] if box.namespace else [])]
    full = [*(box.namespace or []), *bridge, box.socket_path, str(box.port), "--", *argv]
    with contextlib.suppress(FileNotFoundError):
        os.unlink(box.socket_path)
    async with recorder(gateway_url, box.socket_path) as wire:
        proc = await asyncio.create_subprocess_exec(
            *full,
            cwd=box.cwd,
            env=cli_env(box, env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = await proc.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the CLI left behind in its group
    return Run(
        list(argv),
        proc.returncode if proc.returncode is not None else -1,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        timed_out,
        wire,
        box.home,
        box.cwd,
    )


# --- the script ----------------------------------------------------------------------------


def main(args: list[str]) -> int:
    """``install``, ``check`` or ``bridge [--namespace] SOCKET PORT -- COMMAND…``."""
    parser = argparse.ArgumentParser(prog="agent_cli.py")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("install", help="install the pinned agent CLIs that are missing")
    sub.add_parser("check", help="exit 1 if a pinned agent CLI is missing")
    b = sub.add_parser("bridge", help="(internal) carry loopback connections to a Unix socket, run a command")
    b.add_argument("socket")
    b.add_argument("port", type=int)
    b.add_argument("--namespace", action="store_true")
    b.add_argument("command", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    if ns.what == "install":
        return install()
    if ns.what == "check":
        todo = missing()
        if todo:
            print(f"missing: {', '.join(todo)}")
        return 1 if todo else 0
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    return asyncio.run(_bridge(ns.socket, ns.port, command, ns.namespace))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
