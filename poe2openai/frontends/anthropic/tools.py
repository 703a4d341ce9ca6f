"""Anthropic tools in a request: ``tools`` and ``tool_choice`` to the neutral :class:`ToolPlan`.

- Client tools (``{"name", "description", "input_schema"}``, ``type`` absent or ``custom``)
  become :class:`ToolSpec`\\s; the engine offers them natively or teaches them in the prompt,
  as for every dialect.
- Tools with ``defer_loading: true`` (Anthropic's tool search) are not shown to the bot until
  the conversation loads them (a ``tool_reference`` in a tool result, or an earlier call);
  calls to them are recognised all the same.
- Server tools: ``web_search_*`` asks for the bot's ``web_search`` parameter where the bot has
  one; the others (code execution, web fetch, Anthropic-defined client tools, MCP toolsets)
  have no meaning for a Poe bot and are ignored.
- ``tool_choice``: ``auto``, ``any`` (must call one), ``tool`` (must call that one), ``none``;
  ``disable_parallel_tool_use``.
"""

from __future__ import annotations

import re
from typing import Any

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.errors import bad_request, check_nesting, shown

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_CHOICES = {"auto": "auto", "any": "required", "tool": "named", "none": "none"}


def _tool(raw: dict[str, Any], where: str) -> ToolSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"{where}.name: Field required", f"{where}.name", "missing_required_parameter")
    if not _NAME.fullmatch(name):
        raise bad_request(
            f"{where}.name {shown(name)} may only use letters, digits, _ . : - (at most 128)", f"{where}.name"
        )
    desc = raw.get("description") or ""
    if not isinstance(desc, str):
        raise bad_request(f"{where}.description must be a string", f"{where}.description")
    schema = raw.get("input_schema")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise bad_request(f"{where}.input_schema must be a JSON schema object", f"{where}.input_schema")
    check_nesting(schema, f"{where}.input_schema")
    return ToolSpec(name, desc, schema)


def tool_plan(tools_raw: Any, choice_raw: Any, loaded: set[str]) -> tuple[ToolPlan, bool]:
    """The tool plan, and whether a web search server tool was offered. ``loaded``: names of
    deferred tools the conversation has loaded (or called)."""
    if tools_raw is None:
        tools_raw = []
    if not isinstance(tools_raw, list):
        raise bad_request("tools must be a list", "tools")
    shown_tools: list[ToolSpec] = []
    by_name: dict[str, ToolSpec] = {}
    web_search = False
    for i, raw in enumerate(tools_raw):
        where = f"tools[{i}]"
        if not isinstance(raw, dict):
            raise bad_request(f"{where} must be an object", where)
        kind = raw.get("type")
        if kind not in (None, "custom"):
            if isinstance(kind, str) and kind.startswith("web_search"):
                web_search = True
            continue
        spec = _tool(raw, where)
        if spec.name in by_name:
            raise bad_request(f"{where}.name {shown(spec.name)} is declared twice", f"{where}.name")
        by_name[spec.name] = spec
        if raw.get("defer_loading") is not True or spec.name in loaded:
            shown_tools.append(spec)

    choice, forced, parallel = "auto", None, True
    asked: Any = None
    if choice_raw is not None:
        if not isinstance(choice_raw, dict):
            raise bad_request('tool_choice must be an object such as {"type": "auto"}', "tool_choice")
        asked = choice_raw.get("type")
        if asked not in _CHOICES:
            raise bad_request(
                f"tool_choice.type must be auto, any, tool or none (got {shown(asked)})", "tool_choice.type"
            )
        choice = _CHOICES[asked]
        if asked == "tool":
            name = choice_raw.get("name")
            if not isinstance(name, str) or name not in by_name:
                raise bad_request(f"tool_choice.name {shown(name)} is not one of the tools", "tool_choice.name")
            forced = name
            if by_name[name] not in shown_tools:
                shown_tools.append(by_name[name])
        flag = choice_raw.get("disable_parallel_tool_use")
        if flag is not None and not isinstance(flag, bool):
            raise bad_request(
                "tool_choice.disable_parallel_tool_use must be true or false", "tool_choice.disable_parallel_tool_use"
            )
        parallel = flag is not True
    if choice in ("required", "named") and not by_name:
        raise bad_request(f"tool_choice {shown(asked)} needs tools", "tool_choice")
    return ToolPlan(tuple(shown_tools), choice, forced, parallel, by_name), web_search
