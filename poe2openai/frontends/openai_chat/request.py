"""Parse and validate an OpenAI Chat Completions request body into typed values.

Lenient where clients differ (``stop`` as a string or list, content as a string or parts,
extra keys in parts such as ``cache_control``, unknown top-level keys ignored), strict
where a wrong value would silently change the answer: a bad value is a 400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from poe2openai.conversation import AttachmentInput, Message, ToolCallInput
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.frontends.fields import json_object, model_name, required_string

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOPS = 16  # OpenAI takes 4; the gateway enforces stops itself, so a few more are cheap
MAX_STOP_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request."""

    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    stop: list[str] = field(default_factory=list)
    logit_bias: dict[str, float] = field(default_factory=dict)
    max_tokens: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the body, for later stages (tools, reasoning)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_of_parts(parts: list[Any], where: str, msg: Message, allow_attachments: bool) -> str:
    texts: list[str] = []
    for j, part in enumerate(parts):
        p = f"{where}[{j}]"
        if isinstance(part, str):  # some clients send bare strings
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise bad_request(f"{p} must be an object", p)
        kind = part.get("type")
        if kind in ("text", "input_text", "refusal"):
            key = "refusal" if kind == "refusal" else "text"
            value = part.get(key)
            if not isinstance(value, str):
                raise bad_request(f"{p}.{key} must be a string", f"{p}.{key}")
            texts.append(value)
        elif kind in ("image_url", "file", "input_image"):
            if not allow_attachments:
                raise bad_request(f"{p}: {kind} parts are only allowed in user messages", f"{p}.type")
            msg.attachments.append(_attachment(part, kind, p))
        else:
            raise bad_request(
                f"{p}.type {shown(kind)} is not supported (use text, image_url or file)",
                f"{p}.type",
                "unsupported_content",
            )
    return "\n\n".join(texts)


def _attachment(part: dict[str, Any], kind: str, p: str) -> AttachmentInput:
    if kind == "file":
        f = part.get("file")
        if not isinstance(f, dict):
            raise bad_request(f"{p}.file must be an object", f"{p}.file")
        data = f.get("file_data")
        name = f.get("filename")
        if not isinstance(data, str) or not data:
            if isinstance(f.get("file_id"), str):
                raise bad_request(f"{p}.file.file_id is not supported; send file_data", f"{p}.file.file_id")
            raise bad_request(f"{p}.file.file_data must be a data: URL", f"{p}.file.file_data")
        if isinstance(name, str) and name and not data.startswith("data:") and "://" not in data:
            # raw base64 without the data: prefix, as some clients send it
            data = "data:application/octet-stream;base64," + data
        return AttachmentInput(data, name if isinstance(name, str) and name else None, p)
    img = part.get("image_url")
    if isinstance(img, str):
        url = img
    elif isinstance(img, dict) and isinstance(img.get("url"), str):
        url = img["url"]
    else:
        raise bad_request(f"{p}.image_url.url must be a string", f"{p}.image_url.url")
    if not url:
        raise bad_request(f"{p}.image_url.url is empty", f"{p}.image_url.url")
    return AttachmentInput(url, None, p)


def _tool_calls(value: Any, where: str) -> list[ToolCallInput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", where)
    calls: list[ToolCallInput] = []
    for k, call in enumerate(value):
        p = f"{where}[{k}]"
        if not isinstance(call, dict):
            raise bad_request(f"{p} must be an object", p)
        fn = call.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad_request(f"{p}.function.name must be a non-empty string", f"{p}.function.name")
        args = fn.get("arguments", "")
        if isinstance(args, (dict, list)):
            check_nesting(args, f"{p}.function.arguments")
            args = orjson.dumps(args).decode()
        if not isinstance(args, str):
            raise bad_request(f"{p}.function.arguments must be a JSON string", f"{p}.function.arguments")
        call_id = required_string(call, "id", p)
        calls.append(ToolCallInput(call_id, fn["name"], args))
    return calls


def _message(raw: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object", where)
    role = raw.get("role")
    if role not in ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(ROLES)} (got {shown(role)})", f"{where}.role")
    msg = Message(role=role, text="")
    content = raw.get("content")
    if isinstance(content, str):
        msg.text = content
    elif isinstance(content, list):
        msg.text = _text_of_parts(content, f"{where}.content", msg, role == "user")
    elif content is not None:
        raise bad_request(f"{where}.content must be a string or a list of parts", f"{where}.content")
    name = raw.get("name")
    msg.name = name if isinstance(name, str) and name else None
    if role == "assistant":
        msg.tool_calls = _tool_calls(raw.get("tool_calls"), f"{where}.tool_calls")
        if content is None and not msg.tool_calls and not isinstance(raw.get("function_call"), dict):
            msg.text = ""
    elif role == "tool":
        tcid = raw.get("tool_call_id")
        if not isinstance(tcid, str) or not tcid:
            raise bad_request(f"{where}.tool_call_id is required for tool messages", f"{where}.tool_call_id")
        msg.tool_call_id = tcid
    elif content is None:
        raise bad_request(f"{where}.content is required for {role} messages", f"{where}.content")
    return msg


def read_stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage`` (both OpenAI endpoints)."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("stream must be true or false", "stream")
    opts = body.get("stream_options")
    if opts is None:
        return stream, False
    if not isinstance(opts, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    flag = opts.get("include_usage", False)
    if flag is not None and not isinstance(flag, bool):
        raise bad_request("stream_options.include_usage must be true or false", "stream_options.include_usage")
    return stream, bool(flag)


def read_temperature(body: dict[str, Any]) -> float | None:
    """``temperature``, 0 to 2."""
    temperature = body.get("temperature")
    if temperature is None:
        return None
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise bad_request("temperature must be a number from 0 to 2", "temperature")
    return float(temperature)


def read_stop(body: dict[str, Any], most: int = MAX_STOPS) -> list[str]:
    """``stop`` as a string or a list, at most ``most`` sequences of bounded length (the
    gateway enforces them itself)."""
    stop_raw = body.get("stop")
    if stop_raw is None:
        stop: list[str] = []
    elif isinstance(stop_raw, str):
        stop = [stop_raw] if stop_raw else []
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        stop = [s for s in stop_raw if s]
    else:
        raise bad_request("stop must be a string or a list of strings", "stop")
    if len(stop) > most or any(len(s) > MAX_STOP_LENGTH for s in stop):
        raise bad_request(f"stop takes at most {most} sequences of at most {MAX_STOP_LENGTH} characters", "stop")
    return stop


def read_logit_bias(body: dict[str, Any]) -> dict[str, float]:
    """``logit_bias``: token id to a number from -100 to 100."""
    bias_raw = body.get("logit_bias")
    bias: dict[str, float] = {}
    if bias_raw is not None:
        if not isinstance(bias_raw, dict):
            raise bad_request("logit_bias must be an object", "logit_bias")
        for k, v in bias_raw.items():
            if not _is_number(v) or not -100 <= v <= 100:
                raise bad_request(f"logit_bias[{shown(k)}] must be a number from -100 to 100", "logit_bias")
            bias[str(k)] = float(v)
    return bias


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body."""
    body = json_object(body)
    model = model_name(body)
    messages = body.get("messages")
    if messages is None:
        raise bad_request("messages is required", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise bad_request("messages must be a list", "messages")
    if not messages:
        raise bad_request("messages must not be empty", "messages")
    parsed = [_message(m, i) for i, m in enumerate(messages)]

    stream, include_usage = read_stream(body)
    temperature = read_temperature(body)
    stop = read_stop(body)
    bias = read_logit_bias(body)

    max_tokens = None
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise bad_request(f"{key} must be a positive integer", key)
        max_tokens = v if max_tokens is None else max_tokens

    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("n must be 1: Poe bots give one answer per request", "n", "unsupported_value")

    return ChatRequest(
        model=model,
        messages=parsed,
        stream=stream,
        include_usage=include_usage,
        temperature=temperature,
        stop=stop,
        logit_bias=bias,
        max_tokens=max_tokens,
        raw=body,
    )
