"""WORKERS=2: gunicorn with aiohttp's worker serves streams on one port, sums the metrics of
both workers, keeps the request log, and stops cleanly on SIGTERM with streams in flight."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from poe2openai.simulator import DONE, Simulator, Sleep, text

from .conftest import user
from .test_operations import free_port
from .test_shared_state import REDIS, RedisServer, redis_server  # noqa: F401 (redis_server is a fixture)

AUTH = {"Authorization": aiohttp.encode_basic_auth("admin", "123456")}


def children(pid: int) -> list[int]:
    """The worker processes of the gunicorn master."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


async def start_workers(sim: Simulator, workers: int, tmp: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "POE_BASE_URL": sim.base_url,
        "SHUTDOWN_GRACE_SECONDS": "10",
        "RATE_LIMIT_MS": "0",
        "CONFIG_DIR": str(tmp),
        "WORKERS": str(workers),
        **extra,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "poe2openai"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200 and len(children(proc.pid)) == (workers if workers > 1 else 0):
                        return proc, url
            except (aiohttp.ClientError, FileNotFoundError):
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("the workers did not start")


async def stream(s: aiohttp.ClientSession, url: str, model: str, started: asyncio.Event | None = None) -> bytes:
    async with s.post(
        url + "/v1/chat/completions",
        headers={"Authorization": "Bearer k"},
        json={"model": model, "messages": user("x"), "stream": True},
    ) as r:
        assert r.status == 200
        first = await r.content.readline()
        if started is not None:
            started.set()
        return first + await r.read()


async def test_two_workers_serve_streams_and_stop_cleanly_on_sigterm(sim: Simulator, tmp_path: Path) -> None:
    proc, url = await start_workers(sim, 2, tmp_path)
    try:
        workers = children(proc.pid)
        assert len(workers) == 2
        async with aiohttp.ClientSession() as s:
            raws = await asyncio.gather(*(stream(s, url, "gpt-4o-mini") for _ in range(8)))
            assert all(r.endswith(b"data: [DONE]\n\n") for r in raws)
            # every worker's counts are in the one /metrics, whichever worker answers it (a
            # request is counted just after its last byte, so the last one may take a moment)
            totals: list[float] = []
            for _ in range(100):
                async with s.get(url + "/metrics", headers=AUTH) as r:
                    assert r.status == 200
                    body = await r.text()
                totals.append(
                    sum(
                        sample.value
                        for family in text_string_to_metric_families(body)
                        for sample in family.samples
                        if sample.name == "poe2openai_requests_total"
                        and sample.labels.get("route") == "/v1/chat/completions"
                    )
                )
                if totals[-3:] == [8, 8, 8]:
                    break
                await asyncio.sleep(0.05)
            assert totals[-3:] == [8, 8, 8], totals
            # the Traffic view too: both workers' minutes, whichever worker answers
            for _ in range(100):
                async with s.get(url + "/admin/api/traffic", headers=AUTH) as r:
                    view = await r.json()
                if view["processes"] == 2:
                    break
                await asyncio.sleep(0.1)
            assert view["processes"] == 2 and sum(view["models"]["*"]["requests"]) == 8
            # a stream in flight when SIGTERM arrives still finishes
            sim.script("slow-bot", [s for i in range(10) for s in (text(f"part{i} "), Sleep(0.1))] + [DONE])
            started = asyncio.Event()
            slow = asyncio.ensure_future(stream(s, url, "slow-bot", started))
            await started.wait()
            proc.send_signal(signal.SIGTERM)
            raw = await slow
        assert b"part9" in raw and raw.endswith(b"data: [DONE]\n\n")
        assert await asyncio.to_thread(proc.wait, 30) == 0
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in err
        assert err.count("POST /v1/chat/completions 200") == 9  # the request log works under gunicorn
        assert all(f"worker {pid} serving" in err for pid in workers)
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_compose_runs_two_replicas_redis_and_unbuffered_nginx() -> None:
    root = Path(__file__).resolve().parent.parent / "contrib"
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    services = compose["services"]
    gateways = [s for s in services.values() if s.get("build") == ".."]
    assert len(gateways) == 2
    assert all(g["environment"]["REDIS_URL"] == "redis://redis:6379/0" for g in gateways)
    assert services["redis"]["image"].startswith("redis:")
    nginx = (root / "nginx.conf").read_text()
    assert "proxy_buffering off;" in nginx
    assert all(f"server {name}:8080" in nginx for name in services if name.startswith("gateway-"))


@pytest.mark.skipif(not Path(REDIS).exists(), reason="redis-server is not installed")
async def test_two_gateway_processes_with_one_redis_keep_one_pace(
    sim: Simulator,
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    procs = []
    try:
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            procs.append(await start_workers(sim, 1, folder, RATE_LIMIT_MS="200", REDIS_URL=redis_server.url))
        async with aiohttp.ClientSession() as s:
            raws = await asyncio.gather(*(stream(s, url, "gpt-4o-mini") for _, url in procs * 4))
        assert all(r.endswith(b"data: [DONE]\n\n") for r in raws)
        arrivals = sorted(r.at for r in sim.requests)
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        # a generous lower bound (a late wake-up of one request shortens the next gap); unshared: ~0
        assert len(gaps) == 7 and min(gaps) >= 0.1, gaps
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_workers_refuse_a_port_in_use_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WORKERS": "2", "CONFIG_DIR": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "poe2openai"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()
    assert b"Starting gunicorn" not in done.stderr


def test_workers_refuse_bad_settings_before_starting(tmp_path: Path) -> None:
    env = {**os.environ, "WORKERS": "2", "RATE_LIMIT_MS": "soon", "CONFIG_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "poe2openai"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"RATE_LIMIT_MS" in done.stderr and b"gunicorn" not in done.stderr
