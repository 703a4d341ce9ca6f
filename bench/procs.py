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


# A busy loop at SCHED_IDLE: it runs only when its core has nothing else to do.
_SPIN = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "while True:\n"
    "    pass\n"
)


class Spinners:
    """Keep every core from going idle while measuring, without taking CPU from anyone.

    On a virtual machine a vCPU with nothing to run halts, and waking it again (to deliver a
    packet to a process waiting on it) goes through the hypervisor: from tens of microseconds to
    milliseconds, where bare metal takes a few. Every hop between processes on different cores
    then pays it, which the direct client (on the upstream's core) never does, so it would be
    counted as latency the proxy adds. One busy loop per core at ``SCHED_IDLE`` keeps the
    cores running: any other process preempts it at once and it is not measured.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Spinners:
        if hasattr(os, "SCHED_IDLE") and hasattr(os, "sched_setaffinity"):
            self.procs = [subprocess.Popen([sys.executable, "-c", _SPIN, str(core)]) for core in range(CORES)]
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


def wake_up_us(cores: tuple[int, int] = (0, 1), rounds: int = 200, gap: float = 0.002) -> float:
    """Median round trip (µs) of one byte between processes on two cores, each after ``gap``
    seconds of silence: what waking an idle core costs on this machine."""
    import statistics

    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo side
        a.close()
        if CORES > 1:
            os.sched_setaffinity(0, {cores[1] % CORES})
        while data := b.recv(1):
            b.send(data)
        os._exit(0)
    b.close()
    old = os.sched_getaffinity(0)
    pin(cores[0])
    times = []
    try:
        for _ in range(rounds):
            time.sleep(gap)
            started = time.perf_counter()
            a.send(b"x")
            a.recv(1)
            times.append(time.perf_counter() - started)
    finally:
        a.close()
        os.waitpid(pid, 0)
        os.sched_setaffinity(0, old)
    return statistics.median(times) * 1e6


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
