"""Codex CLI itself, headless (``codex exec``), against the gateway and the Poe simulator.

Codex runs in a network namespace of its own with nothing but loopback (entered by the test
process for the length of the test, so the gateway and the simulator listen there too): it
cannot reach anything else, whatever it tries at start-up. Its plugin features are off (they
would run ``git ls-remote`` on a public repository). The binary is the ``@openai/codex`` npm
package that ``.ci/run`` installs under ``.cache/agents`` (or ``CODEX_BIN``); without it, or
without the right to make a network namespace, the test is skipped and says why.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poe2openai.simulator import DONE, Simulator, text

from .conftest import Running

ROOT = Path(__file__).resolve().parent.parent
CODEX = Path(os.environ.get("CODEX_BIN") or ROOT / ".cache" / "agents" / "node_modules" / ".bin" / "codex")
CLONE_NEWNET = 0x40000000
RUN_TIMEOUT = 180.0


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """This thread (the event loop's) and what it starts move to a fresh network namespace."""
    if not CODEX.exists():
        pytest.skip(f"Codex CLI not installed at {CODEX} (.ci/run installs it; or set CODEX_BIN)")
    if shutil.which("ip") is None or shutil.which("node") is None:
        pytest.skip("needs iproute2's ip and node")
    libc = _libc()
    original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(original)
        pytest.skip(f"cannot make a network namespace: {os.strerror(ctypes.get_errno())}")
    try:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        libc.setns(original, CLONE_NEWNET)
        os.close(original)


def codex_home(tmp: Path, gateway: str, model: str) -> Path:
    home = tmp / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "poe"\n'
        "[model_providers.poe]\n"
        'name = "poe2openai"\n'
        f'base_url = "{gateway}/v1"\n'
        'env_key = "POE_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        "[features]\n"
        "plugins = false\n"
        "remote_plugin = false\n"
    )
    return home


async def run_codex(tmp: Path, gateway: str, model: str, task: str) -> tuple[int, str, Path]:
    """``codex exec`` in a fresh working directory; (exit code, output, working directory)."""
    work = tmp / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "CODEX_HOME": str(codex_home(tmp, gateway, model)),
        "POE_API_KEY": "test-key",
        "NO_COLOR": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        str(CODEX),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        task,
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"codex exec did not finish in {RUN_TIMEOUT:g} s:\n{out.decode(errors='replace')[-3000:]}")
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), work


def xml_call(name: str, body: str) -> list[Any]:
    """A scripted bot answer calling ``name`` in the gateway's XML notation, in small events."""
    answer = f"I will create the file.\n<tool_call>\n<name>{name}</name>\n{body}\n</tool_call>"
    return [*(text(answer[i : i + 16]) for i in range(0, len(answer), 16)), DONE]


async def test_codex_writes_a_file_with_its_shell_tool(
    loopback_only: None, sim: Simulator, gw: Running, tmp_path: Path
) -> None:
    bot = "claude-sonnet-4.5"  # a name Codex does not know: it offers exec_command, no apply_patch
    args = '{"cmd": "printf \'hello from codex\\\\n\' > hello.txt"}'
    sim.script(bot, xml_call("exec_command", f"<arguments>{args}</arguments>"))
    sim.script(bot, [text("Created hello.txt."), DONE])
    code, out, work = await run_codex(tmp_path, gw.url, bot, "Create hello.txt saying hello from codex")
    assert code == 0, out
    assert (work / "hello.txt").read_text() == "hello from codex\n", out
    assert "Created hello.txt." in out
    first, second = sim.bodies(bot)[:2]
    assert "## exec_command" in first["query"][0]["content"]
    assert second["query"][-1]["content"].startswith('<tool_result name="exec_command">')


async def test_codex_writes_a_file_with_apply_patch(
    loopback_only: None, sim: Simulator, gw: Running, tmp_path: Path
) -> None:
    bot = "gpt-5.5"  # Codex offers its free-form apply_patch tool for this name
    patch = "*** Begin Patch\n*** Add File: notes.md\n+# Notes\n+patched by codex\n*** End Patch"
    sim.script(bot, xml_call("apply_patch", f"<input>\n{patch}\n</input>"))
    sim.script(bot, [text("Added notes.md."), DONE])
    code, out, work = await run_codex(tmp_path, gw.url, bot, "Create notes.md")
    assert code == 0, out
    assert (work / "notes.md").read_text() == "# Notes\npatched by codex\n", out
    assert "Added notes.md." in out
    first, second = sim.bodies(bot)[:2]
    assert "## apply_patch" in first["query"][0]["content"] and "free-form" in first["query"][0]["content"]
    assert second["query"][-1]["content"].startswith('<tool_result name="apply_patch">')
