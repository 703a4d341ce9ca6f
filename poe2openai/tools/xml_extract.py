"""Stage 3: find tool calls a bot wrote as XML in its answer and turn them into tool-call deltas.

Recognised (also wrapped in a Markdown code fence, and split at any byte across events)::

    <tool_call><name>NAME</name><arguments>{"json": 1}</arguments></tool_call>
    <tool_call><invoke name="NAME"><parameter name="p">v</parameter></invoke></tool_call>
    <invoke name="NAME">…</invoke>                       (bare, as Claude writes it)
    <function_calls><invoke name="NAME">…</invoke></function_calls>
    <tool_call>{"name": "NAME", "arguments": {…}}</tool_call>
    <tool_call><NAME><p>v</p></NAME></tool_call>

Text before the first call streams at once; only a possible tag start is held back, and only
while it can still become one of the openers above (a lone ``<`` waits for its next
character). Inside an opened block the text is held until its closing tag, unless what
follows the opener cannot be a call (prose that merely mentions ``<tool_call>``), which is
released at once. A block naming an unknown tool, or whose arguments do not parse, is passed
on as text. Once a call is made, the text after it is dropped; with ``parallel_tool_calls``
false only the first call is kept.

A free-form tool (:attr:`ToolSpec.freeform`) takes raw text, written in ``<input>…</input>``
(or, from bots that ignore that, in ``<arguments>`` or as an ``input`` field); its call's
``arguments`` are that raw text. A native bot's call of such a tool arrives as JSON
``{"input": …}``: it is held to the end of the answer and handed on as the raw text too.
"""

from __future__ import annotations

import re
from typing import Any

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.ids import call_id
from poe2openai.pipeline.deltas import RESET, Delta, End, Failure, ResetDelta, TextDelta, ToolCallDelta
from poe2openai.tools.arguments import coerce, encode_arguments, parse_json_arguments

_TEXT, _BLOCK, _AFTER, _STOPPED = range(4)
_PREFIX = "prefix"
_NO = "no"
_CLOSE = {"tool_call": "</tool_call>", "function_calls": "</function_calls>", "invoke": "</invoke>"}
_OPENERS = (("tool_call", "<tool_call>"), ("function_calls", "<function_calls>"))
_FENCE_HEAD = re.compile(r"```[A-Za-z0-9_-]*")
MAX_BLOCK = 4 << 20

_INVOKE = re.compile(r"<invoke\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>(.*?)(?:</invoke>|$)", re.DOTALL)
_PARAM = re.compile(r"<parameter\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>(.*?)</parameter>", re.DOTALL)
_NAME = re.compile(r"<name>\s*(.*?)\s*</name>", re.DOTALL)
_ARGS = re.compile(r"<(arguments|parameters)>(.*?)(?:</\1>|$)", re.DOTALL)
_CHILD = re.compile(r"<([A-Za-z_][\w.\-]*)>(.*?)</\1>", re.DOTALL)
_INPUT = re.compile(r"<input>(.*)(?:</input>|$)", re.DOTALL)


def _one_line_break_off(text: str) -> str:
    """Raw input as written between tags on lines of their own: one line break off each end."""
    if text.startswith("\r\n"):
        text = text[2:]
    elif text.startswith("\n"):
        text = text[1:]
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text


def _unwrap_input(text: str) -> str:
    """A free-form tool's input: the raw text, or the ``input`` field of a JSON object holding it."""
    s = text.strip()
    if s.startswith("{"):
        obj = parse_json_arguments(s)
        if obj is not None and isinstance(obj.get("input"), str):
            return str(obj["input"])
    return text


def _raw_input(body: str) -> str:
    """The raw input of a free-form call's block body (after its ``<name>``)."""
    m = _INPUT.search(body)
    if m is not None:
        return _one_line_break_off(m.group(1).rsplit("</input>", 1)[0])
    am = _ARGS.search(body)
    if am is not None:
        return _unwrap_input(_one_line_break_off(am.group(2)))
    return ""


def _classify_tag(s: str) -> str | tuple[str, int]:
    for kind, opener in _OPENERS:
        if s.startswith(opener):
            return kind, len(opener)
        if opener.startswith(s):
            return _PREFIX
    if s.startswith("<invoke"):
        if len(s) == 7:
            return _PREFIX
        return ("invoke", 7) if s[7] in " \t\r\n" else _NO
    return _PREFIX if "<invoke".startswith(s) else _NO


def classify(s: str) -> str | tuple[str, int]:
    """Is ``s`` (starting with ``<`` or a line-start backtick) a block opener, a prefix of one, or not?

    An opener returns ``(kind, index where the block's body starts)``.
    """
    if s[0] != "`":
        return _classify_tag(s)
    if len(s) < 3:
        return _PREFIX if "```".startswith(s) else _NO
    m = _FENCE_HEAD.match(s)
    if m is None:
        return _NO
    e = m.end()
    if e == len(s):
        return _PREFIX if e < 24 else _NO
    if s[e] != "\n":
        return _NO
    rest = s[e + 1 :]
    body = rest.lstrip()
    if not body:
        return _PREFIX if len(rest) < 16 else _NO
    found = _classify_tag(body)
    if isinstance(found, tuple):
        kind, offset = found
        return kind, len(s) - len(body) + offset
    return found


def _lookup(tools: dict[str, ToolSpec], name: str) -> ToolSpec | None:
    found = tools.get(name)
    if found is None:
        low = name.lower()
        found = next((t for n, t in tools.items() if n.lower() == low), None)
    return found


def _params_from_xml(pairs: list[tuple[str, str]], tool: ToolSpec) -> dict[str, Any]:
    props = tool.parameters.get("properties")
    props = props if isinstance(props, dict) else {}
    return {k: coerce(v, props.get(k)) for k, v in pairs}


def parse_block(block: str, tools: dict[str, ToolSpec]) -> list[tuple[str, str]] | None:
    """The calls (name, JSON arguments) a block holds, or ``None`` if it is not a valid call."""
    calls: list[tuple[str, str]] = []
    invokes = _INVOKE.findall(block)
    if invokes:
        for name, body in invokes:
            tool = _lookup(tools, name.strip())
            if tool is None:
                return None
            pairs = _PARAM.findall(body)
            if tool.freeform:
                calls.append((tool.name, _one_line_break_off(pairs[0][1]) if pairs else body.strip()))
                continue
            args = _params_from_xml(pairs, tool)
            calls.append((tool.name, encode_arguments(args)))
        return calls
    body = block
    for _, opener in _OPENERS:
        start = body.find(opener)
        if start >= 0:
            body = body[start + len(opener) :]
            break
    body = body.replace("</tool_call>", "").strip()
    if body.endswith("```"):
        body = body[:-3].rstrip()
    m = _NAME.search(body)
    if m:
        tool = _lookup(tools, m.group(1))
        if tool is None:
            return None
        if tool.freeform:
            return [(tool.name, _raw_input(body[m.end() :]))]
        am = _ARGS.search(body)
        if am is None:
            return [(tool.name, "{}")]
        text = am.group(2)
        parsed = parse_json_arguments(text)
        if parsed is not None:
            return [(tool.name, encode_arguments(parsed))]
        children = _CHILD.findall(text)
        if not children:
            return None
        return [(tool.name, encode_arguments(_params_from_xml(children, tool)))]
    if body.startswith("{"):
        obj = parse_json_arguments(body)
        if obj is None or not isinstance(obj.get("name"), str):
            return None
        tool = _lookup(tools, obj["name"])
        payload: Any = obj.get("arguments", obj.get("parameters", obj.get("input", {})))
        if tool is not None and tool.freeform:
            if isinstance(payload, dict) and isinstance(payload.get("input"), str):
                return [(tool.name, payload["input"])]
            return [(tool.name, payload)] if isinstance(payload, str) else None
        if isinstance(payload, str):
            payload = parse_json_arguments(payload)
        if tool is None or not isinstance(payload, dict):
            return None
        return [(tool.name, encode_arguments(payload))]
    cm = re.match(r"<([A-Za-z_][\w.\-:]*)>(.*)</\1>\s*$", body, re.DOTALL)
    if cm:
        tool = _lookup(tools, cm.group(1))
        if tool is None:
            return None
        if tool.freeform:
            inner = cm.group(2)
            return [(tool.name, _raw_input(inner) if "<input>" in inner else _one_line_break_off(inner))]
        return [(tool.name, encode_arguments(_params_from_xml(_CHILD.findall(cm.group(2)), tool)))]
    return None


class XmlToolExtractor:
    """The sans-IO extractor stage."""

    __slots__ = (
        "_body_at",
        "_buf",
        "_calls",
        "_held",
        "_kind",
        "_line_start",
        "_parallel",
        "_starts",
        "_state",
        "_tools",
    )

    def __init__(self, plan: ToolPlan) -> None:
        self._tools = plan.by_name
        self._parallel = plan.parallel
        self._state = _TEXT
        self._buf = ""
        self._kind = ""
        self._body_at = 0
        self._calls = 0
        self._line_start = True
        # a native bot's free-form calls, until the end: index -> (first delta, argument parts)
        self._held: dict[int, tuple[ToolCallDelta, list[str]]] = {}
        # what may follow a <tool_call> opener in a real call
        self._starts = ("<name>", "<invoke", "{", "<![CDATA[", "```", *(f"<{n}>" for n in self._tools))

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Extract from one batch."""
        out: list[Delta] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                if self._state == _TEXT and not self._buf and "<" not in d.text and "`" not in d.text:
                    out.append(d)  # the common case: plain prose
                    self._line_start = d.text.endswith("\n")
                    continue
                s = self._buf + d.text
                self._buf = ""
                self._process(s, out)
            elif kind is ResetDelta:
                self._buf = ""
                if self._state == _BLOCK:
                    self._state = _AFTER if self._calls else _TEXT
                self._line_start = True
                out.append(RESET)
            elif kind is End or kind is Failure:
                self._flush(out)
                self._release_held(out)
                out.append(d)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                self._native_call(d, out)
            else:
                out.append(d)
        return out

    def _native_call(self, d: ToolCallDelta, out: list[Delta]) -> None:
        held = self._held.get(d.index)
        if held is not None:
            held[1].append(d.arguments)
            return
        tool = self._tools.get(d.name or "") if d.id is not None else None
        if tool is not None and tool.freeform:
            self._held[d.index] = (d, [d.arguments])
            return
        out.append(d)

    def _release_held(self, out: list[Delta]) -> None:
        for index in sorted(self._held):
            first, parts = self._held[index]
            out.append(ToolCallDelta(first.index, first.id, first.name, _unwrap_input("".join(parts))))
        self._held.clear()

    # --- scanning -------------------------------------------------------------------------

    def _text_out(self, text: str, out: list[Delta]) -> None:
        if not text:
            return
        if self._state == _TEXT:
            last = out[-1] if out else None
            if isinstance(last, TextDelta):
                out[-1] = TextDelta(last.text + text)
            else:
                out.append(TextDelta(text))
        self._line_start = text.endswith("\n")

    def _candidate(self, s: str) -> int:
        lt = s.find("<")
        if self._line_start and s[:1] == "`":
            return 0
        bt = s.find("\n`")
        if bt >= 0:
            bt += 1
            return bt if lt < 0 or bt < lt else lt
        return lt

    def _process(self, s: str, out: list[Delta]) -> None:
        while s:
            state = self._state
            if state == _STOPPED:
                return
            if state == _BLOCK:
                s = self._block(s, out)
                continue
            j = self._candidate(s)
            if j < 0:
                self._text_out(s, out)
                return
            self._text_out(s[:j], out)
            s = s[j:]
            found = classify(s)
            if found == _PREFIX:
                self._buf = s
                return
            if found == _NO:
                self._text_out(s[0], out)
                s = s[1:]
                continue
            assert isinstance(found, tuple)
            self._kind, self._body_at = found
            self._state = _BLOCK

    def _plausible(self, s: str) -> bool:
        body = s[self._body_at :].lstrip()
        if not body:
            return True
        if self._kind == "invoke":
            starts: tuple[str, ...] = ("name",)
        elif self._kind == "function_calls":
            starts = ("<invoke",)
        else:
            starts = self._starts
        return any(body.startswith(p) or p.startswith(body) for p in starts)

    def _release(self, s: str, out: list[Delta]) -> str:
        """Not a call after all: the first character is text; rescan the rest."""
        self._state = _AFTER if self._calls else _TEXT
        self._text_out(s[0], out)
        return s[1:]

    def _block(self, s: str, out: list[Delta]) -> str:
        close = _CLOSE[self._kind]
        end = s.find(close, self._body_at)
        if end < 0:
            if not self._plausible(s) or len(s) > MAX_BLOCK:
                return self._release(s, out)
            self._buf = s
            return ""
        end += len(close)
        block, rest = s[:end], s[end:]
        if not self._emit(block, out):
            return self._release(s, out)
        return rest

    def _emit(self, block: str, out: list[Delta]) -> bool:
        calls = parse_block(block, self._tools)
        if not calls:
            return False
        for name, arguments in calls:
            out.append(ToolCallDelta(self._calls, call_id(), name, arguments))
            self._calls += 1
            if not self._parallel:
                break
        self._state = _AFTER if self._parallel else _STOPPED
        self._line_start = False
        return True

    def _flush(self, out: list[Delta]) -> None:
        """End of the answer: an unclosed block that parses is a call; anything held is text."""
        buf, self._buf = self._buf, ""
        if self._state == _BLOCK:
            if self._emit(buf, out):
                return
            self._state = _AFTER if self._calls else _TEXT
        if self._state != _STOPPED:
            self._text_out(buf, out)
