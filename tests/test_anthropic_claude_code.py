"""Claude Code itself, headless, through the gateway to a non-Claude bot of the Poe simulator:
it must complete a file-writing task (a tool call emulated in the prompt, its result, an answer).

Claude Code comes from npm into ``.cache/claude-code`` (``.ci/run`` installs the pinned version);
``CLAUDE_CODE_BIN`` may point elsewhere. Without it the test is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from poe2openai.simulator import Simulator, Step, texts

from .conftest import Running

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = os.environ.get("CLAUDE_CODE_BIN") or str(ROOT / ".cache/claude-code/node_modules/.bin/claude")
RUN_TIMEOUT = 180.0  # seconds; a hard bound on the run, not a measurement

needs_claude = pytest.mark.skipif(
    shutil.which(CLAUDE) is None, reason="Claude Code is not installed (.ci/run installs it)"
)


def writer(target: Path, content: str) -> Any:
    """A bot that answers as a thinking agent would: it thinks (Poe's ``*Thinking...*`` block),
    calls the client's file-writing tool (in the gateway's tool notation), then, given the
    tool's result, says it is done."""

    def answer(body: dict[str, Any]) -> list[Step]:
        query = body["query"]
        system = "\n".join(m["content"] for m in query if m["role"] == "system")
        last = next(m["content"] for m in reversed(query) if m["role"] == "user")
        if "<tool_result" in last:
            return texts("I wrote ", target.name, ". Done.")
        if "## Write" not in system:  # Claude Code's side requests (titles, summaries): plain text
            return texts("OK")
        args = orjson.dumps({"file_path": str(target), "content": content}).decode()
        call = f"I will write the file.\n\n<tool_call>\n<name>Write</name>\n<arguments>{args}</arguments>\n</tool_call>"
        thinking = "*Thinking...*\n\n> The user wants a file; the Write tool makes it.\n\n"
        return texts(thinking, *(call[i : i + 20] for i in range(0, len(call), 20)))

    return answer


@needs_claude
async def test_claude_code_writes_a_file_through_a_non_claude_bot(gw: Running, sim: Simulator, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    target = work / "hello.txt"
    sim.behaviours["gpt-5"] = writer(target, "hello from poe\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_API_KEY": "test-key",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        "Create the file hello.txt in the current directory containing: hello from poe",
        "--model",
        "gpt-5",
        "--allowedTools",
        "Write,Read",
        cwd=work,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    report = f"stdout: {out.decode(errors='replace')}\nstderr: {err.decode(errors='replace')}"
    assert proc.returncode == 0, report
    assert target.read_text() == "hello from poe\n", report
    assert "I wrote hello.txt. Done." in out.decode(), report
    asked = [r for r in sim.requests if r.bot == "gpt-5" and "## Write" in r.body["query"][0]["content"]]
    assert len(asked) >= 2
    assert '<tool_result name="Write">' in asked[-1].body["query"][-1]["content"]
