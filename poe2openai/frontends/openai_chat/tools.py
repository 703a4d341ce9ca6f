"""OpenAI function tools in a request: parse and validate ``tools``, ``tool_choice``,
``parallel_tool_calls``, and the pairing of ``tool`` messages with earlier calls."""

from __future__ import annotations

import re
from typing import Any

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.frontends.openai_chat.request import ChatRequest

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def _tool(raw: Any, i: int) -> ToolSpec:
    where = f"tools[{i}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", where)
    kind = raw.get("type", "function")
    if kind != "function":
        raise bad_request(f"{where}.type must be 'function' (got {shown(kind)})", f"{where}.type")
    fn = raw.get("function")
    if not isinstance(fn, dict):
        raise bad_request(f"{where}.function must be an object", f"{where}.function")
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{where}.function.name is required", f"{where}.function.name")
    if not _NAME.fullmatch(name):
        raise bad_request(
            f"{where}.function.name {shown(name)} may only use letters, digits, _ . : - (at most 128)",
            f"{where}.function.name",
        )
    desc = fn.get("description") or ""
    if not isinstance(desc, str):
        raise bad_request(f"{where}.function.description must be a string", f"{where}.function.description")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}  # a fresh one: the spec may be changed later
    if not isinstance(params, dict):
        raise bad_request(f"{where}.function.parameters must be a JSON schema object", f"{where}.function.parameters")
    check_nesting(params, f"{where}.function.parameters")
    return ToolSpec(name, desc, params)


def tool_plan(req: ChatRequest) -> ToolPlan:
    """Validate the tool fields of a request and the tool messages of its history."""
    raw = req.raw
    tools_raw = raw.get("tools")
    if tools_raw is None:
        tools: tuple[ToolSpec, ...] = ()
    elif not isinstance(tools_raw, list):
        raise bad_request("tools must be a list", "tools")
    else:
        tools = tuple(_tool(t, i) for i, t in enumerate(tools_raw))
    by_name: dict[str, ToolSpec] = {}
    for i, t in enumerate(tools):
        if t.name in by_name:
            raise bad_request(
                f"tools[{i}].function.name {shown(t.name)} is declared twice", f"tools[{i}].function.name"
            )
        by_name[t.name] = t

    choice, forced = "auto", None
    choice_raw = raw.get("tool_choice")
    if isinstance(choice_raw, str):
        if choice_raw not in ("auto", "none", "required"):
            raise bad_request("tool_choice must be auto, none, required or a function", "tool_choice")
        choice = choice_raw
    elif isinstance(choice_raw, dict):
        fn = choice_raw.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if choice_raw.get("type") != "function" or not isinstance(name, str):
            shape = '{"type": "function", "function": {"name": ...}}'
            raise bad_request(f"tool_choice must look like {shape}", "tool_choice")
        if name not in by_name:
            raise bad_request(f"tool_choice names {shown(name)}, which is not in tools", "tool_choice.function.name")
        choice, forced = "named", name
    elif choice_raw is not None:
        raise bad_request("tool_choice must be a string or an object", "tool_choice")
    if choice in ("required", "named") and not tools:
        raise bad_request(f"tool_choice {shown(choice if choice == 'required' else forced)} needs tools", "tool_choice")

    parallel_raw = raw.get("parallel_tool_calls", True)
    if parallel_raw is not None and not isinstance(parallel_raw, bool):
        raise bad_request("parallel_tool_calls must be true or false", "parallel_tool_calls")

    _check_pairing(req)
    return ToolPlan(tools, choice, forced, parallel_raw is not False, by_name)


def _check_pairing(req: ChatRequest) -> None:
    """Every tool message answers a call made earlier in the conversation."""
    seen: set[str] = set()
    for i, m in enumerate(req.messages):
        for call in m.tool_calls:
            seen.add(call.id)
        if m.role == "tool" and m.tool_call_id not in seen:
            raise bad_request(
                f"messages[{i}].tool_call_id {shown(m.tool_call_id)} answers no earlier assistant tool call",
                f"messages[{i}].tool_call_id",
            )
