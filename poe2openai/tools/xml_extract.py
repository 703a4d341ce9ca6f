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
``arguments`` are that raw text, sent whole when the block closes. A native bot's call of such a
tool arrives as JSON ``{"input": …}``: it is held to the end of the answer and handed on as the
raw text too.
"""

from __future__ import annotations

import re
from typing import Any

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.ids import call_id
from poe2openai.pipeline.deltas import RESET, Delta, End, Failure, ResetDelta, TextDelta, ToolCallDelta
from poe2openai.pipeline.json_scan import JsonScanner
from poe2openai.tools.arguments import coerce, encode_arguments, parse_json_arguments

_TEXT, _BLOCK, _ARGS, _CLOSING, _AFTER, _STOPPED = range(6)
_PREFIX = "prefix"
_NO = "no"
_CLOSE = {"tool_call": "</tool_call>", "function_calls": "</function_calls>", "invoke": "</invoke>"}
_OPENERS = (("tool_call", "<tool_call>"), ("function_calls", "<function_calls>"))
_FENCE_HEAD = re.compile(r"```[A-Za-z0-9_-]*")
MAX_BLOCK = 4 << 20

_INVOKE = re.compile(r"<invoke\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>(.*?)(?:</invoke>|$)", re.DOTALL)
_PARAM = re.compile(r"<parameter\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>(.*?)</parameter>", re.DOTALL)
_NAME = re.compile(r"<name>\s*(.*?)\s*</name>", re.DOTALL)
_ARGS_OPEN = re.compile(r"<(arguments|parameters)>")
_CHILD = re.compile(r"<([A-Za-z_][\w.\-]*)>(.*?)</\1>", re.DOTALL)
_INPUT_OPEN = "<input>"


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


def _between(body: str, start: int, close: str) -> str:
    """``body`` from ``start`` up to the last ``close`` (a raw text may mention the tag itself)."""
    end = body.rfind(close)
    return body[start : end if end >= start else len(body)]


def _raw_input(body: str) -> str:
    """The raw input of a free-form call's block body (after its ``<name>``)."""
    at = body.find(_INPUT_OPEN)
    if at >= 0:
        return _one_line_break_off(_between(body, at + len(_INPUT_OPEN), "</input>"))
    am = _ARGS_OPEN.search(body)
    if am is not None:
        return _unwrap_input(_one_line_break_off(_between(body, am.end(), f"</{am.group(1)}>")))
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
        am = _ARGS_OPEN.search(body)
        if am is None:
            return [(tool.name, "{}")]
        # up to the last closing tag: a value may mention "</arguments>"
        end = body.rfind(f"</{am.group(1)}>")
        text = body[am.end() : end if end >= am.end() else len(body)]
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
            return [(tool.name, _raw_input(inner) if _INPUT_OPEN in inner else _one_line_break_off(inner))]
        return [(tool.name, encode_arguments(_params_from_xml(_CHILD.findall(cm.group(2)), tool)))]
    return None


_HEAD_MAX = 512  # characters of a block kept to decide what it is
# a call whose arguments begin as a JSON object with a key (or empty): safe to stream
_STREAM_HEAD = re.compile(r"\s*<name>\s*([^<>]+?)\s*</name>\s*<arguments>\s*\{(?=\s*[\"}])")
_NOT_STREAMED = re.compile(r"<arguments>\s*(?:[^\s{]|\{\s*[^\s\"}])")


class XmlToolExtractor:
    """The sans-IO extractor stage.

    Linear in the answer: an open block is kept as a list of pieces with only its head (for
    deciding what it is) and the last few characters (for a closing tag split across events)
    looked at again; a streamed call's arguments are scanned once, as they arrive.
    """

    __slots__ = (
        "_args",
        "_body_at",
        "_buf",
        "_calls",
        "_head",
        "_held",
        "_hold",
        "_kind",
        "_line_start",
        "_native",
        "_parallel",
        "_parts",
        "_plausible_done",
        "_size",
        "_starts",
        "_state",
        "_stream_done",
        "_tail",
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
        # what may follow a <tool_call> opener in a real call
        self._starts = ("<name>", "<invoke", "{", "<![CDATA[", "```", *(f"<{n}>" for n in self._tools))
        # a call is required: text before it is held back, and shown only if no call comes
        self._hold = plan.choice in ("required", "named")
        self._held: list[str] = []
        self._parts: list[str] = []
        self._size = 0
        self._head = ""
        self._tail = ""
        self._plausible_done = False
        self._stream_done = False
        self._args: JsonScanner | None = None
        # a native bot's free-form calls, until the end: index -> (first delta, argument parts)
        self._native: dict[int, tuple[ToolCallDelta, list[str]]] = {}

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Extract from one batch."""
        out: list[Delta] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                text = d.text
                if self._state == _TEXT and not self._buf and not self._hold and "<" not in text and "`" not in text:
                    out.append(d)  # the common case: plain prose
                    self._line_start = text.endswith("\n")
                    continue
                if self._buf:
                    text, self._buf = self._buf + text, ""
                self._process(text, out)
            elif kind is ResetDelta:
                self._buf = ""
                self._held.clear()
                if self._state in (_BLOCK, _ARGS, _CLOSING):
                    self._state = _AFTER if self._calls else _TEXT
                    self._open_block()
                self._line_start = True
                out.append(RESET)
            elif kind is End or kind is Failure:
                self._flush(out)
                self._release_native(out)
                out.append(d)
            elif kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                self._native_call(d, out)
            else:
                out.append(d)
        return out

    def _native_call(self, d: ToolCallDelta, out: list[Delta]) -> None:
        held = self._native.get(d.index)
        if held is not None:
            held[1].append(d.arguments)
            return
        tool = self._tools.get(d.name or "") if d.id is not None else None
        if tool is not None and tool.freeform:
            self._native[d.index] = (d, [d.arguments])
            return
        out.append(d)

    def _release_native(self, out: list[Delta]) -> None:
        for index in sorted(self._native):
            first, parts = self._native[index]
            out.append(ToolCallDelta(first.index, first.id, first.name, _unwrap_input("".join(parts))))
        self._native.clear()

    # --- scanning -------------------------------------------------------------------------

    def _text_out(self, text: str, out: list[Delta]) -> None:
        if not text:
            return
        if self._state == _TEXT:
            if self._hold:
                self._held.append(text)
            else:
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
            if state == _ARGS:
                s = self._stream_args(s, out)
                continue
            if state == _CLOSING:
                s = self._closing(s)
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
            self._open_block()

    def _open_block(self) -> None:
        self._parts = []
        self._size = 0
        self._head = ""
        self._tail = ""
        self._plausible_done = False
        self._stream_done = self._kind != "tool_call"
        self._args = None

    def _plausible(self) -> bool:
        body = self._head[self._body_at :].lstrip()
        if not body:
            return True
        if self._kind == "invoke":
            starts: tuple[str, ...] = ("name",)
        elif self._kind == "function_calls":
            starts = ("<invoke",)
        else:
            starts = self._starts
        if any(body.startswith(p) for p in starts):
            self._plausible_done = True
            return True
        return any(p.startswith(body) for p in starts)

    def _release(self, s: str, out: list[Delta]) -> str:
        """Not a call after all: the first character is text; rescan the rest."""
        self._state = _AFTER if self._calls else _TEXT
        self._parts = []
        self._text_out(s[0], out)
        return s[1:]

    def _find_close(self, t: str, close: str) -> int:
        """Where ``close`` ends in ``t`` (a tag may have begun in earlier text), or -1."""
        scan = self._tail + t
        end = scan.find(close)
        if end < 0:
            self._tail = scan[-(len(close) - 1) :]
            return -1
        return end + len(close) - len(self._tail)

    def _block(self, t: str, out: list[Delta]) -> str:
        head_grew = len(self._head) < _HEAD_MAX
        if head_grew:
            self._head += t[: _HEAD_MAX - len(self._head)]
            if not self._stream_done:
                found = self._streamable()
                if found is not None:
                    return self._start_stream("".join(self._parts) + t, *found, out)
        cut = self._find_close(t, _CLOSE[self._kind])
        if cut >= 0:
            self._parts.append(t[:cut])
            block = "".join(self._parts)
            rest = t[cut:]
            self._parts = []
            if not self._emit(block, out):
                return self._release(block + rest, out)
            return rest
        self._parts.append(t)
        self._size += len(t)
        if (head_grew and not self._plausible_done and not self._plausible()) or self._size > MAX_BLOCK:
            return self._release("".join(self._parts), out)
        return ""

    def _streamable(self) -> tuple[ToolSpec, int] | None:
        """A ``<tool_call>`` of a known tool whose arguments begin as a JSON object: the tool and
        where its arguments begin (after the brace)."""
        head = self._head
        m = _STREAM_HEAD.match(head, self._body_at)
        if m is None:
            if len(head) >= _HEAD_MAX or _NOT_STREAMED.search(head, self._body_at):
                self._stream_done = True
            return None
        self._stream_done = True
        tool = _lookup(self._tools, m.group(1))
        # a free-form tool's input is raw text, not these JSON arguments: it is sent whole
        return None if tool is None or tool.freeform else (tool, m.end())

    def _start_stream(self, text: str, tool: ToolSpec, at: int, out: list[Delta]) -> str:
        """Send the call now; its arguments follow as they arrive."""
        self._parts = []
        self._held.clear()
        out.append(ToolCallDelta(self._calls, call_id(), tool.name, "{"))
        self._calls += 1
        self._args = JsonScanner()
        self._state = _ARGS
        self._line_start = False
        return text[at:]

    def _arg_fragment(self, text: str, out: list[Delta]) -> None:
        if not text:
            return
        last = out[-1] if out else None
        index = self._calls - 1
        if isinstance(last, ToolCallDelta) and last.index == index:
            out[-1] = ToolCallDelta(index, last.id, last.name, last.arguments + text)
        else:
            out.append(ToolCallDelta(index, None, None, text))

    def _stream_args(self, t: str, out: list[Delta]) -> str:
        args = self._args
        assert args is not None
        fragment, rest = args.feed(t)
        self._arg_fragment(fragment, out)
        if rest is None:
            return ""
        self._state = _CLOSING
        self._tail = ""
        return rest

    def _closing(self, t: str) -> str:
        """After streamed arguments: skip to the call's closing tag."""
        cut = self._find_close(t, _CLOSE["tool_call"])
        if cut < 0:
            return ""
        self._state = _AFTER if self._parallel else _STOPPED
        return t[cut:]

    def _emit(self, block: str, out: list[Delta]) -> bool:
        calls = parse_block(block, self._tools)
        if not calls:
            return False
        self._held.clear()
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
        if self._state in (_ARGS, _CLOSING):  # a streamed call stands as sent
            self._state = _AFTER
            return
        if self._state == _BLOCK:
            block = "".join(self._parts)
            self._parts = []
            if self._emit(block + buf, out):
                return
            self._state = _AFTER if self._calls else _TEXT
            buf = block + buf
        if self._state != _STOPPED:
            self._text_out(buf, out)
        if self._held:
            held = "".join(self._held)
            self._held.clear()
            self._hold = False
            self._text_out(held, out)
