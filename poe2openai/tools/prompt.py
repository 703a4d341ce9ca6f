"""Tools in the prompt: the instruction block, and the conversation's earlier calls and results
written back in the same notation, so the bot sees one consistent history."""

from __future__ import annotations

from typing import Any

import orjson

from poe2openai.conversation import Message, ToolPlan, ToolSpec
from poe2openai.poe.query import POE_ROLES, PoeAttachment, poe_message


def instructions(plan: ToolPlan) -> str:
    """The block added to the system prompt."""
    lines = [
        "# Tools",
        "",
        "You can call tools. To call one, write exactly this block:",
        "",
        "<tool_call>",
        "<name>TOOL_NAME</name>",
        '<arguments>{"parameter": "value"}</arguments>',
        "</tool_call>",
        "",
        "Rules:",
        "- <arguments> holds one JSON object that matches the tool's parameters.",
        # clients such as pydantic-ai take the first text of a stream for the final answer
        "- When you call a tool, start your answer with the block: no text before it. Write"
        " nothing after your last block: you will get the results in the next message.",
    ]
    if any(t.freeform for t in plan.tools):
        lines += [
            "- A tool marked free-form takes raw text, not JSON: put the text, exactly as the tool"
            " expects it, in <input> instead of <arguments>:",
            "  <tool_call>",
            "  <name>TOOL_NAME</name>",
            "  <input>",
            "  THE RAW TEXT",
            "  </input>",
            "  </tool_call>",
        ]
    if plan.parallel:
        lines.append("- To call several tools at once, write one block per call, one after another.")
    else:
        lines.append("- Call at most one tool per answer.")
    if plan.choice == "required":
        lines.append("- You must call at least one tool in this answer.")
    elif plan.choice == "named":
        lines.append(f"- You must call the tool `{plan.forced}` in this answer.")
    else:
        lines.append("- If no tool is needed, answer normally, without any block.")
    lines += [
        "- Never write a tool's result yourself; wait for it.",
        "",
        "Available tools:",
    ]
    for t in plan.tools:
        lines += ["", f"## {t.name}"]
        if t.description:
            lines.append(t.description.strip())
        if t.freeform:
            lines.append("Input: free-form text in <input> (not JSON)")
            if t.input_format:
                lines.append("Input format: " + t.input_format.strip())
        else:
            lines.append("Parameters (JSON Schema): " + orjson.dumps(t.parameters).decode())
    return "\n".join(lines)


def render_call(name: str, arguments: str, freeform: bool = False) -> str:
    """One earlier call in the taught notation (a free-form tool's raw input in ``<input>``)."""
    if freeform:
        return f"<tool_call>\n<name>{name}</name>\n<input>\n{arguments}\n</input>\n</tool_call>"
    return f"<tool_call>\n<name>{name}</name>\n<arguments>{arguments or '{}'}</arguments>\n</tool_call>"


def render_result(name: str, content: str) -> str:
    """One tool result."""
    return f'<tool_result name="{name}">\n{content}\n</tool_result>'


def _names(messages: list[Message]) -> dict[str, str]:
    return {c.id: c.name for m in messages for c in m.tool_calls}


def render_messages(
    messages: list[Message],
    plan: ToolPlan,
    attachments: dict[int, list[PoeAttachment]],
    instruct: bool = True,
) -> list[dict[str, Any]]:
    """The Poe messages with tool history rendered (and the instructions when tools are offered)."""
    names = _names(messages)
    out: list[dict[str, Any]] = []
    results: list[str] = []

    def flush_results() -> None:
        if results:
            out.append(poe_message("user", "\n\n".join(results)))
            results.clear()

    for i, m in enumerate(messages):
        if m.role == "tool":
            results.append(render_result(names.get(m.tool_call_id or "", "tool"), m.text))
            continue
        flush_results()
        out.append(poe_message(POE_ROLES[m.role], _text(m, plan.by_name), attachments.get(i)))
    flush_results()
    if plan.active and instruct:
        block = instructions(plan)
        system = next((m for m in out if m["role"] == "system"), None)
        if system is None:
            out.insert(0, poe_message("system", block))
        else:
            system["content"] = f"{system['content']}\n\n{block}" if system["content"] else block
    return out


def _freeform(tools: dict[str, ToolSpec], name: str) -> bool:
    spec = tools.get(name)
    return spec is not None and spec.freeform


def _text(m: Message, tools: dict[str, ToolSpec]) -> str:
    if not m.tool_calls:
        return m.text
    calls = "\n".join(render_call(c.name, c.arguments, _freeform(tools, c.name)) for c in m.tool_calls)
    return f"{m.text}\n\n{calls}" if m.text else calls
