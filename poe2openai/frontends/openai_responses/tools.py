"""Tools of a Responses request: ``tools``, ``tool_choice``, ``parallel_tool_calls``.

- ``function`` tools (``strict`` accepted; the gateway checks nothing more than a schema);
- ``custom`` tools: free-form text input, optionally described by a ``grammar`` format (Codex's
  ``apply_patch``); their calls come back as ``custom_tool_call`` with the raw ``input``;
- ``namespace`` tools (Codex groups function tools this way): the functions inside are offered
  as ``NAMESPACE.NAME`` and their calls come back with ``name`` and ``namespace`` apart; the
  ``functions`` namespace is the default one, offered under the bare names;
- hosted tools (``web_search``, ``file_search``, ``tool_search``, …): a web search becomes the
  bot's ``web_search`` parameter where the bot has one; the others are ignored, since refusing
  them would break every request of a client that always sends them.

Tools can also arrive in ``additional_tools`` input items (Codex, for some models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.errors import bad_request, check_nesting, shown

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
WEB_SEARCH_TYPES = frozenset(
    {"web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26"}
)
DEFAULT_NAMESPACE = "functions"
MAX_FORMAT = 20_000  # characters of a custom tool's grammar shown to the bot


@dataclass(slots=True)
class Tools:
    """The tools of one request, as the bot sees them and as the client named them."""

    specs: list[ToolSpec] = field(default_factory=list)
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # offered name -> (namespace, name)
    web_search: bool = False

    def offered_name(self, name: str, namespace: str | None) -> str:
        """The name under which a call of ``namespace``/``name`` is known to the bot."""
        if not namespace or namespace == DEFAULT_NAMESPACE:
            return name
        return f"{namespace}.{name}"


def _string(raw: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise bad_request(f"{where}.{key} must be a {'non-empty ' if required else ''}string", f"{where}.{key}")
    return value


def _name(raw: dict[str, Any], where: str) -> str:
    name = _string(raw, "name", where, required=True)
    if not _NAME.fullmatch(name):
        raise bad_request(
            f"{where}.name {shown(name)} may only use letters, digits, _ . : - (at most 128)", f"{where}.name"
        )
    return name


def _function(raw: dict[str, Any], where: str, name: str) -> ToolSpec:
    params = raw.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise bad_request(f"{where}.parameters must be a JSON schema object", f"{where}.parameters")
    check_nesting(params, f"{where}.parameters")
    strict = raw.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"{where}.strict must be true or false", f"{where}.strict")
    return ToolSpec(name, _string(raw, "description", where), params)


def _custom(raw: dict[str, Any], where: str, name: str) -> ToolSpec:
    fmt = raw.get("format")
    described = ""
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise bad_request(f"{where}.format must be an object", f"{where}.format")
        kind = fmt.get("type")
        if kind == "grammar":
            syntax = _string(fmt, "syntax", f"{where}.format") or "lark"
            definition = _string(fmt, "definition", f"{where}.format", required=True)
            if len(definition) > MAX_FORMAT:
                definition = definition[:MAX_FORMAT] + "\n…"
            described = f"text matching this {syntax} grammar:\n{definition}"
        elif kind != "text":
            message = f"{where}.format.type must be text or grammar (got {shown(kind)})"
            raise bad_request(message, f"{where}.format.type")
    return ToolSpec(name, _string(raw, "description", where), {}, freeform=True, input_format=described)


def _add(tools: Tools, spec: ToolSpec, where: str, seen: set[str], namespace: str | None) -> None:
    offered = tools.offered_name(spec.name, namespace)
    if offered in seen:
        raise bad_request(f"{where}.name {shown(offered)} is declared twice", f"{where}.name")
    seen.add(offered)
    if namespace:
        tools.namespaced[offered] = (namespace, spec.name)
    if offered != spec.name:
        spec = ToolSpec(offered, spec.description, spec.parameters, spec.freeform, spec.input_format)
    tools.specs.append(spec)


def _tool(raw: Any, where: str, tools: Tools, seen: set[str], namespace: str | None = None) -> None:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", where)
    kind = raw.get("type", "function")
    if kind == "function":
        name = _name(raw, where)
        _add(tools, _function(raw, where, name), where, seen, namespace)
    elif kind == "custom":
        name = _name(raw, where)
        _add(tools, _custom(raw, where, name), where, seen, namespace)
    elif kind == "namespace" and namespace is None:
        ns = _name(raw, where)
        inner = raw.get("tools")
        if not isinstance(inner, list):
            raise bad_request(f"{where}.tools must be a list", f"{where}.tools")
        for j, t in enumerate(inner):
            _tool(t, f"{where}.tools[{j}]", tools, seen, ns)
    elif kind in WEB_SEARCH_TYPES:
        tools.web_search = True
    elif not isinstance(kind, str):
        raise bad_request(f"{where}.type must be a string", f"{where}.type")
    # any other hosted tool: ignored (the bot cannot run it, and refusing it breaks clients)


def read_tools(raw: Any, extra: list[tuple[str, list[Any]]]) -> Tools:
    """``tools`` (and the tool lists of ``additional_tools`` input items, with their places)."""
    tools = Tools()
    seen: set[str] = set()
    if raw is not None:
        if not isinstance(raw, list):
            raise bad_request("tools must be a list", "tools")
        for i, t in enumerate(raw):
            _tool(t, f"tools[{i}]", tools, seen)
    for where, items in extra:
        for j, t in enumerate(items):
            _tool(t, f"{where}[{j}]", tools, seen)
    return tools


def _choice_name(raw: dict[str, Any], tools: Tools) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("tool_choice.name must be a non-empty string", "tool_choice.name")
    ns = raw.get("namespace")
    offered = tools.offered_name(name, ns if isinstance(ns, str) else None)
    if not any(t.name == offered for t in tools.specs):
        raise bad_request(f"tool_choice names {shown(name)}, which is not in tools", "tool_choice.name")
    return offered


def tool_plan(body: dict[str, Any], tools: Tools) -> ToolPlan:
    """The plan from ``tool_choice`` and ``parallel_tool_calls`` over the request's tools."""
    specs = list(tools.specs)
    choice, forced = "auto", None
    raw = body.get("tool_choice")
    if isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            message = f"tool_choice must be auto, none, required or an object (got {shown(raw)})"
            raise bad_request(message, "tool_choice")
        choice = raw
    elif isinstance(raw, dict):
        kind = raw.get("type")
        if kind in ("function", "custom"):
            choice, forced = "named", _choice_name(raw, tools)
        elif kind == "allowed_tools":
            mode = raw.get("mode", "auto")
            if mode not in ("auto", "required"):
                raise bad_request("tool_choice.mode must be auto or required", "tool_choice.mode")
            allowed = raw.get("tools")
            if not isinstance(allowed, list):
                raise bad_request("tool_choice.tools must be a list", "tool_choice.tools")
            names = {
                tools.offered_name(t["name"], t["namespace"] if isinstance(t.get("namespace"), str) else None)
                for t in allowed
                if isinstance(t, dict) and isinstance(t.get("name"), str)
            }
            specs = [t for t in specs if t.name in names]
            choice = mode
        elif not isinstance(kind, str):
            raise bad_request("tool_choice.type must be a string", "tool_choice.type")
        # a hosted tool named (web_search_preview, …): the bot decides, as with auto
    elif raw is not None:
        raise bad_request("tool_choice must be a string or an object", "tool_choice")
    if choice == "required" and not specs:
        raise bad_request("tool_choice 'required' needs tools", "tool_choice")

    parallel = body.get("parallel_tool_calls", True)
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("parallel_tool_calls must be true or false", "parallel_tool_calls")
    return ToolPlan(tuple(specs), choice, forced, parallel is not False, {t.name: t for t in specs})
