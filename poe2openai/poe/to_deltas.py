"""Stage 1 of the pipeline: Poe events to neutral deltas (sans-IO).

- ``text`` becomes a :class:`TextDelta`; empty texts are dropped.
- ``replace_response`` becomes :data:`RESET` followed by the new text.
- ``file`` events with an ``inline_ref`` are resolved where the text writes ``![name][ref]``
  (rewritten to ``![name](url)``, also when the reference is split across events); files no
  text refers to, and files without a ref, become :class:`FileDelta`\\s so no output is lost.
  Only http(s) file URLs are relayed (escaped for Markdown); others are dropped with a warning.
- ``json`` events carrying OpenAI chunks give their content, reasoning, tool-call deltas,
  usage and finish reason. Usage counts are taken only as whole numbers from 0 to
  :data:`USAGE_MAX` (else the gateway counts itself); tool calls get the gateway's own
  indexes 0, 1, ... in order of appearance, whatever index the bot gave.
- ``error`` becomes a :class:`Failure`; ``done`` an :class:`End`; ``meta`` and
  ``suggested_reply`` are dropped.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from poe2openai.errors import upstream
from poe2openai.ids import call_id
from poe2openai.pipeline.deltas import (
    RESET,
    Delta,
    End,
    Failure,
    FileDelta,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
    markdown_url,
)
from poe2openai.poe import events as pe
from poe2openai.poe.upstream_errors import from_event

log = logging.getLogger("poe2openai.poe")

USAGE_MAX = 10**9  # tokens: more than any context; larger (or negative) counts are not believed
_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Poe's refs are 8 letters and digits
ID_MAX = 256  # characters of a bot's tool-call id; a longer one is replaced by ours


def _count(value: object) -> int | None:
    if type(value) is int and 0 <= value <= USAGE_MAX:
        return value
    return None


class PoeToDeltas:
    """Converts batches of Poe events to batches of deltas."""

    __slots__ = ("_files", "_finish", "_held", "_max_ref", "_tool_ids", "_used_refs", "bot")

    def __init__(self, bot: str) -> None:
        self.bot = bot
        self._files: dict[str, tuple[pe.File, str]] = {}  # inline_ref -> (file, its escaped URL)
        self._used_refs: set[str] = set()
        self._held = ""  # tail that may be the start of "[ref]"
        self._max_ref = 0
        self._finish = "stop"
        self._tool_ids: dict[int, tuple[int, str]] = {}  # the bot's index -> (our index, id)

    def feed(self, events: list[pe.PoeEvent]) -> list[Delta]:
        """Convert one batch of events."""
        out: list[Delta] = []
        for ev in events:
            kind = type(ev)
            if kind is pe.Text:
                assert isinstance(ev, pe.Text)
                if ev.replace:
                    self._held = ""
                    out.append(RESET)
                text = ev.text
                if self._files or self._held:
                    text = self._resolve(text)
                if text:
                    out.append(TextDelta(text))
            elif kind is pe.File:
                assert isinstance(ev, pe.File)
                url = markdown_url(ev.url)
                if url is None:
                    scheme = ev.url.partition(":")[0][:20] if ":" in ev.url else "no scheme"
                    log.warning(
                        "%s sent a file with a %r URL (%d characters); only http(s) files are relayed",
                        self.bot,
                        scheme,
                        len(ev.url),
                    )
                elif ev.inline_ref is None or not _REF.fullmatch(ev.inline_ref):
                    out.append(FileDelta(ev.url, ev.name, ev.content_type))
                else:
                    self._files[ev.inline_ref] = (ev, url)
                    self._max_ref = max(self._max_ref, len(ev.inline_ref))
            elif kind is pe.Json:
                assert isinstance(ev, pe.Json)
                self._json(ev.data, out)
            elif kind is pe.Done:
                self._finish_up(out)
                out.append(End(self._finish))
            elif kind is pe.Error:
                assert isinstance(ev, pe.Error)
                out.append(Failure(from_event(ev, self.bot)))
        return out

    def _finish_up(self, out: list[Delta]) -> None:
        if self._held:
            out.append(TextDelta(self._held))
            self._held = ""
        for ref, (f, _) in self._files.items():
            if ref not in self._used_refs:
                out.append(FileDelta(f.url, f.name, f.content_type))

    def eof(self, got_output: bool) -> list[Delta]:
        """The body ended without ``done``: the answer was cut. What was said is passed on,
        then a retryable :class:`Failure` (the engine retries only while the client has
        nothing yet)."""
        out: list[Delta] = []
        self._finish_up(out)
        if got_output or out:
            out.append(Failure(upstream("Poe's answer was cut off before it finished", 502, "upstream_cut", True)))
        else:
            out.append(Failure(upstream("Poe closed the stream without an answer", retryable=True)))
        return out

    def _resolve(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        for ref, (_, url) in self._files.items():
            token = f"[{ref}]"
            if token in text:
                text = text.replace(token, f"({url})")
                self._used_refs.add(ref)
        cut = text.rfind("[")
        if cut >= 0 and "]" not in text[cut:] and len(text) - cut <= self._max_ref + 1:
            tail = text[cut + 1 :]
            if any(ref.startswith(tail) for ref in self._files):
                self._held = text[cut:]
                text = text[:cut]
        return text

    def _json(self, data: dict[str, Any], out: list[Delta]) -> None:
        usage = data.get("usage")
        if isinstance(usage, dict):
            p, c = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
            if p is not None and c is not None:
                out.append(UsageDelta(p, c))
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        reason = choice.get("finish_reason")
        if reason == "length":
            self._finish = "length"
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(TextDelta(content))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for pos, call in enumerate(calls):
                if isinstance(call, dict):
                    self._tool_call(call, pos, out)

    def _tool_call(self, call: dict[str, Any], pos: int, out: list[Delta]) -> None:
        index = call.get("index")
        if type(index) is not int:
            index = pos  # some providers omit index; keep calls of one chunk apart
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name") if isinstance(fn.get("name"), str) else None
        args = fn.get("arguments")
        args = args if isinstance(args, str) else ""
        raw_id = call.get("id")
        known = self._tool_ids.get(index)
        if known is None:
            if not name:
                return  # a call must start with its name; fragments without one are dropped
            ours = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= ID_MAX else call_id()
            self._tool_ids[index] = (len(self._tool_ids), ours)
            out.append(ToolCallDelta(len(self._tool_ids) - 1, ours, name, args))
        else:
            out.append(ToolCallDelta(known[0], None, None, args))
