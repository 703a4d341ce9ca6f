"""The agent bot: a simulated model that drives coding agents (Cline, Continue, Claude Code,
Codex CLI, …) through a file-writing task, using only the tools the gateway describes to it.

Bot name: :data:`AGENT_BOT` (``agent-bot``); any bot name starting with ``agent-`` behaves the
same, and a test can give the behaviour to another name with
``sim.behaviours["gpt-5.5"] = agent_answer``. Nothing here knows a client by name: every
decision is made from the tool list the gateway put in the system prompt (the ``# Tools`` block
of :func:`poe2openai.tools.prompt.instructions`: ``## NAME``, description lines,
``Parameters (JSON Schema): {…}``, or ``Input: free-form text …`` for a tool taking raw text,
which the bot then calls with ``<input>…</input>``) and from the conversation.

**The task.** The bot looks, in the user messages (not tool results), for a file-writing request
of the form ``create|write|make FILE containing [exactly]: CONTENT`` (also ``with [the]
content[s]: CONTENT``); CONTENT is the rest of that line, without surrounding quotes. FILE is a
relative name such as ``hello.txt``. Any other request is a plain question.

**The working directory** (for tools that want absolute paths) is read from the prompt:
``Working directory: /abs`` (any case, as Cline, Continue and Claude Code write it), ``<cwd>/abs</cwd>``
(Codex) or ``cwd: /abs``.

**Choosing the tool**, by what the schemas say, in this order of preference:

1. a *write* tool: it has a path-like parameter (name ``path``, ``file``, ``filename``,
   ``filepath``, ``file_path``, ``target_file``, ``absolute_path``, …) and a content-like string
   parameter (``content``, ``contents``, ``text``, ``new_text``, ``file_text``, ``data``, ``body``,
   ``code``), and does not *require* an old-text parameter (``old_text``, ``old_string``, …). Ties
   go to the tool whose name or description says write/create/save, against one that says it
   cannot create files. Cline's ``editor``, Continue's ``Write``, Claude Code's ``Write``,
   ``write_file``, ``write_to_file``, ``create_file`` all qualify;
2. a *patch* tool: its name or description mentions a patch and it takes one string
   (``apply_patch``): the bot writes ``*** Begin Patch`` / ``*** Add File: FILE`` / ``+line`` /
   ``*** End Patch``;
3. a *shell* tool: a ``command``/``cmd``/``commands``/``script`` parameter (a string, or an array
   of strings) and a description about commands, shells or terminals: the bot runs
   ``printf '%s' 'CONTENT' > FILE``.

**Filling parameters** from the chosen tool's schema: every required property, plus optional
path and content properties; never an optional one it has nothing for (``old_text``,
``insert_line``). By role: path → FILE, absolute (joined to the working directory) when the
description asks for an absolute path and does not forbid it, else relative; content →
CONTENT; command → the shell command (an array when the schema says so); text
(``summary``, ``result``, ``answer``, ``message``, …) → a summary; booleans → ``true``; an enum →
the value saying create/write/overwrite/add if any, else the first; numbers → the minimum, else
1; arrays → one filled item; objects → filled recursively; ``anyOf``/``oneOf`` → the first non-null
branch; other strings → the task text.

**After the tool result** the bot finishes with the *completion* tool if the client has one: a
tool whose name has a word complete/completion/submit/finish/final/done (split at ``_`` and
camelCase), not fail/error, and that takes a text parameter such as ``summary`` or ``result``
(Cline's ``submit_and_exit`` or ``attempt_completion``; Continue's ``Exit``, which exits with a
failure and takes nothing, is not one). Without one it answers in plain text:
``Done: FILE now contains the requested text.`` A plain question gets :data:`ANSWER_PREFIX` +
the question, streamed, and then the completion tool if there is one. After the completion
tool's result it says ``Done.``. If the prompt forces a named tool (``You must call the tool
`X```), the bot calls that one first.

**Streaming**: the answer is cut into pieces of :data:`PIECE` characters (one ``text`` event
each, :data:`GAP` seconds apart), so the ``<tool_call>`` tags are split across events.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

AGENT_BOT = "agent-bot"
AGENT_PREFIX = "agent-"
ANSWER_PREFIX = "Here is my answer to your question: "
PIECE = 7  # characters per streamed event
GAP = 0.01  # seconds between events, as a real bot streams (without it the gateway gets one burst)

_TASK = re.compile(
    r"\b(?:create|write|make|save)\s+(?:a\s+|the\s+)?(?:new\s+)?(?:file\s+)?[`'\"]?"
    r"(?P<file>[\w./-]*\w\.\w+)[`'\"]?\s*,?\s+"
    r"(?:containing(?:\s+exactly)?|with\s+(?:the\s+)?(?:exact\s+)?contents?(?:\s+exactly)?)\s*:?[ \t]*"
    r"(?P<content>[^\r\n]*)",
    re.IGNORECASE,
)
_CWD = (
    re.compile(r"working directory:\s*(/[^\s<>\"']*)", re.IGNORECASE),
    re.compile(r"<cwd>\s*(/[^<\s]*)\s*</cwd>", re.IGNORECASE),
    re.compile(r"\bcwd:\s*(/[^\s<>\"']*)", re.IGNORECASE),
)
_FORCED = re.compile(r"^- You must call the tool `([^`]+)` in this answer\.$", re.MULTILINE)
_CALL = re.compile(r"<tool_call>\s*<name>\s*(.*?)\s*</name>", re.DOTALL)
_RESULT = re.compile(r'<tool_result name="([^"]*)">\n(.*?)\n</tool_result>', re.DOTALL)
_WRAPPER = re.compile(r"</?(?:user_input|task|user_query|query)\b[^>]*>", re.IGNORECASE)
_CONTEXT_BLOCK = re.compile(r"<([A-Za-z_][\w-]*)\b[^>]*>.*?</\1>", re.DOTALL)
_PARAMS_LINE = "Parameters (JSON Schema): "
_FREEFORM_LINE = "Input: free-form text"
_FREEFORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}},
    "required": ["input"],
}

_PATH_NAMES = re.compile(
    r"^(?:path|file|filename|file_name|filepath|file_path|target_file|targetfile|absolute_path|abs_path|"
    r"target_path|dest|destination|output_path|outputpath)$",
    re.IGNORECASE,
)
_CONTENT_NAMES = re.compile(
    r"^(?:content|contents|text|new_text|newtext|file_text|filetext|data|body|code|file_content|filecontent)$",
    re.IGNORECASE,
)
_OLD_NAMES = re.compile(r"^(?:old_text|oldtext|old_string|oldstring|old_str|search|find|old)$", re.IGNORECASE)
_COMMAND_NAMES = re.compile(r"^(?:command|cmd|commands|script|shell_command)$", re.IGNORECASE)
_SUMMARY_NAMES = re.compile(
    r"^(?:summary|result|answer|message|response|final_answer|final|output|text|content|reason)$", re.IGNORECASE
)
_WRITE_WORDS = re.compile(r"\b(?:write|writes|create|creates|save|saves)\b", re.IGNORECASE)
_CANNOT_CREATE = re.compile(r"cannot create|can't create|must already exist", re.IGNORECASE)
_PATCH_WORDS = re.compile(r"patch", re.IGNORECASE)
_SHELL_WORDS = re.compile(r"\b(?:command|commands|shell|terminal|bash|exec)\b", re.IGNORECASE)
_COMPLETE_TOKENS = frozenset({"complete", "completion", "submit", "finish", "final", "done"})
_COMPLETE_WORDS = re.compile(
    r"attempt_completion|submit|\bcomplet(?:e|ed|ion|es)\b|\bfinish|final answer|task is done", re.IGNORECASE
)
_FAILURE_WORDS = re.compile(r"\bfail(?:ure|ed|s)?\b|\berror\b|\babort", re.IGNORECASE)
_ABSOLUTE = re.compile(r"absolute", re.IGNORECASE)
_NOT_ABSOLUTE = re.compile(
    r"(?:never|not|no|don't|do not)\s+(?:use\s+)?absolute|must be relative|only relative", re.IGNORECASE
)
_ENUM_PREFERRED = ("create", "write", "overwrite", "add", "new")


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool as the gateway described it: name, description and JSON Schema."""

    name: str
    description: str
    schema: dict[str, Any]
    freeform: bool = False  # takes raw text (written in <input>), shown here as one ``input`` string

    @property
    def properties(self) -> dict[str, Any]:
        """The schema's properties (empty when it has none)."""
        props = self.schema.get("properties")
        return props if isinstance(props, dict) else {}

    @property
    def required(self) -> list[str]:
        """The names of the required properties."""
        req = self.schema.get("required")
        return [r for r in req if isinstance(r, str)] if isinstance(req, list) else []

    def find(self, names: re.Pattern[str], kind: str | None = "string") -> str | None:
        """The first property whose name matches ``names`` (and whose type is ``kind``)."""
        for key, prop in self.properties.items():
            if names.match(key) and (kind is None or _kind(prop) in (kind, None)):
                return key
        return None


@dataclass(frozen=True, slots=True)
class FileTask:
    """A request to create ``path`` holding exactly ``content``."""

    path: str
    content: str


# --- reading the prompt --------------------------------------------------------------------


def parse_tools(system: str) -> list[Tool]:
    """The tools listed in the gateway's ``# Tools`` block of a system prompt."""
    start = system.rfind("\nAvailable tools:\n")
    if start < 0 or "# Tools" not in system[:start]:
        return []
    tools: list[Tool] = []
    name: str | None = None
    description: list[str] = []
    for line in system[start:].split("\n")[2:]:
        if name is None:
            if line.startswith("## "):
                name, description = line[3:].strip(), []
            continue
        if line.startswith(_PARAMS_LINE):
            try:
                schema = orjson.loads(line[len(_PARAMS_LINE) :])
            except orjson.JSONDecodeError:
                schema = {}
            tools.append(Tool(name, "\n".join(description).strip(), schema if isinstance(schema, dict) else {}))
            name = None
        elif line.startswith(_FREEFORM_LINE):
            tools.append(Tool(name, "\n".join(description).strip(), _FREEFORM_SCHEMA, freeform=True))
            name = None
        else:
            description.append(line)
    return tools


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in body.get("query") or []:
        if isinstance(m, dict):
            out.append((str(m.get("role", "")), str(m.get("content", ""))))
    return out


def _system(messages: list[tuple[str, str]]) -> str:
    return "\n\n".join(c for r, c in messages if r == "system")


def _is_result(content: str) -> bool:
    return content.lstrip().startswith("<tool_result")


def _user_texts(messages: list[tuple[str, str]]) -> list[str]:
    """User messages that are not tool results, with wrapper tags removed."""
    return [_WRAPPER.sub("", c) for r, c in messages if r == "user" and not _is_result(c)]


def find_task(messages: list[tuple[str, str]]) -> FileTask | None:
    """The last file-writing request in the user's messages."""
    found: FileTask | None = None
    for said in _user_texts(messages):
        for m in _TASK.finditer(said):
            content = m.group("content").strip()
            if len(content) >= 2 and content[0] == content[-1] and content[0] in "'\"`":
                content = content[1:-1]
            found = FileTask(m.group("file"), content)
    return found


def question(messages: list[tuple[str, str]]) -> str:
    """The user's first request, without context blocks such as ``<system-reminder>…</…>``."""
    for said in _user_texts(messages):
        cleaned = " ".join(_CONTEXT_BLOCK.sub(" ", said).split())
        if cleaned and not cleaned.startswith("[SYSTEM]"):
            return cleaned
    return "(nothing)"


def working_directory(messages: list[tuple[str, str]]) -> str | None:
    """The working directory the client told the model about, if any."""
    for _, content in messages:
        for pattern in _CWD:
            m = pattern.search(content)
            if m:
                return m.group(1).rstrip("/.,;") or "/"
    return None


# --- what each tool is for -----------------------------------------------------------------


def _kind(prop: Any) -> str | None:
    if not isinstance(prop, dict):
        return None
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str):
        return kind
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if isinstance(branches, list):
            for b in branches:
                k = _kind(b)
                if k not in (None, "null"):
                    return k
    return None


def _about(tool: Tool) -> str:
    return f"{tool.name} {tool.description}"


def write_score(tool: Tool) -> int:
    """How well ``tool`` fits "write this text to this file" (0: not at all)."""
    path, content = tool.find(_PATH_NAMES), tool.find(_CONTENT_NAMES)
    if path is None or content is None or path == content:
        return 0
    if any(_OLD_NAMES.match(r) for r in tool.required):
        return 0
    score = 10
    if _WRITE_WORDS.search(_about(tool)):
        score += 2
    if _CANNOT_CREATE.search(tool.description):
        score -= 5
    unknown = [r for r in tool.required if r not in (path, content)]
    return max(score - len(unknown), 1)


def patch_score(tool: Tool) -> int:
    """How well ``tool`` fits "apply this patch" (0: not at all)."""
    if not _PATCH_WORDS.search(_about(tool)):
        return 0
    strings = [k for k, p in tool.properties.items() if _kind(p) == "string"]
    if len(strings) != 1 or any(r not in strings for r in tool.required):
        return 0
    return 5 + (3 if "Begin Patch" in tool.description or tool.name.lower() == "apply_patch" else 0)


def shell_score(tool: Tool) -> int:
    """How well ``tool`` fits "run this shell command" (0: not at all)."""
    key = tool.find(_COMMAND_NAMES, kind=None)
    if key is None or not _SHELL_WORDS.search(_about(tool)):
        return 0
    kind = _kind(tool.properties[key])
    if kind == "array":
        items = tool.properties[key].get("items")
        if _kind(items) not in ("string", None):
            return 0
    elif kind not in ("string", None):
        return 0
    return 3


def completion_score(tool: Tool) -> int:
    """How well ``tool`` fits "report that the task is finished" (0: not at all)."""
    tokens = {t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", tool.name)}
    if not tokens & _COMPLETE_TOKENS or _FAILURE_WORDS.search(tool.name):
        return 0
    if tool.find(_SUMMARY_NAMES) is None:
        return 0
    return 5 + (2 if _COMPLETE_WORDS.search(tool.description) else 0)


def _best(tools: list[Tool], score: Any) -> Tool | None:
    best: tuple[int, int, Tool] | None = None
    for i, t in enumerate(tools):
        s = score(t)
        if s > 0 and (best is None or s > best[0]):
            best = (s, -i, t)
    return best[2] if best else None


# --- filling parameters --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Values:
    path_relative: str = ""
    path_absolute: str = ""
    content: str | None = None
    command: str | None = None
    summary: str = ""
    fallback: str = ""


def _wants_absolute(*texts: str) -> bool:
    joined = " ".join(texts)
    return bool(_ABSOLUTE.search(joined)) and not _NOT_ABSOLUTE.search(joined)


def _enum_choice(options: list[Any]) -> Any:
    for word in _ENUM_PREFERRED:
        for o in options:
            if isinstance(o, str) and o.lower() == word:
                return o
    for word in _ENUM_PREFERRED:
        for o in options:
            if isinstance(o, str) and word in o.lower():
                return o
    return options[0]


def _branch(prop: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if isinstance(branches, list):
            for b in branches:
                if isinstance(b, dict) and _kind(b) not in (None, "null"):
                    return {**{k: v for k, v in prop.items() if k != key}, **b}
    return prop


def _value(key: str, prop: Any, values: _Values, tool_description: str, depth: int = 0) -> Any:
    prop = _branch(prop) if isinstance(prop, dict) else {}
    kind = _kind(prop)
    described = str(prop.get("description", ""))
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return _enum_choice(prop["enum"])
    if "const" in prop:
        return prop["const"]
    if _PATH_NAMES.match(key) and kind in ("string", None) and values.path_relative:
        absolute = _wants_absolute(described, tool_description) and values.path_absolute
        return values.path_absolute if absolute else values.path_relative
    if _CONTENT_NAMES.match(key) and kind in ("string", None) and values.content is not None:
        return values.content
    if _COMMAND_NAMES.match(key) and values.command is not None:
        return [values.command] if kind == "array" else values.command
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        if isinstance(low, int | float) and not isinstance(low, bool):
            return int(low) + (1 if "exclusiveMinimum" in prop and "minimum" not in prop else 0)
        return 1
    if kind == "array":
        items = prop.get("items")
        return [_value(key, items, values, tool_description, depth + 1)] if depth < 4 else []
    if kind == "object":
        return _fill(prop, values, tool_description, depth + 1) if depth < 4 else {}
    if _SUMMARY_NAMES.match(key):
        return values.summary
    return values.fallback


def _fill(schema: dict[str, Any], values: _Values, tool_description: str, depth: int = 0) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    req = schema.get("required")
    required = set(req) if isinstance(req, list) else set()
    out: dict[str, Any] = {}
    for key, prop in props.items():
        wanted = key in required or (
            (_PATH_NAMES.match(key) and values.path_relative)
            or (_CONTENT_NAMES.match(key) and values.content is not None)
            or (_COMMAND_NAMES.match(key) and values.command is not None)
        )
        if wanted and not (_OLD_NAMES.match(key) and key not in required):
            out[key] = _value(key, prop, values, tool_description, depth)
    return out


def fill_arguments(tool: Tool, values: _Values) -> dict[str, Any]:
    """Arguments for ``tool`` from the task's values, driven by its schema."""
    return _fill(tool.schema, values, tool.description)


# --- the answer ----------------------------------------------------------------------------


def _call(tool: Tool, arguments: dict[str, Any]) -> str:
    if tool.freeform:
        return f"<tool_call>\n<name>{tool.name}</name>\n<input>\n{arguments['input']}\n</input>\n</tool_call>"
    args = orjson.dumps(arguments).decode()
    return f"<tool_call>\n<name>{tool.name}</name>\n<arguments>{args}</arguments>\n</tool_call>"


def _patch(path: str, content: str) -> str:
    lines = content.split("\n")
    return "*** Begin Patch\n*** Add File: " + path + "\n" + "".join(f"+{x}\n" for x in lines) + "*** End Patch"


def _calls_made(messages: list[tuple[str, str]]) -> list[str]:
    return [name for r, c in messages if r == "bot" for name in _CALL.findall(c)]


def _results(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n, body) for r, c in messages if r == "user" for n, body in _RESULT.findall(c)]


def _write(task: FileTask, tools: list[Tool], values: _Values) -> str:
    """The call that writes the file, with the best tool the client offers for it."""
    writer = _best(tools, write_score)
    if writer is not None:
        return f"I will create {task.path}.\n\n" + _call(writer, fill_arguments(writer, values))
    patcher = _best(tools, patch_score)
    if patcher is not None:
        key = next(k for k, p in patcher.properties.items() if _kind(p) == "string")
        path = values.path_absolute if _wants_absolute(patcher.description) else values.path_relative
        return f"I will add {task.path} with a patch.\n\n" + _call(patcher, {key: _patch(path, task.content)})
    shell = _best(tools, shell_score)
    if shell is not None:
        return f"I will write {task.path} from the shell.\n\n" + _call(shell, fill_arguments(shell, values))
    return f"I cannot write files here: no tool can create {task.path}."


def answer(body: dict[str, Any]) -> str:
    """The whole answer the agent bot gives to one Poe query."""
    messages = _messages(body)
    system = _system(messages)
    tools = parse_tools(system)
    completion = _best(tools, completion_score)
    others = [t for t in tools if t is not completion]
    made = _calls_made(messages)
    if completion is not None and completion.name in made:
        return "Done."
    task = find_task(messages)
    if task is None:
        summary = ANSWER_PREFIX + question(messages)
        values = _Values(summary=summary, fallback=summary)
    else:
        cwd = working_directory(messages)
        absolute = task.path if task.path.startswith("/") or cwd is None else f"{cwd.rstrip('/')}/{task.path}"
        summary = f"Created {task.path} containing exactly: {task.content}"
        command = f"printf '%s' {shlex.quote(task.content)} > {shlex.quote(task.path)}"
        values = _Values(task.path, absolute, task.content, command, summary, task.content)
    forced = _FORCED.search(system)
    forced_tool = next((t for t in tools if forced and t.name == forced.group(1)), None)
    if forced_tool is not None and not made:
        return f"Calling {forced_tool.name} as asked.\n\n" + _call(forced_tool, fill_arguments(forced_tool, values))
    if task is not None and not made:
        return _write(task, others, values)
    if task is not None:
        results = _results(messages)
        said = results[-1][1].strip().replace("\n", " ")[:200] if results else ""
        summary = f"Done: {task.path} now contains the requested text." + (f" The tool said: {said}" if said else "")
    if completion is None:
        return summary
    finish = fill_arguments(completion, _Values(summary=summary, fallback=summary))
    return summary + "\n\n" + _call(completion, finish)


def pieces(text: str, size: int = PIECE) -> Iterator[str]:
    """``text`` cut into pieces of ``size`` characters."""
    for i in range(0, len(text), size):
        yield text[i : i + size]


def is_agent_bot(name: str) -> bool:
    """Whether the simulator answers bot ``name`` as the agent bot."""
    low = name.lower()
    return low == AGENT_BOT or low.startswith(AGENT_PREFIX)
