"""Processes under test: started pinned to a core, measured from /proc (CPU time, RSS)."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def pin(core: int) -> None:
    """Pin the calling process to ``core`` (when the machine has it)."""
    if hasattr(os, "sched_setaffinity") and CORES > 1:
        os.sched_setaffinity(0, {core % CORES})


class Proc:
    """A started server process."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        core: int | None,
        env: dict[str, str] | None = None,
        ready_path: str = "/",
    ) -> None:
        """``core``: the core it is pinned to (None: any core, e.g. several workers)."""
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        log = open(Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-{name}.log", "wb")  # noqa: SIM115

        def setup() -> None:
            raise_fd_limit()
            if core is not None:
                pin(core)

        self.popen = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=log, stderr=log, preexec_fn=setup)
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}")
            try:
                urllib.request.urlopen(self.url + path, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def cpu_seconds(self) -> float:
        """CPU time of the process and its live children (gunicorn's workers)."""
        pid = self.popen.pid
        total = _cpu_of(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                total += _cpu_of(int(child))
            except OSError:
                continue
        return total

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def fd_targets(self) -> list[str]:
        """What each open file descriptor points at (``socket:[inode]``, a path, ``pipe:[…]``)."""
        out = []
        for fd in Path(f"/proc/{self.popen.pid}/fd").iterdir():
            try:
                out.append(os.readlink(fd))
            except OSError:  # closed while listing
                continue
        return out

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def python() -> str:
    return sys.executable


def litellm_binary() -> str | None:
    """LiteLLM's proxy, if installed: $LITELLM, the bench venv, or PATH."""
    local = Path(__file__).resolve().parent.parent / ".venv-litellm" / "bin" / "litellm"
    for candidate in (os.environ.get("LITELLM"), str(local), shutil.which("litellm")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
