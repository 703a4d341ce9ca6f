"""Claude Code itself, headless and offline, through the gateway's Anthropic front end to
non-Claude bots of the simulator (the agent bot, ``poe2openai.simulator.agent``): a
file-writing task (a tool call emulated in the prompt, its result, an answer), the same with a
thinking bot, a plain streamed answer, and the gateway's error for an unknown model.

Claude Code is pinned in ``.ci/agents/package.json`` (``make agents``); the tests carry the
``agents`` marker and skip, saying why, when it is missing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from poe2openai.settings import Settings
from poe2openai.simulator import ANSWER_PREFIX, Simulator, Step, agent, agent_answer, text

from .agent_cli import BIN_DIR, Run, Sandbox, run_cli, sandbox, unavailable
from .conftest import Running
from .test_team import admin, issue

TASK = "create hello.txt containing exactly: hello from poe"
FILE, CONTENT = "hello.txt", "hello from poe"
QUESTION = "What is the capital of France?"
KEY = "claude-code-test-key"

pytestmark = [pytest.mark.agents, pytest.mark.timeout(300)]


def need_claude_code() -> None:
    """Skip (with the reason) unless the pinned Claude Code is installed and its binary in place
    (some npm versions skip the package's postinstall, which puts the binary there)."""
    reason = unavailable("@anthropic-ai/claude-code", "claude")
    if reason is None:
        probe = subprocess.run([str(BIN_DIR / "claude"), "--version"], capture_output=True, timeout=60, check=False)
        if probe.returncode != 0:
            reason = (
                "Claude Code's binary is a placeholder: run `node install.cjs` in "
                ".ci/agents/node_modules/@anthropic-ai/claude-code"
            )
    if reason:
        pytest.skip(reason)


async def claude_code(gw: Running, box: Sandbox, model: str, prompt: str, key: str = KEY) -> Run:
    """``claude -p`` with the gateway as its Anthropic API, the key as ``x-api-key``."""
    env = {
        "ANTHROPIC_BASE_URL": box.base_url,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    argv = ["claude", "-p", prompt, "--model", model, "--allowedTools", "Write,Read"]
    return await run_cli(box, gw.url, argv, env)


def events(run: Run) -> list[dict[str, Any]]:
    """The Anthropic events of every ``/v1/messages`` answer, in order."""
    chats = run.wire.chats("/messages")
    assert chats, run.describe()
    return [e for ex in chats for e in ex.events() if isinstance(e, dict)]


def wrote_exactly(run: Run) -> None:
    """The task is done: exit 0 and ``hello.txt`` holds the text (a final newline allowed)."""
    path = run.cwd / FILE
    assert run.returncode == 0 and not run.timed_out, run.describe()
    assert path.is_file(), f"{FILE} was not created\n{run.describe()}"
    assert path.read_text() in (CONTENT, CONTENT + "\n"), f"{path.read_text()!r}\n{run.describe()}"


def called_write_with_fragments(run: Run) -> None:
    """Claude Code sent Anthropic tools and got the call back as a ``tool_use`` block whose input
    came only as ``input_json_delta`` fragments."""
    first = run.wire.chats("/messages")[0]
    assert first.path.endswith("?beta=true") and first.request_headers.get("x-api-key") == KEY, run.describe()
    body = first.json()
    assert isinstance(body, dict) and body["stream"] is True and len(body["tools"]) >= 8, run.describe()
    evs = events(run)
    starts = [e["content_block"] for e in evs if e["type"] == "content_block_start"]
    calls = [b for b in starts if b["type"] == "tool_use"]
    assert [c["name"] for c in calls] == ["Write"] and calls[0]["input"] == {}, run.describe()
    fragments = "".join(
        e["delta"]["partial_json"] for e in evs if e["type"] == "content_block_delta" and "partial_json" in e["delta"]
    )
    written = orjson.loads(fragments)
    assert written["file_path"] == str(run.cwd / FILE) and written["content"] == CONTENT, run.describe()
    assert any(e["type"] == "message_delta" and e["delta"]["stop_reason"] == "tool_use" for e in evs)


async def test_claude_code_writes_the_file_with_a_non_claude_bot(gw: Running, sim: Simulator) -> None:
    need_claude_code()
    with sandbox() as box:
        run = await claude_code(gw, box, agent.AGENT_BOT, TASK)
        wrote_exactly(run)
        called_write_with_fragments(run)
    results = [r for r in sim.requests if r.bot == agent.AGENT_BOT and '<tool_result name="Write">' in str(r.body)]
    assert results, run.describe()  # the tool's result went back to the bot, which then answered


async def test_claude_code_keeps_a_thinking_bots_turn(gw: Running, sim: Simulator) -> None:
    need_claude_code()

    def thinking_agent(body: dict[str, Any]) -> list[Step]:
        # Poe's thinking notation first, then what the agent bot does
        return [text("*Thinking...*\n\n> The user wants a file; a write tool makes it.\n\n"), *agent_answer(body)]

    sim.behaviours["deepseek-r1"] = thinking_agent
    with sandbox() as box:
        run = await claude_code(gw, box, "deepseek-r1", TASK)
        wrote_exactly(run)
        called_write_with_fragments(run)
    evs = events(run)
    thinking = [e for e in evs if e["type"] == "content_block_start" and e["content_block"]["type"] == "thinking"]
    signatures = [e for e in evs if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta"]
    assert thinking and len(signatures) == len(thinking), run.describe()
    # Claude Code asks for thinking without its text (display: omitted): only the signature comes
    assert not any(e["type"] == "content_block_delta" and e["delta"]["type"] == "thinking_delta" for e in evs)


async def test_claude_code_prints_a_streamed_answer(gw: Running) -> None:
    need_claude_code()
    with sandbox() as box:
        run = await claude_code(gw, box, agent.AGENT_BOT, QUESTION)
    assert run.returncode == 0 and not run.timed_out, run.describe()
    deltas = [e["delta"]["text"] for e in events(run) if e["type"] == "content_block_delta" and "text" in e["delta"]]
    assert len(deltas) >= 2 and ANSWER_PREFIX + QUESTION in "".join(deltas), run.describe()
    assert ANSWER_PREFIX + QUESTION in " ".join(run.output.split()), run.describe()


async def test_claude_code_shows_the_gateways_error_for_an_unknown_model(gw: Running) -> None:
    need_claude_code()
    with sandbox() as box:
        run = await claude_code(gw, box, "no-such-model", QUESTION)
    chats = run.wire.chats("/messages")
    assert chats and all(ex.status == 404 for ex in chats), run.describe()
    error = orjson.loads(chats[0].response_body)
    assert error["type"] == "error" and error["error"]["type"] == "not_found_error"
    assert run.returncode != 0 and not run.timed_out, run.describe()
    assert "no-such-model" in run.output, run.describe()


async def test_teammates_use_claude_code_with_issued_keys_and_the_page_shows_who_spent_what(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    need_claude_code()
    gw = await start_gateway(settings.replace(poe_api_keys=("team-poe-key",)))
    sim.query_costs[agent.AGENT_BOT] = 40
    alice_id, alice = await issue(http, gw, label="alice", models=["agent-*"], budget_month=100_000)
    bob_id, bob = await issue(http, gw, label="bob", models=["agent-*"], budget_month=30)
    with sandbox() as box:
        run = await claude_code(gw, box, agent.AGENT_BOT, TASK, key=alice)
        wrote_exactly(run)
    assert {r.headers["Authorization"] for r in sim.requests} == {"Bearer team-poe-key"}
    with sandbox() as box:  # bob's first task spends more than his budget...
        wrote_exactly(await claude_code(gw, box, agent.AGENT_BOT, TASK, key=bob))
    status, body = await admin(http, gw, "POST", "/admin/api/usage/sync")
    assert status == 200 and body["matched"] >= 4  # each turn of each task found in Poe's history
    with sandbox() as box:  # ...so his next one stops at once, with the reason shown
        run = await claude_code(gw, box, agent.AGENT_BOT, QUESTION, key=bob)
    assert run.returncode != 0 and not run.timed_out, run.describe()
    assert [ex.status for ex in run.wire.chats("/messages")] == [402], run.describe()
    assert "monthly budget of 30 Poe points" in run.output, run.describe()
    _, listing = await admin(http, gw, "GET", "/admin/api/keys")
    spent = {k["label"]: k["usage"]["month"] for k in listing["client_keys"]}
    assert spent["alice"]["requests"] >= 2 and spent["alice"]["points"] == 40 * spent["alice"]["requests"]
    assert spent["bob"]["points"] >= 80 and spent["bob"]["estimated_points"] == 0
    assert {alice_id, bob_id} == {k["id"] for k in listing["client_keys"]}
