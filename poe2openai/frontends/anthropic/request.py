"""Parse and validate an Anthropic Messages request body into the engine's :class:`CallRequest`.

Lenient where Anthropic's API grows (unknown top-level fields such as ``context_management``,
``metadata``, ``service_tier``, ``container``; unknown content block types; ``cache_control``
anywhere): they are ignored. Strict where a wrong value would silently change the answer: a
bad value is a 400 naming the field.

- ``system``: a string or text blocks; ``role: "system"`` messages inside ``messages`` too.
  Claude Code's per-call billing header block (``x-anthropic-billing-header: …``) is dropped:
  it is meant for Anthropic's billing, not for the model, and it would change the prompt on
  every call.
- User content: ``text``; ``image`` and ``document`` (base64 or URL; PDF or plain text; a text
  document is inlined) become attachments; ``tool_result`` blocks become ``tool`` messages
  (``is_error`` noted in the text; images in a result go with the user message after it).
- Assistant content: ``text``; ``tool_use`` becomes a tool call of the message. ``thinking``
  and ``redacted_thinking`` blocks from earlier turns are accepted and not sent to the bot.
- Structured output (``output_config.format``, ``output_format``) becomes the engine's
  :class:`OutputFormat`, as OpenAI's ``response_format`` does.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from typing import Any

import orjson

from poe2openai.conversation import AttachmentInput, CallRequest, Message, OutputFormat, ToolCallInput
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.frontends.anthropic.reasoning import read_reasoning
from poe2openai.frontends.anthropic.tools import tool_plan
from poe2openai.frontends.fields import json_object, model_name, required_string

ROLES = ("user", "assistant", "system")
BILLING_HEADER = "x-anthropic-billing-header:"


@dataclass(slots=True)
class MessagesRequest:
    """A validated Messages request: the engine's request and what only this dialect needs."""

    call: CallRequest
    omit_thinking: bool = False  # ``thinking.display: "omitted"``: thinking blocks without their text


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _blocks(content: Any, where: str) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    raise bad_request(f"{where} must be a string or a list of content blocks", where)


def _string(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise bad_request(f"{where}.{key} must be a string", f"{where}.{key}")
    return value


def _source(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad_request(f"{where}.source must be an object", f"{where}.source")
    return source


def _file_name(title: Any, mime: str) -> str | None:
    if not isinstance(title, str) or not title.strip():
        return None
    name = title.strip()
    if "." not in name.rsplit("/", 1)[-1]:
        name += mimetypes.guess_extension(mime, strict=False) or ""
    return name


def _data_or_link(source: dict[str, Any], where: str, title: Any, default_mime: str) -> AttachmentInput:
    kind = source.get("type")
    if kind == "base64":
        mime = source.get("media_type", default_mime)
        if not isinstance(mime, str) or "/" not in mime:
            raise bad_request(f"{where}.source.media_type must be a media type", f"{where}.source.media_type")
        data = _string(source, "data", f"{where}.source")
        return AttachmentInput(f"data:{mime};base64,{data}", _file_name(title, mime), where)
    if kind == "url":
        url = _string(source, "url", f"{where}.source")
        if not url:
            raise bad_request(f"{where}.source.url is empty", f"{where}.source.url")
        name = title.strip() if isinstance(title, str) and title.strip() else None
        return AttachmentInput(url, name, where)
    if kind == "file":
        raise bad_request(
            f"{where}.source: file ids (Anthropic's Files API) are not supported; send base64 data or a url",
            f"{where}.source.type",
            "unsupported_content",
        )
    raise bad_request(
        f"{where}.source.type must be base64 or url (got {shown(kind)})", f"{where}.source.type", "unsupported_content"
    )


def _document(block: dict[str, Any], where: str, texts: list[str], msg: Message) -> None:
    """A PDF or other file becomes an attachment; a text document is inlined."""
    source = _source(block, where)
    title = block.get("title")
    heading = f"{title.strip()}\n\n" if isinstance(title, str) and title.strip() else ""
    kind = source.get("type")
    if kind == "text":
        texts.append(heading + _string(source, "data", f"{where}.source"))
    elif kind == "content":
        inner = source.get("content")
        parts = _blocks(inner, f"{where}.source.content")
        own: list[str] = []
        for k, part in enumerate(parts):
            p = f"{where}.source.content[{k}]"
            if not isinstance(part, dict):
                raise bad_request(f"{p} must be an object", p)
            if part.get("type") == "text":
                own.append(_string(part, "text", p))
            elif part.get("type") == "image":
                msg.attachments.append(_data_or_link(_source(part, p), p, None, "image/png"))
        texts.append(heading + "\n\n".join(own))
    elif kind == "base64" and source.get("media_type") == "text/plain":
        # plain text sent as base64: inlined like a text source (counted and read exactly)
        data = _string(source, "data", f"{where}.source")
        try:
            texts.append(heading + base64.b64decode(data, validate=False).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            raise bad_request(f"{where}.source.data is not valid base64", f"{where}.source.data") from None
    else:
        msg.attachments.append(_data_or_link(source, where, title, "application/pdf"))


def _result_text(block: dict[str, Any], where: str, follow: Message, loaded: set[str]) -> str:
    """The text of a ``tool_result``; its images go with the user message that follows."""
    content = block.get("content")
    texts: list[str] = []
    if content is not None:
        for k, part in enumerate(_blocks(content, f"{where}.content")):
            p = f"{where}.content[{k}]"
            if not isinstance(part, dict):
                raise bad_request(f"{p} must be an object", p)
            kind = part.get("type")
            if kind == "text":
                texts.append(_string(part, "text", p))
            elif kind == "image":
                follow.attachments.append(_data_or_link(_source(part, p), p, None, "image/png"))
                texts.append("(image attached to the next message)")
            elif kind == "document":
                _document(part, p, texts, follow)
            elif kind == "tool_reference":
                name = part.get("tool_name")
                if isinstance(name, str) and name:
                    loaded.add(name)
                    texts.append(f"Tool loaded: {name}")
            elif kind == "search_result":
                texts.append(_search_result(part, p))
    text = "\n\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text


def _search_result(block: dict[str, Any], where: str) -> str:
    lines = [str(block[k]) for k in ("title", "source") if isinstance(block.get(k), str) and block[k]]
    for k, part in enumerate(block.get("content") or []):
        if isinstance(part, dict) and part.get("type") == "text":
            lines.append(_string(part, "text", f"{where}.content[{k}]"))
    return "\n".join(lines)


def _user(blocks: list[Any], where: str, loaded: set[str]) -> list[Message]:
    """One user turn: its tool results as ``tool`` messages, then the rest as a user message."""
    results: list[Message] = []
    msg = Message(role="user", text="")
    texts: list[str] = []
    for j, block in enumerate(blocks):
        p = f"{where}.content[{j}]"
        if not isinstance(block, dict):
            raise bad_request(f"{p} must be an object", p)
        kind = block.get("type")
        if kind == "text":
            texts.append(_string(block, "text", p))
        elif kind == "image":
            msg.attachments.append(_data_or_link(_source(block, p), p, None, "image/png"))
        elif kind == "document":
            _document(block, p, texts, msg)
        elif kind == "search_result":
            texts.append(_search_result(block, p))
        elif kind == "tool_result":
            tool_use_id = required_string(block, "tool_use_id", p)
            text = _result_text(block, p, msg, loaded)
            results.append(Message(role="tool", text=text, tool_call_id=tool_use_id))
        # thinking blocks and block types this gateway does not know are left out
    msg.text = "\n\n".join(texts)
    if msg.text or msg.attachments or not results:
        results.append(msg)
    return results


def _assistant(blocks: list[Any], where: str) -> Message:
    msg = Message(role="assistant", text="")
    texts: list[str] = []
    for j, block in enumerate(blocks):
        p = f"{where}.content[{j}]"
        if not isinstance(block, dict):
            raise bad_request(f"{p} must be an object", p)
        kind = block.get("type")
        if kind == "text":
            texts.append(_string(block, "text", p))
        elif kind == "tool_use":
            call_id = required_string(block, "id", p)
            name = required_string(block, "name", p)
            args = block.get("input", {})
            if args is None:
                args = {}
            check_nesting(args, f"{p}.input")
            msg.tool_calls.append(ToolCallInput(call_id, name, orjson.dumps(args).decode()))
    msg.text = "\n\n".join(texts)
    return msg


def _system_text(content: Any, where: str) -> str:
    texts: list[str] = []
    for j, block in enumerate(_blocks(content, where)):
        p = f"{where}[{j}]" if isinstance(content, list) else where
        if not isinstance(block, dict):
            raise bad_request(f"{p} must be an object", p)
        if block.get("type") != "text":
            continue
        text = _string(block, "text", p)
        if text.startswith(BILLING_HEADER):
            continue
        texts.append(text)
    return "\n\n".join(t for t in texts if t)


def _messages(raw: Any, loaded: set[str]) -> list[Message]:
    if raw is None:
        raise bad_request("messages: Field required", "messages", "missing_required_parameter")
    if not isinstance(raw, list):
        raise bad_request("messages must be a list", "messages")
    if not raw:
        raise bad_request("messages must not be empty", "messages")
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{where} must be an object", where)
        role = m.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}.role must be user or assistant (got {shown(role)})", f"{where}.role")
        if "content" not in m:
            raise bad_request(f"{where}.content: Field required", f"{where}.content", "missing_required_parameter")
        content = m["content"]
        if role == "system":
            out.append(Message(role="system", text=_system_text(content, f"{where}.content")))
            continue
        blocks = _blocks(content, f"{where}.content")
        if role == "user":
            out.extend(_user(blocks, where, loaded))
        else:
            out.append(_assistant(blocks, where))
    return out


def _positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request(f"{key} must be a positive integer", key)
    return value


def _unit_number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        raise bad_request(f"{key} must be a number from 0 to 1", key)
    return float(value)


def _output_format(body: dict[str, Any]) -> OutputFormat:
    """Structured output: ``output_config.format`` (or the beta's ``output_format``) with
    ``type: "json_schema"``. Anthropic guarantees the schema, so it is strict here: a value that
    does not match it (after the engine's one re-ask) is an error, never delivered."""
    config = body.get("output_config")
    where = "output_config.format"
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        where, fmt = "output_format", body.get("output_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return OutputFormat()  # none, or a kind this gateway does not know: free text
    schema = fmt.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise bad_request(f"{where}.schema must be a JSON schema object", f"{where}.schema")
    check_nesting(schema, f"{where}.schema")
    return OutputFormat("json_schema", schema or None, strict=True)


def parse_messages_request(body: Any, counting: bool = False) -> MessagesRequest:
    """Validate a decoded JSON body of ``/v1/messages`` (``counting``: of ``count_tokens``,
    where ``max_tokens`` and ``stream`` do not apply)."""
    body = json_object(body)
    model = model_name(body, "model: Field required (a non-empty string)")
    loaded: set[str] = set()
    messages = _messages(body.get("messages"), loaded)
    system = body.get("system")
    if system is not None:
        text = _system_text(system, "system")
        if text:
            messages.insert(0, Message(role="system", text=text))

    max_tokens = _positive_int(body, "max_tokens")
    stream = False
    if not counting:
        if max_tokens is None:
            raise bad_request("max_tokens: Field required", "max_tokens", "missing_required_parameter")
        stream_raw = body.get("stream", False)
        if stream_raw is not None and not isinstance(stream_raw, bool):
            raise bad_request("stream must be true or false", "stream")
        stream = bool(stream_raw)

    temperature = _unit_number(body, "temperature")
    _unit_number(body, "top_p")  # accepted; Poe's protocol has no such knob
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise bad_request("top_k must be a whole number, 0 or more", "top_k")

    stop_raw = body.get("stop_sequences")
    if stop_raw is None:
        stop: list[str] = []
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        stop = [s for s in stop_raw if s]
    else:
        raise bad_request("stop_sequences must be a list of strings", "stop_sequences")

    history_calls = {c.name for m in messages for c in m.tool_calls}
    plan, web_search = tool_plan(body.get("tools"), body.get("tool_choice"), loaded | history_calls)
    reasoning, omit_thinking = read_reasoning(body)
    if web_search:
        reasoning.if_supported["web_search"] = True
    call = CallRequest(
        model=model,
        messages=messages,
        stream=stream,
        tools=plan,
        reasoning=reasoning,
        temperature=temperature,
        stop=stop,
        max_tokens=max_tokens,
        stream_usage=True,  # message_start and message_delta always carry usage
        output=_output_format(body),
    )
    return MessagesRequest(call, omit_thinking)
