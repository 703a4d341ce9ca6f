"""The last stage for streaming Anthropic clients: deltas to Messages API server-sent events.

The event sequence Anthropic's SDKs and Claude Code parse:

- ``message_start`` (the message with empty content and usage: the prompt's tokens);
- per content block, with indices from 0: ``content_block_start``, its
  ``content_block_delta``\\s, ``content_block_stop``:
  - ``text`` blocks with ``text_delta``s (never an empty block; output files as Markdown);
  - ``thinking`` blocks with ``thinking_delta``s, then one ``signature_delta`` before the stop
    (Claude Code drops a turn whose thinking block has no signature); with
    ``display: "omitted"`` the block carries only the signature;
  - ``tool_use`` blocks: ``id`` and ``name`` with an empty ``input`` in the start, the input as
    ``input_json_delta`` fragments (Claude Code ignores input placed in the start);
- one ``message_delta`` with ``stop_reason``, ``stop_sequence`` and usage, then ``message_stop``;
- ``ping`` events while the stream is idle; a failure after the start as one ``error`` event.

Blocks never overlap: a tool call that starts while another one is still open is held and
sent whole once the open one closes (bots that stream several calls at once interleave
their fragments).
"""

from __future__ import annotations

import orjson

from poe2openai.errors import ApiError
from poe2openai.frontends.anthropic.errors import error_event
from poe2openai.frontends.anthropic.ids import Signer
from poe2openai.frontends.anthropic.response import stop_reason, usage_body
from poe2openai.pipeline.deltas import Delta, End, FileDelta, ReasoningDelta, TextDelta, ToolCallDelta, file_markdown
from poe2openai.pipeline.usage import Usage

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_TEXT, _THINKING, _TOOL = 1, 2, 3


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


def _delta(index: int, delta: bytes) -> bytes:
    return _event(
        b"content_block_delta",
        b'{"type":"content_block_delta","index":' + str(index).encode() + b',"delta":' + delta + b"}",
    )


def _block_start(index: int, block: dict[str, object]) -> bytes:
    return _event(
        b"content_block_start",
        orjson.dumps({"type": "content_block_start", "index": index, "content_block": block}),
    )


def _block_stop(index: int) -> bytes:
    return _event(b"content_block_stop", b'{"type":"content_block_stop","index":' + str(index).encode() + b"}")


def _input_delta(index: int, fragment: str) -> bytes:
    return _delta(index, b'{"type":"input_json_delta","partial_json":' + orjson.dumps(fragment) + b"}")


class MessageEncoder:
    """Encodes batches of deltas as SSE events for one streamed message."""

    __slots__ = (
        "_blocks",
        "_held",
        "_id",
        "_input_sent",
        "_model",
        "_omit_thinking",
        "_open",
        "_open_index",
        "_prompt_tokens",
        "_signer",
        "_started",
        "_tool_index",
        "_wrote_text",
        "finished",
        "tool_use",
    )

    def __init__(self, message_id: str, model: str, omit_thinking: bool = False) -> None:
        self._id = message_id
        self._model = model
        self._omit_thinking = omit_thinking
        self._started = False
        self._prompt_tokens = 0
        self._blocks = 0  # blocks opened so far: the next block's index
        self._open = 0  # the kind of the open block (0: none)
        self._open_index = -1
        self._signer: Signer | None = None
        self._tool_index = -1  # the ToolCallDelta index of the open tool block
        self._input_sent = False
        self._held: dict[int, tuple[str, str, list[str]]] = {}  # calls waiting for the open one to close
        self._wrote_text = False
        self.tool_use = False
        self.finished = False

    def start(self, prompt_tokens: int | None = None) -> bytes:
        """``message_start``; sent once, before anything else."""
        self._started = True
        self._prompt_tokens = prompt_tokens or 0
        message: dict[str, object] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_body(self._prompt_tokens, 0),
        }
        return _event(b"message_start", orjson.dumps({"type": "message_start", "message": message}))

    # --- blocks -------------------------------------------------------------------------

    def _open_block(self, kind: int, out: list[bytes], block: dict[str, object] | None) -> None:
        self._close(out)
        self._open = kind
        self._open_index = self._blocks
        self._blocks += 1
        if block is not None:
            out.append(_block_start(self._open_index, block))

    def _close(self, out: list[bytes]) -> None:
        kind, index = self._open, self._open_index
        if kind == 0:
            return
        self._open = 0
        if kind == _THINKING:
            assert self._signer is not None
            if self._omit_thinking:
                out.append(_block_start(index, {"type": "thinking", "thinking": "", "signature": ""}))
            signature = orjson.dumps(self._signer.signature())
            out.append(_delta(index, b'{"type":"signature_delta","signature":' + signature + b"}"))
            self._signer = None
        elif kind == _TOOL and not self._input_sent:
            out.append(_input_delta(index, "{}"))
        out.append(_block_stop(index))
        if kind == _TOOL and self._held:
            held, self._held = self._held, {}
            for _, (call_id, name, fragments) in sorted(held.items()):
                index = self._blocks
                self._blocks += 1
                out.append(_block_start(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}}))
                out.append(_input_delta(index, "".join(fragments) or "{}"))
                out.append(_block_stop(index))

    def _text(self, text: str, out: list[bytes]) -> None:
        if self._open != _TEXT:
            self._open_block(_TEXT, out, {"type": "text", "text": ""})
        out.append(_delta(self._open_index, b'{"type":"text_delta","text":' + orjson.dumps(text) + b"}"))
        self._wrote_text = True

    def _thinking(self, text: str, out: list[bytes]) -> None:
        if self._open != _THINKING:
            start: dict[str, object] | None = (
                None if self._omit_thinking else {"type": "thinking", "thinking": "", "signature": ""}
            )
            self._open_block(_THINKING, out, start)
            self._signer = Signer()
        assert self._signer is not None
        self._signer.feed(text)
        if not self._omit_thinking:
            out.append(_delta(self._open_index, b'{"type":"thinking_delta","thinking":' + orjson.dumps(text) + b"}"))

    def _tool(self, d: ToolCallDelta, out: list[bytes]) -> None:
        self.tool_use = True
        if d.id is not None:
            if self._open == _TOOL:
                self._held[d.index] = (d.id, d.name or "", [d.arguments] if d.arguments else [])
                return
            self._open_block(_TOOL, out, {"type": "tool_use", "id": d.id, "name": d.name or "", "input": {}})
            self._tool_index = d.index
            self._input_sent = False
        elif d.index in self._held:
            if d.arguments:
                self._held[d.index][2].append(d.arguments)
            return
        elif self._open != _TOOL or d.index != self._tool_index:
            return  # a fragment of a call already closed: nothing can carry it any more
        if d.arguments:
            out.append(_input_delta(self._open_index, d.arguments))
            self._input_sent = True

    # --- the encoder protocol -----------------------------------------------------------

    def encode(self, batch: list[Delta]) -> bytes:
        """Events for one batch (``b""`` when the batch shows nothing)."""
        out: list[bytes] = [] if self._started else [self.start()]
        pending: list[str] = []
        pending_kind = 0
        for d in batch:
            kind = type(d)
            if kind is TextDelta or kind is ReasoningDelta:
                assert isinstance(d, (TextDelta, ReasoningDelta))
                if not d.text:
                    continue
                now = _TEXT if kind is TextDelta else _THINKING
                if pending and pending_kind != now:
                    self._flush(pending_kind, pending, out)
                pending_kind = now
                pending.append(d.text)
                continue
            if kind is FileDelta:
                assert isinstance(d, FileDelta)
                md = file_markdown(d)
                if md:
                    if pending and pending_kind != _TEXT:
                        self._flush(pending_kind, pending, out)
                    pending_kind = _TEXT
                    pending.append(("\n\n" if self._wrote_text or pending else "") + md)
                continue
            if kind is ToolCallDelta:
                assert isinstance(d, ToolCallDelta)
                if pending:
                    self._flush(pending_kind, pending, out)
                self._tool(d, out)
        if pending:
            self._flush(pending_kind, pending, out)
        return b"".join(out)

    def _flush(self, kind: int, pending: list[str], out: list[bytes]) -> None:
        text = "".join(pending)
        pending.clear()
        if kind == _TEXT:
            self._text(text, out)
        else:
            self._thinking(text, out)

    def finish(self, end: End, usage: Usage | None) -> bytes:
        """Closes the open block, then ``message_delta`` (stop reason and usage) and ``message_stop``."""
        out: list[bytes] = [] if self._started else [self.start()]
        self._close(out)
        self.finished = True
        reason = stop_reason(end.finish_reason, end.stop_sequence, self.tool_use)
        prompt = usage.prompt_tokens if usage is not None else self._prompt_tokens
        completion = usage.completion_tokens if usage is not None else 0
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": reason,
                "stop_sequence": end.stop_sequence if reason == "stop_sequence" else None,
            },
            "usage": usage_body(prompt, completion),
        }
        out.append(_event(b"message_delta", orjson.dumps(delta)))
        out.append(_event(b"message_stop", b'{"type":"message_stop"}'))
        return b"".join(out)

    def failure(self, error: ApiError) -> bytes:
        """One ``error`` event; the stream ends with it."""
        self.finished = True
        return error_event(error)

    def keepalive(self) -> bytes:
        """A ``ping`` event; clients skip it, proxies see traffic."""
        return PING
