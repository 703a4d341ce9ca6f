"""Real coding agents through the gateway: Cline and Continue, headless and offline, against the
simulator's agent bot (``poe2openai.simulator.agent``).

The CLI tests carry the ``agents`` marker (``pytest -m agents`` runs only them); they need the
pinned CLIs in ``.ci/agents`` (``make agents``) and skip, saying why, when those are missing.
The bot's own tests below them run everywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.simulator import ANSWER_PREFIX, Event, Simulator, agent, agent_answer
from poe2openai.tools.prompt import instructions

from .agent_cli import Run, Sandbox, run_cli, sandbox, unavailable
from .conftest import Running, user

TASK = "create hello.txt containing exactly: hello from poe"
FILE, CONTENT = "hello.txt", "hello from poe"
QUESTION = "What is the capital of France?"
UNKNOWN = "no-such-model"
KEY = "agent-test-key"

agents = pytest.mark.agents
slow_timeout = pytest.mark.timeout(300)


def need(package: str, command: str) -> None:
    """Skip (with the reason) when a CLI is not installed."""
    reason = unavailable(package, command)
    if reason:
        pytest.skip(reason)


def wrote_exactly(run: Run) -> None:
    """The task is done: exit 0 and ``hello.txt`` holds the text (a final newline allowed)."""
    path = run.cwd / FILE
    assert run.returncode == 0 and not run.timed_out, run.describe()
    assert path.is_file(), f"{FILE} was not created\n{run.describe()}"
    assert path.read_text() in (CONTENT, CONTENT + "\n"), f"{path.read_text()!r}\n{run.describe()}"


def used_native_tools(run: Run) -> list[str]:
    """The client sent OpenAI ``tools`` and read back streamed ``tool_calls`` deltas with an index;
    the names of the tools called."""
    chats = run.wire.chats()
    assert chats, run.describe()
    first = chats[0].json()
    assert isinstance(first, dict) and len(first.get("tools") or []) >= 3, run.describe()
    deltas = [
        tc
        for ex in chats
        for e in ex.events()
        if isinstance(e, dict)
        for c in e.get("choices") or []
        for tc in (c.get("delta") or {}).get("tool_calls") or []
    ]
    assert deltas and all(isinstance(d.get("index"), int) for d in deltas), run.describe()
    return [d["function"]["name"] for d in deltas if d.get("id")]


def streamed_answer(run: Run, expected: str) -> None:
    """The answer came as a stream of several content deltas, and the CLI printed it."""
    assert run.returncode == 0 and not run.timed_out, run.describe()
    chats = run.wire.chats()
    assert chats, run.describe()
    body = chats[0].json()
    assert isinstance(body, dict) and body.get("stream") is True, run.describe()
    assert chats[0].response_headers.get("content-type", "").startswith("text/event-stream"), run.describe()
    contents = [
        c["delta"]["content"]
        for e in chats[0].events()
        if isinstance(e, dict)
        for c in e.get("choices") or []
        if (c.get("delta") or {}).get("content")
    ]
    assert len(contents) >= 2 and expected in "".join(contents), run.describe()
    assert expected in " ".join(run.output.split()), run.describe()


def shows_gateway_error(run: Run) -> None:
    """Non-zero exit, the gateway's own message on screen, and no retry loop."""
    chats = run.wire.chats()
    assert chats and all(ex.status == 404 for ex in chats), run.describe()
    error = json.loads(chats[0].response_body)["error"]
    assert error["code"] == "model_not_found" and UNKNOWN in error["message"]
    assert run.returncode != 0 and not run.timed_out, run.describe()
    assert error["message"] in " ".join(run.output.split()), run.describe()
    assert len(chats) == 1, run.describe()  # no retries on a 404


@agents
async def test_a_cli_run_sees_only_loopback_a_fresh_home_and_the_gateway(gw: Running) -> None:
    with sandbox() as box:
        if box.namespace is None:
            pytest.skip("network namespaces unavailable here (unshare --net failed)")
        script = (
            "import os, urllib.request; print(open('/proc/net/dev').read()); print('HOME=' + os.environ['HOME']);"
            f"print(urllib.request.urlopen('{box.base_url}/v1/models').status)"
        )
        run = await run_cli(box, gw.url, ["python3", "-c", script])
    assert run.returncode == 0, run.describe()
    interfaces = [line.split(":")[0].strip() for line in run.stdout.splitlines() if re.match(r"\s*\w+:\s", line)]
    assert interfaces == ["lo"], run.stdout
    assert f"HOME={box.home}" in run.stdout and "\n200\n" in run.stdout
    assert [ex.path for ex in run.wire.exchanges()] == ["/v1/models"]


# --- Cline ---------------------------------------------------------------------------------

CLINE_ENV = {
    "CLINE_SESSION_BACKEND_MODE": "local",  # no hub daemon that outlives the run
    "CLINE_NO_AUTO_UPDATE": "1",
}


async def cline(gw: Running, box: Sandbox, model: str, prompt: str, yolo: bool = True) -> Run:
    """``cline auth`` for an OpenAI-compatible provider at the gateway, then one headless task:
    ``cline -y`` (yolo: a few tools, ends with ``submit_and_exit``) or, with ``yolo`` false, the
    default act mode with auto-approve (about 25 tools, no completion tool)."""
    settings = box.home / ".cline" / "data" / "settings"
    settings.mkdir(parents=True)
    (settings / "global-settings.json").write_text(json.dumps({"telemetryOptOut": True, "autoUpdateEnabled": False}))
    auth = await run_cli(
        box,
        gw.url,
        ["cline", "auth", "-p", "openai", "-k", KEY, "-b", f"{box.base_url}/v1", "-m", model],
        CLINE_ENV,
    )
    assert auth.returncode == 0, auth.describe()
    mode = ["-y"] if yolo else ["--auto-approve", "true"]
    return await run_cli(box, gw.url, ["cline", *mode, prompt], CLINE_ENV)


@agents
@slow_timeout
async def test_cline_writes_the_file(gw: Running) -> None:
    need("cline", "cline")
    with sandbox() as box:
        run = await cline(gw, box, agent.AGENT_BOT, TASK)
        wrote_exactly(run)
        assert used_native_tools(run) == ["editor", "submit_and_exit"], run.describe()


@agents
@slow_timeout
async def test_cline_in_act_mode_writes_the_file_with_apply_patch_for_a_gpt_model(gw: Running) -> None:
    need("cline", "cline")
    with sandbox() as box:
        # act mode and a GPT-5 name: Cline offers apply_patch (not editor) among some 25 tools
        run = await cline(gw, box, "agent-gpt-5", TASK, yolo=False)
        wrote_exactly(run)
        assert used_native_tools(run) == ["apply_patch"], run.describe()


@agents
@slow_timeout
async def test_cline_streams_a_plain_answer(gw: Running) -> None:
    need("cline", "cline")
    with sandbox() as box:
        run = await cline(gw, box, agent.AGENT_BOT, QUESTION)
        streamed_answer(run, ANSWER_PREFIX + QUESTION)


@agents
@slow_timeout
async def test_cline_shows_the_gateways_error_for_an_unknown_model(gw: Running) -> None:
    need("cline", "cline")
    with sandbox() as box:
        shows_gateway_error(await cline(gw, box, UNKNOWN, QUESTION))


# --- Continue ------------------------------------------------------------------------------

CONTINUE_ENV = {
    "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
    "CONTINUE_METRICS_ENABLED": "0",
    "CONTINUE_CLI_AUTO_UPDATED": "1",  # its update check never installs anything
    "FORCE_NO_TTY": "true",
}


async def continue_cli(gw: Running, box: Sandbox, model: str, prompt: str) -> Run:
    """``cn -p`` with a config.yaml whose one model is ``provider: openai`` at the gateway."""
    config = box.home / "config.yaml"
    config.write_text(
        "name: poe2openai agent test\nversion: 1.0.0\nschema: v1\nmodels:\n"
        f"  - name: gateway\n    provider: openai\n    model: {model}\n"
        f"    apiBase: {box.base_url}/v1\n    apiKey: {KEY}\n    roles: [chat, edit, apply]\n"
    )
    index = box.home / ".continue" / "index"
    index.mkdir(parents=True)
    (index / "globalContext.json").write_text(json.dumps({"autoUpdateCli": False}))
    return await run_cli(box, gw.url, ["cn", "--config", str(config), "-p", prompt, "--allow", "*"], CONTINUE_ENV)


@agents
@slow_timeout
async def test_continue_writes_the_file(gw: Running) -> None:
    need("@continuedev/cli", "cn")
    with sandbox() as box:
        run = await continue_cli(gw, box, agent.AGENT_BOT, TASK)
        wrote_exactly(run)
        assert used_native_tools(run) == ["Write"], run.describe()


@agents
@slow_timeout
async def test_continue_streams_a_plain_answer(gw: Running) -> None:
    need("@continuedev/cli", "cn")
    with sandbox() as box:
        run = await continue_cli(gw, box, agent.AGENT_BOT, QUESTION)
        streamed_answer(run, ANSWER_PREFIX + QUESTION)


@agents
@slow_timeout
async def test_continue_shows_the_gateways_error_for_an_unknown_model(gw: Running) -> None:
    need("@continuedev/cli", "cn")
    with sandbox() as box:
        shows_gateway_error(await continue_cli(gw, box, UNKNOWN, QUESTION))


# --- the agent bot itself, through the gateway with the openai SDK ---------------------------


def tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAI function tool."""
    params = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


STRING: dict[str, Any] = {"type": "string"}
# The file tools of several agents, as they describe them (trimmed).
CLAUDE_WRITE = tool(
    "Write",
    "Writes a file to the local filesystem.",
    {
        "file_path": {"type": "string", "description": "The absolute path to the file to write (must be absolute)"},
        "content": {"type": "string", "description": "The content to write to the file"},
    },
    ["file_path", "content"],
)
CLAUDE_EDIT = tool(
    "Edit",
    "Performs exact string replacements in files.",
    {"file_path": STRING, "old_string": STRING, "new_string": STRING, "replace_all": {"type": "boolean"}},
    ["file_path", "old_string", "new_string"],
)
BASH = tool("Bash", "Executes a given bash command.", {"command": STRING, "timeout": {"type": "number"}}, ["command"])
CLINE_EDITOR = tool(
    "editor",
    "An editor for controlled filesystem edits. Replaces old_text with new_text, or creates the file with "
    "new_text if it does not exist.",
    {
        "path": {"type": "string", "description": "The absolute path for the action to be performed on"},
        "old_text": {"anyOf": [STRING, {"type": "null"}]},
        "new_text": STRING,
        "insert_line": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
    ["path", "new_text"],
)
CLINE_SUBMIT = tool(
    "submit_and_exit",
    "Submit the final answer and exit the conversation.",
    {"summary": {"type": "string", "minLength": 10}, "verified": {"type": "boolean"}},
    ["summary", "verified"],
)
CONTINUE_WRITE = tool(
    "Write",
    "Write content to a file at the specified path",
    {"filepath": {"type": "string", "description": "The path to the file to write"}, "content": STRING},
    ["filepath", "content"],
)
CONTINUE_READ = tool("Read", "Read the contents of a file", {"filepath": STRING}, ["filepath"])
CONTINUE_EXIT = tool("Exit", "Exit the current process with status code 1, indicating a failure or error", {}, [])
APPLY_PATCH = tool(
    "apply_patch",
    "Use `apply_patch` to edit files: *** Begin Patch, *** Add File: <path>, *** End Patch.",
    {"input": STRING},
    ["input"],
)
CODEX_EXEC = tool(
    "exec_command",
    "Runs a command in a PTY, returning output or a session ID for ongoing interaction.",
    {"cmd": {"type": "string", "description": "Shell command to execute."}, "workdir": STRING},
    ["cmd"],
)
CODEX_INPUT = tool(
    "request_user_input", "Ask the user.", {"questions": {"type": "array", "items": STRING}}, ["questions"]
)


def ask(text: str, system: str | None = None) -> list[dict[str, Any]]:
    """A conversation: an optional system prompt and one user message."""
    return ([{"role": "system", "content": system}] if system else []) + user(text)


async def call_of(client: openai.AsyncOpenAI, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
    """The one tool call the agent bot makes (streamed, read with the SDK's helper)."""
    async with client.chat.completions.stream(model=agent.AGENT_BOT, messages=messages, tools=tools) as s:  # type: ignore[arg-type]
        final = await s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls" and calls and len(calls) == 1, final
    return calls[0]


def after(messages: list[dict[str, Any]], call: Any, result: str) -> list[dict[str, Any]]:
    """The conversation with the bot's call and the tool's result appended."""
    tc = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }
    return [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [tc]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]


async def test_agent_bot_uses_claude_codes_write_with_an_absolute_path(client: openai.AsyncOpenAI) -> None:
    messages = ask(TASK, "You are Claude Code.\n<env>\nWorking directory: /work/proj\n</env>")
    call = await call_of(client, messages, [CLAUDE_EDIT, BASH, CLAUDE_WRITE])
    assert call.function.name == "Write"
    assert json.loads(call.function.arguments) == {"file_path": "/work/proj/hello.txt", "content": CONTENT}


async def test_agent_bot_fills_only_what_clines_editor_needs_then_submits(client: openai.AsyncOpenAI) -> None:
    messages = ask(TASK, "Environment:\n<env>\n4. Working Directory: /tmp/w\n</env>")
    tools = [CLINE_SUBMIT, CLINE_EDITOR]
    call = await call_of(client, messages, tools)
    assert call.function.name == "editor"
    assert json.loads(call.function.arguments) == {"path": "/tmp/w/hello.txt", "new_text": CONTENT}
    done = await call_of(client, after(messages, call, "File created successfully at: /tmp/w/hello.txt"), tools)
    assert done.function.name == "submit_and_exit"
    args = json.loads(done.function.arguments)
    assert args["verified"] is True and "hello.txt" in args["summary"] and len(args["summary"]) >= 10


async def test_agent_bot_writes_relative_paths_for_continue_and_never_calls_exit(client: openai.AsyncOpenAI) -> None:
    messages = ask(TASK)
    tools = [CONTINUE_READ, CONTINUE_EXIT, CONTINUE_WRITE]
    call = await call_of(client, messages, tools)
    assert call.function.name == "Write"
    assert json.loads(call.function.arguments) == {"filepath": FILE, "content": CONTENT}
    final = await client.chat.completions.create(
        model=agent.AGENT_BOT, messages=after(messages, call, "Successfully created file: hello.txt"), tools=tools
    )
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert f"{FILE} now contains the requested text" in (final.choices[0].message.content or "")


async def test_agent_bot_adds_the_file_with_apply_patch_when_that_is_the_only_writer(
    client: openai.AsyncOpenAI,
) -> None:
    call = await call_of(client, ask(TASK), [CONTINUE_READ, APPLY_PATCH])
    assert call.function.name == "apply_patch"
    patch = json.loads(call.function.arguments)["input"]
    assert patch == f"*** Begin Patch\n*** Add File: {FILE}\n+{CONTENT}\n*** End Patch"


async def test_agent_bot_writes_from_codexs_shell_and_the_command_works(
    client: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    messages = [
        {"role": "developer", "content": "You are Codex."},
        {"role": "user", "content": "<environment_context>\n  <cwd>/somewhere</cwd>\n</environment_context>"},
        {"role": "user", "content": "create hello.txt containing exactly: it's 'quoted' $HOME"},
    ]
    call = await call_of(client, messages, [CODEX_INPUT, CODEX_EXEC])
    assert call.function.name == "exec_command"
    args = json.loads(call.function.arguments)
    assert list(args) == ["cmd"]
    subprocess.run(["sh", "-c", args["cmd"]], cwd=tmp_path, check=True)
    assert (tmp_path / FILE).read_text() == "it's 'quoted' $HOME"


async def test_agent_bot_calls_the_tool_the_client_forces(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=agent.AGENT_BOT,
        messages=ask(TASK),
        tools=[CONTINUE_WRITE, CONTINUE_READ],
        tool_choice={"type": "function", "function": {"name": "Read"}},
    )
    calls = r.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "Read"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"filepath": FILE}  # type: ignore[union-attr]


async def test_agent_bot_answers_a_plain_question_in_many_small_events(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    stream = await client.chat.completions.create(model="agent-anything", messages=ask(QUESTION), stream=True)
    contents = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(contents) == ANSWER_PREFIX + QUESTION
    steps = agent_answer(sim.bodies("agent-anything")[-1])
    texts = [s.data["text"] for s in steps if isinstance(s, Event) and s.name == "text"]
    assert len(texts) > 5 and max(len(t) for t in texts) <= agent.PIECE


def test_agent_bot_splits_the_tool_call_tags_across_events() -> None:
    plan = ToolPlan(tools=(ToolSpec("Write", "Write a file", CONTINUE_WRITE["function"]["parameters"]),))
    body = {"query": [{"role": "system", "content": instructions(plan)}, {"role": "user", "content": TASK}]}
    texts = [s.data["text"] for s in agent_answer(body) if isinstance(s, Event) and s.name == "text"]
    assert "<tool_call>" in "".join(texts) and not any("<tool_call>" in t for t in texts)


def test_agent_bot_reads_back_every_tool_the_gateway_describes() -> None:
    specs = tuple(
        ToolSpec(t["function"]["name"], t["function"]["description"], t["function"]["parameters"])
        for t in (CLAUDE_WRITE, CLINE_EDITOR, CONTINUE_EXIT, APPLY_PATCH)
    )
    system = "## Not a tool\nParameters (JSON Schema): {}\n\n" + instructions(ToolPlan(tools=specs))
    parsed = agent.parse_tools(system)
    assert [(t.name, t.schema) for t in parsed] == [(s.name, s.parameters) for s in specs]
    assert parsed[1].description == CLINE_EDITOR["function"]["description"]
