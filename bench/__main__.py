"""``python -m bench`` (``make bench``): the gateway beside a bare relay and LiteLLM, one run.

Topology (2 cores): the process under test is pinned to core 1; the upstream and the load
client share core 0. Each mode runs ``--reps`` times, interleaved, and medians are reported.
While measuring, an idle-priority busy loop on each core keeps the cores from halting (on a
VM, waking a halted core costs up to milliseconds; see ``procs.Spinners``; ``--no-spin``).

Time to first token: the ``first token c1`` case, whose upstream pauses 2 ms after the first
event, so the first token never waits for the upstream's burst to leave the core it shares
with the load client (in the other cases it may, the direct client's included).

- direct:  client → upstream (Poe SSE)                      the floor for time to first token
- relay:   client → bare aiohttp relay → upstream           the floor for any Python proxy
- gateway: client → poe2openai → upstream                   parse, split, tools, re-encode
- litellm: client → LiteLLM proxy → upstream's OpenAI twin  when installed (optional)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import load
from .procs import CORES, Proc, Spinners, free_port, litellm_binary, pin, python, raise_fd_limit, wake_up_us

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@dataclass
class Case:
    """One measured configuration."""

    label: str
    scenario: str
    concurrency: int
    requests: int
    events: int
    tools: bool = False
    modes: tuple[str, ...] | None = None  # the modes compared (default: by the case's kind)
    client: str = "python"  # the load client: bench.load's, or "h2load" (nghttp2's, in C)


class Sampler:
    """Samples a process's RSS every 10 ms in a thread (the loop is busy with the load)."""

    def __init__(self, proc: Proc | None) -> None:
        self.proc = proc
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.proc is not None:
            try:
                self.peak = max(self.peak, self.proc.rss_bytes())
            except OSError:
                return
            time.sleep(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def request_for(mode: str, case: Case, procs: dict[str, Proc]) -> tuple[str, dict[str, Any], dict[str, str], bytes]:
    body: dict[str, Any] = {"model": case.scenario, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if mode in ("direct", "relay"):
        poe = {
            "version": "1.2",
            "type": "query",
            "query": [{"role": "user", "content": "hi"}],
            "user_id": "",
            "conversation_id": "",
            "message_id": "",
        }
        base = procs["upstream"].url if mode == "direct" else procs["relay"].url
        return f"{base}/bot/{case.scenario}", poe, {}, b"event: done"
    if case.tools:
        body["tools"] = TOOLS
    if mode.startswith("gateway"):
        return f"{procs[mode].url}/v1/chat/completions", body, {"Authorization": "Bearer bench"}, b"[DONE]"
    return f"{procs['litellm'].url}/v1/chat/completions", body, {"Authorization": "Bearer sk-bench"}, b"[DONE]"


LITELLM_CHUNKS = 25_000  # LiteLLM spends ~0.7 ms per chunk: cap its work per run


def measure(mode: str, case: Case, procs: dict[str, Proc]) -> dict[str, Any]:
    url, body, headers, end = request_for(mode, case, procs)
    requests = case.requests
    if mode == "litellm":
        requests = min(requests, max(case.concurrency, LITELLM_CHUNKS // case.events))
    proc = procs.get(mode) if mode != "direct" else None
    rss_before = proc.rss_bytes() if proc else 0
    cpu_before = proc.cpu_seconds() if proc else 0.0
    with Sampler(proc) as sampler:
        if case.client == "h2load":
            result = load.run_h2load(url, body, headers, case.concurrency, requests)
        else:
            result = asyncio.run(load.run(url, body, headers, end, case.concurrency, requests))
    out = result.summary()
    ok = result.ok
    chunks = ok * case.events
    out["chunks_per_s"] = chunks / result.wall if result.wall else None
    if proc is not None:
        cpu = proc.cpu_seconds() - cpu_before
        out["cpu_s"] = cpu
        out["cpu_us_per_chunk"] = cpu / chunks * 1e6 if chunks else None
        out["rss_mb"] = sampler.peak / 2**20
        out["rss_growth_kib_per_stream"] = max(0, sampler.peak - rss_before) / 1024 / case.concurrency
    return out


def start_proxy(mode: str, upstream: str, cases: list[Case], log_dir: Path) -> Proc:
    """A fresh process under test, pinned to core 1 (two workers: on any core)."""
    port = free_port()
    if mode == "relay":
        return Proc("relay", [python(), "-m", "bench.relay", str(port), upstream], port, 1)
    if mode.startswith("gateway"):
        env = {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "POE_BASE_URL": upstream,
            "RATE_LIMIT_MS": "0",
            "CONFIG_DIR": str(log_dir),
            "LOG_LEVEL": "info",
        }
        if mode in ("gateway-2w", "gateway-2w-free"):
            # on the one worker's core, two workers show what running two costs; on any core
            # they also compete with the load client and the upstream (on 2 cores: no gain)
            env["WORKERS"] = "2"
            core = 1 if mode == "gateway-2w" else None
            return Proc(mode, [python(), "-m", "poe2openai"], port, core, env, ready_path="/healthz")
        return Proc("gateway", [python(), "-m", "poe2openai"], port, 1, env, ready_path="/healthz")
    return start_litellm(upstream, cases, log_dir)


def start_all(modes: list[str], cases: list[Case], log_dir: Path) -> dict[str, Proc]:
    procs: dict[str, Proc] = {}
    up_port = free_port()
    procs["upstream"] = Proc(
        "upstream", [python(), "-m", "bench.upstream", str(up_port)], up_port, 0, ready_path="/v1/models"
    )
    for mode in modes:
        if mode != "direct":
            procs[mode] = start_proxy(mode, procs["upstream"].url, cases, log_dir)
    return procs


def fresh(mode: str, procs: dict[str, Proc], cases: list[Case], log_dir: Path) -> None:
    """Restart a proxy and warm it up, so a memory measurement starts from its settled size."""
    procs[mode].stop()
    procs[mode] = start_proxy(mode, procs["upstream"].url, cases, log_dir)
    measure(mode, Case("warm-up", "plain.n20.s100.d0", 4, 40, 20), procs)


def start_litellm(upstream: str, cases: list[Case], log_dir: Path) -> Proc:
    binary = litellm_binary()
    assert binary is not None
    lines = ["model_list:"]
    for scenario in sorted({c.scenario for c in cases}):
        lines += [
            f"  - model_name: {scenario}",
            "    litellm_params:",
            f"      model: openai/{scenario}",
            f"      api_base: {upstream}/v1",
            "      api_key: sk-upstream",
        ]
    lines += [
        "general_settings:",
        "  master_key: sk-bench",
        "litellm_settings:",
        "  drop_params: true",
        "  telemetry: false",
    ]
    cfg = log_dir / "litellm.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    port = free_port()
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    return Proc(
        "litellm",
        [binary, "--config", str(cfg), "--port", str(port), "--num_workers", "1"],
        port,
        1,
        env,
        ready_path="/health/liveliness",
    )


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": len(runs)}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if key in ("errors", "requests"):
            out[key] = sum(values)
        elif values:
            out[key] = statistics.median(values)
        elif key == "error_samples":
            out[key] = [s for r in runs for s in r[key]][:3]
    return out


def cases_for(quick: bool) -> tuple[list[Case], list[Case]]:
    k = 4 if quick else 1
    core = [
        Case("first token c1", "plain.n20.s100.d0.p2", 1, 300 // k, 20),
        Case("c1", "plain.n200.s100.d0", 1, 300 // k, 200),
        Case("c10", "plain.n200.s100.d0", 10, 400 // k, 200),
        Case("c100", "plain.n200.s100.d0", 100, 800 // k, 200),
        Case("c1000 open", "plain.n40.s100.d50", 1000, 1000, 40),
    ]
    extra = [
        Case("thinking c10", "thinking.n200.s100.d0", 10, 400 // k, 200),
        Case("tools c10", "tools.n200.s100.d0", 10, 400 // k, 200, tools=True),
        Case("thinking c100", "thinking.n200.s100.d0", 100, 800 // k, 200),
        Case("tools c100", "tools.n200.s100.d0", 100, 800 // k, 200, tools=True),
        Case("thinking c1000 open", "thinking.n40.s100.d50", 1000, 1000, 40),
        Case("tools c1000 open", "tools.n40.s100.d50", 1000, 1000, 40, tools=True),
        Case("short n50 c10", "plain.n50.s100.d0", 10, 800 // k, 50),
        Case("long n800 c10", "plain.n800.s100.d0", 10, 100 // k, 800),
        # one worker pinned to core 1 against two workers on that core (what two cost) and two
        # free on both cores (which on 2 cores take CPU from the load client and the upstream)
        Case(
            "workers c100",
            "plain.n200.s100.d0",
            100,
            800 // k,
            200,
            modes=("gateway", "gateway-2w", "gateway-2w-free"),
        ),
        # the same with the upstream sending each answer in one write and a load client in C
        # (h2load, when installed): their share of the two cores is small, so the gateway's
        # work is what limits chunks/s and a second worker has a core to use
        *(
            [
                Case(
                    "workers burst c100",
                    "plain.n200.s100.d0.b",
                    100,
                    3000 // k,
                    200,
                    modes=("gateway", "gateway-2w-free"),
                    client="h2load",
                )
            ]
            if load.H2LOAD
            else []
        ),
    ]
    return core, extra


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = (
        "| case | mode | TTFT p50 ms | added TTFT p50 ms | TTFT p99 ms | chunks/s | CPU µs/chunk | "
        "peak RSS MB | KiB/stream | errors |"
    )
    rows = [head, "|" + "---|" * 10]
    for label, by_mode in results.items():
        direct = by_mode.get("direct", {}).get("ttft_p50_ms")
        for mode, r in by_mode.items():
            added = r.get("ttft_p50_ms") - direct if direct is not None and r.get("ttft_p50_ms") is not None else None
            rows.append(
                f"| {label} | {mode} | {fmt(r.get('ttft_p50_ms'), 2)} | {fmt(added if mode != 'direct' else None, 2)} "
                f"| {fmt(r.get('ttft_p99_ms'), 2)} | {fmt(r.get('chunks_per_s'), 0)} | "
                f"{fmt(r.get('cpu_us_per_chunk'), 1)} | {fmt(r.get('rss_mb'), 0)} | "
                f"{fmt(r.get('rss_growth_kib_per_stream'), 1)} | {r.get('errors', 0)}/{r.get('requests', 0)} |"
            )
    return "\n".join(rows)


def ratios(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, by_mode in results.items():
        if label.startswith("first token"):  # a latency case: 20 events, mostly per-request work
            continue
        g = by_mode.get("gateway", {}).get("cpu_us_per_chunk")
        # the relay copies bytes whatever they say: compare variants with its plain run
        plain = label.split(" ", 1)[1] if label.startswith(("thinking ", "tools ")) else label
        for other in ("relay", "litellm"):
            o = results.get(plain, {}).get(other, {}).get("cpu_us_per_chunk")
            if g and o:
                out[f"{label}: gateway/{other} CPU per chunk"] = round(g / o, 2)
    return out


def targets(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    def get(label: str, mode: str, key: str) -> Any:
        return results.get(label, {}).get(mode, {}).get(key)

    def added(mode: str) -> float | None:
        """Time to first token at one stream over the direct client's (``first token c1``)."""
        label = "first token c1" if "first token c1" in results else "c1"
        t, d = get(label, mode, "ttft_p50_ms"), get(label, "direct", "ttft_p50_ms")
        return t - d if t is not None and d is not None else None

    g_added, r_added = added("gateway"), added("relay")
    g_cpu, r_cpu = get("c100", "gateway", "cpu_us_per_chunk"), get("c100", "relay", "cpu_us_per_chunk")
    short, long_ = (
        get("short n50 c10", "gateway", "cpu_us_per_chunk"),
        get("long n800 c10", "gateway", "cpu_us_per_chunk"),
    )

    def workers(mode: str, key: str, label: str = "workers c100") -> float | None:
        one, two = get(label, "gateway", key), get(label, mode, key)
        return two / one if one and two else None

    burst_rate = workers("gateway-2w-free", "chunks_per_s", "workers burst c100")

    same_rate, same_cpu = workers("gateway-2w", "chunks_per_s"), workers("gateway-2w", "cpu_us_per_chunk")
    free_rate = workers("gateway-2w-free", "chunks_per_s")
    return {
        "two workers cost what one does (workers c100, both on the one worker's core)": {
            "chunks_per_s_ratio": same_rate,
            "cpu_per_chunk_ratio": same_cpu,
            # two processes time-slicing one core refill each other's caches: allow 15 %
            "met": bool(same_rate and same_cpu and same_rate >= 0.85 and same_cpu <= 1.15),
        },
        "two workers relay more chunks/s than one when the gateway is the bottleneck (workers burst c100)": {
            "ratio": burst_rate,
            "met": bool(burst_rate and burst_rate >= 1.2),
        },
        "two workers on all cores relay more chunks/s than one (needs cores to spare)": {
            "ratio": free_rate,
            "cores": CORES,
            # on 2 cores the load client and the upstream need one of them: nothing to gain
            "met": None if CORES < 4 else bool(free_rate and free_rate >= 1.2),
        },
        "added TTFT p50 at c1 < 1 ms": {
            "value_ms": g_added,
            "relay_ms": r_added,  # what any proxy adds on this machine
            "over_relay_ms": g_added - r_added if g_added is not None and r_added is not None else None,
            "met": g_added is not None and g_added < 1.0,
        },
        "CPU per chunk within 2x the relay (c100)": {
            "ratio": g_cpu / r_cpu if g_cpu and r_cpu else None,
            "met": bool(g_cpu and r_cpu and g_cpu / r_cpu <= 2),
        },
        ">= 20,000 chunks/s in one process (c100)": {
            "value": get("c100", "gateway", "chunks_per_s"),
            "met": (get("c100", "gateway", "chunks_per_s") or 0) >= 20000,
        },
        "1000 open streams, no error, < 64 KiB each": {
            "errors": get("c1000 open", "gateway", "errors"),
            "kib_per_stream": get("c1000 open", "gateway", "rss_growth_kib_per_stream"),
            "met": get("c1000 open", "gateway", "errors") == 0
            and (get("c1000 open", "gateway", "rss_growth_kib_per_stream") or 1e9) < 64,
        },
        "cost linear in stream length (CPU/chunk n800 vs n50)": {
            "ratio": long_ / short if long_ and short else None,
            "met": bool(long_ and short and long_ / short < 1.25),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per mode, interleaved (default 3)")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even when installed")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="where to write the JSON results")
    parser.add_argument("--only", help="comma-separated case labels to run (e.g. 'workers c100'), no others")
    parser.add_argument(
        "--no-spin", action="store_true", help="let idle cores halt while measuring (see procs.Spinners)"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    pin(0)
    core, extra = cases_for(args.quick)
    if args.only:
        wanted = {label.strip() for label in args.only.split(",")}
        core, extra = [c for c in core if c.label in wanted], [c for c in extra if c.label in wanted]
        if not core and not extra:
            parser.error(f"no case is called {args.only!r}")
    modes = ["direct", "relay", "gateway"]
    note = None
    if args.no_litellm:
        note = "LiteLLM skipped (--no-litellm)"
    elif litellm_binary() is None:
        note = "LiteLLM not installed: `make bench-litellm` installs it into .venv-litellm (optional)"
    else:
        modes.append("litellm")
    if note:
        print(note, file=sys.stderr)
    base_modes = list(modes)  # what the core cases compare
    for case in core + extra:
        modes += [m for m in case.modes or () if m not in modes]
    if args.only:  # start only what the chosen cases compare
        used = {m for c in core + extra for m in (c.modes or base_modes)}
        modes = [m for m in modes if m in used]
        base_modes = [m for m in base_modes if m in used]
    wake = {"idle_us": round(wake_up_us(), 1)}
    with Spinners():
        time.sleep(0.2)
        wake["spinning_us"] = round(wake_up_us(), 1)
    print(f"waking an idle core: {wake['idle_us']:.0f} µs round trip ({wake['spinning_us']:.0f} µs with spinners)")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        procs = start_all(modes, core + extra, log_dir)
        spin: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if args.no_spin else Spinners()
        try:
            with spin:
                for mode in modes:  # untimed warm-up: first requests pay for connections and lazy setup
                    measure(mode, Case("warm-up", "plain.n20.s100.d0", 4, 40, 20), procs)
                for case in core + extra:
                    case_modes = base_modes if case in core else ["gateway", "relay"] if not case.tools else ["gateway"]
                    if case in extra and case.scenario.startswith("thinking"):
                        case_modes = ["gateway"]
                    if case.modes is not None:
                        case_modes = list(case.modes)
                    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in case_modes}
                    for rep in range(args.reps):
                        for mode in case_modes:
                            # LiteLLM stays busy after heavy runs; memory per stream wants a settled process
                            heavy = case.concurrency >= 1000 or (mode == "litellm" and case.concurrency >= 100)
                            if mode != "direct" and heavy:
                                fresh(mode, procs, core + extra, log_dir)
                            runs[mode].append(measure(mode, case, procs))
                            print(
                                f"  {case.label:<15} {mode:<8} rep {rep + 1}: "
                                f"ttft p50 {fmt(runs[mode][-1].get('ttft_p50_ms'), 2)} ms, "
                                f"{fmt(runs[mode][-1].get('chunks_per_s'), 0)} chunks/s, "
                                f"errors {runs[mode][-1]['errors']}",
                                file=sys.stderr,
                                flush=True,
                            )
                    results[case.label] = {m: median_of(r) for m, r in runs.items()}
        finally:
            for p in procs.values():
                p.stop()
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpu": _cpu(),
            "cores": CORES,
            "python": platform.python_version(),
            "aiohttp": metadata.version("aiohttp"),
            "poe2openai": metadata.version("poe2openai"),
            "litellm": _litellm_version() if "litellm" in modes else None,
        },
        "topology": "process under test pinned to core 1; upstream and load client on core 0",
        "spinners": not args.no_spin,
        "wake_up_round_trip": wake,
        "note": note,
        "results": results,
        "ratios": ratios(results),
        "targets": targets(results),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print()
    for k, v in report["ratios"].items():
        print(f"{k}: {v}")
    for k, v in report["targets"].items():
        state = "n/a " if v["met"] is None else "MET " if v["met"] else "MISS"
        print(f"target {state} {k}: { ({x: y for x, y in v.items() if x != 'met'}) }")
    print(f"\nwritten to {out}")
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _litellm_version() -> str | None:
    binary = litellm_binary()
    if binary is None:
        return None
    venv_python = Path(binary).parent / "python"
    import subprocess

    done = subprocess.run(
        [str(venv_python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
