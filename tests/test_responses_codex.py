"""Codex CLI itself, headless (``codex exec``), through the gateway's Responses API, against the
simulator's agent bot (``poe2openai.simulator.agent``).

Codex speaks only the Responses API. It is pinned in ``.ci/agents/package.json`` (its binary
ships inside the npm package) and run by :mod:`tests.agent_cli`: a fresh ``HOME`` and working
directory, a hard timeout, and a network namespace whose only way out is the bridge to the
gateway. Its plugin features are off (they would run ``git ls-remote`` on a public repository).
Without the pinned CLI the tests skip, saying why. The agent bot's own Responses tests below
them run everywhere.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from poe2openai.simulator import Simulator, agent, agent_answer

from .agent_cli import Run, Sandbox, run_cli, sandbox, unavailable
from .conftest import Running

TASK = "create hello.txt containing exactly: hello from poe"
FILE, CONTENT = "hello.txt", "hello from poe"
KEY = "codex-test-key"
CODEX_ENV = {"POE_API_KEY": KEY, "RUST_LOG": "error"}

agents = pytest.mark.agents
slow_timeout = pytest.mark.timeout(300)


def need_codex() -> None:
    reason = unavailable("@openai/codex", "codex")
    if reason:
        pytest.skip(reason)


async def codex(gw: Running, box: Sandbox, model: str, prompt: str) -> Run:
    """``codex exec`` with one ``model_providers`` entry: the gateway, ``wire_api = "responses"``."""
    home = box.home / ".codex"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "poe"\n'
        "[model_providers.poe]\n"
        'name = "poe2openai"\n'
        f'base_url = "{box.base_url}/v1"\n'  # Codex appends /responses
        'env_key = "POE_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
        "[features]\n"
        "plugins = false\n"
        "remote_plugin = false\n"
    )
    argv = ["codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", prompt]
    return await run_cli(box, gw.url, argv, {**CODEX_ENV, "CODEX_HOME": str(home)})


def events_of(run: Run) -> list[list[dict[str, Any]]]:
    """The Responses events of each request Codex made, as it received them."""
    exchanges = run.wire.chats("/responses")
    assert exchanges and all(ex.status == 200 for ex in exchanges), run.describe()
    return [[e for e in ex.events() if isinstance(e, dict)] for ex in exchanges]


def wrote_the_file(run: Run) -> None:
    path = run.cwd / FILE
    assert run.returncode == 0 and not run.timed_out, run.describe()
    assert path.is_file(), f"{FILE} was not created\n{run.describe()}"
    assert path.read_text() in (CONTENT, CONTENT + "\n"), f"{path.read_text()!r}\n{run.describe()}"


def check_streams(turns: list[list[dict[str, Any]]]) -> None:
    """Every stream Codex read: numbered events, exactly one terminal event, last."""
    for events in turns:
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["usage"]["total_tokens"] > 0


@agents
@slow_timeout
async def test_codex_writes_the_file_with_its_shell_tool(gw: Running) -> None:
    need_codex()
    with sandbox() as box:
        # a name Codex does not know: it offers exec_command and others, no apply_patch
        run = await codex(gw, box, agent.AGENT_BOT, TASK)
        wrote_the_file(run)
    turns = events_of(run)
    check_streams(turns)
    request = run.wire.chats("/responses")[0].json()
    assert isinstance(request, dict) and request["stream"] is True and request["store"] is False
    assert "instructions" not in request and request["input"][0]["role"] == "developer"
    calls = [e["item"] for e in turns[0] if e["type"] == "response.output_item.done"]
    assert [(c["type"], c["name"]) for c in calls if c["type"] != "message"] == [("function_call", "exec_command")]
    assert "now contains the requested text" in turns[-1][-1]["response"]["output_text"]
    assert "now contains the requested text" in run.output


@agents
@slow_timeout
async def test_codex_writes_the_file_with_apply_patch(gw: Running, sim: Simulator) -> None:
    need_codex()
    sim.behaviours["gpt-5.5"] = agent_answer  # a name for which Codex offers its free-form apply_patch
    with sandbox() as box:
        run = await codex(gw, box, "gpt-5.5", TASK)
        wrote_the_file(run)
    turns = events_of(run)
    check_streams(turns)
    tools = run.wire.chats("/responses")[0].json()["tools"]  # type: ignore[index]
    assert [t["type"] for t in tools if t.get("name") == "apply_patch"] == ["custom"]
    done = [e["item"] for e in turns[0] if e["type"] == "response.output_item.done"]
    (call,) = [item for item in done if item["type"] != "message"]
    assert call["type"] == "custom_tool_call" and call["name"] == "apply_patch"
    assert call["input"] == f"*** Begin Patch\n*** Add File: {FILE}\n+{CONTENT}\n*** End Patch"
    second = run.wire.chats("/responses")[1].json()
    assert isinstance(second, dict)
    assert [i["type"] for i in second["input"][-2:]] == ["custom_tool_call", "custom_tool_call_output"]


# --- the agent bot through the Responses API, with the openai SDK -----------------------------

EXEC: dict[str, Any] = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command in a PTY, returning output or a session ID for ongoing interaction.",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
    "strict": False,
}
APPLY_PATCH: dict[str, Any] = {
    "type": "custom",
    "name": "apply_patch",
    "description": "The `apply_patch` tool can be used to edit files. This is a FREEFORM tool.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'},
}


async def test_agent_bot_calls_a_free_form_patch_tool_with_raw_input(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="agent-codex", input=TASK, tools=[EXEC, APPLY_PATCH]) as stream:
        final = await stream.get_final_response()
    (call,) = [o for o in final.output if o.type == "custom_tool_call"]
    assert call.name == "apply_patch"
    assert call.input == f"*** Begin Patch\n*** Add File: {FILE}\n+{CONTENT}\n*** End Patch"
    done = await client.responses.create(
        model="agent-codex",
        tools=[EXEC, APPLY_PATCH],
        input=[
            {"role": "user", "content": TASK},
            {"type": "custom_tool_call", "call_id": call.call_id, "name": "apply_patch", "input": call.input},
            {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Success. A hello.txt"},
        ],
    )
    assert done.output_text.startswith(f"Done: {FILE} now contains the requested text.")


async def test_agent_bot_uses_the_shell_tool_without_a_patch_tool(client: openai.AsyncOpenAI) -> None:
    r = await client.responses.create(model="agent-codex", input=TASK, tools=[EXEC])
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "exec_command" and "printf" in call.arguments and FILE in call.arguments
